"""``polyinv explain --ckpt RUN --input FILE [--sheet S] [--out DIR] [--n-repeats 5] [--block 10]``.

Permutation importance of every side input and of each region of the MMD grid, per target, through
the evaluation harness (drop in R² on the rows of FILE, which must hold the true recipe), written as
``importance.csv`` and ``importance.png`` (random forests: also ``impurity.csv``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from polyinv.atomic import check_folder
from polyinv.errors import ArgumentParser, PolyinvError, run_cli
from polyinv.explain import OUTPUTS, explain
from polyinv.inference import read_inputs
from polyinv.models import load_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="polyinv explain", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    parser.add_argument(
        "--input", required=True, help="data file with the model's inputs and the true recipe"
    )
    parser.add_argument("--sheet", default=None, help="sheet of an .xlsx input (default: compuesta)")
    parser.add_argument("--out", default="explain", help="output folder (default: ./explain)")
    parser.add_argument("--n-repeats", type=int, default=5, help="permutations per group (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    parser.add_argument("--block", type=int, default=10, help="MMD grid points per region (default 10)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the files of an earlier explain in --out"
    )

    def body(argv: list[str]) -> int:
        args = parser.parse_args(argv)

        check_folder(args.out, "--out", OUTPUTS, overwrite=args.overwrite, inputs=(args.input, args.ckpt))
        model = load_model(args.ckpt)
        frame = read_inputs(model, args.input, args.sheet, targets=True)
        if len(frame) < 2:
            raise PolyinvError(
                f"{args.input}: {len(frame)} data row(s); permutation importance needs at least 2 "
                f"rows with the true recipe (R² is not defined on fewer)"
            )
        written = explain(
            model, frame, args.out, args.n_repeats, args.seed, args.block, overwrite=args.overwrite
        )

        table = pd.read_csv(written["table"])
        top = table.loc[table.groupby("target")["r2_drop"].idxmax()]
        for _, row in top.iterrows():
            print(f"{row['target']:<8} most important: {row['group']:<10} (R² drops by {row['r2_drop']:.3f})")
        for path in written.values():
            print(f"wrote {path}")
        return 0

    return run_cli(body, argv)
