"""``polyinv calibrate --data FILE --out CAL.yaml [--system ba|mma|sty] [--protocol stop|sampled] [--plot CAL.png]``.

Fits polyinv's kinetic simulator of a chemistry (``--system``) to a data file's recipe → outcome rows (MMD, the
monomer left or the conversion, Mn, Mw, and the stop time under the study's protocol) on the file's MMD axis
(``--axis``, stated in polyinv's metadata or inferred from Mn/Mw): which parameters the rows determine
(identifiability analysis), their values with standard errors and correlations, and how far the calibrated
simulator stays from the file. ``--protocol sampled``: each row is a lab sample at its own ``time``. See
docs/forward-model.md.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from polyinv import batch
from polyinv.atomic import check_output
from polyinv.data.io import read_system_table
from polyinv.errors import ArgumentParser, PolyinvError, run_cli
from polyinv.invert import interval_scale
from polyinv.log import quiet, say
from polyinv.plots import calibration_figure
from polyinv.schema import MN, MW, PROTOCOLS, SYSTEMS, frame_mmd_columns, system_of
from polyinv.sim.calibrate import NEEDED, calibrate
from polyinv.sim.calibration_file import write_yaml
from polyinv.sim.file_info import file_axis, read_file_metadata
from polyinv.sim.forward import PARAMETERS
from polyinv.sim.grid import NORMALISATIONS, MMDAxis


def build_parser() -> ArgumentParser:

    p = ArgumentParser(prog="polyinv calibrate", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", required=True, help=".xlsx, .csv or .parquet in the study's format (recipes and outcomes)"
    )
    p.add_argument("--sheet", default=None, help="sheet of an .xlsx file (default: compuesta)")
    p.add_argument(
        "--system",
        default="ba",
        choices=tuple(SYSTEMS),
        help="the chemistry: its column names and literature kinetics (ba: BA/AIBN, the study's; mma: MMA/AIBN; "
        "sty: styrene/AIBN; all in toluene)",
    )
    p.add_argument(
        "--protocol",
        default="stop",
        choices=PROTOCOLS,
        help="stop: the study's runs (stop at t_max or x_stop; the stop time an outcome); sampled: each row a "
        "sample at its own time (an input), e.g. several samples of one lab reaction",
    )
    p.add_argument("--out", required=True, help="calibration to write (.yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (and --plot)")
    p.add_argument(
        "--plot",
        default=None,
        help="figure: parity of Mn, Mw, conversion, stop time and MMD overlays "
        "(default: the --out name with .png)",
    )
    p.add_argument(
        "--axis",
        nargs=3,
        metavar=("MIN", "MAX", "NORM"),
        default=None,
        help=f"the file's MMD axis: log10 M of its first and last MMD point and the normalisation {NORMALISATIONS} "
        "(default: stated in the file's metadata, else inferred from Mn/Mw)",
    )
    p.add_argument(
        "--parameters",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"candidate parameters (default: all of the system's scheme): {' '.join(q.name for q in PARAMETERS)}",
    )
    p.add_argument(
        "--max-rows", type=int, default=432, help="rows entering the fit (a random subset of larger files)"
    )
    batch.add_arguments(p)  # the independent simulations (starting points, finite differences) on Dask
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def body(argv: list[str]) -> int:
        args = parser.parse_args(argv)
        out = Path(args.out)
        plot = Path(args.plot) if args.plot else out.with_suffix(".png")

        check_output(out, "--out", overwrite=args.overwrite, inputs=(args.data,), suffixes=(".yaml", ".yml"))
        check_output(plot, "--plot", overwrite=args.overwrite, inputs=(args.data, out), suffixes=(".png",))
        if plot.absolute() == out.absolute():
            raise PolyinvError(f"--plot {plot} is the --out file; give another name")
        if args.max_rows < 10:
            raise PolyinvError(f"--max-rows must be at least 10, got {args.max_rows}")

        system = system_of(args.system)
        frame = read_system_table(
            args.data, system, list(NEEDED[:7]), args.sheet, group=system.reaction_name, group_optional=True
        )
        group = system.reaction_name if system.reaction_name in frame.columns else None
        n_mmd = len(frame_mmd_columns(frame))
        if args.axis:
            axis = MMDAxis.from_option(args.axis, n_mmd, "--axis")
            how = "given with --axis"
        else:
            axis, how = file_axis(read_file_metadata(args.data), frame)
            if axis is not None and axis.n_points != n_mmd:
                axis, how = None, f"its metadata states a {axis.n_points}-point axis for {n_mmd} MMD columns"
            if axis is None:
                raise PolyinvError(f"{args.data}: {how}; give the axis with --axis MIN MAX NORM")
        print(f"MMD axis: {how}")
        with batch.parallel_map(batch.cluster_of(args)) as workers:
            cal, scale, seconds = _calibrate(args, frame, axis, group, workers)
        cal.axis_how = how
        if scale:
            cal.forward.fit["inversion"] = scale
            factors = ", ".join(f"{system.column(k)} x{v:.2g}" for k, v in scale["factors"].items())
            print(
                f"inversion intervals: width factors {factors} from {scale['reactions']} training reactions "
                f"({seconds:.0f} s)"
            )
        calibration_figure(
            cal, plot, overwrite=args.overwrite
        )  # the figure first: its code is the likelier to fail
        write_yaml(cal, out, overwrite=args.overwrite)
        shown = cal.table[["value", "se", "status"]].copy()
        shown["status"] = shown["status"].str.slice(0, 70)
        with pd.option_context("display.width", 160, "display.max_colwidth", 80):
            print(shown.to_string(float_format=lambda v: f"{v:.4g}"))
        r = cal.residuals
        left = system.monomer_left
        outcome = (
            f"conversion {r['conversion_abs_median']:.3f} (medians)"
            if args.protocol == "sampled"
            else f"{left} {r['cBA_time_abs_median']:.2g} mol/L (medians), stop time MAE {r['time_mae_s']:.1f} s"
        )
        print(
            f"calibrated simulator vs the file ({r['rows']} rows): median Hellinger {r['hellinger_median']:.4f}, "
            f"{MN} {100 * r['Mn_rel_median']:.2f} %, {MW} {100 * r['Mw_rel_median']:.2f} %, {outcome}; "
            f"{cal.simulations} simulations, {cal.seconds:.0f} s"
        )
        print(f"wrote {out} and {plot}")
        if not cal.quality[
            "good"
        ]:  # the file is written for inspection, marked so; the command fails (status 1:
            # a result that cannot be trusted, where 2 is input refused)
            print(f"error: {args.data}: {cal.quality['text']} (quality: poor in {out})", file=sys.stderr)
            return 1
        return 0

    return run_cli(body, argv)


def _calibrate(args, frame: pd.DataFrame, axis: MMDAxis, group: str | None, workers):
    """The calibration, then (sampled data with reactions) the width factors of predict --calibration's
    intervals, measured by inverting each training reaction; ``workers``: a cluster's map or None."""
    try:
        cal = calibrate(
            frame,
            axis,
            candidates=args.parameters,
            max_rows=args.max_rows,
            progress=not quiet(),
            data=str(args.data),
            log=say,
            system=args.system,
            protocol=args.protocol,
            workers=workers,
        )
    except ValueError as exc:
        raise PolyinvError(f"{args.data}: {exc}") from None
    started, scale = time.perf_counter(), None
    if args.protocol == "sampled" and group:
        scale = interval_scale(cal.forward, frame, group, workers=workers)
    return cal, scale, time.perf_counter() - started
