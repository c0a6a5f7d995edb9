"""The one evaluation harness: every model kind's test predictions are scored here, in physical units.

Definitions (DOMAIN.md §3): per target MAE, relative MAE % = 100·MAE / nominal range width, R²;
global MSE over all four targets together; global R² = unweighted mean of the per-target R².
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

from polyinv.atomic import atomic_path
from polyinv.schema import NOMINAL_RANGES, TARGETS


def evaluate(y_true, y_pred, targets: Sequence[str] = TARGETS) -> dict:
    """Score predictions (rows x targets, physical units); returns the ``metrics.json`` structure."""
    true = torch.as_tensor(np.ascontiguousarray(y_true, dtype=np.float64))
    pred = torch.as_tensor(np.ascontiguousarray(y_pred, dtype=np.float64))
    if true.shape != pred.shape or true.ndim != 2 or true.shape[1] != len(targets):
        raise ValueError(f"shapes differ or do not match {len(targets)} targets: {tuple(true.shape)} vs {tuple(pred.shape)}")
    per_target = {}
    for j, name in enumerate(targets):
        mae = float(mean_absolute_error(pred[:, j], true[:, j]))
        low, high = NOMINAL_RANGES[name]
        per_target[name] = {
            "mae": mae,
            "rel_mae_pct": 100.0 * mae / (high - low),
            "r2": float(r2_score(pred[:, j], true[:, j])),
        }
    return {
        "targets": per_target,
        "global": {
            "mse": float(mean_squared_error(pred.reshape(-1), true.reshape(-1))),
            "r2": float(np.mean([m["r2"] for m in per_target.values()])),
        },
    }


def format_table(metrics: Mapping, title: str | None = None) -> str:
    """The metric table users read: one row per target, then the global figures."""
    lines = [title] if title else []
    lines.append(f"{'target':<9} {'MAE':>12} {'rel. MAE %':>11} {'R²':>8}")
    for name, m in metrics["targets"].items():
        lines.append(f"{name:<9} {m['mae']:>12.5g} {m['rel_mae_pct']:>11.2f} {m['r2']:>8.4f}")
    g = metrics["global"]
    lines.append(f"{'global':<9} {'MSE ' + format(g['mse'], '.6g'):>24} {g['r2']:>8.4f}")
    return "\n".join(lines)


def write_json(data: Mapping, path: str | Path) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def parity_figure(y_true, y_pred, targets: Sequence[str] = TARGETS, title: str | None = None):
    """Predicted vs. true per target (matplotlib Figure), R² in each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from polyinv.schema import UNITS

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3.3))
    for j, (ax, name) in enumerate(zip(np.atleast_1d(axes), targets, strict=True)):
        t, p = y_true[:, j], y_pred[:, j]
        low, high = min(t.min(), p.min()), max(t.max(), p.max())
        ax.plot([low, high], [low, high], "r--", lw=1)
        ax.scatter(t, p, s=8, alpha=0.7)
        r2 = float(r2_score(torch.as_tensor(p), torch.as_tensor(t))) if len(t) > 1 else float("nan")
        ax.set_title(f"{name}  R²={r2:.3f}", fontsize=9)
        ax.set_xlabel(f"true / {UNITS.get(name, '')}", fontsize=8)
        ax.set_ylabel(f"predicted / {UNITS.get(name, '')}", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
