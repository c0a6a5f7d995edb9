"""Benchmark polyinv against the study's protocols (front-end over ``benchmarks/harness.py``; run from the
repository root).

  python -m benchmarks table [--data FILE] [--models ...] [--seeds 0 1 2 3 4] [--out results/grid432]
  python -m benchmarks table --noise-chains 20000 --out results/noisy20000
  python -m benchmarks coverage --out results/grid432 [--models gp]   (interval coverage of the cached runs)
  python -m benchmarks ceiling --noise-chains 20000 --seeds 0 1 2     (the design-aware bound: benchmarks/ceiling.py)
  python -m benchmarks ceiling --noise-chains 20000 --box             (the same over the training box, without the design)
  python -m benchmarks learning-curve [--sizes 100 200 432 1000 4000] [--test-size 1000] [--out results/learning_curve]
  python -m benchmarks learning-curve --noise-chains 20000     (every LHS file noisy; results/learning_curve_noise20000)
  python -m benchmarks suite-data                              (the foreign-data suite: benchmarks/suite.py)
  python -m benchmarks suite [--sets ...] [--models ...] [--seeds 0 1 2]   (results/suite/<set>, results/suite/suite.md)
  (table and suite take --workers N or --scheduler ADDRESS: the model × seed runs on a Dask cluster)
  python -m benchmarks calibration                             (calibrated forward model vs the suite: results/calibration)
  python -m benchmarks trust-foreign [--models gp mlp cnn] [--seeds 0]   (trust checks on a foreign grid: results/trust_foreign)
  python -m benchmarks trust-foreign --world second --models gp   (the same on the independent simulator: results/trust_foreign_second)
  python -m benchmarks refine [--sets ...] [--models gp] [--seeds 0 1 2]   (predict --refine vs the model: results/refine)
  python -m benchmarks lab [--systems mma sty] [--seeds 1 2 3]   (lab-like data, leave one reaction out: results/lab)
  python -m benchmarks lab-network [--systems mma] [--seeds 2] [--sizes ROWS]   (the many-rows route: fit on rows a
      fold's kept calibration simulates, predict --ckpt; results/lab/network.md)
  python -m benchmarks refine --recheck [--sets ...]          (the recorded runs' refine check and test rows again, no refit)
  python -m benchmarks refine --sets design                   (polyinv design on 20 property targets: results/refine/design.md)
  python -m benchmarks refine --sets design_mmd               (polyinv design --mmd on 20 target MMDs: results/refine/design_mmd.md)
  python -m benchmarks tune [--trials 30] [--seeds 0 1 2]      (polyinv tune by two processes vs mlp.yaml: results/tune)
  python -m benchmarks batch [--sizes 200000 2000 8 4]        (--workers 1 vs 2: simulate rows, predict --refine rows, calibrate reactions, design targets; 0 skips; results/batch)
  python -m benchmarks docs                                    (docs/benchmark.md from the records in results/)

Any config key can be overridden for every model with --set key=value (e.g. --set trainer.max_epochs=50).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from polyinv.batch import add_arguments, cluster_of
from polyinv.errors import ArgumentParser, PolyinvError, run_cli


def table_paths(args) -> tuple[Path, Path]:
    """(data file, results folder) of a table run: the shipped (or --data) file, or the noisy grid's file."""
    if args.noise_chains:
        out = Path(args.out or f"results/noisy{args.noise_chains}")
        return out / f"grid432_noise{args.noise_chains}.xlsx", out
    return Path(args.data), Path(args.out or "results/grid432")


def main(argv: list[str] | None = None) -> int:
    from benchmarks import harness as bm

    parser = ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "mode",
        choices=[
            "table",
            "learning-curve",
            "coverage",
            "ceiling",
            "suite-data",
            "suite",
            "calibration",
            "trust-foreign",
            "refine",
            "lab",
            "lab-network",
            "tune",
            "batch",
            "docs",
        ],
    )
    parser.add_argument("--sets", nargs="+", default=None, help="suite sets (default: all)")
    parser.add_argument("--systems", nargs="+", default=None, choices=("mma", "sty"), help="lab: chemistries")
    parser.add_argument("--data", default=str(bm.REPO_ROOT / "data" / "ba_aibn_grid432.xlsx"))
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--noise-chains",
        type=int,
        default=None,
        help="KMC-like noise: the table on the grid, the learning curve on every LHS file",
    )
    parser.add_argument("--trials", type=int, default=30, help="tune: finished trials of the study")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 432, 1000, 4000])
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument(
        "--world",
        choices=("suite", "second"),
        default="suite",
        help="trust-foreign: the suite's grid_A, or the independent simulator's grid (benchmarks/foreign_sim.py)",
    )
    parser.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every model"
    )
    parser.add_argument("--force", action="store_true", help="recompute cached (model, seed) results")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="refine: the fit-time check and the test rows of every recorded run again, without refitting; "
        "lab: simulate and predict again from each fold's kept calibration",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        metavar="K",
        help="refine: also measure --candidates K on the test rows",
    )
    parser.add_argument(
        "--box",
        action="store_true",
        help="ceiling: the posterior mean over the training box (no design) instead",
    )
    add_arguments(parser)  # --workers / --scheduler: table and suite runs on a Dask cluster
    parser.add_argument(
        "--quick", action="store_true", help="2 epochs, no search: checks the pipeline, not accuracy"
    )

    def body(argv: list[str]) -> int:
        args = parser.parse_args(argv)  # inside run_cli: a bad command line is one error line
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise PolyinvError(f"--set {item!r}: expected KEY=VALUE")
            overrides[key] = yaml.safe_load(value)
        if args.mode == "docs":
            from benchmarks.suite import write_summary

            if (bm.REPO_ROOT / "results" / "suite").exists():
                write_summary(bm.REPO_ROOT / "results" / "suite")
            path = bm.write_docs(bm.REPO_ROOT / "results", bm.REPO_ROOT / "docs" / "benchmark.md")
            print(f"wrote {path}")
            return 0
        if args.mode == "batch":
            from benchmarks import batch

            out = Path(args.out or bm.REPO_ROOT / "results" / "batch")
            keys = ("simulate", "refine", "calibrate", "design")
            sizes = dict(zip(keys, args.sizes, strict=False)) if "--sizes" in argv else {}
            defaults = {"simulate": 200000, "refine": 2000, "calibrate": 8, "design": 4}
            print(f"wrote {batch.main(out, *(sizes.get(k, defaults[k]) for k in keys))}")
            return 0
        if args.mode == "tune":
            from benchmarks import tune

            out = Path(args.out or bm.REPO_ROOT / "results" / "tune")
            seeds = args.seeds if "--seeds" in argv else [0, 1, 2]
            print(f"wrote {tune.main(out, args.trials, 2, tuple(seeds))}")
            return 0
        if args.mode == "trust-foreign":
            from benchmarks import trust_foreign

            folder = "trust_foreign" if args.world == "suite" else "trust_foreign_second"
            out = Path(args.out or bm.REPO_ROOT / "results" / folder)
            seeds = args.seeds if "--seeds" in argv else [0]
            print(f"wrote {trust_foreign.main(out, args.models or ('gp', 'mlp', 'cnn'), seeds, args.world)}")
            return 0
        if args.mode == "refine":
            from benchmarks import refine

            names = args.sets or ["lhs432_B", "clustered300_C", "lhs150_A", "lhs432_C_noise20000"]
            out = Path(args.out or bm.REPO_ROOT / "results" / "refine")
            from benchmarks.suite import SETS

            known = {spec.name for spec in SETS} | set(refine.EXTRA_SETS) | {"design", "design_mmd"}
            unknown = [name for name in names if name not in known]
            if unknown:
                raise PolyinvError(
                    f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
                )
            if args.recheck:
                print(f"wrote {refine.recheck(out, bm.REPO_ROOT, args.sets)}")
                return 0
            if names == ["design"]:
                print(f"wrote {refine.design_benchmark(out)}")
                return 0
            if names == ["design_mmd"]:
                print(f"wrote {refine.design_mmd_benchmark(out, bm.REPO_ROOT)}")
                return 0
            seeds = args.seeds if "--seeds" in argv else [0, 1, 2]
            print(
                f"wrote {refine.main(names, args.models or ['gp'], seeds, bm.REPO_ROOT, out, force=args.force, candidates=args.candidates)}"
            )
            return 0
        if args.mode == "lab":
            from benchmarks import lab

            systems = args.systems or ["mma"]
            seeds = args.seeds if "--seeds" in argv else [1]
            out = Path(args.out or bm.REPO_ROOT / "results" / "lab")
            print(
                f"wrote {lab.main(bm.REPO_ROOT, out, systems, seeds, force=args.force, recheck=args.recheck)}"
            )
            return 0
        if args.mode == "lab-network":
            from benchmarks import lab_network

            systems = args.systems or ["mma"]
            seeds = args.seeds if "--seeds" in argv else [2]
            out = Path(args.out or bm.REPO_ROOT / "results" / "lab")
            rows = args.sizes[0] if "--sizes" in argv else 1500
            print(f"wrote {lab_network.main(bm.REPO_ROOT, out, systems, seeds, rows=rows, force=args.force)}")
            return 0
        if args.mode == "calibration":
            from benchmarks import calibration

            print(f"wrote {calibration.main(Path(args.out or bm.REPO_ROOT / 'results' / 'calibration'))}")
            return 0
        if args.mode in ("suite-data", "suite"):
            from benchmarks import suite

            unknown = [name for name in args.sets or [] if name not in {spec.name for spec in suite.SETS}]
            if unknown:
                raise PolyinvError(
                    f"unknown suite set(s) {', '.join(unknown)}; choose from {', '.join(s.name for s in suite.SETS)}"
                )
            sets = [spec for spec in suite.SETS if args.sets is None or spec.name in args.sets]
            if args.mode == "suite-data":
                suite.make_all(sets=sets)
                return 0
            models = args.models or list(bm.MODELS)
            out = Path(args.out or bm.REPO_ROOT / "results" / "suite")
            suite.run_suite(
                sets,
                models,
                args.seeds,
                out,
                overrides=overrides,
                force=args.force,
                quick=args.quick,
                cluster=cluster_of(args),
            )
            print(f"wrote {out / 'suite.md'}")
            return 0
        if args.mode == "coverage":
            out = Path(args.out or "results/grid432")
            if bm.coverage(out, args.models or ["gp"]).empty:
                raise PolyinvError(
                    f"{out}: no cached run of a model with intervals ({', '.join(args.models or ['gp'])})"
                )
            print(f"wrote {out / 'coverage.md'}")
            return 0
        if args.mode == "ceiling":
            data, out = table_paths(args)
            if args.noise_chains and not data.exists():
                raise PolyinvError(
                    f"{data}: run the noisy table first (python -m benchmarks table --noise-chains {args.noise_chains})"
                )
            from benchmarks.ceiling import bound_table

            bound_table(data, args.seeds, out, box=args.box)
            print(f"wrote {out / ('ceiling_box.md' if args.box else 'ceiling.md')}")
            return 0
        if args.mode == "learning-curve":
            models = args.models or ["rf", "mlp", "gp"]
            default = "results/learning_curve" + (f"_noise{args.noise_chains}" if args.noise_chains else "")
            out = Path(args.out or default)
            from benchmarks.learning_curve import learning_curve

            learning_curve(
                models,
                args.sizes,
                args.seeds,
                out,
                test_size=args.test_size,
                overrides=overrides,
                quick=args.quick,
                noise_chains=args.noise_chains,
            )
            print(f"wrote {out / 'learning_curve.md'}")
            return 0
        models = args.models or list(bm.MODELS)
        unknown = [m for m in models if m not in bm.MODELS]
        if unknown:
            raise PolyinvError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(bm.MODELS)}")
        data, out = table_paths(args)
        title = f"{data.name}, 80/20 split"
        if args.noise_chains:
            bm.noisy_grid(data, args.noise_chains)
            title = f"grid 432 with KMC-like noise ({args.noise_chains} chains per MMD), 80/20 split"
        if overrides:
            title += " — overrides for every model: " + bm.overrides_text(overrides)
        bm.table(
            models,
            args.seeds,
            data,
            out,
            title,
            overrides=overrides,
            force=args.force,
            quick=args.quick,
            cluster=cluster_of(args),
        )
        print(f"wrote {out / 'benchmark.md'}")
        return 0

    return run_cli(body, argv)


if __name__ == "__main__":
    sys.exit(main())
