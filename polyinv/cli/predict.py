"""``polyinv predict (--ckpt RUN_OR_FILE | --calibration CAL.yaml) --input FILE [--output preds.csv] [--interval 0.9]``.

With ``--ckpt``: loads any polyinv model (a run folder, best.ckpt, model.skops or an ensemble folder) on CPU,
validates the input's columns against the schema stored in it, and writes the predicted recipe (cBA_0, cAIBN_0,
temp, time in physical units) per input row, with the applicability-domain columns. With ``--calibration``
(lab samples, ``polyinv calibrate --protocol sampled``): no trained model; each reaction's recipe (``--group``)
is found by inverting the calibrated simulator against all its samples, times known (:mod:`polyinv.invert`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv import batch
from polyinv.atomic import atomic_path, check_folder, check_output
from polyinv.data.io import read_system_table
from polyinv.errors import ArgumentParser, PolyinvError, run_cli
from polyinv.inference import predict_table, read_inputs
from polyinv.invert import invert_frame
from polyinv.log import LOG, quiet
from polyinv.models import load_model, resolve_checkpoint
from polyinv.plots import plot_candidates, verify_figures
from polyinv.schema import MN, MONOMER_LEFT, MW, TARGETS, TIME, frame_mmd_columns, mmd_columns, system_of
from polyinv.sim.calibration_file import read_yaml
from polyinv.sim.file_info import read_file_metadata, stated_axis
from polyinv.sim.grid import NORMALISATIONS, MMDAxis, rebin
from polyinv.trust.report import (
    Verification,
    check_interval,
    optional_columns,
    verify_requests,
    verify_table,
    warn_outside,
)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="polyinv predict", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="checkpoint file or run folder")
    source.add_argument(
        "--calibration",
        metavar="CAL.yaml",
        help="invert this calibration (protocol sampled) instead of a trained model: one recipe per --group",
    )
    parser.add_argument(
        "--group",
        default=None,
        metavar="COLUMN",
        help="with --calibration: rows with the same label in COLUMN are samples of one reaction (one recipe)",
    )
    parser.add_argument(
        "--input", required=True, help=".xlsx, .csv or .parquet with the model's input columns"
    )
    parser.add_argument("--sheet", default=None, help="sheet of an .xlsx input (default: compuesta)")
    parser.add_argument(
        "--axis",
        nargs=3,
        metavar=("MIN", "MAX", "NORM"),
        default=None,
        help="the input's MMD axis (log10 M of its first and last point, normalisation "
        f"{NORMALISATIONS}); a trace on another axis than the calibration's (or the model's training axis) is "
        "re-binned onto it (default: stated in the input's metadata, else the calibration's or model's)",
    )
    parser.add_argument(
        "--output", default=None, help="CSV to write (default: <input stem>_predictions.csv here)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output file (and --plot-dir figures)"
    )
    parser.add_argument("--show", type=int, default=10, help="rows of the table to print (default 10)")
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="LEVEL",
        help="add <target>_lo/_hi of the central LEVEL interval, e.g. 0.9 (GP, ensembles)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="simulate each predicted recipe again and report the MMD distance and Mn/Mw/cBA_time errors",
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="refine each recipe against the model's forward model (kept where held-out training rows improved)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=None,
        metavar="K",
        help="add up to K distinct recipes that reproduce each row within the noise (best first)",
    )
    parser.add_argument(
        "--plot-dir",
        default=None,
        help="with --verify: write one PNG per row into this folder (with --candidates: one more per row)",
    )
    batch.add_arguments(parser)
    return parser


def output_path(args) -> Path:
    """The output file, refused before any work if it is an input or exists without --overwrite."""

    output = Path(args.output) if args.output else Path(f"{Path(args.input).stem}_predictions.csv")
    inputs = (args.input, args.ckpt or args.calibration)
    return check_output(output, "--output", overwrite=args.overwrite, inputs=inputs, suffixes=(".csv",))


def plot_names(args, rows: int) -> list[str]:
    """The PNGs --plot-dir will hold: one per row (verify), one more per row with --candidates."""
    names = [f"verify_row{i:04d}.png" for i in range(rows)]
    return names + ([f"candidates_row{i:04d}.png" for i in range(rows)] if args.candidates else [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def body(argv: list[str]) -> int:
        args = parser.parse_args(argv)
        if args.candidates is not None and not 1 <= args.candidates <= 10:
            raise PolyinvError(f"--candidates must lie between 1 and 10, got {args.candidates}")
        if args.show < 0:
            raise PolyinvError(f"--show is a number of rows, 0 or more; got {args.show}")
        output = output_path(args)
        if args.calibration:
            return predict_from_calibration(args, output)
        if args.group:
            raise PolyinvError("--group applies to --calibration (a trained model answers each row)")

        ckpt = resolve_checkpoint(args.ckpt)
        model = load_model(ckpt)
        system = system_of(model.system)
        if args.interval is not None:
            check_interval(model, args.interval)
        frame = read_inputs(model, args.input, args.sheet, onto=model_axis(model, args))
        if args.plot_dir:
            check_folder(
                args.plot_dir,
                "--plot-dir",
                plot_names(args, len(frame)),
                overwrite=args.overwrite,
                inputs=(args.input, output),
            )
        requests = verify_requests(model, args.input, args.sheet) if args.verify or args.plot_dir else None
        checked = answer(model, frame, requests, args, batch.cluster_of(args))
        table = checked.table
        if args.plot_dir and checked.sim is not None:
            verify_figures(
                args.plot_dir,
                checked.mmd,
                checked.sim,
                checked.predictions,
                checked.checks,
                optional_columns(
                    args.input, args.sheet, TARGETS, system
                ),  # true recipes where the file has them
                forward=checked.forward,
                overwrite=args.overwrite,
            )
        if args.plot_dir and args.candidates:
            plot_candidates(args.plot_dir, model, frame, table, args.overwrite)
        table = system.from_internal(table)  # the model's system's column names, in the notes too
        if "domain_note" in table.columns:
            table["domain_note"] = table["domain_note"].map(
                lambda note: system.name_text(note) if isinstance(note, str) else note
            )
        with atomic_path(output, overwrite=args.overwrite) as tmp:
            table.to_csv(tmp, index=False)
        print(f"{len(table)} rows predicted by {ckpt} ({model.kind})")
        print(table.head(args.show).to_string(index=False, float_format=lambda v: f"{v:.5g}"))
        if len(table) > args.show:
            print(f"... {len(table) - args.show} more rows")
        if "verify_hellinger" in table.columns:
            print(f"forward verification: median Hellinger distance {table['verify_hellinger'].median():.4g}")
        print(f"wrote {output}")
        warn_outside(table)
        return 0

    return run_cli(body, argv)


#: rows per chunk on a Dask cluster: a multiple of the refine and candidate solvers' 100-row batches (whose
#: restarts look at the batch's median fit), so the answers are those of one machine
CHUNK_ROWS = 1000


def answer(model, frame, requests, args, cluster: batch.Cluster) -> Verification:
    """The prediction table of ``frame`` (with --interval, --refine, --candidates) and, with --verify or
    --plot-dir, its verification; on a Dask cluster in chunks of CHUNK_ROWS rows."""
    verifying = bool(args.verify or args.plot_dir)
    options = {"interval": args.interval, "refine": args.refine, "candidates": args.candidates}
    if not cluster.on:
        table = predict_table(model, frame, progress=not quiet(), **options)
        return verify_table(model, frame, table, requests) if verifying else Verification(table)
    spans = batch.row_chunks(len(frame), CHUNK_ROWS)
    chunks = [
        (frame.iloc[lo:hi], None if requests is None else requests.iloc[lo:hi], verifying, options)
        for lo, hi in spans
    ]
    parts = batch.map_chunks(
        _answer_chunk,
        chunks,
        cluster,
        sizes=[hi - lo for lo, hi in spans],
        desc="predicting",
        progress=not quiet(),
        shared={"model": model},
    )
    if not verifying or parts[0].sim is None:
        table = pd.concat([p.table for p in parts], ignore_index=True)
        table["row"] = np.arange(len(table))
        return Verification(table)
    joined = {
        name: pd.concat([getattr(p, name) for p in parts], ignore_index=True)
        for name in ("table", "predictions", "checks", "sim")
    }
    for name in ("table", "predictions"):
        joined[name]["row"] = np.arange(len(frame))
    mmd = np.concatenate([p.mmd for p in parts])
    return Verification(**joined, mmd=mmd, forward=parts[0].forward)


def _answer_chunk(chunk, model) -> Verification:
    rows, requests, verifying, options = chunk
    table = predict_table(model, rows, progress=False, **options)
    return verify_table(model, rows, table, requests) if verifying else Verification(table)


def model_axis(model, args):
    """``read_inputs``'s re-binning onto a trained model's training axis, where ``--axis`` or the input's metadata
    states another axis (None: read the trace as it is, as a file of the model's axis)."""
    if model.axis is None:
        if args.axis:
            raise PolyinvError(
                f"--axis: {args.ckpt} does not know its training file's MMD axis (fit it with data.axis, or on a "
                "file whose metadata states one)"
            )
        return None
    try:
        axis = MMDAxis(**model.axis)
    except (TypeError, ValueError) as exc:
        raise PolyinvError(f"{args.ckpt}: the stored training axis is malformed ({exc})") from None
    stated = input_axis(args)
    if not args.axis and (stated is None or stated == axis):
        return None
    return lambda rows: onto_axis(rows, args, axis, "the model's training", stated)


def input_axis(args) -> MMDAxis | None:
    """The axis the input's metadata states (None with --axis, which :func:`onto_axis` reads itself)."""
    return None if args.axis else stated_axis(read_file_metadata(args.input))


def onto_axis(rows: pd.DataFrame, args, axis: MMDAxis, whose: str, stated: MMDAxis | None) -> pd.DataFrame:
    """The input's MMD on ``axis`` (``whose``: the calibration's, the model's): re-binned from the input's own
    axis (``--axis``, else ``stated``, its metadata's) where that differs; a trace of another length on no
    stated axis is refused."""
    names = frame_mmd_columns(rows)
    if not names:
        return rows
    if args.axis:
        source = MMDAxis.from_option(args.axis, len(names), "--axis")
    else:
        source = stated
        if source is None or source.n_points != len(names):
            if len(names) != axis.n_points:
                raise PolyinvError(
                    f"{args.input}: the MMD has {len(names)} points; {whose} axis has {axis.n_points} "
                    "(give the input's axis with --axis MIN MAX NORM to re-bin it)"
                )
            return rows
    if source == axis:
        return rows
    mmd, outside = rebin(rows[list(names)].to_numpy(np.float64), source, axis)
    where = f"{whose} axis (log10 M {axis.log10m_min:g}..{axis.log10m_max:g})"
    for limit, say in ((MAX_LOST, None), (MAX_OUTSIDE, LOG.warning)):
        bad = np.flatnonzero(~(outside <= limit))  # NaN: a trace with no mass
        if len(bad):
            shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
            line = (
                f"{args.input}: data row(s) {shown}: up to {100 * float(np.nanmax(outside[bad])):.0f} % of the "
                f"trace lies outside {where}"
            )
            if say is None:
                raise PolyinvError(f"{line}, or it has no mass: check --axis and the trace")
            say(f"{line} and is dropped by the re-binning")
            break
    LOG.info(
        f"MMD re-binned from {len(names)} points on log10 M {source.log10m_min:g}..{source.log10m_max:g} onto {whose} {axis.n_points}"
    )
    scalars = rows.drop(columns=list(names))
    return pd.concat(
        [scalars, pd.DataFrame(mmd, columns=mmd_columns(axis.n_points), index=rows.index)], axis=1
    )


#: share of a trace's mass beyond the calibration's (model's) axis above which re-binning warns, and refuses
MAX_OUTSIDE, MAX_LOST = 0.02, 0.5


def predict_from_calibration(args, output: Path) -> int:
    """``predict --calibration``: one recipe per reaction group by inverting the calibrated simulator."""
    for flag, given in (("--refine", args.refine), ("--verify", args.verify), ("--plot-dir", args.plot_dir)):
        if given:
            raise PolyinvError(
                f"{flag} checks a trained model's answers; --calibration answers are fits already"
            )
    level = 0.9 if args.interval is None else args.interval
    if not 0 < level < 1:
        raise PolyinvError(f"--interval must lie between 0 and 1, got {args.interval}")
    try:
        forward = read_yaml(args.calibration)
    except ValueError as exc:
        raise PolyinvError(f"--calibration {exc}") from None
    if forward.protocol != "sampled" or "box" not in (forward.fit or {}):
        raise PolyinvError(
            f"--calibration {args.calibration}: inverting needs a calibration of lab samples with its training box "
            "(polyinv calibrate --protocol sampled)"
        )
    system = system_of(forward.system)
    rows = read_system_table(
        args.input, system, [TIME, MN, MW, MONOMER_LEFT], args.sheet, mmd=None, group=args.group
    )
    rows = onto_axis(rows, args, forward.axis, "the calibration's", input_axis(args))
    started = time.perf_counter()
    with batch.parallel_map(batch.cluster_of(args)) as workers:  # one task per reaction group on Dask
        table = invert_frame(
            forward, rows, args.group, level, system.conversion_name, workers, args.candidates or 0
        )
    table = system.from_internal(table)
    with atomic_path(output, overwrite=args.overwrite) as tmp:
        table.to_csv(tmp, index=False)
    scale = (forward.fit or {}).get("inversion")
    print(
        f"{len(table)} recipe(s) from {len(rows)} rows by inverting {Path(args.calibration).name} "
        f"({time.perf_counter() - started:.1f} s); {100 * level:g} % intervals "
        + (
            f"widened as measured on {scale['reactions']} training reactions"
            if scale
            else "(Laplace; coverage unmeasured)"
        )
    )
    print(table.head(args.show).to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    print(f"wrote {output}")
    return 0
