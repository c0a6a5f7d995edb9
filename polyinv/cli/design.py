"""``polyinv design --Mn 20000 [--Mw 45000 | --dispersity 2.2] [--conversion 0.7] [--max-time 3600]
[--ckpt RUN | --calibration CAL.yaml] [--bounds temp=60:75 ...] --out designs.csv [--plot designs.png]``, or
``polyinv design --mmd wanted.csv [--conversion 0.7] ...`` for target MMDs (one per row).

Proposes recipes whose simulated properties meet the targets within the tolerance (and whose MMD matches a
target MMD), each verified by the forward model (its simulated outcome beside the target), fastest first. The forward model is a trained model's (its
training file's kinetics, axis and protocol), a calibration's, or polyinv's own; a design is only as good as
that model, so its calibration residuals are printed with the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv import batch
from polyinv.atomic import atomic_path, check_output
from polyinv.data.io import read_system_table, read_table, row_text
from polyinv.design import assumed_conversions, design, inverse_starts
from polyinv.errors import ArgumentParser, PolyinvError, run_cli
from polyinv.models import load_model, resolve_checkpoint
from polyinv.plots import design_figure
from polyinv.schema import (
    INITIATOR_0,
    MMD_COLUMNS,
    MN,
    MONOMER_0,
    MW,
    NOMINAL_RANGES,
    RECIPE_COLUMNS,
    SYSTEM,
    TEMP,
    TIME,
    System,
    frame_mmd_columns,
    system_of,
)
from polyinv.sim.calibration_file import read_yaml
from polyinv.sim.designs import TEMP_LIMITS
from polyinv.sim.forward import ForwardModel
from polyinv.sim.grid import moments_from_mmd
from polyinv.trust.domain import model_domain, model_forward


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="polyinv design", description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("--Mn", type=float, default=None, help="target number-average molar mass, g/mol")
    p.add_argument("--Mw", type=float, default=None, help="target weight-average molar mass, g/mol")
    p.add_argument("--dispersity", type=float, default=None, help="target Mw/Mn (instead of --Mw)")
    p.add_argument(
        "--conversion", type=float, default=None, help="target monomer conversion at the end of the run (0-1)"
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        help="longest reaction time allowed, s (default: the protocol's limit)",
    )
    p.add_argument(
        "--mmd",
        default=None,
        metavar="FILE",
        help="target MMDs, one per row (.xlsx, .csv or .parquet with MMD1..MMD100 on the forward model's axis; "
        "Mn, Mw columns are targets too, else computed from the MMD); instead of --Mn/--Mw/--dispersity",
    )
    p.add_argument("--sheet", default=None, help="sheet of an .xlsx --mmd file (default: compuesta)")
    p.add_argument(
        "--mmd-tolerance",
        type=float,
        default=None,
        help="with --mmd: Hellinger distance allowed between a target MMD and a recipe's (default 0.02)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--ckpt", default=None, help="a trained model: its forward model and training ranges")
    source.add_argument("--calibration", metavar="CAL.yaml", default=None, help="a `polyinv calibrate` file")
    p.add_argument(
        "--bounds",
        nargs="+",
        default=[],
        metavar="FIELD=LOW:HIGH",
        help="bounds of cBA_0, cAIBN_0, temp (default: the model's training ranges, else the study's)",
    )
    p.add_argument(
        "--tolerance", type=float, default=0.05, help="relative miss allowed per target (default 0.05)"
    )
    p.add_argument("--top", type=int, default=5, help="recipes to list (default 5)")
    p.add_argument("--starts", type=int, default=48, help="starting recipes of the search (default 48)")
    p.add_argument("--out", required=True, help="CSV of the proposed recipes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument(
        "--plot",
        default=None,
        help="PNG of the proposed recipes' MMDs with the target Mn/Mw (or the target MMD) "
        "marked; with several target MMDs one PNG per row, named <stem>_row<i>.png",
    )
    batch.add_arguments(p)  # the solver's finite differences on Dask
    return p


def targets_of(args) -> dict[str, float]:
    if args.Mw is not None and args.dispersity is not None:
        raise PolyinvError("give --Mw or --dispersity, not both")
    if args.mmd and any(v is not None for v in (args.Mn, args.Mw, args.dispersity)):
        raise PolyinvError("with --mmd, Mn and Mw come from the file; drop --Mn, --Mw and --dispersity")
    targets = {
        k: v
        for k, v in (
            (MN, args.Mn),
            (MW, args.Mw),
            ("dispersity", args.dispersity),
            ("conversion", args.conversion),
        )
        if v is not None
    }
    if not targets and not args.mmd:
        raise PolyinvError("give at least one target: --Mn, --Mw, --dispersity, --conversion or --mmd")
    if args.mmd_tolerance is not None and not args.mmd:
        raise PolyinvError("--mmd-tolerance applies to target MMDs; give --mmd")
    if args.mmd_tolerance is None:
        args.mmd_tolerance = 0.02
    if not 0 < args.mmd_tolerance < 1:
        raise PolyinvError(
            f"--mmd-tolerance is a Hellinger distance between 0 and 1, got {args.mmd_tolerance:g}"
        )
    for name, value in targets.items():
        if not value > 0:
            raise PolyinvError(f"--{name} must be positive, got {value:g}")
    if "dispersity" in targets and targets["dispersity"] < 1:
        raise PolyinvError(f"--dispersity is Mw/Mn and cannot be below 1, got {targets['dispersity']:g}")
    if "conversion" in targets and targets["conversion"] >= 1:
        raise PolyinvError(f"--conversion is a fraction below 1, got {targets['conversion']:g}")
    if not 0 < args.tolerance < 1:
        raise PolyinvError(f"--tolerance must lie between 0 and 1, got {args.tolerance:g}")
    if args.top < 1 or args.starts < 2:
        raise PolyinvError("--top must be at least 1 and --starts at least 2")
    return targets


def forward_and_bounds(args) -> tuple:
    """(forward model, default bounds of cBA_0/cAIBN_0/temp, where they come from, the trained model or None)."""

    bounds = {k: NOMINAL_RANGES[k] for k in RECIPE_COLUMNS}
    if args.ckpt:
        model = load_model(resolve_checkpoint(args.ckpt))
        forward, why = model_forward(model)
        if forward is None:
            raise PolyinvError(f"--ckpt {args.ckpt}: {why}; give --calibration or neither")
        dom = model_domain(model)
        names = list(dom.target_names)
        bounds = {
            k: (float(dom.target_low[names.index(k)]), float(dom.target_high[names.index(k)])) for k in bounds
        }
        return forward, bounds, f"the training ranges of {args.ckpt}", model
    if args.calibration:
        try:
            forward = read_yaml(args.calibration)
        except ValueError as exc:
            raise PolyinvError(f"--calibration {exc}") from None
        if forward.system == SYSTEM.key:  # the study's chemistry: its ranges, as always
            return forward, bounds, "the study's ranges", None
        system, box = system_of(forward.system), (forward.fit or {}).get("box")
        if box:  # another chemistry: where the calibration was made (a lab's recipes)
            bounds = {k: (float(box[k][0]), float(box[k][1])) for k in RECIPE_COLUMNS}
            return forward, bounds, f"the training recipes of {Path(args.calibration).name}", None
        bounds = {k: system.ranges[system.column(k)] for k in RECIPE_COLUMNS}
        return forward, bounds, f"the nominal ranges of {system.name}", None
    return ForwardModel(), bounds, "the study's ranges", None


def read_target_mmds(path: str, sheet: str | None, forward) -> tuple:
    """(MMDs (rows × points), Mn, Mw) of a target file; Mn/Mw from the MMD on the forward model's axis where the
    file has no such columns. A calibration of another chemistry reads the file in that system's names, its
    Mn and Mw columns required, its MMD on the calibration's axis."""

    if forward.system == SYSTEM.key:
        frame = read_table(path, list(MMD_COLUMNS), sheet=sheet, optional=(MN, MW))
        columns = list(MMD_COLUMNS)
    else:
        frame = read_system_table(path, system_of(forward.system), [MN, MW], sheet)
        columns = list(frame_mmd_columns(frame))
        if len(columns) != forward.axis.n_points:
            raise PolyinvError(
                f"--mmd {path}: the MMD has {len(columns)} points; the calibration's axis has {forward.axis.n_points}"
            )
    mmd = frame[columns].to_numpy(np.float64)
    empty = np.flatnonzero(np.clip(mmd, 0.0, None).sum(axis=1) <= 0)
    if len(empty):
        raise PolyinvError(f"--mmd {path}: {row_text(int(empty[0]))}: the MMD has no positive value")
    mn, mw = (np.asarray(v, dtype=np.float64) for v in moments_from_mmd(mmd, forward.axis))
    mn = frame[MN].to_numpy(np.float64) if MN in frame else mn
    mw = frame[MW].to_numpy(np.float64) if MW in frame else mw
    source = {
        MN: "the file's Mn" if MN in frame else "Mn computed from the MMD",
        MW: "the file's Mw" if MW in frame else "Mw computed from the MMD",
    }
    for name, values in ((MN, mn), (MW, mw)):
        bad = np.flatnonzero(~(values > 0))
        if len(bad):
            raise PolyinvError(
                f"--mmd {path}: {row_text(int(bad[0]))}: {source[name]} must be positive, got {values[bad[0]]:g}"
            )
    bad = np.flatnonzero(mw < mn)
    if len(bad):
        i = int(bad[0])
        raise PolyinvError(
            f"--mmd {path}: {row_text(i)}: Mw {mw[i]:g} ({source[MW]}) lies below Mn {mn[i]:g} ({source[MN]})"
        )
    return mmd, mn, mw


def parse_bounds(items: Sequence[str], bounds: dict, system: System = SYSTEM) -> dict:
    """``bounds`` with the ``FIELD=LOW:HIGH`` items of --bounds (FIELD in the system's names) in place."""
    out = dict(bounds)
    fields = {system.column(k): k for k in RECIPE_COLUMNS}
    for item in items:
        name, _, rest = item.partition("=")
        low, sep, high = rest.partition(":")
        if name not in fields or not sep:
            raise PolyinvError(
                f"--bounds {item!r}: expected FIELD=LOW:HIGH with FIELD one of {', '.join(fields)}"
            )
        name = fields[name]
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            raise PolyinvError(f"--bounds {item!r}: LOW and HIGH must be numbers") from None
        out[name] = (lo, hi)
    return out


def check_bounds(bounds: dict, forward, where: str) -> None:
    """Bounds the simulator can run: finite, LOW < HIGH, concentrations positive and below pure monomer,
    temperatures within the simulator's limits."""

    limits = {
        MONOMER_0: (0.0, forward.parameters.max_cBA),
        INITIATOR_0: (0.0, math.inf),
        TEMP: TEMP_LIMITS,
        TIME: (0.0, math.inf),
    }
    for name, (lo, hi) in bounds.items():
        floor, ceiling = limits[name]
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise PolyinvError(
                f"{where}: the bounds of {name} must be finite with LOW < HIGH, got {lo:g}:{hi:g}"
            )
        if not (floor < lo and hi <= ceiling) if name != TEMP else not (floor <= lo and hi <= ceiling):
            raise PolyinvError(
                f"{where}: the bounds of {name} must lie within {floor:g}-{ceiling:g}, got {lo:g}:{hi:g}"
            )


def forward_residuals(forward) -> str:
    """How far the forward model is from its data file (its calibration residuals), one line."""
    fit = forward.fit or {}
    r = fit.get("residuals") or {}
    if not r:
        return f"forward model: {forward.source} (no calibration residuals: its kinetics were not fitted to a file)"
    return (
        f"forward model: {forward.source}; on its calibration rows: median Hellinger {r.get('hellinger_median', float('nan')):.4f}, "
        f"Mn {100 * r.get('Mn_rel_median', float('nan')):.2f} %, Mw {100 * r.get('Mw_rel_median', float('nan')):.2f} % "
        f"(a design is only as good as this model)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def body(argv: list[str]) -> int:
        args = parser.parse_args(argv)
        targets = targets_of(args)

        inputs = (args.mmd, args.calibration, args.ckpt)
        out = check_output(args.out, "--out", overwrite=args.overwrite, inputs=inputs, suffixes=(".csv",))
        if args.sheet and not args.mmd:
            raise PolyinvError("--sheet names a sheet of the --mmd file; give --mmd")
        forward, bounds, where, model = forward_and_bounds(args)
        system = system_of(forward.system)
        bounds = parse_bounds(args.bounds, bounds, system)
        max_time = forward.t_max if args.max_time is None else args.max_time
        if not 0 < max_time < float("inf"):
            raise PolyinvError(f"--max-time must be a positive number of seconds, got {max_time:g}")
        if targets.get("conversion", 0) > forward.x_stop:
            raise PolyinvError(
                f"--conversion {targets['conversion']:g} lies above the run protocol's stop ({forward.x_stop:g})"
            )
        bounds[TIME] = (min(60.0, 0.5 * max_time), max_time)
        check_bounds(bounds, forward, "--bounds" if args.bounds else where)
        jobs = [(None, targets, None, None)]  # (row of --mmd, targets, target MMD, starting recipes)
        if args.mmd:
            mmds, mns, mws = read_target_mmds(args.mmd, args.sheet, forward)
            conversions = assumed_conversions(forward, targets.get("conversion"))
            jobs = [
                (
                    i,
                    {**targets, MN: float(mns[i]), MW: float(mws[i])},
                    mmds[i],
                    None
                    if model is None
                    else inverse_starts(model, mmds[i], float(mns[i]), float(mws[i]), conversions, bounds),
                )
                for i in range(len(mmds))
            ]
        plots = [None] * len(jobs)
        if args.plot:
            plots = [
                Path(args.plot)
                if len(jobs) == 1
                else Path(args.plot).with_name(f"{Path(args.plot).stem}_row{row}{Path(args.plot).suffix}")
                for row, *_ in jobs
            ]
            for path in plots:
                check_output(path, "--plot", overwrite=args.overwrite, inputs=inputs, suffixes=(".png",))
                if path.absolute() == out.absolute():
                    raise PolyinvError(f"--plot {path} is the --out file; give another name")

        print(forward_residuals(forward))
        print(
            "bounds ("
            + (where if not args.bounds else "given")
            + "): "
            + ", ".join(f"{system.column(k)} {lo:g}-{hi:g}" for k, (lo, hi) in bounds.items())
        )
        with batch.parallel_map(batch.cluster_of(args)) as workers:
            if workers and len(jobs) > 1:  # several target MMDs: one task each (each solved as here)
                designed = workers(partial(_design, args, forward, bounds, workers=None), jobs)
            else:  # one target: its solver's finite differences on the cluster
                designed = [_design(args, forward, bounds, job, workers) for job in jobs]
        results = []
        for (row, job_targets, mmd, _), result in zip(jobs, designed, strict=True):
            if row is not None:
                result.table.insert(0, "row", row)
                print(f"target MMD of data row {row} (Mn {job_targets[MN]:.5g}, Mw {job_targets[MW]:.5g}):")
            print(result.message)
            shown = [
                "rank",
                MONOMER_0,
                INITIATOR_0,
                TEMP,
                TIME,
                *(f"sim_{k}" for k in job_targets),
                "worst_miss",
                *(["hellinger"] if mmd is not None else []),
            ]
            table = system.from_internal(result.table[shown])  # the chemistry's own column names
            print(table.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
            results.append(result)
        with atomic_path(out, args.overwrite) as tmp:
            system.from_internal(pd.concat([r.table for r in results], ignore_index=True)).to_csv(
                tmp, index=False
            )
        for path, (_, job_targets, mmd, _), result in zip(plots, jobs, results, strict=True):
            if path is not None and len(result.table):
                design_figure(path, forward, result.table, job_targets, mmd, overwrite=args.overwrite)
                print(f"wrote {path}")
        print(f"wrote {out}")
        return 0

    return run_cli(body, argv)


def _design(args, forward, bounds, job, workers=None):
    """One design (a target, or one row of --mmd); ``workers``: a cluster's map or None."""
    row, targets, mmd, starts = job
    try:
        return design(
            forward,
            targets,
            bounds,
            tolerance=args.tolerance,
            n_starts=args.starts,
            top=args.top,
            mmd=mmd,
            mmd_tolerance=args.mmd_tolerance,
            starts=starts,
            workers=workers,
        )
    except ValueError as exc:  # the simulator refused a recipe inside the bounds
        where = "" if row is None else f"--mmd {args.mmd}: {row_text(row)}: "
        raise PolyinvError(f"{where}design: {str(exc).splitlines()[0]}") from None
