"""Recipes by inverting a calibrated forward model, no trained network (``polyinv predict --calibration``).

For each group of rows (the samples of one reaction, times known; or each row alone) the recipe z = ([M]0,
ln [I]0, T) minimises the weighted squared residuals of what the rows observed — conversion (or the monomer
left), ln Mn, ln Mw and the MMD on √p (the calibration's residual blocks) — with each block's σ taken from the
calibration's own residuals on its training rows (measurement noise and what the scheme misses together). A
Sobol scan of the search box (one batch simulation) picks the starts; scipy's bounded ``least_squares`` refines
the best few.

A weak prior (centred on the calibration's training recipes, sd half their span) settles what the samples leave
open. Intervals: the Laplace (Gauss-Newton) covariance at the optimum, in z, with the samples of one reaction
counted as one observation (their misfit is the calibration's, shared by all of them: the covariance of the
data terms times the number of samples), times a width factor per recipe variable measured by inverting the
calibration's own training reactions (``interval_scale``: the conformal
quantile of |error| / σ over those reactions, at least 1). So the interval's coverage is measured, on the
reactions the calibration saw; with fewer than :data:`MIN_REACTIONS` reactions there it is the bare Laplace
width and the output says its coverage is unmeasured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.stats import chi2, norm, qmc

from polyinv.batch import apply
from polyinv.schema import INITIATOR_0, MN, MONOMER_0, MONOMER_LEFT, MW, TEMP, TIME, frame_mmd_columns
from polyinv.sim.forward import ForwardModel

#: Fewest training reactions from which a width factor is measured.
MIN_REACTIONS = 4
STARTS = 64  # Sobol points scanned per group (one batch simulation)
LOCAL = 2  # best of them refined
N_STEPS = 120  # simulator time steps (as the calibration's fit)
#: The prior on z: centred on the calibration's training recipes, sd this fraction of their span. It decides only
#: what the samples leave open (the initiator/temperature ridge, [M]0 when Mn barely moves): a recipe like the
#: ones the calibration was made from, rather than any point of a flat valley.
PRIOR_WIDTH = 0.5
DIFF_STEP = 1e-4  # finite-difference step in z
SIGMA_FLOOR = {"conversion": 0.005, MN: 0.01, MW: 0.01, MONOMER_LEFT: 0.005, "mmd": 2e-3}
VARIABLES = (MONOMER_0, INITIATOR_0, TEMP)
_BAD = 30.0  # residual of a recipe the simulator cannot run


@dataclass
class Inversion:
    """One group's answer: the recipe, its covariance in z ([M]0, ln [I]0, T) and the fit's quality."""

    recipe: np.ndarray  # [M]0, [I]0, T
    cov: np.ndarray  # 3x3 in z
    rms: float  # root mean square of the weighted residuals (about 1 when the rows fit as well as training rows)
    rows: int
    #: other optima that reproduce the rows within the noise (``candidates``): (recipe, rms), best first
    others: tuple = ()


def _z(recipe) -> np.ndarray:
    return np.array([recipe[0], math.log(recipe[1]), recipe[2]])


def _recipe(z) -> np.ndarray:
    return np.array([z[0], math.exp(z[1]), z[2]])


def _training_box(forward: ForwardModel) -> tuple[np.ndarray, np.ndarray]:
    """The calibration's training recipes' box in z."""
    box = (forward.fit or {}).get("box")
    if not box:
        raise ValueError("the calibration states no training recipe box (made before predict --calibration)")
    lo = np.array([box[MONOMER_0][0], math.log(box[INITIATOR_0][0]), box[TEMP][0]], dtype=float)
    hi = np.array([box[MONOMER_0][1], math.log(box[INITIATOR_0][1]), box[TEMP][1]], dtype=float)
    return lo, hi


def search_box(forward: ForwardModel) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of z: the calibration's training recipes widened by half their span on each side (ln for [I]0),
    inside physics (below pure monomer, 0-200 °C)."""
    lo, hi = _training_box(forward)
    span = np.maximum(hi - lo, [0.1, 0.2, 2.0])
    lo, hi = lo - 0.5 * span, hi + 0.5 * span
    lo[0] = max(lo[0], 0.02)
    hi[0] = min(hi[0], 0.99 * forward.parameters.max_cBA)
    lo[2], hi[2] = max(lo[2], 0.0), min(hi[2], 200.0)
    return lo, hi


def noise(forward: ForwardModel) -> dict[str, float]:
    """σ of each residual block: the calibration's residuals on its training rows, floored."""
    sigma = dict((forward.fit or {}).get("sigma") or {})
    return {k: max(float(sigma.get(k, v)), v) for k, v in SIGMA_FLOOR.items()}


class _Group:
    """The weighted residuals of one group's rows for a recipe."""

    def __init__(
        self, forward: ForwardModel, rows: pd.DataFrame, sigma: Mapping[str, float], conversion: str
    ):
        self.forward, self.sigma = forward, sigma
        self.prior = _prior(forward)
        self.times = rows[TIME].to_numpy(float)
        self.conv = rows[conversion].to_numpy(float) if conversion in rows.columns else None
        self.left = rows[MONOMER_LEFT].to_numpy(float) if self.conv is None and MONOMER_LEFT in rows else None
        self.mn, self.mw = (np.log(rows[c].to_numpy(float)) if c in rows else None for c in (MN, MW))
        mmd = list(frame_mmd_columns(rows))
        self.sqrt = _sqrt_shape(rows[mmd].to_numpy(float)) if mmd else None
        self.n_mmd = len(mmd)

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        """Forward-difference Jacobian at ``z``: the recipe and its three steps in one batch simulation."""
        zs = np.vstack([z, z + DIFF_STEP * np.eye(3)])
        r = self.residuals(zs)
        return ((r[1:] - r[0]) / DIFF_STEP).T

    def residuals(self, zs: np.ndarray) -> np.ndarray:
        """Weighted residuals of each recipe in ``zs`` ((m, 3)), one row each."""
        k = len(self.times)
        recipes = pd.DataFrame(
            {
                MONOMER_0: np.repeat(zs[:, 0], k),
                INITIATOR_0: np.repeat(np.exp(zs[:, 1]), k),
                TEMP: np.repeat(zs[:, 2], k),
                TIME: np.tile(self.times, len(zs)),
            }
        )
        with np.errstate(all="ignore"):
            sim = self.forward.simulate(recipes, n_steps=N_STEPS)
        parts = []
        x_sim = (1.0 - sim[MONOMER_LEFT] / sim[MONOMER_0]).to_numpy().reshape(len(zs), k)
        if self.conv is not None:
            parts.append((self.conv - x_sim) / self.sigma["conversion"])
        elif self.left is not None:
            parts.append(
                (self.left - sim[MONOMER_LEFT].to_numpy().reshape(len(zs), k)) / self.sigma[MONOMER_LEFT]
            )
        for obs, col in ((self.mn, MN), (self.mw, MW)):
            if obs is not None:
                parts.append(
                    (obs - np.log(np.clip(sim[col].to_numpy(), 1e-300, None)).reshape(len(zs), k))
                    / self.sigma[col]
                )
        if self.sqrt is not None:
            q = _sqrt_shape(sim[list(frame_mmd_columns(sim))].to_numpy(float)).reshape(len(zs), k, self.n_mmd)
            d = (self.sqrt[None] - q) / math.sqrt(2.0) / self.sigma["mmd"] / math.sqrt(self.n_mmd)
            parts.append(d.reshape(len(zs), -1))
        if self.prior is not None:
            parts.append((zs - self.prior[0]) / self.prior[1])
        out = np.concatenate(parts, axis=1)
        return np.where(np.isfinite(out), out, _BAD)


def _prior(forward: ForwardModel) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, sd) of the prior on z from the training box, None without one."""
    if PRIOR_WIDTH <= 0:
        return None
    lo, hi = _training_box(forward)
    return (lo + hi) / 2.0, PRIOR_WIDTH * np.maximum(hi - lo, [0.1, 0.2, 2.0])


def _sqrt_shape(mmd: np.ndarray) -> np.ndarray:
    mmd = np.clip(mmd, 0.0, None)
    total = mmd.sum(axis=1, keepdims=True)
    return np.sqrt(mmd / np.where(total > 0, total, 1.0))


def invert_group(
    forward: ForwardModel,
    rows: pd.DataFrame,
    conversion: str = "conversion",
    seed: int = 0,
    candidates: int = 0,
    level: float = 0.9,
) -> Inversion:
    """The recipe of one group of rows (internal role names; their ``time`` known) and its Laplace covariance.
    ``candidates`` K: also refine more starts (3 per candidate) and keep up to K - 1 other optima, distinct from
    the answer and each other by more than one Laplace sd in some variable, whose cost exceeds the answer's by less
    than the ``level`` quantile of chi-square with 3 degrees of freedom (the samples counted as one observation,
    as the intervals count them): recipes the rows cannot tell from the answer."""
    lo, hi = search_box(forward)
    group = _Group(forward, rows, noise(forward), conversion)
    starts = lo + qmc.Sobol(3, scramble=True, seed=seed).random(STARTS) * (hi - lo)
    cost = (group.residuals(starts) ** 2).sum(axis=1)
    found = []
    for z0 in starts[np.argsort(cost)[: LOCAL + 3 * max(candidates - 1, 0)]]:
        found.append(
            least_squares(
                lambda z: group.residuals(z[None])[0],
                np.clip(z0, lo + 1e-6, hi - 1e-6 - DIFF_STEP),
                jac=group.jacobian,
                bounds=(lo, hi),
                x_scale=(hi - lo) / 10,
                max_nfev=40,
            )
        )
    found.sort(key=lambda res: res.cost)
    best = found[0]
    jac = best.jac
    n_prior = 0 if group.prior is None else 3  # the prior's rows come last
    data = jac[: len(jac) - n_prior]
    info = data.T @ data / len(rows)  # the samples of one reaction count as one observation
    if n_prior:
        prior = jac[len(jac) - n_prior :]
        info = info + prior.T @ prior
    cov = np.linalg.pinv(info)
    rms_of = lambda res: float(np.sqrt(np.mean(res.fun[: len(res.fun) - n_prior] ** 2)))  # noqa: E731
    others = []
    if candidates > 1:
        sd = np.sqrt(np.clip(np.diag(cov), 1e-30, None))
        kept = [best.x]
        limit = chi2.ppf(level, 3)
        for res in found[1:]:
            close = any(np.all(np.abs(res.x - z) <= sd) for z in kept)
            if not close and 2.0 * (res.cost - best.cost) / len(rows) <= limit and len(kept) < candidates:
                kept.append(res.x)
                others.append((_recipe(res.x), rms_of(res)))
    return Inversion(
        _recipe(best.x),
        cov,
        rms_of(best) if len(best.fun) > n_prior else float("nan"),
        len(rows),
        tuple(others),
    )


def interval_scale(
    forward: ForwardModel,
    frame: pd.DataFrame,
    group: str,
    conversion: str = "conversion",
    workers: Callable | None = None,
) -> dict | None:
    """Width factors of the Laplace intervals, measured by inverting each training reaction (``group`` labels;
    its true recipe known): per variable, the conformal 90 % quantile of |error in z| / Laplace σ, at least 1.
    None with fewer than :data:`MIN_REACTIONS` reactions. ``workers``: a cluster's map for the reactions."""
    labels = pd.unique(frame[group])
    if len(labels) < MIN_REACTIONS:
        return None
    groups = [frame[frame[group] == label] for label in labels]
    ratios = []
    for rows, inv in zip(
        groups, apply(workers, partial(invert_group, forward, conversion=conversion), groups), strict=True
    ):
        truth = _z(rows[list(VARIABLES)].iloc[0].to_numpy(float))
        sd = np.sqrt(np.clip(np.diag(inv.cov), 1e-30, None))
        ratios.append(np.abs(_z(inv.recipe) - truth) / sd)
    ratios = np.array(ratios)
    k = min(len(ratios), math.ceil((len(ratios) + 1) * 0.9))  # split-conformal rank
    factors = np.maximum(np.sort(ratios, axis=0)[k - 1] / norm.ppf(0.95), 1.0)
    return {
        "factors": {v: float(f) for v, f in zip(VARIABLES, factors, strict=True)},
        "reactions": len(ratios),
        "level": 0.9,
        "how": "conformal: |error| / Laplace sd of the training reactions inverted with this calibration, "
        f"rank {k} of {len(ratios)}, over the 90 % normal quantile (at least 1)",
    }


def invert_frame(
    forward: ForwardModel,
    frame: pd.DataFrame,
    group: str | None,
    level: float = 0.9,
    conversion: str = "conversion",
    workers: Callable | None = None,
    candidates: int = 0,
) -> pd.DataFrame:
    """One answer per group (per row without ``group``): the recipe, ``_lo``/``_hi`` at ``level`` and the fit's
    rms; with ``candidates`` K, ``candidate<j>_<variable>`` and ``candidate<j>_fit_rms`` (j = 1..K; 1 is the
    answer, empty where fewer distinct recipes reproduce the rows). ``workers``: a cluster's map for the groups."""
    scale = ((forward.fit or {}).get("inversion") or {}).get("factors")
    labels = pd.unique(frame[group]) if group else np.arange(len(frame))
    z_q = norm.ppf(0.5 + level / 2.0)
    groups = [frame[frame[group] == label] if group else frame.iloc[[int(label)]] for label in labels]
    out = []
    solve = partial(invert_group, forward, conversion=conversion, candidates=candidates, level=level)
    for label, inv in zip(labels, apply(workers, solve, groups), strict=True):
        z = _z(inv.recipe)
        sd = np.sqrt(np.clip(np.diag(inv.cov), 0.0, None))
        factors = np.array([scale[v] for v in VARIABLES]) if scale else np.ones(3)
        half = z_q * sd * factors
        lo, hi = _recipe(z - half), _recipe(z + half)
        lo[0] = max(lo[0], 0.0)
        row = {group or "row": label}
        for i, v in enumerate(VARIABLES):
            row[v], row[f"{v}_lo"], row[f"{v}_hi"] = inv.recipe[i], lo[i], hi[i]
        row.update({"samples": inv.rows, "fit_rms": inv.rms})
        found = [(inv.recipe, inv.rms), *inv.others]
        for j in range(1, candidates + 1):
            recipe, rms = found[j - 1] if j <= len(found) else (np.full(3, np.nan), np.nan)
            row.update({f"candidate{j}_{v}": recipe[i] for i, v in enumerate(VARIABLES)})
            row[f"candidate{j}_fit_rms"] = rms
        out.append(row)
    return pd.DataFrame(out)
