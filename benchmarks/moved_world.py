"""Files of polyinv's own scheme with its coefficients moved, on the independent simulator's axis (issue 31).

The truth of such a file is known, so a calibration can be checked against it, also where the truth lies beyond
the calibrator's ranges (the fit must then end at the range's end and say so). Axis log10 M 2.0-7.0 with unit
sum (as benchmarks/foreign_sim.py writes), noise-free unless ``--noise-chains``.

  python -m benchmarks.moved_world --set C_S=30 kt=3 f=0.52 --design grid --out benchmarks/data/foreign/moved_grid.csv
  python -m benchmarks.moved_world --set C_S=30 kt=3 f=0.52 --design lhs --n 200 --seed 1 --out benchmarks/data/foreign/moved_lhs200.csv
  python -m benchmarks.moved_world --set C_S=0.003 kt=0.05 f=0.44 --design grid --out benchmarks/data/foreign/far_grid.csv
  python -m benchmarks.moved_world --set C_S=0.003 kt=0.05 f=0.44 --design lhs --n 200 --seed 1 --out benchmarks/data/foreign/far_lhs200.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from polyinv.schema import COMPOSITE_COLUMNS
from polyinv.sim import simulate_many
from polyinv.sim.forward import BY_NAME, apply
from polyinv.sim.grid import MMDAxis

from benchmarks.foreign_sim import design

AXIS = MMDAxis(2.0, 7.0, normalisation="sum")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.moved_world", description=__doc__.splitlines()[0])
    p.add_argument(
        "--set",
        nargs="+",
        required=True,
        metavar="NAME=VALUE",
        help=f"calibration parameters to move ({', '.join(BY_NAME)}); factors or kJ/mol as polyinv calibrate writes them",
    )
    p.add_argument("--design", choices=("grid", "lhs"), required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-chains", type=int, default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    values = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    recipes = design(args.design, args.n, args.seed)
    frame = simulate_many(
        recipes, apply(values), axis=AXIS, noise_chains=args.noise_chains, seed=args.seed, progress=False
    )[list(COMPOSITE_COLUMNS)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)  # no metadata: the calibrator sees what a user's file shows
    print(f"wrote {out}: {len(frame)} rows of polyinv's scheme with {values}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
