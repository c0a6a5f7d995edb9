"""Recipes refined against the model file's forward model (``polyinv predict --refine``, docs/refine.md).

Each row's recipe (cBA_0, cAIBN_0, temp) is moved from the model's answer to the maximum of a posterior: the
likelihood of the observed outcome (MMD on √p, log Mn, log Mw, cBA_time) under the forward model plus a
Gaussian prior centred on the model's answer with the model's own held-out error as its width. The noise
widths and the prior's strength are set at fit time on held-out training rows (:func:`tune`): refinement is
used only where it improved them, else ``--refine`` says so and returns the model's answer. The time follows
the row's own evidence: a run whose conversion lies below the protocol's stop ran the full time; otherwise
it is the refined recipe's simulated stop time.

Rows are solved together as one block-diagonal least-squares problem (scipy's ``least_squares`` with a
``jac_sparsity``): a finite-difference Jacobian then costs three batch simulations, whatever the row count.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from scipy.optimize import least_squares
from scipy.sparse import block_diag, csr_matrix
from threadpoolctl import threadpool_limits

from polyinv.metrics import hellinger
from polyinv.schema import (
    INITIATOR_0,
    MN,
    MONOMER_LEFT,
    MW,
    RECIPE_COLUMNS,
    TIME,
    conversion,
    frame_mmd_columns,
)
from polyinv.sim.designs import TEMP_LIMITS
from polyinv.sim.kinetics import DEFAULT_N_STEPS

#: The refined coordinates: cBA_0 (mol/L), ln cAIBN_0, temp (°C).
REFINED = RECIPE_COLUMNS
#: A row's conversion (with the model's cBA_0) below the protocol's stop by more than this many standard
#: errors (from the model's cBA_0 error; at least STOP_BAND) ran the full time; within STOP_BAND of the stop
#: it stopped there; in between (runs end just short of the stop too: 0.9997 of it on the shipped grid) it is
#: simulated under the plain protocol, with no assumption either way.
STOP_SIGMAS, STOP_BAND = 3.0, 1e-4
#: Restarts of a poorly fitted row along the ridge (more initiator with a lower temperature, and the
#: reverse), in fractions of the box's width in ln cAIBN_0 and temp.
RESTART_OFFSETS = (-0.15, 0.15)
NO_STOP = 0.9999  # the conversion "stop" of a run that went the full time
LONG_RUN = 1.5  # a stopped-early row is simulated up to this multiple of the time limit (same step size) ...
TIME_SIGMA = 0.01  # ... and pays for a stop later than the limit in units of this fraction of it
_BAD = 1e3  # residual of a recipe the simulator cannot run


@dataclass(frozen=True)
class NoiseModel:
    """Weights of the refinement's objective.

    chains: effective chain count of the MMD term (σ of √p per point = 1/(2√chains)); scalar: σ of log Mn,
    log Mw and of cBA_time relative to itself; prior: strength of the prior (1 = the model's held-out error
    as its width); scale: that error in (cBA_0, ln cAIBN_0, temp).
    """

    chains: float
    scalar: float
    prior: float
    scale: tuple[float, float, float]

    def to_dict(self) -> dict:
        return {
            k: (list(map(float, v)) if isinstance(v, tuple) else float(v)) for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> NoiseModel:
        return cls(
            float(data["chains"]),
            float(data["scalar"]),
            float(data["prior"]),
            tuple(map(float, data["scale"])),
        )


@dataclass
class Refined:
    """Refined recipes (N, 3 in REFINED order, physical units), their time, and the fit statistics."""

    recipe: np.ndarray
    time: np.ndarray
    hellinger: np.ndarray
    loglik: np.ndarray
    changed: np.ndarray
    #: rows whose refinement contradicted the data: the model's answer stands (time included)
    reverted: np.ndarray


@contextlib.contextmanager
def one_thread():
    """One BLAS/OpenMP and one torch thread while refining: the least-squares solver carries a rounding
    difference of the model's answer or of the Jacobian into another optimum (a GP's refined answers moved by
    up to 0.67 between 1 and 2 threads), so the answers would depend on the machine's cores and on how rows
    are spread over Dask workers (one thread each)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def sqrt_shape(mmd: np.ndarray) -> np.ndarray:
    """√ of the MMD normalised to sum 1 (any normalisation of an evenly spaced log M axis)."""
    mmd = np.clip(np.asarray(mmd, dtype=np.float64), 0.0, None)
    total = mmd.sum(axis=1, keepdims=True)
    return np.sqrt(mmd / np.where(total > 0, total, 1.0))


def to_z(recipe: np.ndarray) -> np.ndarray:
    return np.column_stack([recipe[:, 0], np.log(recipe[:, 1]), recipe[:, 2]])


def from_z(z: np.ndarray) -> np.ndarray:
    return np.column_stack([z[:, 0], np.exp(z[:, 1]), z[:, 2]])


class RefineProblem:
    """The stacked residuals of N rows (data terms, then prior terms) for one noise model; ``prior`` (N,)
    overrides its prior strength per row (several strengths tried in one solve)."""

    def __init__(
        self,
        forward,
        observed: pd.DataFrame,
        z0: np.ndarray,
        noise: NoiseModel,
        prior: np.ndarray | None = None,
    ):
        self.forward, self.noise, self.z0 = forward, noise, z0
        self.prior = np.broadcast_to(
            np.asarray(noise.prior if prior is None else prior, dtype=np.float64), (len(observed),)
        )
        self.sqrt_p = sqrt_shape(observed[list(frame_mmd_columns(observed))].to_numpy())
        self.scalars = [c for c in (MN, MW, MONOMER_LEFT) if c in observed.columns]
        self.obs = {c: observed[c].to_numpy(np.float64) for c in self.scalars}
        self.n = len(observed)
        # rows whose conversion lies short of the protocol's stop ran the full time: simulated past the stop,
        # so that a recipe reaching it too early still feels how far it overshoots (no flat region there)
        self.ran_full = np.zeros(self.n, dtype=bool)
        self.evidence = MONOMER_LEFT in observed.columns
        if self.evidence:
            converted = conversion(self.obs[MONOMER_LEFT], np.clip(z0[:, 0], 1e-9, None))
            margin = STOP_SIGMAS * (1.0 - forward.x_stop) * noise.scale[0] / np.clip(z0[:, 0], 1e-9, None)
            self.ran_full = converted < forward.x_stop - np.maximum(margin, STOP_BAND)
            self.stopped = converted >= forward.x_stop - STOP_BAND
        else:
            self.stopped = np.zeros(self.n, dtype=bool)
        self.n_data = self.sqrt_p.shape[1] + len(self.scalars) + 1
        self.width = self.n_data + (3 if self.prior.any() else 0)

    def simulate(self, z: np.ndarray) -> pd.DataFrame:
        recipes = pd.DataFrame(from_z(z), columns=list(REFINED))
        with np.errstate(all="ignore"):
            if not self.evidence:  # no cBA_time: nothing says whether the run stopped early
                return self.forward.simulate(recipes)
            parts = []
            # a run that stopped early is simulated past the limit too: a recipe that would reach the stop
            # just after it then costs a little (the time term), not a jump in every outcome
            long = {
                "t_max": LONG_RUN * self.forward.t_max,
                "n_steps": int(np.ceil(LONG_RUN * DEFAULT_N_STEPS)),
            }
            plain = ~self.ran_full & ~self.stopped
            for mask, x_stop, extra in (
                (self.stopped, None, long),
                (self.ran_full, NO_STOP, {}),
                (plain, None, {}),
            ):
                if mask.any():
                    part = self.forward.simulate(recipes[mask], x_stop=x_stop, **extra)
                    part.index = recipes.index[mask]
                    parts.append(part)
            return pd.concat(parts).loc[recipes.index]

    def data_residuals(self, sim: pd.DataFrame) -> np.ndarray:
        noise = self.noise
        parts = [
            (sqrt_shape(sim[list(frame_mmd_columns(sim))].to_numpy()) - self.sqrt_p)
            * 2.0
            * np.sqrt(noise.chains)
        ]
        for c in self.scalars:
            s = sim[c].to_numpy(np.float64)
            if c == MONOMER_LEFT:
                parts.append(((s - self.obs[c]) / np.maximum(self.obs[c], 1e-9) / noise.scalar)[:, None])
            else:
                parts.append((np.log(np.clip(s, 1e-12, None) / self.obs[c]) / noise.scalar)[:, None])
        late = np.clip(sim[TIME].to_numpy(np.float64) - self.forward.t_max, 0.0, None)
        parts.append(np.where(self.stopped, late / (TIME_SIGMA * self.forward.t_max), 0.0)[:, None])
        r = np.concatenate(parts, axis=1)
        return np.where(np.isfinite(r), r, _BAD)

    def residuals(self, z: np.ndarray) -> np.ndarray:
        z = z.reshape(self.n, 3)
        r = self.data_residuals(self.simulate(z))
        if self.prior.any():
            r = np.concatenate(
                [r, self.prior[:, None] * (z - self.z0) / np.asarray(self.noise.scale)], axis=1
            )
        return r

    def row_cost(self, z: np.ndarray) -> np.ndarray:
        return 0.5 * (self.residuals(z) ** 2).sum(axis=1)


def _solve(
    problem: RefineProblem, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_nfev: int
) -> np.ndarray:
    """Least squares of every row at once from ``start`` (N, 3); block-diagonal Jacobian."""
    n = problem.n
    start = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
    sparsity = block_diag([csr_matrix(np.ones((problem.width, 3)))] * n, format="csr")
    scale = np.tile(np.maximum(np.asarray(problem.noise.scale), 1e-6), n)
    res = least_squares(
        lambda z: problem.residuals(z).ravel(),
        start.ravel(),
        jac_sparsity=sparsity,
        bounds=(lo.ravel(), hi.ravel()),
        x_scale=scale,
        diff_step=1e-5,
        max_nfev=max_nfev,
        ftol=1e-5,
        xtol=1e-5,
        method="trf",
        tr_solver="lsmr",
    )
    return res.x.reshape(n, 3)


def refine(
    forward,
    observed: pd.DataFrame,
    model_recipe: np.ndarray,
    noise: NoiseModel,
    low: np.ndarray,
    high: np.ndarray,
    max_nfev: int = 30,
    chunk: int = 100,
    progress: Callable[[int], None] | None = None,
    prior: np.ndarray | None = None,
) -> Refined:
    """Refine ``model_recipe`` (N, 3: REFINED, physical units) for the ``observed`` rows (MMD columns on the
    forward model's axis, plus any of Mn, Mw, cBA_time) inside the box ``low``–``high`` (3,).

    Rows whose refined fit ends far worse than the typical row's are restarted from points beside the model's
    answer along the initiator/temperature ridge (:data:`RESTART_OFFSETS`); each row keeps its best optimum,
    and the model's answer where no optimum beats it. ``prior`` (N,) overrides the noise model's prior strength per row.
    """
    model_recipe = np.asarray(model_recipe, dtype=np.float64).reshape(-1, 3)
    prior = np.broadcast_to(
        np.asarray(noise.prior if prior is None else prior, dtype=np.float64), (len(model_recipe),)
    )
    lo_z, hi_z = to_z(np.asarray(low, float)[None]), to_z(np.asarray(high, float)[None])
    z_model = np.clip(to_z(np.clip(model_recipe, low, high)), lo_z, hi_z)
    out = np.empty_like(z_model)
    for begin in range(0, len(z_model), chunk):
        rows = slice(begin, min(begin + chunk, len(z_model)))
        problem = RefineProblem(forward, observed.iloc[rows], z_model[rows], noise, prior[rows])
        lo, hi = np.repeat(lo_z, problem.n, 0), np.repeat(hi_z, problem.n, 0)
        best = z_model[rows].copy()
        best_cost = problem.row_cost(best)
        z = _solve(problem, best, lo, hi, max_nfev)
        cost = problem.row_cost(z)
        better = cost < best_cost
        best[better], best_cost[better] = z[better], cost[better]
        poor = best_cost > 3.0 * np.median(best_cost) + problem.n_data
        if poor.any():  # other basins: restart from both sides along the ridge, in one solve
            sub = np.flatnonzero(poor)
            steps = [
                m * np.array([0.0, hi_z[0, 1] - lo_z[0, 1], lo_z[0, 2] - hi_z[0, 2]]) for m in RESTART_OFFSETS
            ]
            part = RefineProblem(
                forward,
                pd.concat([observed.iloc[rows].iloc[sub]] * len(steps)),
                np.tile(z_model[rows][sub], (len(steps), 1)),
                noise,
                np.tile(prior[rows][sub], len(steps)),
            )
            lo_s, hi_s = np.tile(lo[sub], (len(steps), 1)), np.tile(hi[sub], (len(steps), 1))
            start = np.clip(np.concatenate([z_model[rows][sub] + step for step in steps]), lo_s, hi_s)
            z_all = _solve(part, start, lo_s, hi_s, max_nfev)
            c_all = part.row_cost(z_all).reshape(len(steps), len(sub))
            z_all = z_all.reshape(len(steps), len(sub), 3)
            pick = c_all.argmin(axis=0)
            z_sub, c_sub = z_all[pick, np.arange(len(sub))], c_all[pick, np.arange(len(sub))]
            win = c_sub < best_cost[sub]
            best[sub[win]], best_cost[sub[win]] = z_sub[win], c_sub[win]
        out[rows] = best
        if progress is not None:
            progress(problem.n)
    return _finish(forward, observed, z_model, out, noise)


#: Starts of the candidate search besides the model's answer: points along the initiator/temperature ridge
#: (more initiator and a lower temperature give about the same chains), in fractions of the box's width.
RIDGE_OFFSETS = (-0.3, -0.15, 0.15, 0.3)
#: A candidate may fit worse than the row's best by this much cost (½ χ² of 3 parameters at 95 %).
TOLERANCE = 3.9


def candidates(
    forward,
    observed: pd.DataFrame,
    model_recipe: np.ndarray,
    noise: NoiseModel,
    low: np.ndarray,
    high: np.ndarray,
    k: int,
    max_nfev: int = 30,
    chunk: int = 100,
    progress: Callable[[int], None] | None = None,
) -> list[Refined]:
    """Up to ``k`` distinct recipes per row that reproduce it within the noise model's tolerance, best first:
    optima from the model's answer and from starts along the ridge, sorted by their fit; an optimum is kept if
    its cost is within :data:`TOLERANCE` of the row's best and it differs from every kept one by more than 2 %
    of the box in some field. Returns ``k`` results; a row with fewer candidates holds NaN in the later ones."""
    model_recipe = np.asarray(model_recipe, dtype=np.float64).reshape(-1, 3)
    lo_z, hi_z = to_z(np.asarray(low, float)[None]), to_z(np.asarray(high, float)[None])
    width = (hi_z - lo_z)[0]
    z_model = np.clip(to_z(np.clip(model_recipe, low, high)), lo_z, hi_z)
    ranked = np.full((k, *z_model.shape), np.nan)
    for begin in range(0, len(z_model), chunk):
        rows = slice(begin, min(begin + chunk, len(z_model)))
        n, n_starts = rows.stop - rows.start, 1 + len(RIDGE_OFFSETS)
        # every start of every row in one solve: a batch simulation costs about the same for 5 rows as for 500
        stacked = RefineProblem(
            forward, pd.concat([observed.iloc[rows]] * n_starts), np.tile(z_model[rows], (n_starts, 1)), noise
        )
        lo, hi = np.repeat(lo_z, n * n_starts, 0), np.repeat(hi_z, n * n_starts, 0)
        starts = np.concatenate(
            [z_model[rows]]
            + [z_model[rows] + m * np.array([0.0, width[1], -width[2]]) for m in RIDGE_OFFSETS]
        )
        solved = _solve(stacked, np.clip(starts, lo, hi), lo, hi, max_nfev)
        costs = stacked.row_cost(solved).reshape(n_starts, n)
        found = solved.reshape(n_starts, n, 3)
        for i in range(n):
            kept: list[np.ndarray] = []
            for s in np.argsort(costs[:, i]):
                if costs[s, i] > costs[:, i].min() + TOLERANCE or len(kept) == k:
                    break
                if all(np.max(np.abs(found[s, i] - z) / width) > 0.02 for z in kept):
                    kept.append(found[s, i])
            for j, z in enumerate(kept):
                ranked[j, begin + i] = z
        if progress is not None:
            progress(n)
    out = []
    for j in range(k):
        have = np.isfinite(ranked[j, :, 0])
        result = Refined(
            np.full((len(z_model), 3), np.nan),
            np.full(len(z_model), np.nan),
            np.full(len(z_model), np.nan),
            np.full(len(z_model), np.nan),
            np.zeros(len(z_model), dtype=bool),
            np.zeros(len(z_model), dtype=bool),
        )
        if have.any():
            part = _finish(
                forward, observed.iloc[np.flatnonzero(have)], z_model[have], ranked[j, have], noise
            )
            for field in dataclasses.fields(Refined):
                getattr(result, field.name)[have] = getattr(part, field.name)
        out.append(result)
    return out


def _finish(
    forward, observed: pd.DataFrame, z_model: np.ndarray, z: np.ndarray, noise: NoiseModel
) -> Refined:

    problem = RefineProblem(forward, observed, z_model, noise)
    sim = problem.simulate(z)
    # a row that stopped at the conversion limit must stop before the time limit: a refined recipe that does not
    # contradicts the data, and the row keeps the model's answer
    reverted = problem.stopped & (sim[TIME].to_numpy(np.float64) >= forward.t_max * (1 - 1e-9))
    if reverted.any():
        z = np.where(reverted[:, None], z_model, z)
        sim = problem.simulate(z)
    data = problem.data_residuals(sim)
    recipe = from_z(z)
    time = np.minimum(sim[TIME].to_numpy(np.float64), forward.t_max)
    time[problem.ran_full] = forward.t_max  # the data's own evidence (conversion with the model's cBA_0)
    changed = np.any(np.abs(z - z_model) > 1e-9 * (1 + np.abs(z_model)), axis=1)
    return Refined(
        recipe,
        time,
        hellinger(
            observed[list(frame_mmd_columns(observed))].to_numpy(np.float64),
            sim[list(frame_mmd_columns(sim))].to_numpy(),
        ),
        -0.5 * (data**2).sum(axis=1),
        changed,
        np.asarray(reverted, dtype=bool) & np.ones(len(z), dtype=bool),
    )


def as_targets(refined: Refined, target_names, model_recipe_full: np.ndarray) -> np.ndarray:
    """(N, T) recipe in ``target_names`` order: the refined fields and time, other targets the model's (and
    every target the model's on rows whose refinement was reverted)."""
    out = np.array(model_recipe_full, dtype=np.float64, copy=True)
    new = ~refined.reverted
    for j, name in enumerate(target_names):
        if name in REFINED:
            out[new, j] = refined.recipe[new, REFINED.index(name)]
        elif name == TIME:
            out[new, j] = refined.time[new]
    return out


def refine_box(domain, forward) -> tuple[np.ndarray, np.ndarray]:
    """The refinement's box: the training range of each refined field widened by the domain's tolerance (of
    the value itself where every training row had one value), inside what the simulator accepts."""

    names = list(domain.target_names)
    low = np.array([domain.target_low[names.index(t)] for t in REFINED])
    high = np.array([domain.target_high[names.index(t)] for t in REFINED])
    width = high - low
    pad = domain.range_tolerance * np.where(width > 0, width, np.abs(high) + 1e-12)
    low, high = low - pad, high + pad
    low[1] = max(low[1], 0.5 * domain.target_low[names.index(INITIATOR_0)], 1e-6)  # a positive initiator
    low = np.maximum(low, [1e-3, 1e-6, TEMP_LIMITS[0]])
    high = np.minimum(high, [0.999 * forward.parameters.max_cBA, np.inf, TEMP_LIMITS[1]])
    return low, high
