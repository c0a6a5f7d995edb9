"""The study's example end to end: simulate 70 °C, cBA_0 = 1 mol/L, cAIBN_0 = 0.02 mol/L, then ask a
trained model which recipe gives that MMD (with interval, domain flag and forward verification).

  python -m benchmarks.worked_example --ckpt checkpoints/gp/version_0 [--out example/]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polyinv.atomic import atomic_path
from polyinv.cli.predict import main as predict_main
from polyinv.sim import simulate_many

RECIPE = {"cBA_0": 1.0, "cAIBN_0": 0.02, "temp": 70.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", default="example")
    args = parser.parse_args(argv)
    import pandas as pd

    out = Path(args.out)
    frame = simulate_many(pd.DataFrame([RECIPE]), progress=False)
    with atomic_path(out / "example_input.csv") as tmp:
        frame.to_csv(tmp, index=False)
    true = frame.iloc[0]
    print(
        f"simulated recipe: cBA_0 {true.cBA_0} mol/L, cAIBN_0 {true.cAIBN_0} mol/L, temp {true.temp} °C "
        f"→ stop time {true.time:.1f} s, cBA_time {true.cBA_time:.4f} mol/L, Mn {true.Mn:.0f}, Mw {true.Mw:.0f} g/mol"
    )
    return predict_main(
        [
            "--ckpt",
            args.ckpt,
            "--input",
            str(out / "example_input.csv"),
            "--output",
            str(out / "example_prediction.csv"),
            "--interval",
            "0.9",
            "--verify",
            "--plot-dir",
            str(out),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
