"""``python -m polyinv.predict --ckpt RUN_OR_CKPT --input FILE [--sheet S] [--output preds.csv]``.

Loads any polyinv checkpoint (best.ckpt / last.ckpt of an MLP or CNN, model.joblib of a random
forest, or a run folder) on CPU, validates the input's columns against the schema stored in it,
and writes the predicted recipe (cBA_0, cAIBN_0, temp, time in physical units) per input row.
"""

from __future__ import annotations

import sys
from pathlib import Path

from polyinv.errors import ArgumentParser, run_cli


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m polyinv.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    parser.add_argument("--input", required=True, help=".xlsx, .csv or .parquet with the model's input columns")
    parser.add_argument("--sheet", default=None, help="sheet of an .xlsx input (default: compuesta)")
    parser.add_argument("--output", default=None, help="CSV to write (default: <input stem>_predictions.csv here)")
    parser.add_argument("--show", type=int, default=10, help="rows of the table to print")
    parser.add_argument("--interval", type=float, default=None, metavar="LEVEL",
                        help="add <target>_lo/_hi of the central LEVEL interval, e.g. 0.9 (GP, ensembles)")
    parser.add_argument("--verify", action="store_true",
                        help="simulate each predicted recipe again and report the MMD distance and Mn/Mw/cBA_time errors")
    parser.add_argument("--plot-dir", default=None, help="with --verify: write one PNG per row into this folder")

    def body() -> int:
        args = parser.parse_args(argv)
        from polyinv.atomic import atomic_path
        from polyinv.inference import predict_table, read_inputs
        from polyinv.models import load_model, resolve_checkpoint

        ckpt = resolve_checkpoint(args.ckpt)
        model = load_model(ckpt)
        frame = read_inputs(model, args.input, args.sheet)
        table = predict_table(model, frame, interval=args.interval)
        if args.verify or args.plot_dir:
            from polyinv.trust.report import verify_table

            table = verify_table(model, frame, table, args.input, args.sheet, args.plot_dir)
        output = Path(args.output) if args.output else Path(f"{Path(args.input).stem}_predictions.csv")
        with atomic_path(output) as tmp:
            table.to_csv(tmp, index=False)
        with_units = table.head(args.show).to_string(index=False, float_format=lambda v: f"{v:.5g}")
        print(f"{len(table)} rows predicted by {ckpt} ({model.kind})")
        print(with_units)
        if len(table) > args.show:
            print(f"... {len(table) - args.show} more rows")
        if "verify_hellinger" in table.columns:
            print(f"forward verification: median Hellinger distance {table['verify_hellinger'].median():.4g}")
        print(f"wrote {output}")
        from polyinv.trust.report import warn_outside

        warn_outside(table)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
