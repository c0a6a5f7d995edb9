"""The dataset generator behind ``polyinv simulate``: simulate a design and write it with its metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import polyinv
from polyinv.sim.designs import grid_design, lhs_design
from polyinv.sim.grid import DEFAULT_AXIS
from polyinv.sim.io import output_format, write_dataset
from polyinv.sim.kinetics import DEFAULT_N_STEPS, DEFAULT_T_MAX, DEFAULT_X_STOP
from polyinv.sim.parameters import DEFAULT_PARAMETERS, KineticParameters
from polyinv.sim.simulate import simulate_many

PROG = "polyinv simulate"


def canonical_command(args: argparse.Namespace) -> str:
    """The command that reproduces the file (output given by file name only, so it is location-free)."""
    parts = [PROG, f"--design {args.design}"]
    if args.design == "lhs":
        parts.append(f"--n {args.n}")
    parts.append(f"--seed {args.seed}")
    if args.noise_chains is not None:
        parts.append(f"--noise-chains {args.noise_chains}")
    for flag, value, default in (("--t-max", args.t_max, DEFAULT_T_MAX), ("--x-stop", args.x_stop, DEFAULT_X_STOP),
                                 ("--n-steps", args.n_steps, DEFAULT_N_STEPS)):
        if value != default:
            parts.append(f"{flag} {value:g}")
    parts.append(f"--out {Path(args.out).name}")
    return " ".join(parts)


def dataset_metadata(*, design: str, n: int, seed: int, noise_chains: int | None, t_max: float, x_stop: float,
                     n_steps: int, command: str, params: KineticParameters = DEFAULT_PARAMETERS) -> list[tuple[str, str]]:
    """Key/value rows stored with a data set: grid, normalisation, design, every parameter, version."""
    rows = [
        ("package", "polyinv"), ("version", polyinv.__version__), ("command", command),
        ("design", design), ("n_recipes", str(n)), ("seed", str(seed)),
        ("noise_chains", "none (deterministic)" if noise_chains is None else str(noise_chains)),
        ("method", "QSSA radicals (SPR, MCR), RK4 for ln[M], analytic [I]; Hamielec cumulative distribution"),
        ("t_max_s", repr(float(t_max))), ("x_stop", repr(float(x_stop))), ("n_steps", str(n_steps)),
        ("time", "stop time, s: t_max, or the exact time conversion reaches x_stop"),
        ("mmd_grid", "MMD1..MMD100 on log10(M / (g/mol)) evenly spaced, both ends included"),
        *DEFAULT_AXIS.metadata()[:4],
        ("mmd_value", "mass fraction of chains in the cell of width delta centred on the point, divided by delta: "
                      "w(log10 M)"),
        DEFAULT_AXIS.metadata()[4],
        ("molar_mass", "M = chain length * 128.17 g/mol (end groups neglected)"),
        ("Mn_Mw", "from the exact moments of the full distribution (or of the chain sample with noise), "
                  "not from the 100 points"),
        ("units", "cBA_0, cAIBN_0, cBA_time: mol/L; temp: degC; time: s; Mn, Mw: g/mol"),
    ]
    return rows + params.metadata()


def generate(design: str, out: str, *, n: int | None = None, seed: int = 0, noise_chains: int | None = None,
             t_max: float = DEFAULT_T_MAX, x_stop: float = DEFAULT_X_STOP, n_steps: int = DEFAULT_N_STEPS,
             n_jobs: int = 1, progress: bool = True, command: str = "") -> pd.DataFrame:
    """Simulate a design and write it to ``out``; returns the written compuesta table."""
    output_format(out)
    if design == "grid":
        if n not in (None, 432):
            raise ValueError(f"--n must be omitted or 432 for the grid design, got {n}")
        recipes = grid_design()
    elif design == "lhs":
        if n is None:
            raise ValueError("--n is required for the lhs design")
        recipes = lhs_design(n, seed)
    else:
        raise ValueError(f"design must be 'grid' or 'lhs', got {design!r}")
    if n_jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {n_jobs}")
    data = simulate_many(recipes, t_max=t_max, x_stop=x_stop, n_steps=n_steps, noise_chains=noise_chains,
                         seed=seed, n_jobs=n_jobs, progress=progress)
    meta = dataset_metadata(design=design, n=len(recipes), seed=seed, noise_chains=noise_chains, t_max=t_max,
                            x_stop=x_stop, n_steps=n_steps, command=command)
    write_dataset(data, out, meta)
    return data
