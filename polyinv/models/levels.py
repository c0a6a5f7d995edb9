"""Posteriors over the levels of a designed experiment: the one place that weighs level combinations.

Used by the GP's ``design_prior`` (a regressor's prediction turned into a posterior over the design's
recipes) and by the benchmark's design-aware bound (``benchmarks/ceiling.py``).

For data from a designed experiment (the study's 432-recipe grid: every recipe a combination of a few
levels of cBA_0, cAIBN_0 and temp) and queries from the same design. The targets set on a few levels
(at most ``MAX_LEVELS`` distinct training values, and at most half the number of rows) are the design's
factors; every combination of their
training levels is a candidate recipe, weighted by the product of the levels' training frequencies. The
regressor's error is taken as Gaussian with the covariance of its leave-one-out residuals on the training
rows (in its scaled target space: for the GP, log cAIBN_0 and temp errors correlate, r ≈ -0.75 on the
noisy grid), and the answer is the posterior mean over the candidates; the interval is the central one of
the posterior over each factor's levels. Other targets (``time``, set by the stop rule) are left as the
regressor gives them (and ``time`` is never a factor when some runs stopped early).

It knows the design, so it answers between the levels only as a weighted mean of them: for recipes off
the design's levels use the plain model. Built from the training rows alone (no simulator).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from polyinv.errors import PolyinvError

MAX_LEVELS = 30  # more distinct training values than this: the target is no design factor
MAX_CANDIDATES = 20_000  # more level combinations than this: the design is no grid
CHUNK_CELLS = 1_000_000  # rows × candidates weighed at once (callers chunk their rows by it)


def fit_design(
    names: Sequence[str],
    targets: np.ndarray,
    residuals: np.ndarray,
    to_scaled: Callable[[np.ndarray], np.ndarray],
    outcomes: Sequence[str] = (),
) -> dict:
    """The design prior from the training targets (physical, rows × targets), the regressor's leave-one-out
    residuals (scaled, same shape) and the target scaling (physical → scaled, all targets). ``outcomes``:
    targets that are results, not settings, whatever their number of values (``time`` when runs stop early:
    a small grid's stop times can be few, but they are no levels to combine)."""
    targets = np.asarray(targets, dtype=np.float64)
    levels = [np.unique(targets[:, j]) for j in range(targets.shape[1])]
    # a level is a setting repeated over runs: a handful of rows with all-distinct values is no design
    most = min(MAX_LEVELS, len(targets) // 2)
    factors = [j for j, lv in enumerate(levels) if len(lv) <= most and names[j] not in outcomes]
    if not factors:
        counts = ", ".join(f"{n} {len(lv)}" for n, lv in zip(names, levels, strict=True))
        raise PolyinvError(
            f"model.design_prior needs targets set on at most {most} levels (a designed "
            f"experiment: at most {MAX_LEVELS}, each used twice on average); distinct training "
            f"values: {counts}"
        )
    n_candidates = int(np.prod([len(levels[j]) for j in factors]))
    if n_candidates > MAX_CANDIDATES:
        raise PolyinvError(
            f"model.design_prior: {n_candidates} level combinations of "
            f"{', '.join(names[j] for j in factors)}, more than {MAX_CANDIDATES}: no grid design"
        )
    candidates = combinations([levels[j] for j in factors])
    frequency = [np.array([(targets[:, j] == v).mean() for v in levels[j]]) for j in factors]
    log_prior = np.log(np.array(list(itertools.product(*frequency)))).sum(axis=1)
    full = np.repeat(targets.mean(axis=0, keepdims=True), len(candidates), axis=0)
    full[:, factors] = candidates
    cov = np.atleast_2d(np.cov(np.asarray(residuals, dtype=np.float64)[:, factors], rowvar=False))
    return {
        "factors": factors,
        "candidates": candidates,
        "log_prior": log_prior,
        "candidates_scaled": np.asarray(to_scaled(full), dtype=np.float64)[:, factors],
        "precision": np.linalg.pinv(cov),
    }


def weights(design: dict, scaled: np.ndarray) -> np.ndarray:
    """(rows, candidates) posterior weights of the candidates for predictions (scaled, all targets)."""
    q = np.asarray(scaled, dtype=np.float64)[:, design["factors"]]
    d = q[:, None, :] - design["candidates_scaled"][None, :, :]
    log_w = -0.5 * np.einsum("nci,ij,ncj->nc", d, design["precision"], d) + design["log_prior"][None, :]
    return normalised_weights(log_w)


def combinations(levels: Sequence[np.ndarray]) -> np.ndarray:
    """Every combination of the given levels, (n_combinations, n_factors), the first factor slowest."""
    return np.array(list(itertools.product(*levels)), dtype=np.float64)


def normalised_weights(log_w: np.ndarray) -> np.ndarray:
    """Rows of log weights → weights summing to one per row (shifted by the row maximum first)."""
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def posterior_mean(design: dict, w: np.ndarray, physical: np.ndarray) -> np.ndarray:
    """``physical`` (rows × targets) with the factors replaced by their posterior mean."""
    out = np.array(physical, dtype=np.float64, copy=True)
    out[:, design["factors"]] = w @ design["candidates"]
    return out


def posterior_interval(
    design: dict, w: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """``low``/``high`` with each factor's central ``level`` interval of its posterior over the levels,
    stretched to hold the posterior mean (``mean``: :func:`posterior_mean`'s rows; a 4 % tail on a far level
    moves the mean off a one-level interval)."""
    low, high = np.array(low, dtype=np.float64, copy=True), np.array(high, dtype=np.float64, copy=True)
    tail = (1.0 - level) / 2.0
    mean = np.asarray(mean, dtype=np.float64)[:, design["factors"]]
    for k, j in enumerate(design["factors"]):
        values = np.unique(design["candidates"][:, k])
        mass = np.stack([w[:, design["candidates"][:, k] == v].sum(axis=1) for v in values], axis=1)
        cum = np.cumsum(mass, axis=1)
        low[:, j] = np.minimum(values[np.argmax(cum >= tail - 1e-12, axis=1)], mean[:, k])
        high[:, j] = np.maximum(values[np.argmax(cum >= 1.0 - tail - 1e-12, axis=1)], mean[:, k])
    return low, high
