"""The fit-time refine check: whether refining answers against the forward model (polyinv.refine) improves
a model's held-out training rows, and the noise model it chooses (stored in the model's domain).

The noise widths are measured on held-out rows from the true recipes' simulations; the prior's strength is
the one of :data:`PRIOR_GRID` that gives the best held-out R². Refinement is used only where
it raised the rows' global R² by :data:`KEEP_MARGIN` with confidence; else ``predict --refine``
says why and returns the model's answer.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from polyinv.models.base import InverseModel
from polyinv.refine.solver import (
    REFINED,
    NoiseModel,
    RefineProblem,
    as_targets,
    one_thread,
    refine,
    refine_box,
    sqrt_shape,
    to_z,
)
from polyinv.schema import MN, MONOMER_LEFT, MW, TIME, frame_mmd_columns
from polyinv.trust.domain import ApplicabilityDomain, heldout_recipes

#: Bounds of the measured noise widths (a forward model that reproduces its rows exactly measures none).
MAX_CHAINS, MIN_SCALAR = 1e9, 1e-4
#: Prior strengths tried at fit time (multiples of the model's held-out error as the prior's width).
PRIOR_GRID = (0.1, 0.5, 2.0)
#: A refinement must raise the held-out rows' global R² by this much to be used.
KEEP_MARGIN = 0.002


def noise_from_truth(
    forward, observed: pd.DataFrame, true_recipe: np.ndarray, heldout_recipe: np.ndarray, prior: float
) -> NoiseModel:
    """Noise widths measured on training rows: the forward model's misfit at their true recipes (sampling noise
    and structural error together), and the model's held-out error as the prior's width."""
    z_true, z_held = to_z(true_recipe), to_z(heldout_recipe)
    sim = RefineProblem(forward, observed, z_true, NoiseModel(1.0, 1.0, 0.0, (1.0, 1.0, 1.0))).simulate(
        z_true
    )
    d = sqrt_shape(sim[list(frame_mmd_columns(sim))].to_numpy()) - sqrt_shape(
        observed[list(frame_mmd_columns(observed))].to_numpy()
    )
    chains = 1.0 / (4.0 * max(float(np.nanmean(d**2)), 1e-12))
    logs = [np.log(sim[c].to_numpy() / observed[c].to_numpy()) for c in (MN, MW) if c in observed.columns]
    if MONOMER_LEFT in observed.columns:
        logs.append(
            (sim[MONOMER_LEFT].to_numpy() - observed[MONOMER_LEFT].to_numpy())
            / observed[MONOMER_LEFT].to_numpy()
        )
    scalar = max(float(np.sqrt(np.nanmean(np.concatenate(logs) ** 2))), MIN_SCALAR) if logs else 1.0
    scale = np.sqrt(np.nanmean((z_held - z_true) ** 2, axis=0))
    return NoiseModel(
        min(chains, MAX_CHAINS), scalar, prior, tuple(np.maximum(scale, [1e-4, 1e-4, 1e-3]).tolist())
    )


def spread_r2(
    true: np.ndarray, pred: np.ndarray, spread: np.ndarray, weight: np.ndarray | None = None
) -> float:
    """Mean over targets of 1 - MSE / ``spread`` (each target's variance over all held-out training rows; the MSE
    weighted by ``weight``, the rows each sampled row stands for): the global R² of the held-out set estimated
    from a sample of it, on the whole set's scale."""
    err = (np.asarray(pred, float) - np.asarray(true, float)) ** 2
    mse = np.average(err, axis=0, weights=weight)
    varies = spread > 0  # a target every held-out row shares says nothing about the fit
    return float(np.mean(1.0 - mse[varies] / spread[varies])) if varies.any() else 0.0


def _gain_lower_bound(
    true: np.ndarray,
    model: np.ndarray,
    refined: np.ndarray,
    spread: np.ndarray,
    weight: np.ndarray,
    seed: int,
    draws: int = 1000,
) -> float:
    """10th percentile of the held-out gain (:func:`spread_r2` refined − model) over bootstrap resamples of the
    rows: a gain that a few rows make (and a resample can lose) does not count."""
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(draws):
        i = rng.integers(0, len(true), len(true))
        gains.append(
            spread_r2(true[i], refined[i], spread, weight[i])
            - spread_r2(true[i], model[i], spread, weight[i])
        )
    return float(np.quantile(gains, 0.1))


def _sample(stopped: np.ndarray, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``rows`` held-out rows: the runs that stopped early (where refinement gains or loses most, and
    which a plain sample of a file with few of them misses) up to half the sample, the rest at random; each
    row's weight is the number of held-out rows of its kind it stands for."""
    rng = np.random.default_rng(seed)
    early, full = np.flatnonzero(stopped), np.flatnonzero(~stopped)
    n_early = min(len(early), max(rows // 2, rows - len(full)))
    pick_early = rng.permutation(early)[:n_early]
    pick_full = rng.permutation(full)[: rows - n_early]
    weight = np.concatenate(
        [
            np.full(len(pick_early), len(early) / max(len(pick_early), 1)),
            np.full(len(pick_full), len(full) / max(len(pick_full), 1)),
        ]
    )
    return np.concatenate([pick_early, pick_full]), weight


def tune(
    forward,
    observed: pd.DataFrame,
    true: np.ndarray,
    heldout: np.ndarray,
    target_names,
    low: np.ndarray,
    high: np.ndarray,
    rows: int = 60,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Choose the noise model on held-out training rows (their model answers ``heldout`` and ``true`` recipes,
    (N, T) in ``target_names`` order): the widths are measured (:func:`noise_from_truth`), the prior's strength
    is the one of :data:`PRIOR_GRID` that best raises the rows' :func:`spread_r2`. Returns the plain-data record
    stored in the model file: ``use`` (did it beat the model by :data:`KEEP_MARGIN`), ``noise``, scores, why."""
    names = list(target_names)
    cols = [names.index(t) for t in REFINED]
    true, heldout = np.asarray(true, float), np.asarray(heldout, float)
    spread = true.var(axis=0)
    pick, weight = _sample(
        true[:, names.index(TIME)] < 0.999 * np.max(true[:, names.index(TIME)]), rows, seed
    )
    obs, true, heldout = observed.iloc[pick].reset_index(drop=True), true[pick], heldout[pick]
    base = spread_r2(true, heldout, spread, weight)
    record = {"rows": int(len(pick)), "model_r2": base, "tried": []}
    start = np.clip(heldout[:, cols], low, high)
    started = time.perf_counter()
    noise = noise_from_truth(forward, obs, true[:, cols], start, PRIOR_GRID[0])
    k = len(PRIOR_GRID)  # every strength in one solve (the rows repeated once per strength)
    refined = refine(
        forward,
        pd.concat([obs] * k, ignore_index=True),
        np.tile(start, (k, 1)),
        noise,
        low,
        high,
        prior=np.repeat(PRIOR_GRID, len(obs)),
    )
    answers = as_targets(refined, names, np.tile(heldout, (k, 1))).reshape(k, len(obs), len(names))
    best = None
    for prior, answer in zip(PRIOR_GRID, answers, strict=True):
        score = spread_r2(true, answer, spread, weight)
        tried = dataclasses.replace(noise, prior=float(prior))
        record["tried"].append({"noise": tried.to_dict(), "r2": score})
        if log:
            log(
                f"refine check: prior {prior:g}, held-out training rows' R² {base:.4f} -> {score:.4f} ({len(pick)} rows)"
            )
        if best is None or score > best[1]:
            best = (tried, score)
    chosen = answers[list(PRIOR_GRID).index(best[0].prior)]
    low_gain = _gain_lower_bound(true, heldout, chosen, spread, weight, seed)
    record.update(
        {
            "use": bool(best[1] - base >= KEEP_MARGIN and low_gain > 0),
            "noise": best[0].to_dict(),
            "refined_r2": best[1],
            "gain_lower_bound": low_gain,
            "seconds": time.perf_counter() - started,
        }
    )
    record["why"] = (
        f"refinement raised held-out training rows' R² {base:.4f} -> {best[1]:.4f}"
        if record["use"]
        else f"refinement did not improve held-out training rows surely (R² {base:.4f} -> {best[1]:.4f}; needs "
        f"+{KEEP_MARGIN} and a gain whose bootstrap 10th percentile is above 0: {low_gain:+.4f})"
    )
    return record


def check_refinement(
    model: InverseModel,
    domain: dict | None,
    frame: pd.DataFrame,
    forward,
    setting: str = "auto",
    rows: int = 60,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict | None:
    """``domain`` (a stored dict) with its refine record: the noise model chosen on ``frame`` (held-out training
    rows: the model's leave-one-out answers where it has them (GP, auto), a network's validation rows; a forest
    and a network without 10 validation rows are judged on rows they trained on, which makes the check
    stricter) and whether refining improved them; ``use`` False with ``why`` when there is nothing to refine with."""

    if not domain:
        return domain
    dom = ApplicabilityDomain.from_dict(domain)
    names = list(dom.target_names)
    if setting == "none":
        record = {"use": False, "why": "the refine check was off at fit time (trust.refine none)"}
    elif forward is None:
        record = {"use": False, "why": f"no forward model ({dom.forward_off or 'trust.forward none'})"}
    elif not all(t in names for t in (*REFINED, TIME)) or len(dom.mmd_names) != forward.axis.n_points:
        record = {
            "use": False,
            "why": "the model does not predict a whole recipe from the forward model's MMD axis",
        }
    elif len(frame) < 10:
        record = {"use": False, "why": f"only {len(frame)} held-out training rows to check refinement on"}
    else:
        inputs = frame[list(dom.side_names) + list(dom.mmd_names)].reset_index(
            drop=True
        )  # what predict will see
        try:
            with one_thread():  # the decision must not depend on the machine's cores (solver.one_thread)
                record = tune(
                    forward,
                    inputs,
                    frame[names].to_numpy(np.float64),
                    heldout_recipes(model, frame),
                    names,
                    *refine_box(dom, forward),
                    rows=rows,
                    seed=seed,
                    log=log,
                )
        except (
            ValueError,
            FloatingPointError,
            np.linalg.LinAlgError,
        ) as exc:  # the model is kept, refinement declined
            record = {"use": False, "why": f"the refine check failed: {str(exc).splitlines()[0]}"}
    dom.refine = record
    return dom.to_dict()
