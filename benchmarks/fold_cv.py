"""How much the GPs' exact K-fold scores in ``auto`` flatter them (issue 33): each GP config scored on the same
5 folds of a run's training rows two ways (as auto.yaml) — exactly with the kernel fixed at the fit on every training row
(what ``auto`` does: no refits) and by refitting the GP, kernel optimisation included, on each fold's other
rows (what the networks get). Records go to ``results/fold_cv/<file>__<config>__seed<k>.json`` as they come,
the table to ``results/fold_cv/fold_cv.md``.

  python -m benchmarks.fold_cv --data data/ba_aibn_grid432.xlsx benchmarks/data/foreign/grid.csv \
      [--configs gp.yaml gp_noisy.yaml] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

from polyinv.config import find_config, parse
from polyinv.data.module import PolyDataModule
from polyinv.metrics import evaluate
from polyinv.select import _arrays, _kfold_classical
from polyinv.train import build_model

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "fold_cv"
FOLDS = 5


def one(data: Path, config_name: str, seed: int) -> dict:
    """Per-target 5-fold R² of one GP config on one file's training rows: exact (kernel fixed) and refitted."""
    cfg = parse(["--config", str(find_config(config_name)), "--data.path", str(data), "--seed", str(seed)])[0]
    dm = PolyDataModule(**cfg["data"], seed=seed)
    dm.setup()
    rows = np.concatenate([dm.train_idx, dm.val_idx])
    frame = dm.frame.iloc[rows]
    folds = list(KFold(FOLDS, shuffle=True, random_state=seed).split(rows))
    model = build_model(cfg, dm, progress=False)
    targets = list(model.target_names)
    tick = time.perf_counter()
    model.fit(*_arrays(frame, model))
    exact = model.loo_predict_arrays(*_arrays(frame, model), folds=[test for _, test in folds])
    exact_s = time.perf_counter() - tick
    tick = time.perf_counter()
    refit = _kfold_classical(cfg, dm, rows, folds, targets)
    refit_s = time.perf_counter() - tick
    y = frame[targets].to_numpy(np.float64)
    scores = {how: evaluate(y, pred, targets) for how, pred in (("exact", exact), ("refit", refit))}
    return {
        "data": str(data),
        "config": config_name,
        "seed": seed,
        "rows": len(rows),
        **{
            how: {"global": s["global"]["r2"], **{t: s["targets"][t]["r2"] for t in targets}}
            for how, s in scores.items()
        },
        "seconds": {"exact (fit + folds)": exact_s, "refit (3 fits)": refit_s},
    }


def table(records: list[dict]) -> str:
    lines = [
        "### The GPs' folds in auto: exact with the kernel fixed vs refitted per fold (`python -m benchmarks.fold_cv`)",
        "",
        "Each GP config on the same 5 folds of a run's training rows (seed = split and folds): auto's exact",
        "fixed-kernel held-out predictions against refitting the GP, kernel optimisation included, on each",
        "fold's other rows (as the networks are). Positive: the fixed kernel flatters the GP.",
        "",
        "| file | config | seed | exact 5-fold global R² | refitted 5-fold global R² | exact − refit, per target |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(records, key=lambda r: (r["data"], r["config"], r["seed"])):
        diffs = ", ".join(f"{t} {r['exact'][t] - r['refit'][t]:+.4f}" for t in r["exact"] if t != "global")
        lines.append(
            f"| {Path(r['data']).name} | {r['config']} | {r['seed']} | {r['exact']['global']:.4f} | "
            f"{r['refit']['global']:.4f} | {diffs} |"
        )
    gaps = [r["exact"]["global"] - r["refit"]["global"] for r in records]
    lines += [
        "",
        f"exact − refitted global R²: median {np.median(gaps):+.4f}, max {np.max(gaps):+.4f} ({len(gaps)} runs)",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--configs", nargs="+", default=["gp.yaml", "gp_noisy.yaml"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for data in args.data:
            for config in args.configs:
                path = OUT / f"{Path(data).stem}__{Path(config).stem}__seed{seed}.json"
                if path.exists():
                    continue
                record = one(Path(data), config, seed)
                path.write_text(json.dumps(record, indent=1) + "\n")
                print(
                    f"{path.name}: exact {record['exact']['global']:.4f}, refit {record['refit']['global']:.4f}",
                    flush=True,
                )
    records = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    (OUT / "fold_cv.md").write_text(table(records))
    print(table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
