"""The trust checks of models trained on a foreign grid (issue 21's goals), end to end through the CLI.

``polyinv fit`` on the suite's grid_A file (kinetics A: kt x0.5, kbb x0.5, f - 0.10; MMD axis 2.0-7.0,
sum 1; no metadata, so `trust.forward: auto` calibrates on the training rows), then ``polyinv predict
--verify`` on files of the same simulator: in-range Latin-hypercube recipes (should be in domain) and
three out-of-domain groups (90-100 °C, 4-5 mol/L monomer, 0.04-0.06 mol/L AIBN; should be flagged).
Reports the in-domain and flagged fractions, the median verify Hellinger distance of in-domain rows, and
how wrong the in-range rows the domain kept and flagged are (median |cAIBN_0 error|, % of its range).

  python -m benchmarks trust-foreign [--models gp mlp cnn] [--seeds 0]   (results/trust_foreign)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.schema import COMPOSITE_COLUMNS

from benchmarks.suite import AXES, DATA_DIR, KINETICS, moved_parameters

TRAIN = "grid_A.xlsx"
GROUPS = {
    "in range (LHS)": None,
    "90-100 °C": ("temp", 90.0, 100.0),
    "4-5 mol/L monomer": ("cBA_0", 4.0, 5.0),
    "0.04-0.06 mol/L AIBN": ("cAIBN_0", 0.04, 0.06),
}


def check_files(out: Path, n: int = 60) -> dict[str, Path]:
    """One CSV per group, simulated with kinetics A on axis A (made once)."""
    from polyinv.sim import lhs_design, simulate_many

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for k, (name, change) in enumerate(GROUPS.items()):
        path = out / f"check_{k}.csv"
        if not path.exists():
            recipes = lhs_design(n, seed=100 + k)
            if change is not None:
                column, lo, hi = change
                recipes[column] = np.random.default_rng(200 + k).uniform(lo, hi, n)
            frame = simulate_many(recipes, moved_parameters(KINETICS["A"]), axis=AXES["A"], progress=False)
            frame[list(COMPOSITE_COLUMNS)].to_csv(path, index=False)
        files[name] = path
    return files


def run_model(
    model: str, seed: int, out: Path, files: dict[str, Path], train: Path = DATA_DIR / TRAIN
) -> dict:
    from polyinv.cli import fit, predict

    record_path = out / f"{model}_seed{seed}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    root = out / "runs" / f"{model}_seed{seed}"
    started = time.perf_counter()
    if (
        fit.main(
            [
                "--config",
                f"{model}.yaml",
                "--data.path",
                str(train),
                "--seed",
                str(seed),
                "--output.root",
                str(root),
                "--trainer.enable_progress_bar",
                "false",
            ]
        )
        != 0
    ):
        raise RuntimeError(f"fit {model} failed")
    fit_seconds = time.perf_counter() - started
    run_dir = max(root.glob("*/version_*"))
    info = json.loads((run_dir / "run.json").read_text())
    record = {
        "model": model,
        "seed": seed,
        "fit_seconds": fit_seconds,
        "forward_model": info.get("forward_model"),
        "forward_fit": info.get("forward_fit"),
        "forward_off": info.get("forward_off"),
        "groups": {},
    }
    for name, path in files.items():
        pred = out / f"pred_{model}_seed{seed}_{path.stem}.csv"
        if (
            predict.main(
                [
                    "--ckpt",
                    str(run_dir),
                    "--input",
                    str(path),
                    "--verify",
                    "--output",
                    str(pred),
                    "--overwrite",
                ]
            )
            != 0
        ):
            raise RuntimeError(f"predict {model} failed")
        table = pd.read_csv(pred)
        inside = table["in_domain"].astype(bool)
        verified = (
            "verify_hellinger" in table
        )  # absent where the model has no forward model (said by predict)
        record["groups"][name] = {
            "rows": int(len(table)),
            "in_domain": float(inside.mean()),
            "verify_hellinger_in_domain": float(table.loc[inside, "verify_hellinger"].median())
            if inside.any() and verified
            else None,
            "verify_hellinger_all": float(table["verify_hellinger"].median()) if verified else None,
        }
    record_path.write_text(json.dumps(record, indent=1))
    return record


def kept_vs_flagged(out: Path, record: dict, truth: Path) -> tuple[float, float]:
    """Median |cAIBN_0 error| (% of the grid's range) of the in-range rows kept and of those flagged."""
    table = pd.read_csv(out / f"pred_{record['model']}_seed{record['seed']}_{truth.stem}.csv")
    error = 100 * (table["cAIBN_0"] - pd.read_csv(truth)["cAIBN_0"]).abs() / (0.02 - 0.0025)
    inside = table["in_domain"].astype(bool)
    return float(error[inside].median()), float(error[~inside].median()) if (~inside).any() else float("nan")


def second_world_files() -> tuple[Path, dict[str, Path]]:
    """The independent simulator's grid and check groups (made by the commands in benchmarks/foreign_sim.py's
    docstring)."""
    folder = Path(__file__).resolve().parent / "data" / "foreign"
    names = ("in_range.csv", "out_temp.csv", "out_cba.csv", "out_caibn.csv")
    return folder / "grid.csv", {group: folder / name for group, name in zip(GROUPS, names, strict=True)}


def main(out: Path, models=("gp", "mlp", "cnn"), seeds=(0,), world: str = "suite") -> Path:
    train, files = (DATA_DIR / TRAIN, check_files(out / "data")) if world == "suite" else second_world_files()
    records = [run_model(m, s, out, files, train) for m in models for s in seeds]
    lines = [
        "| model (seed) | in range: in domain | 90-100 °C flagged | 4-5 mol/L flagged | 0.04-0.06 AIBN flagged | "
        "OOD flagged (all) | verify Hellinger, in-domain rows (median) | in range: cAIBN_0 error kept / flagged | "
        "fit incl. calibration (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        g = r["groups"]
        ood = [name for name in GROUPS if GROUPS[name] is not None]
        flagged = [1 - g[name]["in_domain"] for name in ood]
        h = g["in range (LHS)"]["verify_hellinger_in_domain"]
        h = "off" if h is None else f"{h:.4f}"
        kept, dropped = kept_vs_flagged(out, r, files["in range (LHS)"])
        lines.append(
            f"| {r['model']} ({r['seed']}) | {100 * g['in range (LHS)']['in_domain']:.0f} % | "
            + " | ".join(f"{100 * f:.0f} %" for f in flagged)
            + f" | {100 * np.mean(flagged):.0f} % | {h} | {kept:.1f} % / {dropped:.1f} % | {r['fit_seconds']:.0f} |"
        )
    source = (
        f"Trained on `{TRAIN}` (suite kinetics A, axis 2.0-7.0 sum, no metadata: forward model calibrated on the "
        "training rows)"
        if world == "suite"
        else "Trained on the independent simulator's grid (`benchmarks/foreign_sim.py`: another scheme; no metadata: "
        "forward model calibrated on the training rows, used only where it reproduces them)"
    )
    text = (
        f"# Trust checks of models trained on a foreign grid (`python -m benchmarks trust-foreign{'' if world == 'suite' else ' --world second'}`)\n\n"
        f"{source}; 60 rows per check group, same simulator. cAIBN_0 error: median |predicted - true| in % of "
        "the grid's range, over the in-range rows the domain kept / flagged.\n\n"
        + "\n".join(lines)
        + "\n\nForward models:\n\n"
        + "\n".join(
            f"- {r['model']} ({r['seed']}): {r['forward_model'] or 'off: ' + str(r.get('forward_off'))}"
            for r in records
        )
        + "\n"
    )
    path = out / "trust_foreign.md"
    path.write_text(text, encoding="utf-8")
    return path
