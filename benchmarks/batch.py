"""``python -m benchmarks batch``: how ``--workers N`` (a local Dask cluster) scales ``polyinv simulate`` and
``polyinv predict --refine``, and whether the answers equal one machine's.

Each command runs as the user would start it (a new process, start-up and the cluster's start included), on one
process without a cluster, then on 1 and 2 Dask workers, one after the other in the same run. The predict model
is a GP fitted on 80 recipes of polyinv's kinetics with its refine decision switched on, so that every row is
refined (the speed of refinement does not depend on the decision). Records go to ``results/batch/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from polyinv.models import load_model
from polyinv.refine.solver import NoiseModel

from benchmarks.lab import AXIS


def _polyinv(*args: str) -> float:
    """Seconds of one ``polyinv`` command (a new process)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "polyinv", *args, "-q"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"polyinv {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def _same(a: Path, b: Path) -> dict:
    """Whether two outputs are equal: bit for bit, else the largest relative difference of their numbers."""
    x = pd.read_parquet(a) if a.suffix == ".parquet" else pd.read_csv(a)
    y = pd.read_parquet(b) if b.suffix == ".parquet" else pd.read_csv(b)
    numbers = x.select_dtypes("number").columns
    diff = np.abs(x[numbers].to_numpy() - y[numbers].to_numpy()) / np.maximum(
        np.abs(x[numbers].to_numpy()), 1e-300
    )
    return {"identical": bool(x.equals(y)), "max_rel_diff": float(np.nanmax(diff, initial=0.0))}


def _model(out: Path) -> Path:
    path = out / "model" / "model.skops"
    if path.exists():
        return path
    _polyinv("simulate", "--design", "lhs", "--n", "80", "--seed", "1", "--out", str(out / "train.csv"))
    _polyinv(
        "fit",
        "--config",
        "gp.yaml",
        "--data.path",
        str(out / "train.csv"),
        "--output.root",
        str(out / "runs"),
        "--model.mmd_pcs",
        "6",
        "--trust.refine",
        "none",
    )
    model = load_model(next((out / "runs").rglob("model.skops")))
    model.domain["refine"] = {
        "use": True,
        "noise": NoiseModel(2000.0, 0.02, 1.0, (0.3, 0.3, 5.0)).to_dict(),
        "why": "switched on by benchmarks/batch.py",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def _same_yaml(a: Path, b: Path) -> dict:
    """Whether two calibration files are equal but for their timings."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "second" not in str(k)}
        return value

    same = strip(yaml.safe_load(a.read_text())) == strip(yaml.safe_load(b.read_text()))
    return {"identical": same, "max_rel_diff": 0.0 if same else float("nan")}


#: a calibration of polyinv's own BA kinetics for ``design`` (the study's axis and protocol)
BA_CALIBRATION = """polyinv_calibration: 1
system_key: ba
parameters: {}
axis: {log10m_min: 1.85, log10m_max: 6.6, n_points: 100, normalisation: density}
protocol: {kind: stop, t_max_s: 3600.0, x_stop: 0.9}
"""


def _calibrate_run(out: Path, reactions: int) -> tuple:
    data = out / f"lab_mma{reactions}.csv"
    if not data.exists():
        subprocess.run(
            [sys.executable, "-m", "benchmarks.lab_sim", "--system", "mma", "--reactions", str(reactions)]
            + ["--seed", "1", "--out", str(data)],
            check=True,
            capture_output=True,
        )
    argv = ["calibrate", "--system", "mma", "--protocol", "sampled", "--axis", *AXIS, "--data", str(data)]
    return ("calibrate (MMA lab samples)", reactions, argv, "yaml")


def _design_run(out: Path, targets: int) -> tuple:
    cal = out / "ba_calibration.yaml"
    cal.write_text(BA_CALIBRATION)
    if targets == 1:
        argv = ["design", "--calibration", str(cal), "--Mn", "20000", "--Mw", "45000", "--conversion", "0.6"]
        return ("design (one target)", 1, argv, "csv")
    mmd = out / f"targets{targets}.csv"
    if not mmd.exists():
        _polyinv("simulate", "--design", "lhs", "--n", str(targets), "--seed", "4", "--out", str(mmd))
    return ("design --mmd", targets, ["design", "--calibration", str(cal), "--mmd", str(mmd)], "csv")


def measure(out: Path, sim_rows: int, refine_rows: int, reactions: int = 0, targets: int = 0) -> list[dict]:
    """Time each command (0 rows: skip it) one process, 1 and 2 workers; adds to ``out/records.json``.
    ``reactions``: calibrate a lab MMA set of that many reactions; ``targets``: design for that many target
    MMDs (1: one Mn/Mw/conversion target, whose solver's finite differences go to the workers)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "records.json"
    records = json.loads(path.read_text()) if path.exists() else []
    runs = []
    if sim_rows:
        recipes = out / f"recipes{sim_rows}.csv"
        if not recipes.exists():
            lhs = out / f"lhs{sim_rows}.csv"
            _polyinv("simulate", "--design", "lhs", "--n", str(sim_rows), "--seed", "7", "--out", str(lhs))
            pd.read_csv(lhs)[["cBA_0", "cAIBN_0", "temp"]].to_csv(recipes, index=False)
        runs.append(("simulate", sim_rows, ["simulate", "--recipes", str(recipes)], "parquet"))
    if refine_rows:
        rows = out / f"rows{refine_rows}.csv"
        if not rows.exists():
            _polyinv(
                "simulate", "--design", "lhs", "--n", str(refine_rows), "--seed", "8", "--out", str(rows)
            )
        model = _model(out)
        runs.append(
            (
                "predict --refine",
                refine_rows,
                ["predict", "--ckpt", str(model), "--input", str(rows), "--refine"],
                "csv",
            )
        )
    if reactions:
        runs.append(_calibrate_run(out, reactions))
    if targets:
        runs.append(_design_run(out, targets))
    for command, n, argv, ext in runs:
        flag = "--output" if command.startswith("predict") else "--out"
        files = {}
        for how, extra in (
            ("one process", []),
            ("1 worker", ["--workers", "1"]),
            ("2 workers", ["--workers", "2"]),
        ):
            files[how] = out / f"{command.split()[0]}{n}_{how.replace(' ', '_')}.{ext}"
            seconds = _polyinv(*argv, flag, str(files[how]), "--overwrite", *extra)
            records = [r for r in records if (r["command"], r["rows"], r["how"]) != (command, n, how)]
            records.append({"command": command, "rows": n, "how": how, "seconds": seconds})
            path.write_text(json.dumps(records, indent=1))
        for r in records:
            if (r["command"], r["rows"]) == (command, n):
                compare = _same_yaml if ext == "yaml" else _same
                r.update(compare(files["one process"], files[r["how"]]))
        path.write_text(json.dumps(records, indent=1))
    return records


def report(out: Path, records: list[dict]) -> Path:
    lines = [
        "### Batch work on Dask (`--workers N`, `python -m benchmarks batch`)",
        "",
        "Each command started as a user would (a new process; the local cluster's start included), one after the",
        "other on an otherwise idle 2-core machine. Speed-up: 1 worker's seconds over 2 workers'.",
        "",
        "| command | size | one process, s | 1 worker, s | 2 workers, s | speed-up 2 vs 1 worker | same as one process |",
        "|---|---|---|---|---|---|---|",
    ]
    for command, n in dict.fromkeys((r["command"], r["rows"]) for r in records):
        by = {r["how"]: r for r in records if (r["command"], r["rows"]) == (command, n)}
        same = by["2 workers"]
        text = "bit for bit" if same["identical"] else f"max rel. diff {same['max_rel_diff']:.1e}"
        lines.append(
            f"| `{command}` | {n} | {by['one process']['seconds']:.0f} | "
            f"{by['1 worker']['seconds']:.0f} | {by['2 workers']['seconds']:.0f} | "
            f"{by['1 worker']['seconds'] / by['2 workers']['seconds']:.2f}× | {text} |"
        )
    lines += [
        "",
        "Size: rows for `simulate` and `predict`; reactions (5-8 samples each, `benchmarks/lab_sim.py`, MMA seed 1) for",
        "`calibrate`, whose global stage's starting points, finite-difference columns and inversions of the training",
        "reactions are the tasks; target MMDs for `design --mmd` (one task each). `design (one target)`: Mn 20,000,",
        "Mw 45,000, conversion 0.6, its solver's four finite-difference columns the tasks. Both designs use polyinv's",
        "own BA kinetics, 48 starts. Rows were measured as the code stood then: `simulate` of 20,000 rows before",
        "the simulator's import was cut, of 100,000 before the QSSA loop was sped up (20 % on BA), of 200,000 after.",
        "",
        "`predict --refine`: a GP fitted on 80 recipes of polyinv's kinetics, its refine decision switched on so that",
        "every row is refined (refinement's cost does not depend on the decision).",
    ]
    extra = []
    for n in sorted({r["rows"] for r in records if r["command"] == "simulate"}):
        cost = {r["how"]: r["seconds"] for r in records if (r["command"], r["rows"]) == ("simulate", n)}
        if {"one process", "1 worker"} <= set(cost):
            extra.append(f"{cost['1 worker'] - cost['one process']:.0f} s at {n:,} rows")
    if extra:
        lines += [
            "One Dask worker costs more than one process on `simulate` (the cluster's start, the workers' imports,",
            f"the results sent back, the worker's own overhead; not broken down): {', '.join(extra)}. It grows",
            "with the rows, so the speed-up stays below 2 at every size measured.",
        ]
    path = out / "batch.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(
    out: Path, sim_rows: int = 200000, refine_rows: int = 2000, reactions: int = 8, targets: int = 4
) -> Path:
    return report(out, measure(out, sim_rows, refine_rows, reactions, targets))
