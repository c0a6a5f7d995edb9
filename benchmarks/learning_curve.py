"""The learning curve: every model trained on Latin-hypercube files of growing size, scored on one fixed
held-out file (``python -m benchmarks learning-curve``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.atomic import atomic_path
from polyinv.plots import write_figure
from polyinv.schema import TARGETS

from benchmarks.harness import MODELS, _pm, overrides_text, records_frame, rescore, run_one


def learning_curve(
    models: Sequence[str],
    sizes: Sequence[int],
    seeds: Sequence[int],
    out: str | Path,
    test_size: int = 1000,
    overrides: Mapping | None = None,
    quick: bool = False,
    noise_chains: int | None = None,
    progress=print,
) -> pd.DataFrame:
    """Train on n Latin-hypercube recipes (n in ``sizes``), test on one fixed held-out LHS set.

    With ``noise_chains`` every file (training and test) carries KMC-like noise of that many chains per
    MMD: whether a model's gap on noisy data closes with more data, or stays (information the noise took).
    """
    from polyinv.sim import lhs_design, simulate_many
    from polyinv.sim.io import write_dataset

    out = Path(out)
    data_dir = out / "data"
    tag = "" if noise_chains is None else f"_noise{noise_chains}"

    def make(path: Path, n: int, seed: int) -> None:
        if path.exists():
            return
        meta = [("design", "lhs"), ("n", str(n)), ("seed", str(seed))]
        if noise_chains is not None:
            meta.append(("noise_chains", str(noise_chains)))
        frame = simulate_many(lhs_design(n, seed=seed), noise_chains=noise_chains, seed=seed, progress=False)
        write_dataset(frame, path, metadata=meta)

    test_file = data_dir / f"test_lhs{test_size}{tag}.parquet"
    make(test_file, test_size, 1_000_003)
    records = []
    for n in sizes:
        train_file = data_dir / f"train_lhs{n}{tag}.parquet"
        make(train_file, n, n)
        for model in models:
            for seed in seeds:
                sub = out / f"n{n}"
                rec = run_one(model, seed, train_file, sub, overrides, test_path=test_file, quick=quick)
                rec["train_rows"] = n
                progress(f"n={n:>5} {model:>10} seed {seed}: global R² {rec['metrics']['global']['r2']:.4f}")
                records.append(rec)
    # cached runs of other models in the same folder stay in the table and the plot (a later call for one
    # model adds it instead of replacing the others)
    done = {(r["model"], r["seed"], r["train_rows"]) for r in records}
    others = []
    for n in sizes:
        for path in sorted((out / f"n{n}" / "records").glob("*_seed*.json")):
            rec = json.loads(path.read_text())
            if rec["model"] in MODELS and (rec["model"], rec["seed"], n) not in done:
                others.append({**rescore(rec, path), "train_rows": n})
    records += others
    models = list(dict.fromkeys([*models, *sorted({r["model"] for r in others})]))
    frame = records_frame(records)
    with atomic_path(out / "records.csv") as tmp:
        frame.to_csv(tmp, index=False)
    _plot_curve(frame, out / "learning_curve.png")
    noise = "" if noise_chains is None else f", KMC-like noise of {noise_chains} chains per MMD in every file"
    changed = "" if not overrides else " — overrides of the last run: " + overrides_text(overrides)
    lines = [
        f"### Learning curve (fixed held-out set of {test_size} LHS recipes{noise}){changed}",
        "",
        "| model | train recipes | seeds | global R² | " + " | ".join(f"R² {t}" for t in TARGETS) + " |",
        "|" + "---|" * (4 + len(TARGETS)),
    ]
    for model in models:
        for n in sizes:
            sub = frame[(frame.model == model) & (frame.train_rows == n)]
            if len(sub):
                lines.append(
                    f"| {model} | {n} | {len(sub)} | {_pm(sub.global_r2, 4)} | "
                    + " | ".join(_pm(sub[f"r2_{t}"], 4) for t in TARGETS)
                    + " |"
                )
    with atomic_path(out / "learning_curve.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n\n![learning curve](learning_curve.png)\n")
    return frame


def _plot_curve(frame: pd.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure

    cols = ["global_r2", *(f"r2_{t}" for t in TARGETS)]
    fig = Figure(figsize=(3.2 * len(cols), 3.2))
    axes = fig.subplots(1, len(cols), sharex=True)
    for ax, col in zip(axes, cols, strict=True):
        for model, sub in frame.groupby("model"):
            g = sub.groupby("train_rows")[col]
            x = np.array(sorted(g.groups))
            ax.errorbar(
                x,
                g.mean().loc[x],
                yerr=g.std(ddof=1).fillna(0).loc[x],
                marker="o",
                ms=3,
                label=model,
                capsize=2,
            )
        ax.set_xscale("log")
        ax.set_title(col.replace("r2_", "R² ").replace("global_r2", "global R²"), fontsize=9)
        ax.set_xlabel("training recipes", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    write_figure(fig, path)
