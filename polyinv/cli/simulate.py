"""``polyinv simulate (--design grid|lhs | --recipes FILE) [--system ba|mma|sty] [--calibration CAL.yaml] --out FILE``.

Simulates a design, or the recipes of a file (its ``cBA_0``, ``cAIBN_0``, ``temp`` — another system's names with
``--system`` — under the run protocol), with the kinetic model — a system's literature kinetics, or one
calibrated to a data file (``polyinv calibrate``) on that calibration's MMD axis and run protocol; under the
``sampled`` protocol each row runs to its own ``time`` — optionally with KMC-like chain-sampling noise, and writes
it in the study's format (.xlsx with the compuesta, mmd_raw_data and metadata sheets, or .csv / .parquet; other
systems and sampled rows also get a ``conversion`` column and keep a ``reaction`` column), with the command, the
MMD axis and every kinetic parameter in its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyinv import batch
from polyinv.atomic import check_output
from polyinv.data.io import read_system_table, read_table
from polyinv.errors import ArgumentParser, PolyinvError, run_cli
from polyinv.log import quiet
from polyinv.schema import PROTOCOLS, RECIPE_COLUMNS, SYSTEMS, TIME, system_of
from polyinv.sim.calibration_file import read_yaml
from polyinv.sim.dataset import PROG, canonical_command, generate
from polyinv.sim.forward import ForwardModel
from polyinv.sim.io import FORMATS, metadata_sidecar
from polyinv.sim.kinetics import DEFAULT_N_STEPS


def build_parser() -> ArgumentParser:
    """The argument parser (``--help`` documents every option)."""
    p = ArgumentParser(
        prog=PROG, description="Simulate a BA/AIBN design and write it in the study's file format."
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--design",
        choices=("grid", "lhs"),
        help="grid: the study's 6x8x9 grid (432 recipes); lhs: Latin hypercube inside the domain",
    )
    source.add_argument(
        "--recipes",
        metavar="FILE",
        help="simulate the rows of this .xlsx/.csv/.parquet file (its cBA_0, cAIBN_0, temp columns)",
    )
    p.add_argument("--sheet", default=None, help="sheet of an .xlsx --recipes file (default: compuesta)")
    p.add_argument(
        "--calibration",
        metavar="CAL.yaml",
        default=None,
        help="kinetics, MMD axis and run protocol from `polyinv calibrate` (default: polyinv's own)",
    )
    p.add_argument(
        "--system",
        default=None,
        choices=tuple(SYSTEMS),
        help="the chemistry (default: the calibration's, else ba): column names and literature kinetics",
    )
    p.add_argument(
        "--protocol",
        default=None,
        choices=PROTOCOLS,
        help="stop: runs stop at t_max or x_stop; sampled: each --recipes row runs to its own time column "
        "(default: the calibration's, else stop)",
    )
    p.add_argument("--n", type=int, default=None, help="number of recipes (lhs; grid is always 432)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the Latin hypercube and of the chain sampling"
    )
    p.add_argument(
        "--noise-chains",
        type=int,
        default=None,
        metavar="K",
        help="draw K chains per recipe (KMC-like noise in the MMD, Mn, Mw)",
    )
    p.add_argument("--out", required=True, help="output file: .xlsx, .csv (+ .metadata.json) or .parquet")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out (never one of the inputs)"
    )
    p.add_argument(
        "--t-max",
        type=float,
        default=None,
        help="time limit of a run, s (default: the calibration's, else 3600)",
    )
    p.add_argument(
        "--x-stop",
        type=float,
        default=None,
        help="conversion that stops a run (default: the calibration's, else 0.9)",
    )
    p.add_argument("--n-steps", type=int, default=DEFAULT_N_STEPS, help="RK4 steps over t_max")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (joblib)")
    batch.add_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def body(argv: list[str]) -> int:
        args = parser.parse_args(argv)

        inputs = (args.recipes, args.calibration)
        check_output(args.out, "--out", overwrite=args.overwrite, inputs=inputs, suffixes=FORMATS)
        if args.out.lower().endswith(".csv"):
            check_output(metadata_sidecar(args.out), "--out", overwrite=args.overwrite, inputs=inputs)
        recipes = None
        if args.calibration:
            try:
                forward = read_yaml(args.calibration)
            except ValueError as exc:
                raise PolyinvError(f"--calibration {exc}") from None
            for flag, given, stored in (
                ("--system", args.system, forward.system),
                ("--protocol", args.protocol, forward.protocol),
            ):
                if given not in (None, stored):
                    raise PolyinvError(f"{flag} {given}: --calibration {args.calibration} is of {stored}")
        else:
            forward = ForwardModel(system=args.system or "ba", protocol=args.protocol or "stop")
        system = system_of(forward.system)
        sampled = forward.protocol == "sampled"
        if sampled and not args.recipes:
            raise PolyinvError("the sampled protocol simulates the rows of --recipes (each to its own time)")
        if args.recipes:
            if args.n is not None:
                raise PolyinvError("--n applies to --design lhs, not to --recipes")
            if system.key == "ba" and not sampled:
                recipes = read_table(args.recipes, list(RECIPE_COLUMNS), args.sheet)
            else:
                roles = [*RECIPE_COLUMNS, *([TIME] if sampled else [])]
                recipes = read_system_table(
                    args.recipes,
                    system,
                    roles,
                    args.sheet,
                    mmd=False,
                    group=system.reaction_name,
                    group_optional=True,
                )
        try:
            generate(
                args.design or "recipes",
                args.out,
                n=args.n,
                seed=args.seed,
                noise_chains=args.noise_chains,
                t_max=args.t_max,
                x_stop=args.x_stop,
                n_steps=args.n_steps,
                n_jobs=args.jobs,
                progress=not quiet(),
                cluster=batch.cluster_of(args),
                command=canonical_command(args),
                recipes=recipes,
                forward=forward,
                overwrite=args.overwrite,
                source=args.recipes,
            )
        except ValueError as exc:
            raise PolyinvError(f"--recipes {args.recipes}: {exc}" if args.recipes else str(exc)) from None
        print(f"wrote {args.out}")
        return 0

    return run_cli(body, argv)
