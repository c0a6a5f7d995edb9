"""Public simulator API: ``simulate`` for one recipe, ``simulate_many`` for a design."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from polyinv.batch import Cluster, map_chunks
from polyinv.schema import (
    MN,
    MONOMER_0,
    MONOMER_LEFT,
    MW,
    SIDE_INPUTS,
    TARGETS,
    TIME,
    conversion,
    mmd_columns,
)
from polyinv.sim.designs import RECIPE_FIELDS, validate_recipes
from polyinv.sim.distribution import cumulative_moments, mmd_from_rates, number_density
from polyinv.sim.grid import DEFAULT_AXIS, MMDAxis
from polyinv.sim.kinetics import (
    DEFAULT_N_STEPS,
    DEFAULT_T_MAX,
    DEFAULT_X_STOP,
    RecipeRates,
    chain_rates,
    integrate,
)
from polyinv.sim.noise import mmd_from_sample, sample_chain_lengths
from polyinv.sim.parameters import DEFAULT_PARAMETERS, KineticParameters

#: Extra columns ``simulate_many(..., extra_columns=True)`` appends after the compuesta columns.
EXTRA_COLUMNS: tuple[str, ...] = (
    "conversion",
    "mcr_fraction",
    "mcr_fraction_stop",
    "reached_x_stop",
    "mmd_coverage",
)
MMD_CHUNK = 128  # recipes per block when evaluating distributions (bounds memory to ~30 MB)


@dataclass
class SimulationResult:
    """Outcome of one run. Concentrations mol/L, times s, molar masses g/mol.

    ``chain_length``/``number_fraction``/``weight_fraction``: the full cumulative dead-polymer
    distribution (noise-free) per unit chain length on a fine grid. ``mmd`` is w(log10 M) on
    ``log10m`` (sum * Δlog10M = 1). With ``noise_chains`` set, ``Mn``, ``Mw`` and ``mmd`` come from the
    chain sample; ``Mn_exact``/``Mw_exact`` keep the noise-free values.
    """

    recipe: dict[str, float]
    stop_time: float
    cBA_time: float
    conversion: float
    Mn: float
    Mw: float
    mcr_fraction: float  # MCR / (SPR + MCR) at the start of the run (low conversion, as measured by EPR)
    mcr_fraction_stop: float  # the same at the stop time
    reached_x_stop: bool
    log10m: np.ndarray
    mmd: np.ndarray
    mmd_coverage: float
    chain_length: np.ndarray
    number_fraction: np.ndarray
    weight_fraction: np.ndarray
    times: np.ndarray
    conversion_profile: np.ndarray
    Mn_exact: float = 0.0
    Mw_exact: float = 0.0
    noise_chains: int | None = None
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def dispersity(self) -> float:
        """Mw / Mn."""
        return self.Mw / self.Mn


def _check_t_max(t_max, n: int) -> float | np.ndarray:
    """``t_max`` as a float, or as a float array of one time per recipe (n,)."""
    if isinstance(t_max, (int, float, np.integer, np.floating)) and not isinstance(t_max, (bool, np.bool_)):
        if not (np.isfinite(t_max) and t_max > 0):
            raise ValueError(f"t_max must be a positive number of seconds, got {t_max!r}")
        return float(t_max)
    try:
        values = np.asarray(t_max, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"t_max must be a number of seconds or one per recipe, got {t_max!r}") from None
    if values.shape != (n,):
        raise ValueError(f"t_max must be one number or one per recipe ({n}), got shape {values.shape}")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"t_max must be a positive number of seconds, got {float(values[i]):g} (recipe {i})")
    return values


def _check_settings(x_stop: float, n_steps: int, noise_chains: int | None) -> None:
    if not (isinstance(x_stop, (int, float)) and 0 < x_stop <= 1):
        raise ValueError(
            f"x_stop must be a conversion above 0 and at most 1 (1: never stops), got {x_stop!r}"
        )
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    if noise_chains is not None and (
        isinstance(noise_chains, bool) or not isinstance(noise_chains, (int, np.integer)) or noise_chains < 1
    ):
        raise ValueError(f"noise_chains must be a positive integer, got {noise_chains!r}")


def _mcr_fraction(S: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Share of mid-chain radicals; 0 where no radical is left (the initiator spent), NaN for a lost run."""
    total = S + T
    share = np.divide(T, total, out=np.zeros_like(total), where=total > 0)
    return np.where(np.isnan(total), np.nan, share)


def _run_block(
    params: KineticParameters,
    recipes: np.ndarray,
    t_max,
    x_stop: float,
    n_steps: int,
    noise_chains: int | None,
    seeds: list[np.random.SeedSequence] | None,
    axis: MMDAxis = DEFAULT_AXIS,
) -> dict[str, np.ndarray]:
    """Simulate a block of validated recipes ((n, 3) array); arrays of every output."""
    rates = RecipeRates.build(params, recipes[:, 0], recipes[:, 1], recipes[:, 2])
    traj = integrate(rates, t_max=t_max, x_stop=x_stop, n_steps=n_steps)
    cr = chain_rates(rates, traj.M, traj.S, traj.T, traj.G)
    lam0, lam1, lam2 = cumulative_moments(cr, traj.weights)
    n = recipes.shape[0]
    mmd = np.empty((n, axis.n_points))
    coverage = np.empty(n)
    mass = params.monomer_molar_mass * params.gpc_mass  # the molar mass a GPC reports per monomer unit
    spread = float(params.gpc_spread)
    if spread > 0 and noise_chains is not None:
        raise ValueError("chain-sampling noise with a GPC band broadening (gpc_spread) is not supported")
    for start in range(0, n, MMD_CHUNK):
        sl = slice(start, start + MMD_CHUNK)
        sub = _slice_rates(cr, sl)
        if spread > 0:
            mmd[sl], coverage[sl] = _broadened(sub, traj.weights[sl], lam1[sl], axis, mass, spread)
        else:
            mmd[sl], coverage[sl] = mmd_from_rates(sub, traj.weights[sl], lam1[sl], axis, mass)
    s2 = (spread * np.log(10.0)) ** 2  # a Gaussian in ln M of this variance: Mw x exp(s2/2), Mn x exp(-s2/2)
    mn = mass * lam1 / lam0 * np.exp(-s2 / 2)
    mw = mass * lam2 / lam1 * np.exp(s2 / 2)
    out = {
        TIME: traj.stop_time,
        MONOMER_LEFT: traj.M[:, -1],
        MN: mn,
        MW: mw,
        "mmd": mmd,
        "Mn_exact": mn.copy(),
        "Mw_exact": mw.copy(),
        "conversion": conversion(traj.M[:, -1], rates.M0),
        "mcr_fraction": _mcr_fraction(traj.S[:, 0], traj.T[:, 0]),
        "mcr_fraction_stop": _mcr_fraction(traj.S[:, -1], traj.T[:, -1]),
        "reached_x_stop": traj.reached,
        "mmd_coverage": coverage,
    }
    if noise_chains is not None:
        assert seeds is not None
        for i in range(n):
            rng = np.random.default_rng(seeds[i])
            lengths = sample_chain_lengths(
                cr.chains_exp[i], cr.chains_comb[i], cr.a[i], traj.weights[i], int(noise_chains), rng
            )
            out["mmd"][i], out[MN][i], out[MW][i] = mmd_from_sample(
                lengths, rng, axis, params.monomer_molar_mass
            )
    out["_traj"], out["_cr"], out["_lam"] = traj, cr, (lam0, lam1, lam2)
    return out


def _broadened(cr, weights, lam1, axis: MMDAxis, mass: float, spread: float):
    """The MMD on ``axis`` after a Gaussian band broadening of ``spread`` decades: rendered on a fine axis reaching
    4 spreads beyond both ends, convolved, read at the axis points."""
    step = (
        max(min(axis.delta, spread), axis.delta / 2.0) / 4.0
    )  # a spread far below the axis' step: delta / 8
    pad = 4.0 * spread
    n_fine = int(np.ceil((axis.log10m_max - axis.log10m_min + 2 * pad) / step)) + 1
    fine = MMDAxis(axis.log10m_min - pad, axis.log10m_max + pad, n_fine, "density")
    w, coverage = mmd_from_rates(cr, weights, lam1, fine, mass)
    offsets = np.arange(-int(pad / fine.delta), int(pad / fine.delta) + 1) * fine.delta
    kernel = np.exp(-0.5 * (offsets / spread) ** 2)
    kernel /= kernel.sum()
    smooth = np.stack([np.convolve(row, kernel, mode="same") for row in w])
    points = np.stack([np.interp(axis.points(), fine.points(), row) for row in smooth])
    density = points / np.clip(points.sum(axis=1, keepdims=True) * axis.delta, 1e-300, None)
    return axis.normalise(density), coverage


def _slice_rates(cr, sl):
    return type(cr)(**{k: v[sl] for k, v in vars(cr).items()})


def simulate(
    recipe: Mapping[str, float],
    params: KineticParameters = DEFAULT_PARAMETERS,
    *,
    t_max: float = DEFAULT_T_MAX,
    x_stop: float = DEFAULT_X_STOP,
    n_steps: int = DEFAULT_N_STEPS,
    noise_chains: int | None = None,
    seed: int = 0,
    n_fine: int = 2000,
    axis: MMDAxis = DEFAULT_AXIS,
) -> SimulationResult:
    """Simulate one recipe ``{"cBA_0": mol/L, "cAIBN_0": mol/L, "temp": °C}`` until t_max or x_stop; the MMD
    on ``axis``."""
    t_max = _check_t_max(t_max, 1)
    _check_settings(x_stop, n_steps, noise_chains)
    frame = validate_recipes(dict(recipe) if isinstance(recipe, Mapping) else recipe, params.max_cBA)
    if len(frame) != 1:
        raise ValueError(f"simulate takes one recipe, got {len(frame)}; use simulate_many")
    seeds = np.random.SeedSequence(seed).spawn(1) if noise_chains is not None else None
    out = _run_block(params, frame.to_numpy(), t_max, float(x_stop), int(n_steps), noise_chains, seeds, axis)
    traj, cr, (lam0, lam1, _) = out["_traj"], out["_cr"], out["_lam"]
    r_max = 10.0 ** (axis.log10m_max + 0.5) / params.monomer_molar_mass
    chain_length = np.unique(np.rint(np.logspace(0.0, np.log10(r_max), n_fine)))
    nd = number_density(cr, traj.weights, chain_length)[0]
    live = traj.weights[0] > 0
    live[0] = True
    times = traj.t[0][live]
    order = np.argsort(times, kind="stable")
    conv = conversion(traj.M[0], frame[MONOMER_0].iloc[0])[live]
    return SimulationResult(
        recipe={k: float(frame[k].iloc[0]) for k in RECIPE_FIELDS},
        stop_time=float(out[TIME][0]),
        cBA_time=float(out[MONOMER_LEFT][0]),
        conversion=float(out["conversion"][0]),
        Mn=float(out[MN][0]),
        Mw=float(out[MW][0]),
        mcr_fraction=float(out["mcr_fraction"][0]),
        mcr_fraction_stop=float(out["mcr_fraction_stop"][0]),
        reached_x_stop=bool(out["reached_x_stop"][0]),
        log10m=axis.points(),
        mmd=out["mmd"][0],
        mmd_coverage=float(out["mmd_coverage"][0]),
        chain_length=chain_length,
        number_fraction=nd / lam0[0],
        weight_fraction=chain_length * nd / lam1[0],
        times=times[order],
        conversion_profile=conv[order],
        Mn_exact=float(out["Mn_exact"][0]),
        Mw_exact=float(out["Mw_exact"][0]),
        noise_chains=noise_chains,
    )


def _block_job(block: tuple[int, int], job) -> dict[str, np.ndarray]:
    return job(*block)


def simulate_many(
    recipes,
    params: KineticParameters = DEFAULT_PARAMETERS,
    *,
    t_max=DEFAULT_T_MAX,
    x_stop: float = DEFAULT_X_STOP,
    n_steps: int = DEFAULT_N_STEPS,
    noise_chains: int | None = None,
    seed: int = 0,
    chunk_size: int = 1000,
    n_jobs: int = 1,
    progress: bool = True,
    extra_columns: bool = False,
    axis: MMDAxis = DEFAULT_AXIS,
    cluster: Cluster | None = None,
) -> pd.DataFrame:
    """Simulate many recipes (DataFrame with cBA_0, cAIBN_0, temp, or an (n, 3) array).

    Returns a DataFrame with the composite columns (``time`` = stop time; MMD1..MMDn, n the axis' points), plus
    ``EXTRA_COLUMNS`` when ``extra_columns``. Results do not depend on ``chunk_size``, ``n_jobs`` or ``cluster``
    (a Dask cluster that runs the chunks: polyinv.batch); with
    ``noise_chains`` every recipe draws from its own generator spawned from ``seed``. ``t_max`` is one
    reaction time for every recipe or one per recipe (array of length n); a recipe's result does not
    depend on the other recipes in the batch. The MMD columns hold the distribution on ``axis``.
    """
    frame = validate_recipes(recipes, params.max_cBA)
    values = frame.to_numpy()
    n = len(values)
    t_max = _check_t_max(t_max, n)
    _check_settings(x_stop, n_steps, noise_chains)
    seeds = np.random.SeedSequence(seed).spawn(n) if noise_chains is not None else None
    blocks = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]

    def job(lo: int, hi: int) -> dict[str, np.ndarray]:
        block_t_max = t_max[lo:hi] if isinstance(t_max, np.ndarray) else t_max
        res = _run_block(
            params,
            values[lo:hi],
            block_t_max,
            float(x_stop),
            int(n_steps),
            noise_chains,
            None if seeds is None else seeds[lo:hi],
            axis,
        )
        return {k: v for k, v in res.items() if not k.startswith("_")}

    if cluster is not None and cluster.on:
        results = map_chunks(
            _block_job,
            blocks,
            cluster,
            sizes=[hi - lo for lo, hi in blocks],
            desc="simulating",
            unit="recipe",
            progress=progress,
            shared={"job": job},
        )
    else:
        results = []
        bar = tqdm(total=n, desc="simulating", unit="recipe", disable=not progress)
        if n_jobs == 1 or len(blocks) == 1:
            for lo, hi in blocks:
                results.append(job(lo, hi))
                bar.update(hi - lo)
        else:
            gen = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(job)(lo, hi) for lo, hi in blocks)
            for (lo, hi), res in zip(blocks, gen, strict=True):
                results.append(res)
                bar.update(hi - lo)
        bar.close()
    merged = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
    data = {f: values[:, i] for i, f in enumerate(RECIPE_FIELDS)}
    data.update({k: merged[k] for k in (TIME, MONOMER_LEFT, MN, MW)})
    mmd_names = mmd_columns(axis.n_points)
    data.update(dict(zip(mmd_names, merged["mmd"].T, strict=True)))
    df = pd.DataFrame(data, columns=[*TARGETS, *SIDE_INPUTS, *mmd_names])
    if extra_columns:
        for k in EXTRA_COLUMNS:
            df[k] = merged[k]
    return df
