"""The dataset generator behind ``polyinv simulate``: simulate a design and write it with its metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import polyinv
from polyinv.batch import Cluster
from polyinv.data.io import row_text
from polyinv.schema import (
    INITIATOR_0,
    MN,
    MONOMER_0,
    MONOMER_LEFT,
    MW,
    SIDE_INPUTS,
    TARGETS,
    TEMP,
    TIME,
    conversion,
    frame_mmd_columns,
    system_of,
)
from polyinv.sim.designs import RECIPE_FIELDS, grid_design, lhs_design
from polyinv.sim.forward import ForwardModel
from polyinv.sim.grid import DEFAULT_AXIS, MMDAxis
from polyinv.sim.io import output_format, write_dataset
from polyinv.sim.kinetics import DEFAULT_N_STEPS, DEFAULT_T_MAX, DEFAULT_X_STOP
from polyinv.sim.parameters import DEFAULT_PARAMETERS, KineticParameters
from polyinv.sim.simulate import simulate_many

PROG = "polyinv simulate"


def canonical_command(args: argparse.Namespace) -> str:
    """The command that reproduces the file (inputs and output given by file name only, so it is location-free)."""
    if getattr(args, "recipes", None):
        parts = [PROG, f"--recipes {Path(args.recipes).name}"]
    else:
        parts = [PROG, f"--design {args.design}"]
    if args.design == "lhs":
        parts.append(f"--n {args.n}")
    if getattr(args, "calibration", None):
        parts.append(f"--calibration {Path(args.calibration).name}")
    if getattr(args, "system", None) not in (None, "ba"):
        parts.append(f"--system {args.system}")
    parts.append(f"--seed {args.seed}")
    if args.noise_chains is not None:
        parts.append(f"--noise-chains {args.noise_chains}")
    for flag, value, default in (
        ("--t-max", args.t_max, DEFAULT_T_MAX),
        ("--x-stop", args.x_stop, DEFAULT_X_STOP),
        ("--n-steps", args.n_steps, DEFAULT_N_STEPS),
    ):
        if value is not None and value != default:
            parts.append(f"{flag} {value:g}")
    parts.append(f"--out {Path(args.out).name}")
    return " ".join(parts)


def dataset_metadata(
    *,
    design: str,
    n: int,
    seed: int,
    noise_chains: int | None,
    t_max: float,
    x_stop: float,
    n_steps: int,
    command: str,
    params: KineticParameters = DEFAULT_PARAMETERS,
    axis: MMDAxis = DEFAULT_AXIS,
    calibration: str | None = None,
    system: str = "ba",
    protocol: str = "stop",
) -> list[tuple[str, str]]:
    """Key/value rows stored with a data set: grid, normalisation, design, every parameter, version."""
    sys_ = system_of(system)
    grouped: dict[str, list[str]] = {}
    for column, unit in sys_.units.items():  # "cBA_0, cAIBN_0, cBA_time: mol/L; temp: degC; ..."
        grouped.setdefault(unit.replace("°C", "degC"), []).append(column)
    units = "; ".join(f"{', '.join(cols)}: {unit}" for unit, cols in grouped.items())
    sampled = protocol == "sampled"
    rows = [
        ("package", "polyinv"),
        ("version", polyinv.__version__),
        ("command", command),
        ("design", design),
        ("n_recipes", str(n)),
        ("seed", str(seed)),
        ("noise_chains", "none (deterministic)" if noise_chains is None else str(noise_chains)),
        ("method", "QSSA radicals (SPR, MCR), RK4 for ln[M], analytic [I]; Hamielec cumulative distribution"),
        *(
            [("protocol", "sampled: each row simulated to its own time")]
            if sampled
            else [("t_max_s", repr(float(t_max))), ("x_stop", repr(float(x_stop)))]
        ),
        ("n_steps", str(n_steps)),
        (
            TIME,
            "sample time, s (an input)"
            if sampled
            else "stop time, s: t_max, or the exact time conversion reaches x_stop",
        ),
        ("mmd_grid", f"MMD1..MMD{axis.n_points} on log10(M / (g/mol)) evenly spaced, both ends included"),
        *axis.metadata()[:4],
        (
            "mmd_value",
            "mass fraction of chains in the cell of width delta centred on the point, divided by delta: "
            "w(log10 M)",
        ),
        axis.metadata()[4],
        ("molar_mass", f"M = chain length * {params.monomer_molar_mass:g} g/mol (end groups neglected)"),
        (
            "Mn_Mw",
            "from the exact moments of the full distribution (or of the chain sample with noise), "
            f"not from the {axis.n_points} points",
        ),
        ("units", units),
    ]
    if system != "ba":
        rows.insert(3, ("system", f"{system}: {sys_.name}"))
    if calibration:
        rows.append(("calibration", calibration))
    return rows + params.metadata()


def check_finite(data: pd.DataFrame, source: str | None = None) -> None:
    """ValueError naming the first recipe whose simulated outcome (cBA_time, Mn, Mw, time, MMD) is not finite."""

    columns = [MONOMER_LEFT, MN, MW, TIME, *frame_mmd_columns(data)]
    bad = np.flatnonzero(~np.isfinite(data[columns].to_numpy(np.float64)).all(axis=1))
    if len(bad):
        i = int(bad[0])
        r = data.iloc[i]
        where = f"{source}: {row_text(i)}" if source else f"recipe {i}"
        raise ValueError(
            f"{where} (cBA_0 {r[MONOMER_0]:g}, cAIBN_0 {r[INITIATOR_0]:g}, temp {r[TEMP]:g}): the simulation "
            f"gave non-finite outcomes ({len(bad)} of {len(data)} recipes); nothing written"
        )


def generate(
    design: str,
    out: str,
    *,
    n: int | None = None,
    seed: int = 0,
    noise_chains: int | None = None,
    t_max: float | None = None,
    x_stop: float | None = None,
    n_steps: int = DEFAULT_N_STEPS,
    n_jobs: int = 1,
    progress: bool = True,
    command: str = "",
    cluster: Cluster | None = None,
    recipes: pd.DataFrame | None = None,
    forward: ForwardModel | None = None,
    overwrite: bool = True,
    source: str | None = None,
) -> pd.DataFrame:
    """Simulate a design (``grid``, ``lhs``, or ``recipes``: the given cBA_0, cAIBN_0, temp rows) and write it
    to ``out``; returns the written compuesta table. ``forward``: a calibrated forward model (kinetics, MMD
    axis, run protocol); ``t_max``/``x_stop`` given here override its protocol. ``overwrite`` False: an ``out``
    that appeared meanwhile is not replaced. A recipe whose simulated outcome is not finite is an error naming
    its row (of ``source``, the recipes file, where given): nothing is written."""
    output_format(out)
    forward = forward or ForwardModel()
    t_max = forward.t_max if t_max is None else t_max
    x_stop = forward.x_stop if x_stop is None else x_stop
    system = system_of(forward.system)
    if design == "grid":
        if n not in (None, 432):
            raise ValueError(f"--n must be omitted or 432 for the grid design, got {n}")
        if forward.system != "ba":
            raise ValueError(f"the study's grid is BA's; for {system.name} use --design lhs or --recipes")
        recipes = grid_design()
    elif design == "lhs":
        if n is None:
            raise ValueError("--n is required for the lhs design")
        recipes = lhs_design(n, seed, {role: system.ranges[system.column(role)] for role in RECIPE_FIELDS})
    elif design == "recipes":
        if recipes is None:
            raise ValueError("design 'recipes' needs the recipes")
    else:
        raise ValueError(f"design must be 'grid', 'lhs' or 'recipes', got {design!r}")
    if n_jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {n_jobs}")
    params = forward.parameters
    options = {"noise_chains": noise_chains, "seed": seed, "n_jobs": n_jobs, "progress": progress}
    options["cluster"] = cluster  # a Dask cluster for the chunks (polyinv.batch): the same numbers
    if forward.protocol == "sampled":
        data = forward.simulate(recipes, n_steps=n_steps, **options)
    else:
        data = simulate_many(
            recipes, params, t_max=t_max, x_stop=x_stop, n_steps=n_steps, axis=forward.axis, **options
        )
    meta = dataset_metadata(
        design=design,
        n=len(recipes),
        seed=seed,
        noise_chains=noise_chains,
        t_max=t_max,
        x_stop=x_stop,
        n_steps=n_steps,
        command=command,
        params=params,
        axis=forward.axis,
        calibration=None if forward.is_default_kinetics else forward.describe(),
        system=forward.system,
        protocol=forward.protocol,
    )
    check_finite(data, source)
    if forward.system == "ba" and forward.protocol == "stop":
        write_dataset(data, out, meta, overwrite=overwrite)
        return data
    # another chemistry or lab samples: the system's own names, the conversion beside the monomer left, and the
    # reaction labels of the recipes where they have them
    data[system.conversion_name] = conversion(data[MONOMER_LEFT], data[MONOMER_0])
    extra = [system.conversion_name]
    if system.reaction_name in recipes.columns:
        data[system.reaction_name] = recipes[system.reaction_name].to_numpy()
        extra.append(system.reaction_name)
    written = system.from_internal(data)
    names = [system.column(c) for c in (*TARGETS, *SIDE_INPUTS)]
    columns = (*names[:5], extra[0], *names[5:], *frame_mmd_columns(data), *extra[1:])
    write_dataset(written, out, meta, overwrite=overwrite, columns=tuple(columns))
    return written
