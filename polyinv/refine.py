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

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.sparse import block_diag, csr_matrix

from polyinv.schema import MMD_COLUMNS
from polyinv.sim.kinetics import DEFAULT_N_STEPS

#: The refined coordinates: cBA_0 (mol/L), ln cAIBN_0, temp (°C).
REFINED = ("cBA_0", "cAIBN_0", "temp")
#: A row's conversion (with the model's cBA_0) below the protocol's stop by more than this many standard
#: errors (from the model's cBA_0 error; at least STOP_BAND) ran the full time; within STOP_BAND of the stop
#: it stopped there; in between (runs end just short of the stop too: 0.9997 of it on the shipped grid) it is
#: simulated under the plain protocol, with no assumption either way.
STOP_SIGMAS, STOP_BAND = 3.0, 1e-4
#: Bounds of the measured noise widths (a forward model that reproduces its rows exactly measures none).
MAX_CHAINS, MIN_SCALAR = 1e9, 1e-4
#: Prior strengths tried at fit time (multiples of the model's held-out error as the prior's width).
PRIOR_GRID = (0.1, 0.5, 2.0)
#: A refinement must raise the held-out rows' global R² by this much to be used.
KEEP_MARGIN = 0.002
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
        return {k: (list(map(float, v)) if isinstance(v, tuple) else float(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> NoiseModel:
        return cls(float(data["chains"]), float(data["scalar"]), float(data["prior"]), tuple(map(float, data["scale"])))


@dataclass
class Refined:
    """Refined recipes (N, 3 in REFINED order, physical units), their time, and the fit statistics."""

    recipe: np.ndarray
    time: np.ndarray
    hellinger: np.ndarray
    loglik: np.ndarray
    changed: np.ndarray
    reverted: np.ndarray  # rows whose refinement contradicted the data: the model's answer stands (time included)


def sqrt_shape(mmd: np.ndarray) -> np.ndarray:
    """√ of the MMD normalised to sum 1 (any normalisation of an evenly spaced log M axis)."""
    mmd = np.clip(np.asarray(mmd, dtype=np.float64), 0.0, None)
    total = mmd.sum(axis=1, keepdims=True)
    return np.sqrt(mmd / np.where(total > 0, total, 1.0))


def _to_z(recipe: np.ndarray) -> np.ndarray:
    return np.column_stack([recipe[:, 0], np.log(recipe[:, 1]), recipe[:, 2]])


def _from_z(z: np.ndarray) -> np.ndarray:
    return np.column_stack([z[:, 0], np.exp(z[:, 1]), z[:, 2]])


class _Problem:
    """The stacked residuals of N rows (data terms, then prior terms) for one noise model; ``prior`` (N,)
    overrides its prior strength per row (several strengths tried in one solve)."""

    def __init__(self, forward, observed: pd.DataFrame, z0: np.ndarray, noise: NoiseModel, prior: np.ndarray | None = None):
        self.forward, self.noise, self.z0 = forward, noise, z0
        self.prior = np.broadcast_to(np.asarray(noise.prior if prior is None else prior, dtype=np.float64), (len(observed),))
        self.sqrt_p = sqrt_shape(observed[list(MMD_COLUMNS)].to_numpy())
        self.scalars = [c for c in ("Mn", "Mw", "cBA_time") if c in observed.columns]
        self.obs = {c: observed[c].to_numpy(np.float64) for c in self.scalars}
        self.n = len(observed)
        # rows whose conversion lies short of the protocol's stop ran the full time: simulated past the stop,
        # so that a recipe reaching it too early still feels how far it overshoots (no flat region there)
        self.ran_full = np.zeros(self.n, dtype=bool)
        self.evidence = "cBA_time" in observed.columns
        if self.evidence:
            conversion = 1.0 - self.obs["cBA_time"] / np.clip(z0[:, 0], 1e-9, None)
            margin = STOP_SIGMAS * (1.0 - forward.x_stop) * noise.scale[0] / np.clip(z0[:, 0], 1e-9, None)
            self.ran_full = conversion < forward.x_stop - np.maximum(margin, STOP_BAND)
            self.stopped = conversion >= forward.x_stop - STOP_BAND
        else:
            self.stopped = np.zeros(self.n, dtype=bool)
        self.n_data = self.sqrt_p.shape[1] + len(self.scalars) + 1
        self.width = self.n_data + (3 if self.prior.any() else 0)

    def simulate(self, z: np.ndarray) -> pd.DataFrame:
        recipes = pd.DataFrame(_from_z(z), columns=list(REFINED))
        with np.errstate(all="ignore"):
            if not self.evidence:  # no cBA_time: nothing says whether the run stopped early
                return self.forward.simulate(recipes)
            parts = []
            # a run that stopped early is simulated past the limit too: a recipe that would reach the stop
            # just after it then costs a little (the time term), not a jump in every outcome
            long = {"t_max": LONG_RUN * self.forward.t_max, "n_steps": int(np.ceil(LONG_RUN * DEFAULT_N_STEPS))}
            plain = ~self.ran_full & ~self.stopped
            for mask, x_stop, extra in ((self.stopped, None, long), (self.ran_full, NO_STOP, {}), (plain, None, {})):
                if mask.any():
                    part = self.forward.simulate(recipes[mask], x_stop=x_stop, **extra)
                    part.index = recipes.index[mask]
                    parts.append(part)
            return pd.concat(parts).loc[recipes.index]

    def data_residuals(self, sim: pd.DataFrame) -> np.ndarray:
        noise = self.noise
        parts = [(sqrt_shape(sim[list(MMD_COLUMNS)].to_numpy()) - self.sqrt_p) * 2.0 * np.sqrt(noise.chains)]
        for c in self.scalars:
            s = sim[c].to_numpy(np.float64)
            if c == "cBA_time":
                parts.append(((s - self.obs[c]) / np.maximum(self.obs[c], 1e-9) / noise.scalar)[:, None])
            else:
                parts.append((np.log(np.clip(s, 1e-12, None) / self.obs[c]) / noise.scalar)[:, None])
        late = np.clip(sim["time"].to_numpy(np.float64) - self.forward.t_max, 0.0, None)
        parts.append(np.where(self.stopped, late / (TIME_SIGMA * self.forward.t_max), 0.0)[:, None])
        r = np.concatenate(parts, axis=1)
        return np.where(np.isfinite(r), r, _BAD)

    def residuals(self, z: np.ndarray) -> np.ndarray:
        z = z.reshape(self.n, 3)
        r = self.data_residuals(self.simulate(z))
        if self.prior.any():
            r = np.concatenate([r, self.prior[:, None] * (z - self.z0) / np.asarray(self.noise.scale)], axis=1)
        return r

    def row_cost(self, z: np.ndarray) -> np.ndarray:
        return 0.5 * (self.residuals(z) ** 2).sum(axis=1)


def _solve(problem: _Problem, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_nfev: int) -> np.ndarray:
    """Least squares of every row at once from ``start`` (N, 3); block-diagonal Jacobian."""
    n = problem.n
    start = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
    sparsity = block_diag([csr_matrix(np.ones((problem.width, 3)))] * n, format="csr")
    scale = np.tile(np.maximum(np.asarray(problem.noise.scale), 1e-6), n)
    res = least_squares(lambda z: problem.residuals(z).ravel(), start.ravel(), jac_sparsity=sparsity,
                        bounds=(lo.ravel(), hi.ravel()), x_scale=scale, diff_step=1e-5, max_nfev=max_nfev, ftol=1e-5, xtol=1e-5,
                        method="trf", tr_solver="lsmr")
    return res.x.reshape(n, 3)


def refine(forward, observed: pd.DataFrame, model_recipe: np.ndarray, noise: NoiseModel, low: np.ndarray,
           high: np.ndarray, max_nfev: int = 30, chunk: int = 100, progress: Callable[[int], None] | None = None,
           prior: np.ndarray | None = None) -> Refined:
    """Refine ``model_recipe`` (N, 3: REFINED, physical units) for the ``observed`` rows (MMD columns on the
    forward model's axis, plus any of Mn, Mw, cBA_time) inside the box ``low``–``high`` (3,).

    Rows whose refined fit ends far worse than the typical row's are restarted from points beside the model's
    answer along the initiator/temperature ridge (:data:`RESTART_OFFSETS`); each row keeps its best optimum,
    and the model's answer where no optimum beats it. ``prior`` (N,) overrides the noise model's prior strength per row.
    """
    model_recipe = np.asarray(model_recipe, dtype=np.float64).reshape(-1, 3)
    prior = np.broadcast_to(np.asarray(noise.prior if prior is None else prior, dtype=np.float64), (len(model_recipe),))
    lo_z, hi_z = _to_z(np.asarray(low, float)[None]), _to_z(np.asarray(high, float)[None])
    z_model = np.clip(_to_z(np.clip(model_recipe, low, high)), lo_z, hi_z)
    out = np.empty_like(z_model)
    for begin in range(0, len(z_model), chunk):
        rows = slice(begin, min(begin + chunk, len(z_model)))
        problem = _Problem(forward, observed.iloc[rows], z_model[rows], noise, prior[rows])
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
            steps = [m * np.array([0.0, hi_z[0, 1] - lo_z[0, 1], lo_z[0, 2] - hi_z[0, 2]]) for m in RESTART_OFFSETS]
            part = _Problem(forward, pd.concat([observed.iloc[rows].iloc[sub]] * len(steps)),
                            np.tile(z_model[rows][sub], (len(steps), 1)), noise, np.tile(prior[rows][sub], len(steps)))
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


def candidates(forward, observed: pd.DataFrame, model_recipe: np.ndarray, noise: NoiseModel, low: np.ndarray,
               high: np.ndarray, k: int, max_nfev: int = 30, chunk: int = 100,
               progress: Callable[[int], None] | None = None) -> list[Refined]:
    """Up to ``k`` distinct recipes per row that reproduce it within the noise model's tolerance, best first:
    optima from the model's answer and from starts along the ridge, sorted by their fit; an optimum is kept if
    its cost is within :data:`TOLERANCE` of the row's best and it differs from every kept one by more than 2 %
    of the box in some field. Returns ``k`` results; a row with fewer candidates holds NaN in the later ones."""
    model_recipe = np.asarray(model_recipe, dtype=np.float64).reshape(-1, 3)
    lo_z, hi_z = _to_z(np.asarray(low, float)[None]), _to_z(np.asarray(high, float)[None])
    width = (hi_z - lo_z)[0]
    z_model = np.clip(_to_z(np.clip(model_recipe, low, high)), lo_z, hi_z)
    ranked = np.full((k, *z_model.shape), np.nan)
    for begin in range(0, len(z_model), chunk):
        rows = slice(begin, min(begin + chunk, len(z_model)))
        n, n_starts = rows.stop - rows.start, 1 + len(RIDGE_OFFSETS)
        # every start of every row in one solve: a batch simulation costs about the same for 5 rows as for 500
        stacked = _Problem(forward, pd.concat([observed.iloc[rows]] * n_starts), np.tile(z_model[rows], (n_starts, 1)), noise)
        lo, hi = np.repeat(lo_z, n * n_starts, 0), np.repeat(hi_z, n * n_starts, 0)
        starts = np.concatenate([z_model[rows]] + [z_model[rows] + m * np.array([0.0, width[1], -width[2]]) for m in RIDGE_OFFSETS])
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
        result = Refined(np.full((len(z_model), 3), np.nan), np.full(len(z_model), np.nan), np.full(len(z_model), np.nan),
                         np.full(len(z_model), np.nan), np.zeros(len(z_model), dtype=bool), np.zeros(len(z_model), dtype=bool))
        if have.any():
            part = _finish(forward, observed.iloc[np.flatnonzero(have)], z_model[have], ranked[j, have], noise)
            for name in ("recipe", "time", "hellinger", "loglik", "changed", "reverted"):
                getattr(result, name)[have] = getattr(part, name)
        out.append(result)
    return out


def _finish(forward, observed: pd.DataFrame, z_model: np.ndarray, z: np.ndarray, noise: NoiseModel) -> Refined:
    from polyinv.trust.verify import hellinger

    problem = _Problem(forward, observed, z_model, noise)
    sim = problem.simulate(z)
    # a row that stopped at the conversion limit must stop before the time limit: a refined recipe that does not
    # contradicts the data, and the row keeps the model's answer
    reverted = problem.stopped & (sim["time"].to_numpy(np.float64) >= forward.t_max * (1 - 1e-9))
    if reverted.any():
        z = np.where(reverted[:, None], z_model, z)
        sim = problem.simulate(z)
    data = problem.data_residuals(sim)
    recipe = _from_z(z)
    time = np.minimum(sim["time"].to_numpy(np.float64), forward.t_max)
    time[problem.ran_full] = forward.t_max  # the data's own evidence (conversion with the model's cBA_0)
    changed = np.any(np.abs(z - z_model) > 1e-9 * (1 + np.abs(z_model)), axis=1)
    return Refined(recipe, time, hellinger(observed[list(MMD_COLUMNS)].to_numpy(np.float64), sim[list(MMD_COLUMNS)].to_numpy()),
                   -0.5 * (data ** 2).sum(axis=1), changed, np.asarray(reverted, dtype=bool) & np.ones(len(z), dtype=bool))


def as_targets(refined: Refined, target_names, model_recipe_full: np.ndarray) -> np.ndarray:
    """(N, T) recipe in ``target_names`` order: the refined fields and time, other targets the model's (and
    every target the model's on rows whose refinement was reverted)."""
    out = np.array(model_recipe_full, dtype=np.float64, copy=True)
    new = ~refined.reverted
    for j, name in enumerate(target_names):
        if name in REFINED:
            out[new, j] = refined.recipe[new, REFINED.index(name)]
        elif name == "time":
            out[new, j] = refined.time[new]
    return out


def noise_from_truth(forward, observed: pd.DataFrame, true_recipe: np.ndarray, heldout_recipe: np.ndarray,
                     prior: float) -> NoiseModel:
    """Noise widths measured on training rows: the forward model's misfit at their true recipes (sampling noise
    and structural error together), and the model's held-out error as the prior's width."""
    z_true, z_held = _to_z(true_recipe), _to_z(heldout_recipe)
    sim = _Problem(forward, observed, z_true, NoiseModel(1.0, 1.0, 0.0, (1.0, 1.0, 1.0))).simulate(z_true)
    d = sqrt_shape(sim[list(MMD_COLUMNS)].to_numpy()) - sqrt_shape(observed[list(MMD_COLUMNS)].to_numpy())
    chains = 1.0 / (4.0 * max(float(np.nanmean(d ** 2)), 1e-12))
    logs = [np.log(sim[c].to_numpy() / observed[c].to_numpy()) for c in ("Mn", "Mw") if c in observed.columns]
    if "cBA_time" in observed.columns:
        logs.append((sim["cBA_time"].to_numpy() - observed["cBA_time"].to_numpy()) / observed["cBA_time"].to_numpy())
    scalar = max(float(np.sqrt(np.nanmean(np.concatenate(logs) ** 2))), MIN_SCALAR) if logs else 1.0
    scale = np.sqrt(np.nanmean((z_held - z_true) ** 2, axis=0))
    return NoiseModel(min(chains, MAX_CHAINS), scalar, prior, tuple(np.maximum(scale, [1e-4, 1e-4, 1e-3]).tolist()))


def spread_r2(true: np.ndarray, pred: np.ndarray, spread: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Mean over targets of 1 - MSE / ``spread`` (each target's variance over all held-out training rows; the MSE
    weighted by ``weight``, the rows each sampled row stands for): the global R² of the held-out set estimated
    from a sample of it, on the whole set's scale."""
    err = (np.asarray(pred, float) - np.asarray(true, float)) ** 2
    mse = np.average(err, axis=0, weights=weight)
    varies = spread > 0  # a target every held-out row shares says nothing about the fit
    return float(np.mean(1.0 - mse[varies] / spread[varies])) if varies.any() else 0.0


def _gain_lower_bound(true: np.ndarray, model: np.ndarray, refined: np.ndarray, spread: np.ndarray,
                      weight: np.ndarray, seed: int, draws: int = 1000) -> float:
    """10th percentile of the held-out gain (:func:`spread_r2` refined − model) over bootstrap resamples of the
    rows: a gain that a few rows make (and a resample can lose) does not count."""
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(draws):
        i = rng.integers(0, len(true), len(true))
        gains.append(spread_r2(true[i], refined[i], spread, weight[i]) - spread_r2(true[i], model[i], spread, weight[i]))
    return float(np.quantile(gains, 0.1))


def _sample(stopped: np.ndarray, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``rows`` held-out rows: the runs that stopped early (where refinement gains or loses most, and
    which a plain sample of a file with few of them misses) up to half the sample, the rest at random; each
    row's weight is the number of held-out rows of its kind it stands for."""
    rng = np.random.default_rng(seed)
    early, full = np.flatnonzero(stopped), np.flatnonzero(~stopped)
    n_early = min(len(early), max(rows // 2, rows - len(full)))
    pick_early = rng.permutation(early)[:n_early]
    pick_full = rng.permutation(full)[:rows - n_early]
    weight = np.concatenate([np.full(len(pick_early), len(early) / max(len(pick_early), 1)),
                             np.full(len(pick_full), len(full) / max(len(pick_full), 1))])
    return np.concatenate([pick_early, pick_full]), weight


def tune(forward, observed: pd.DataFrame, true: np.ndarray, heldout: np.ndarray, target_names, low: np.ndarray,
         high: np.ndarray, rows: int = 60, seed: int = 0, log: Callable[[str], None] | None = None) -> dict:
    """Choose the noise model on held-out training rows (their model answers ``heldout`` and ``true`` recipes,
    (N, T) in ``target_names`` order): the widths are measured (:func:`noise_from_truth`), the prior's strength
    is the one of :data:`PRIOR_GRID` that best raises the rows' :func:`spread_r2`. Returns the plain-data record
    stored in the model file: ``use`` (did it beat the model by :data:`KEEP_MARGIN`), ``noise``, scores, why."""
    names = list(target_names)
    cols = [names.index(t) for t in REFINED]
    true, heldout = np.asarray(true, float), np.asarray(heldout, float)
    spread = true.var(axis=0)
    pick, weight = _sample(true[:, names.index("time")] < 0.999 * np.max(true[:, names.index("time")]), rows, seed)
    obs, true, heldout = observed.iloc[pick].reset_index(drop=True), true[pick], heldout[pick]
    base = spread_r2(true, heldout, spread, weight)
    record = {"rows": int(len(pick)), "model_r2": base, "tried": []}
    start = np.clip(heldout[:, cols], low, high)
    started = time.perf_counter()
    noise = noise_from_truth(forward, obs, true[:, cols], start, PRIOR_GRID[0])
    k = len(PRIOR_GRID)  # every strength in one solve (the rows repeated once per strength)
    refined = refine(forward, pd.concat([obs] * k, ignore_index=True), np.tile(start, (k, 1)), noise, low, high,
                     prior=np.repeat(PRIOR_GRID, len(obs)))
    answers = as_targets(refined, names, np.tile(heldout, (k, 1))).reshape(k, len(obs), len(names))
    best = None
    for prior, answer in zip(PRIOR_GRID, answers, strict=True):
        score = spread_r2(true, answer, spread, weight)
        tried = dataclasses.replace(noise, prior=float(prior))
        record["tried"].append({"noise": tried.to_dict(), "r2": score})
        if log:
            log(f"refine check: prior {prior:g}, held-out training rows' R² {base:.4f} -> {score:.4f} ({len(pick)} rows)")
        if best is None or score > best[1]:
            best = (tried, score)
    chosen = answers[list(PRIOR_GRID).index(best[0].prior)]
    low_gain = _gain_lower_bound(true, heldout, chosen, spread, weight, seed)
    record.update({"use": bool(best[1] - base >= KEEP_MARGIN and low_gain > 0), "noise": best[0].to_dict(),
                   "refined_r2": best[1], "gain_lower_bound": low_gain, "seconds": time.perf_counter() - started})
    record["why"] = (f"refinement raised held-out training rows' R² {base:.4f} -> {best[1]:.4f}" if record["use"] else
                     f"refinement did not improve held-out training rows surely (R² {base:.4f} -> {best[1]:.4f}; needs "
                     f"+{KEEP_MARGIN} and a gain whose bootstrap 10th percentile is above 0: {low_gain:+.4f})")
    return record


def _box(domain, forward) -> tuple[np.ndarray, np.ndarray]:
    """The refinement's box: the training range of each refined field widened by the domain's tolerance (of
    the value itself where every training row had one value), inside what the simulator accepts."""
    from polyinv.sim.designs import TEMP_LIMITS

    names = list(domain.target_names)
    low = np.array([domain.target_low[names.index(t)] for t in REFINED])
    high = np.array([domain.target_high[names.index(t)] for t in REFINED])
    width = high - low
    pad = domain.range_tolerance * np.where(width > 0, width, np.abs(high) + 1e-12)
    low, high = low - pad, high + pad
    low[1] = max(low[1], 0.5 * domain.target_low[names.index("cAIBN_0")], 1e-6)  # a positive initiator
    low = np.maximum(low, [1e-3, 1e-6, TEMP_LIMITS[0]])
    high = np.minimum(high, [0.999 * forward.parameters.max_cBA, np.inf, TEMP_LIMITS[1]])
    return low, high


def fit_check(model, domain: dict | None, frame: pd.DataFrame, forward, setting: str = "auto", rows: int = 60,
              seed: int = 0, log: Callable[[str], None] | None = None) -> dict | None:
    """``domain`` (a stored dict) with its refine record: the noise model chosen on ``frame`` (held-out training
    rows: the model's leave-one-out answers where it has them (GP, auto), a network's validation rows; a forest
    and a network without 10 validation rows are judged on rows they trained on, which makes the check
    stricter) and whether refining improved them; ``use`` False with ``why`` when there is nothing to refine with."""
    from polyinv.trust.domain import ApplicabilityDomain, heldout_recipes

    if not domain:
        return domain
    dom = ApplicabilityDomain.from_dict(domain)
    names = list(dom.target_names)
    if setting == "none":
        record = {"use": False, "why": "the refine check was off at fit time (trust.refine none)"}
    elif forward is None:
        record = {"use": False, "why": f"no forward model ({dom.forward_off or 'trust.forward none'})"}
    elif not all(t in names for t in (*REFINED, "time")) or len(dom.mmd_names) != len(MMD_COLUMNS):
        record = {"use": False, "why": "the model does not predict a whole recipe from the 100-point MMD"}
    elif len(frame) < 10:
        record = {"use": False, "why": f"only {len(frame)} held-out training rows to check refinement on"}
    else:
        inputs = frame[list(dom.side_names) + list(dom.mmd_names)].reset_index(drop=True)  # what predict will see
        try:
            record = tune(forward, inputs, frame[names].to_numpy(np.float64), heldout_recipes(model, frame), names,
                          *_box(dom, forward), rows=rows, seed=seed, log=log)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:  # the model is kept, refinement declined
            record = {"use": False, "why": f"the refine check failed: {str(exc).splitlines()[0]}"}
    dom.refine = record
    return dom.to_dict()


def model_refine(model):
    """(forward model, noise model, why) of a loaded model's refinement; the first two None when it declines."""
    from polyinv.trust.domain import model_domain, model_forward

    forward, why = model_forward(model)
    if forward is None:
        return None, None, f"no forward model in the model file: {why}"
    record = model_domain(model).refine
    if not record:
        return None, None, "the model file holds no refine check (saved by an older polyinv)"
    if not record.get("use"):
        return None, None, record.get("why", "refinement declined at fit time")
    return forward, NoiseModel.from_dict(record["noise"]), record.get("why", "")


def _prepared(model):
    """(forward model, noise model, refined columns' indices in the model's targets, box low, box high) of a
    loaded model whose refine check let refinement run, else None."""
    from polyinv.trust.domain import model_domain

    forward, noise, _ = model_refine(model)
    if forward is None:
        return None
    names = list(model.target_names)
    return forward, noise, [names.index(t) for t in REFINED], *_box(model_domain(model), forward)


def candidate_columns(model, frame: pd.DataFrame, recipe: np.ndarray, k: int, progress: bool = True) -> pd.DataFrame | None:
    """``candidate<j>_<target>``, ``candidate<j>_hellinger`` and ``candidate<j>_loglik`` (j = 1..k, best first) of
    ``predict --candidates``; None when the model's refine check declined."""
    from tqdm.auto import tqdm

    prepared = _prepared(model)
    if prepared is None:
        return None
    forward, noise, cols, low, high = prepared
    names = list(model.target_names)
    with tqdm(total=len(frame), desc="candidates", unit="row", disable=not progress) as bar:
        found = candidates(forward, frame.reset_index(drop=True), recipe[:, cols], noise, low, high, k, progress=bar.update)
    out = {}
    for j, result in enumerate(found, start=1):
        values = as_targets(result, names, np.full_like(recipe, np.nan))  # a reverted optimum is no candidate
        out.update({f"candidate{j}_{t}": values[:, i] for i, t in enumerate(names)})
        out[f"candidate{j}_hellinger"] = np.where(result.reverted, np.nan, result.hellinger)
        out[f"candidate{j}_loglik"] = np.where(result.reverted, np.nan, result.loglik)
    return pd.DataFrame(out)


def refine_columns(model, frame: pd.DataFrame, recipe: np.ndarray, progress: bool = True) -> tuple[np.ndarray, pd.DataFrame] | None:
    """Refined recipes (N, T) for validated input rows and the extra columns of ``predict --refine``
    (``model_<target>``, ``refine_hellinger``, ``refine_loglik``, ``refine_changed``); None when the model's
    refine check declined (:func:`model_refine` says why)."""
    from tqdm.auto import tqdm

    prepared = _prepared(model)
    if prepared is None:
        return None
    forward, noise, cols, low, high = prepared
    names = list(model.target_names)
    observed = frame.reset_index(drop=True)
    with tqdm(total=len(observed), desc="refining", unit="row", disable=not progress) as bar:
        result = refine(forward, observed, recipe[:, cols], noise, low, high, progress=bar.update)
    refined = as_targets(result, names, recipe)
    extra = pd.DataFrame({f"model_{t}": recipe[:, j] for j, t in enumerate(names)})
    changed = np.any(np.abs(refined - recipe) > 1e-9 * (1 + np.abs(recipe)), axis=1)  # the answer differs from the model's
    extra["refine_hellinger"], extra["refine_loglik"], extra["refine_changed"] = result.hellinger, result.loglik, changed
    return refined, extra


def plot_candidates(out_dir, model, frame: pd.DataFrame, table: pd.DataFrame, overwrite: bool = False) -> list:
    """One PNG per row (``candidates_row<i>.png``): the input MMD and each candidate's simulated MMD, with the
    candidates' recipes in the legend. Atomic writes; nothing without candidate columns or a forward model."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    from polyinv.atomic import write_figure
    from polyinv.schema import TARGETS
    from polyinv.trust.domain import model_forward
    from polyinv.trust.verify import resimulate

    forward, _ = model_forward(model)
    ks = sorted({int(c.split("_")[0].removeprefix("candidate")) for c in table.columns if c.startswith("candidate")})
    if forward is None or not ks:
        return []
    sims = {}
    for k in ks:
        recipes = table[[f"candidate{k}_{t}" for t in TARGETS]].set_axis(list(TARGETS), axis=1)
        have = recipes.notna().all(axis=1).to_numpy()
        if have.any():
            sims[k] = (have, resimulate(recipes[have].reset_index(drop=True), forward=forward)[0])
    grid, mmd = forward.axis.points(), frame[list(MMD_COLUMNS)].to_numpy(np.float64)
    written = []
    for i in range(len(frame)):
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        ax.plot(grid, mmd[i], "k-", lw=2.0, label="input")
        for k, (have, sim) in sims.items():
            if have[i]:
                j = int(np.cumsum(have)[i] - 1)
                r = table.iloc[i]
                ax.plot(grid, sim[list(MMD_COLUMNS)].to_numpy()[j], "--", lw=1.3,
                        label=f"candidate {k}: {r[f'candidate{k}_cBA_0']:.3g} mol/L, {r[f'candidate{k}_cAIBN_0']:.3g} mol/L, "
                              f"{r[f'candidate{k}_temp']:.1f} °C, {r[f'candidate{k}_time']:.0f} s "
                              f"(Hellinger {r[f'candidate{k}_hellinger']:.4f})")
        ax.set_xlabel("log10(M / g mol⁻¹)")
        ax.set_ylabel("MMD")
        ax.set_title(f"row {i}: recipes that reproduce the input", fontsize=10)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out_dir) / f"candidates_row{i:04d}.png"
        write_figure(fig, path, dpi=100, overwrite=overwrite)
        written.append(path)
    return written
