"""Calibrating the simulator to a data file: which kinetic parameters its rows determine, and their values.

Residuals of one row (recipe → outcome, the file's values minus the simulation's under the file's run
protocol, on the file's MMD axis): the MMD as ``(√p − √q)/√2`` per point with both rows normalised to unit
sum (their squares add up to the squared Hellinger distance; multinomial chain-sampling noise has the same
variance at every point on this scale), ``ln`` of Mn and Mw, ``cBA_time`` in mol/L and the stop time in s.

Weighted least squares (``scipy.optimize.least_squares``) with one standard deviation per block (MMD
point, ln Mn, ln Mw, cBA_time, time), re-estimated from the residuals of the previous fit (feasible
generalised least squares): the weights adapt to noise-free files, where the remaining error is the
kinetic scheme's, and to files with sampling noise alike.

Search space: each parameter's range comes from physics and the literature's spread across solvents, methods
and schemes (:data:`polyinv.sim.forward.PARAMETERS`, source beside each: decades for transfer constants and
kt), not from polyinv's values, so other simulators and labs lie inside it. A global stage first scores
scrambled Sobol points over every range on a subset of rows and refines the best few locally.

Identifiability (Brun, Reichert & Künsch 2001), judged where the global stage ended: the weighted
sensitivities of every candidate, normalised per column; a parameter joins (least known first) while the
collinearity index ``1/√λmin`` of the set stays at most :data:`GAMMA_MAX` and every standard error within
its limit; the others stay at the global stage's values. At the optimum a parameter whose standard error
(clustered by row, :func:`robust_covariance`) exceeds its limit is fixed where it ended and the rest
refitted; one at the end of its range stays there, with a warning that the scheme may lack a mechanism of
the data's. Finally :func:`fit_quality` compares the residuals with :data:`QUALITY_LIMITS` (raised for the
file's own MMD noise): a poor fit is a warning, a ``quality`` entry in the YAML, and no forward checks in
``fit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import qmc
from tqdm.auto import tqdm

from polyinv.schema import (
    INITIATOR_0,
    MMD_COLUMNS,
    MN,
    MONOMER_0,
    MONOMER_LEFT,
    MW,
    RECIPE_COLUMNS,
    TEMP,
    TIME,
    frame_mmd_columns,
)
from polyinv.sim.calibration_problem import Problem, coordinate_box, fit_subset, jacobian
from polyinv.sim.calibration_quality import fit_quality, residual_blocks, residual_summary
from polyinv.sim.file_info import file_axis, protocol_from_data
from polyinv.sim.forward import BY_NAME, ForwardModel, candidates_for, default_value
from polyinv.sim.grid import MMDAxis
from polyinv.sim.identifiability import SE_LIMIT, choose_identifiable, robust_covariance
from polyinv.sim.parameters import parameters_of, reference_text

MAX_ITERATIONS = 30  # least-squares steps per fit (each costs one simulation per fitted parameter, plus one)
N_STEPS = 120  # simulator time steps while fitting (as the domain's consistency check)
GLOBAL_ROWS = (
    80  # rows of the global stage (a random subset): enough to rank starting points, cheap to simulate
)
GLOBAL_STARTS = 64  # scrambled Sobol points over every candidate's whole range (plus polyinv's values)
GLOBAL_LOCAL = 3  # best of them refined by local least squares on the subset; the best result starts the fit
GLOBAL_ITERATIONS = 20
NEEDED = (MONOMER_0, INITIATOR_0, TEMP, TIME, MONOMER_LEFT, MN, MW, *MMD_COLUMNS)


@dataclass
class Calibration:
    """A calibrated forward model and how well the file determines it."""

    forward: ForwardModel
    table: pd.DataFrame  # one row per candidate parameter: value, se, status, unit, default, description
    correlations: pd.DataFrame  # between the fitted parameters
    residuals: dict[str, float]  # medians over the rows (see :func:`residual_summary`)
    sigma: dict[str, float]
    rows: int
    seconds: float
    simulations: int
    axis_how: str
    data: str = ""
    quality: dict = field(default_factory=dict)  # fit_quality(): good, worst block, ratios to the limits
    fitted_frame: pd.DataFrame | None = field(default=None, repr=False)  # simulated rows at the optimum
    fitted_rows: pd.DataFrame | None = field(default=None, repr=False)  # the file's rows that entered the fit


def calibrate(
    frame: pd.DataFrame,
    axis: MMDAxis | None = None,
    *,
    candidates: Sequence[str] | None = None,
    max_rows: int = 432,
    n_steps: int = N_STEPS,
    seed: int = 0,
    progress: bool = True,
    data: str = "",
    log: Callable[[str], None] | None = None,
    system: str = "ba",
    protocol: str = "stop",
    workers: Callable | None = None,
) -> Calibration:
    """Calibrate a system's kinetics to the rows of ``frame`` (internal role names, physical units).

    ``axis``: the file's MMD axis (inferred from Mn/Mw when None); ``candidates``: the parameters to
    consider (default those of the system's scheme, :func:`candidates_for`); at most ``max_rows`` rows (a random
    subset of larger files) enter the fit. ``protocol`` ``stop``: t_max and x_stop come from the rows;
    ``sampled``: each row is simulated to its own time. ``workers``: a cluster's map
    (:func:`polyinv.batch.parallel_map`) for the independent simulations (the global stage's starting points,
    finite-difference columns); the result is the same as without.
    """

    needed = [*NEEDED[:7], *frame_mmd_columns(frame)]
    if len(needed) == 7:
        needed += list(MMD_COLUMNS)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"calibration needs the columns {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    started = time.perf_counter()
    say = log or (lambda _m: None)
    if axis is None:
        axis, axis_how = file_axis(None, frame)
        if axis is None:
            raise ValueError(f"{axis_how}; give the axis")
    else:
        axis_how = "given"
    known = candidates_for(system, protocol)
    names = list(candidates) if candidates is not None else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown kinetic parameter(s) {unknown} for system {system}; known: {list(known)}")
    rows = frame
    if len(frame) > max_rows:
        rows = frame.iloc[np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))]
    rows = rows.reset_index(drop=True)
    t_max, x_stop = protocol_from_data(rows) if protocol == "stop" else (float(rows[TIME].max()), 1.0)
    bar = tqdm(desc=f"calibrating on {len(rows)} rows", unit="simulation", disable=not progress)
    problem = Problem(rows, axis, t_max, x_stop, n_steps, lambda: bar.update(1), system, protocol, workers)
    # 1. a global stage: every candidate over its whole range on a subset of rows, the best points refined
    start = _global_start(problem, names, seed)
    problem.update_sigma(problem.blocks(start))
    # 2. which parameters the rows determine, judged where the global stage ended and at polyinv's values; fit
    #    them from there with the others at polyinv's values, or at the global stage's where those fit better
    #    (weights re-estimated once)
    _, jac = jacobian(problem, names, start)
    chosen, why = choose_identifiable(jac, names)
    _, jac = jacobian(problem, names, {n: default_value(n) for n in names})  # and at polyinv's values: a
    at_defaults, _ = choose_identifiable(
        jac, names
    )  # parameter either point determines is fitted (step 3 judges)
    chosen = [n for n in names if n in chosen or n in at_defaults]
    why = {n: w for n, w in why.items() if n not in chosen}
    say(
        f"calibration: fitting {', '.join(chosen) or 'nothing'}"
        + (f"; fixed {', '.join(why)}" if why else "")
    )
    cost = lambda v: float(np.sum(problem.vector(problem.blocks(v)) ** 2))  # noqa: E731
    values = fit_subset(
        problem, chosen, {n: start[n] if n in chosen else default_value(n) for n in names}, MAX_ITERATIONS
    )
    fixed_at, first = "polyinv's value", cost(values)
    if first > cost(start):
        alternative = fit_subset(problem, chosen, start, max_nfev=MAX_ITERATIONS)
        if cost(alternative) < first:
            values, fixed_at = alternative, "the global search's value"
    problem.update_sigma(problem.blocks(values))
    values = fit_subset(problem, chosen, values, max_nfev=MAX_ITERATIONS)
    problem.update_sigma(problem.blocks(values))
    # judged again where the fit ended: a parameter the rows determine there joins (the start's collinearities
    # may not hold at the optimum, e.g. once the global stage's alpha_t has gone), and the fit goes on
    _, jac = jacobian(problem, names, values)
    joining = [n for n in choose_identifiable(jac, names)[0] if n not in chosen]
    if joining:
        chosen = [n for n in names if n in chosen or n in joining]
        why = {n: w for n, w in why.items() if n not in joining}
        say(
            f"calibration: {', '.join(joining)} determined where the fit ended; refitting {', '.join(chosen)}"
        )
        values = fit_subset(problem, chosen, values, max_nfev=MAX_ITERATIONS)
        problem.update_sigma(problem.blocks(values))
    # 3. a fitted parameter whose standard error exceeds its limit where it ended is fixed there and the rest
    #    refitted; one at the end of its range stays there (the rows ask for more than physics and the
    #    literature allow: the scheme may lack a mechanism of the data's) and is said so, never reset
    while True:
        r0, jac = jacobian(problem, names, values)
        idx = [names.index(n) for n in chosen]
        cov = robust_covariance(r0, jac[:, idx], problem.row_of) if idx else np.zeros((0, 0))
        se_internal = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        at_bound = {n: _at_bound(n, values[n]) for n in chosen}
        badness = [
            0.0 if at_bound[n] else se_internal[k] / (SE_LIMIT[BY_NAME[n].kind] / BY_NAME[n].scale)
            for k, n in enumerate(chosen)
        ]
        if not chosen or max(badness) <= 1.0:
            break
        worst = chosen[int(np.argmax(badness))]
        why[worst] = (
            "not determined by the rows (standard error above its limit); fixed where the fit left it"
        )
        chosen = [n for n in chosen if n != worst]
        say(f"calibration: {worst} {why[worst]}, refitting {', '.join(chosen) or 'nothing'}")
        values = fit_subset(problem, chosen, values, max_nfev=MAX_ITERATIONS)
        problem.update_sigma(problem.blocks(values))
    for n, side in at_bound.items():
        if side:
            p = BY_NAME[n]
            say(
                f"warning: calibration: {n} ended at the {side} end of its plausible range "
                f"({p.low if side == 'low' else p.high:.4g}{' x' if p.kind == 'factor' else ' kJ/mol' if p.kind == 'energy' else ' log-odds' if p.kind == 'odds' else ''}): the rows ask for "
                f"more, so polyinv's scheme may lack a mechanism of the file's; kept there"
            )
    sim = problem.simulate(values)
    bar.close()

    table = []
    defaults_text = reference_text(parameters_of(system))
    for n in names:
        p = BY_NAME[n]
        fitted = n in chosen
        se = se_internal[chosen.index(n)] * p.scale if fitted else float("nan")
        side = at_bound.get(n) if fitted else None
        table.append(
            {
                "parameter": n,
                "value": values[n],
                "se": se,
                "se_kind": {
                    "factor": "relative (se of ln factor)",
                    "energy": "kJ/mol",
                    "value": "absolute",
                    "odds": "log-odds",
                }[p.kind],
                "status": (
                    f"fitted, at the {side} end of its range: the scheme may lack a mechanism of the file's"
                    if side
                    else "fitted"
                )
                if fitted
                else (
                    f"fixed at {fixed_at}: {why[n]}"
                    if n in why and "where the fit left it" not in why[n]
                    else f"fixed: {why[n]}"
                    if n in why
                    else "not a candidate (polyinv's value)"
                ),
                "unit": p.unit,
                "default": default_value(n),
                "replaces": defaults_text[n],
                "description": p.text,
            }
        )
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None)) if idx else np.ones(0)
    corr = pd.DataFrame(cov / np.outer(sd, sd) if idx else np.zeros((0, 0)), index=chosen, columns=chosen)
    summary = residual_summary(rows, sim)
    quality = fit_quality(rows, summary, protocol)
    final = residual_blocks(rows, sim)
    sigma = dict(
        problem.sigma, conversion=float(np.sqrt(np.mean((final[MONOMER_LEFT] / rows[MONOMER_0]) ** 2)))
    )
    box = {c: [float(rows[c].min()), float(rows[c].max())] for c in RECIPE_COLUMNS}
    if not quality["good"]:
        say(f"warning: {quality['text']}")
    forward = ForwardModel(
        {n: values[n] for n in names},
        axis,
        t_max,
        x_stop,
        f"calibrated on {len(rows)} rows" + (f" of {Path(data).name}" if data else ""),
        {
            "residuals": summary,
            "fitted": chosen,
            "axis": axis_how,
            "quality": quality,
            "sigma": sigma,
            "box": box,
        },
        system,
        protocol,
    )
    return Calibration(
        forward,
        pd.DataFrame(table).set_index("parameter"),
        corr,
        summary,
        sigma,
        len(rows),
        time.perf_counter() - started,
        problem.simulations,
        axis_how,
        data,
        quality,
        sim,
        rows,
    )


def _at_bound(name: str, value: float) -> str | None:
    """'low' or 'high' where ``value`` lies within 2 % of the range's width from that end, else None. An end that
    is polyinv's own value (a mechanism switched off, e.g. alpha_t 0) is no sign of a missing mechanism: None."""
    p = BY_NAME[name]
    lo, hi = p.box
    x = p.coordinate(value)
    side = "low" if x <= lo + 0.02 * (hi - lo) else "high" if x >= hi - 0.02 * (hi - lo) else None
    return None if side and (p.low if side == "low" else p.high) == p.default else side


def _global_start(problem: Problem, every: Sequence[str], seed: int) -> dict[str, float]:
    """Starting values for the local fit: scrambled Sobol points over every candidate's whole range (and
    polyinv's values), scored on a random subset of rows; the best :data:`GLOBAL_LOCAL` refined by bounded
    least squares on that subset. A local fit from polyinv's values alone stops in the nearest valley."""

    # kp and its Ea are exactly redundant with kt, kbb, kpt (scaling kp, kpt and kbb by c and kt by c² leaves every
    # outcome unchanged), so the search holds them at the IUPAC benchmark and lets the others move
    names = [n for n in every if n not in ("kp", "Ea_kp")]
    rng = np.random.default_rng(seed)
    rows = problem.frame
    subset = rows.iloc[
        np.sort(rng.choice(len(rows), min(GLOBAL_ROWS, len(rows)), replace=False))
    ].reset_index(drop=True)
    small = Problem(
        subset,
        problem.axis,
        problem.t_max,
        problem.x_stop,
        problem.n_steps,
        problem.tick,
        problem.system,
        problem.protocol,
        problem.workers,
    )
    lo, hi = coordinate_box(names)
    points = lo + qmc.Sobol(len(names), scramble=True, seed=seed).random(GLOBAL_STARTS) * (hi - lo)
    defaults = {n: default_value(n) for n in names}
    starts = [defaults] + [small.values(names, x, defaults) for x in points]
    cost = small.map(lambda v: float(np.sum(small.vector(small.blocks(v)) ** 2)), starts)
    best = [starts[i] for i in np.argsort(cost)[:GLOBAL_LOCAL]]
    refined = [fit_subset(small, names, v, max_nfev=GLOBAL_ITERATIONS) for v in best]
    scores = [float(np.sum(small.vector(small.blocks(v)) ** 2)) for v in refined]
    problem.simulations += small.simulations
    return {**{n: default_value(n) for n in every}, **refined[int(np.argmin(scores))]}
