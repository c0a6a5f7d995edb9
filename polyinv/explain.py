"""Explanations: permutation importance through the evaluation harness, MMD grouped into grid regions.

Importance of a group of input columns for a target = drop of that target's R² (``metrics.evaluate``,
physical units) when the group's columns are shuffled together across rows (one permutation per
repeat, so a region of the MMD keeps its shape within a row), averaged over ``n_repeats`` seeded
repeats. Groups: each scalar side input alone, and the MMD in blocks of ``block`` grid points
(MMD1-10, MMD11-20, …), so per target one sees which region of the log M grid carries the answer.
Random forests also report their impurity importances, summed over the same groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.inference import predict_frame
from polyinv.metrics import evaluate
from polyinv.models.base import InverseModel
from polyinv.plots import importance_figure, write_figure
from polyinv.schema import system_of


def column_groups(model: InverseModel, block: int = 10) -> dict[str, list[str]]:
    """Side inputs one by one, then the MMD in consecutive blocks of ``block`` grid points."""
    if block < 1:
        raise PolyinvError(f"--block must be a positive number of grid points, got {block}")
    groups = {name: [name] for name in model.side_names}
    names = list(model.mmd_names)
    for start in range(0, len(names), block):
        part = names[start : start + block]
        groups[f"{part[0]}-{part[-1].removeprefix('MMD')}" if len(part) > 1 else part[0]] = part
    return groups


def permutation_importance(
    model: InverseModel,
    frame: pd.DataFrame,
    groups: Mapping[str, Sequence[str]] | None = None,
    n_repeats: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Long table: group, target, r2_drop (mean), r2_drop_std, baseline_r2; rows for every group × target."""
    if n_repeats < 1:
        raise PolyinvError(f"--n-repeats must be at least 1, got {n_repeats}")
    targets = list(model.target_names)
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise PolyinvError(
            f"permutation importance needs the true recipe columns; the input lacks {', '.join(missing)}"
        )
    if len(frame) < 3:
        raise PolyinvError(f"permutation importance needs at least 3 rows, got {len(frame)}")
    groups = dict(groups or column_groups(model))
    frame = frame.reset_index(drop=True)
    y = frame[targets].to_numpy(np.float64)
    base = evaluate(y, predict_frame(model, frame), targets)["targets"]
    rng = np.random.default_rng(seed)
    rows = []
    for group, columns in groups.items():
        drops = np.empty((n_repeats, len(targets)))
        for r in range(n_repeats):
            shuffled = frame.copy()
            order = rng.permutation(len(frame))
            shuffled[list(columns)] = frame[list(columns)].to_numpy()[order]
            scores = evaluate(y, predict_frame(model, shuffled), targets)["targets"]
            drops[r] = [base[t]["r2"] - scores[t]["r2"] for t in targets]
        for j, t in enumerate(targets):
            rows.append(
                {
                    "group": group,
                    "target": t,
                    "r2_drop": float(drops[:, j].mean()),
                    "r2_drop_std": float(drops[:, j].std(ddof=1)) if n_repeats > 1 else 0.0,
                    "baseline_r2": base[t]["r2"],
                }
            )
    return pd.DataFrame(rows)


def impurity_importance(
    model: InverseModel, groups: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame | None:
    """A random forest's impurity importances summed per group (None for other model kinds)."""
    if not model.has_importances:
        return None
    values = model.feature_importances()
    groups = dict(groups or column_groups(model))
    return pd.DataFrame(
        {
            "group": list(groups),
            "impurity_importance": [sum(values[c] for c in cols) for cols in groups.values()],
        }
    )


#: The files ``explain`` may write into its folder.
OUTPUTS = ("importance.csv", "importance.png", "impurity.csv")


def explain(
    model: InverseModel,
    frame: pd.DataFrame,
    out_dir: str | Path,
    n_repeats: int = 5,
    seed: int = 0,
    block: int = 10,
    overwrite: bool = True,
) -> dict[str, Path]:
    """Write ``importance.csv``, ``importance.png`` (and ``impurity.csv`` for forests) atomically; ``overwrite``
    False: none replaces a file that appeared meanwhile."""
    out_dir = Path(out_dir)
    groups = column_groups(model, block)
    table = permutation_importance(model, frame, groups, n_repeats, seed)
    impurity = impurity_importance(model, groups)
    name = system_of(model.system).column  # the model's files' own column names
    table[["group", "target"]] = table[["group", "target"]].map(name)
    if impurity is not None:
        impurity["group"] = impurity["group"].map(name)
    written = {"table": out_dir / "importance.csv", "plot": out_dir / "importance.png"}
    with atomic_path(written["table"], overwrite) as tmp:
        table.to_csv(tmp, index=False)
    stale = out_dir / "impurity.csv"
    if (
        impurity is None and overwrite and stale.is_file()
    ):  # an earlier forest's file would describe another model
        stale.unlink()
    if impurity is not None:
        written["impurity"] = out_dir / "impurity.csv"
        with atomic_path(written["impurity"], overwrite) as tmp:
            impurity.to_csv(tmp, index=False)
    write_figure(
        importance_figure(table, impurity, title=f"{model.kind}: {len(frame)} rows, {n_repeats} repeats"),
        written["plot"],
        overwrite=overwrite,
    )
    return written
