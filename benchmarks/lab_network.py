"""The "many rows" route on lab-like data (issue 34): ``python -m benchmarks lab-network [--systems mma] [--seeds 2]``.

Leave one reaction out, as ``python -m benchmarks lab``, from each fold's kept calibration (``results/lab/<set>/
<reaction>_cal.yaml``: calibrated on the other 7 reactions). Per fold, the commands a user with many rows runs:

  polyinv simulate --recipes box.csv --calibration cal.yaml --out train_sim.csv   (N recipes over the training box,
      each at a sampling time drawn from the training samples' times)
  polyinv fit --config rf.yaml --data.path train_sim.csv --data.system S --data.protocol sampled
  polyinv predict --ckpt RUN --input unknown.csv --output pred.csv                (one recipe per sample)

The reaction's answer is the median of its samples' answers. Records ``results/lab/<set>/<reaction>_network.json``
(recipe errors, seconds per command) and ``results/lab/network.md`` beside the inversion's figures of the same folds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import qmc

from benchmarks.lab import _run, data_set, simulate, table_lines
from benchmarks.lab_sim import MONOMERS


def box_recipes(cal: Path, train: pd.DataFrame, column: str, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` Latin-hypercube recipes inside the calibration's training box (the initiator on a log scale), each
    with a sampling time drawn from the training samples' times."""
    box = yaml.safe_load(cal.read_text())["training_box"]
    names = [column, "cAIBN_0", "temp"]
    low = np.array([box[n][0] for n in names], dtype=float)
    high = np.array([box[n][1] for n in names], dtype=float)
    low[1], high[1] = np.log(low[1]), np.log(high[1])
    u = qmc.LatinHypercube(d=3, seed=seed).random(rows)
    values = low + u * (high - low)
    values[:, 1] = np.exp(values[:, 1])
    rng = np.random.default_rng(seed)
    recipes = pd.DataFrame(values, columns=names)
    recipes["time"] = rng.choice(train["time"].to_numpy(float), size=rows)
    return recipes


def fold(frame: pd.DataFrame, system: str, held: str, cal: Path, work: Path, rows: int, seed: int) -> dict:
    mon = MONOMERS[system]
    recipe = [mon.column, "cAIBN_0", "temp"]
    work.mkdir(parents=True, exist_ok=True)
    train, test = frame[frame["reaction"] != held], frame[frame["reaction"] == held]
    paths = {k: work / f"{k}.csv" for k in ("box", "train_sim", "unknown", "pred")}
    for stale in paths.values():  # a failed step must not read an earlier fold's file
        stale.unlink(missing_ok=True)
    box_recipes(cal, train, mon.column, rows, seed).to_csv(paths["box"], index=False)
    test.drop(columns=recipe).to_csv(paths["unknown"], index=False)
    seconds, codes = {}, {}
    codes["simulate"], seconds["simulate"] = simulate(paths["box"], cal, paths["train_sim"])
    record = {"system": system, "held_out": held, "rows": rows, "seed": seed, "codes": codes}
    record["seconds"] = seconds
    if codes["simulate"] != 0:
        return {**record, "failed": "simulate"}
    runs = work / "runs"
    codes["fit"], seconds["fit"], log = _run(
        ["fit", "--config", "rf.yaml", "--data.path", str(paths["train_sim"]), "--data.system", system]
        + ["--data.protocol", "sampled", "--output.root", str(runs), "--name", held, "--seed", str(seed)]
        + ["--trainer.enable_progress_bar", "false"]
    )
    run = max((runs / held).glob("version_*"), key=lambda p: int(p.name.split("_")[1]), default=None)
    if codes["fit"] != 0 or run is None:
        return {**record, "failed": f"fit: {log[-500:]}"}
    metrics = json.loads((run / "metrics.json").read_text())
    codes["predict"], seconds["predict"], _ = _run(
        ["predict", "--ckpt", str(run), "--input", str(paths["unknown"]), "--output", str(paths["pred"])]
        + ["--overwrite", "-q"]
    )
    if codes["predict"] != 0:
        return {**record, "failed": "predict"}
    pred = pd.read_csv(paths["pred"])
    truth = test[recipe].iloc[0]
    answer = pred[recipe].median()
    return {
        **record,
        "test_split_r2": {t: m["r2"] for t, m in metrics["targets"].items()},
        "truth": {k: float(truth[k]) for k in recipe},
        "answer": {k: float(answer[k]) for k in recipe},
        "temp_error": float(answer["temp"] - truth["temp"]),
        "m0_rel_error": float(answer[mon.column] / truth[mon.column] - 1.0),
        "i0_rel_error": float(answer["cAIBN_0"] / truth["cAIBN_0"] - 1.0),
    }


def report(out: Path) -> Path:
    rows = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        pairs = []
        for path in sorted(folder.glob("R*_network.json")):
            net = json.loads(path.read_text())
            inv_path = folder / path.name.replace("_network", "")
            if "temp_error" in net and inv_path.exists():
                pairs.append((net, json.loads(inv_path.read_text())))
        if not pairs:
            continue
        for route, pick in (("inversion (predict --calibration)", 1), ("random forest on simulated rows", 0)):
            recs = [p[pick] for p in pairs]
            rows.append(
                {
                    "set": folder.name,
                    "route": route,
                    "folds": len(recs),
                    "temp_mae_K": f"{np.mean([abs(r['temp_error']) for r in recs]):.1f}",
                    "m0_rel_median": f"{100 * np.median([abs(r['m0_rel_error']) for r in recs]):.0f} %",
                    "i0_rel_median": f"{100 * np.median([abs(r['i0_rel_error']) for r in recs]):.0f} %",
                    "s_per_fold_median": f"{np.median([sum(r['seconds'].values()) for r in recs]):.0f}",
                }
            )
    lines = [
        "## The many-rows route on lab-like data (benchmarks/lab_network.py)",
        "",
        "Same folds as lab.md. Inversion: the fold's calibration inverted against the held-out reaction's samples.",
        "Random forest: rf.yaml fitted on N rows the fold's calibration simulated over its training box (sampled",
        "protocol, no measurement noise added), one answer per sample, the reaction's answer their median. Seconds:",
        "the inversion's include calibrate; the forest's do not (it reuses that calibration).",
        "",
    ]
    if rows:
        lines += table_lines(pd.DataFrame(rows))
    path = out / "network.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(
    root: Path, out: Path, systems: list[str], seeds: list[int], rows: int = 1500, force: bool = False
) -> Path:
    for system in systems:
        for seed in seeds:
            frame = data_set(root, system, seed)
            folder = out / f"{system}_seed{seed}"
            for held in pd.unique(frame["reaction"]):
                cal, path = folder / f"{held}_cal.yaml", folder / f"{held}_network.json"
                if not cal.exists() or (path.exists() and not force):
                    continue
                work = Path("/tmp") / "polyinv_lab_network" / f"{system}_seed{seed}" / str(held)
                record = fold(frame, system, str(held), cal, work, rows, seed)
                path.write_text(json.dumps(record, indent=1) + "\n")
                print(
                    f"{system} seed {seed} {held}: T err {record.get('temp_error', float('nan')):+.1f} K, "
                    f"M0 {100 * record.get('m0_rel_error', float('nan')):+.0f} %, "
                    f"I0 {100 * record.get('i0_rel_error', float('nan')):+.0f} %, "
                    f"{sum(record['seconds'].values()):.0f} s {record.get('failed', '')}",
                    flush=True,
                )
            report(out)
    return report(out)
