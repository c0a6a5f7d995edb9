"""The one evaluation harness: every model kind's test predictions are scored here, in physical units.

Definitions (docs/data-format.md, "Metrics"): per target MAE, relative MAE % = 100·MAE / nominal range width, R²;
global MSE over all four targets together; global R² = unweighted mean of the per-target R².
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional import mean_absolute_error, mean_squared_error

from polyinv.atomic import atomic_path
from polyinv.schema import SYSTEM, TARGETS, System


def r2_score(y_true, y_pred) -> float:
    """Exact R² = 1 − RSS/TSS (float64), as scikit-learn's ``r2_score`` for one target.

    torchmetrics' ``r2_score`` is not used: it returns 1.0 whenever RSS < 1e-4 in absolute terms, which
    for cAIBN_0 (values about 0.01 mol/L) turns an R² of 0.97 into 1.0. A constant target gives 1.0 for
    a perfect prediction and 0.0 otherwise (scikit-learn's convention).
    """
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(t) < 2:
        return float("nan")
    rss = float(np.sum((t - p) ** 2))
    tss = float(np.sum((t - t.mean()) ** 2))
    if tss == 0.0:
        return 1.0 if rss == 0.0 else 0.0
    return 1.0 - rss / tss


class ExactR2(Metric):
    """Streaming R² of one target with the exact definition of :func:`r2_score` (validation metric)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("sum_obs", "sum_sq_obs", "rss", "n"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        p, t = preds.detach().double().reshape(-1), target.detach().double().reshape(-1)
        self.sum_obs += t.sum()
        self.sum_sq_obs += (t * t).sum()
        self.rss += ((t - p) ** 2).sum()
        self.n += t.numel()

    def compute(self) -> torch.Tensor:
        if self.n < 2:
            return torch.tensor(float("nan"), dtype=torch.float64)
        tss = self.sum_sq_obs - self.sum_obs * self.sum_obs / self.n
        if tss <= 0:
            return torch.tensor(1.0 if self.rss == 0 else 0.0, dtype=torch.float64)
        return 1.0 - self.rss / tss


def evaluate(y_true, y_pred, targets: Sequence[str] = TARGETS, system: System = SYSTEM) -> dict:
    """Score predictions (rows x targets, physical units); returns the ``metrics.json`` structure, keyed by
    ``system``'s names of the (internal) ``targets``, relative errors on that system's nominal ranges."""
    true = torch.as_tensor(np.ascontiguousarray(y_true, dtype=np.float64))
    pred = torch.as_tensor(np.ascontiguousarray(y_pred, dtype=np.float64))
    if true.shape != pred.shape or true.ndim != 2 or true.shape[1] != len(targets):
        raise ValueError(
            f"shapes differ or do not match {len(targets)} targets: {tuple(true.shape)} vs {tuple(pred.shape)}"
        )
    per_target = {}
    for j, name in enumerate(targets):
        mae = float(mean_absolute_error(pred[:, j], true[:, j]))
        low, high = system.ranges[system.column(name)]
        per_target[system.column(name)] = {
            "mae": mae,
            "rel_mae_pct": 100.0 * mae / (high - low),
            "r2": r2_score(true[:, j].numpy(), pred[:, j].numpy()),
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


def _finite(value):
    """NaN and infinities as null, so that the file is valid JSON (JSON has no NaN)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(data: Mapping, path: str | Path) -> None:
    """Write JSON atomically; non-finite numbers become null."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Hellinger distance of non-negative vectors after normalising each row to unit sum."""
    p = np.clip(np.atleast_2d(np.asarray(p, dtype=np.float64)), 0.0, None)
    q = np.clip(np.atleast_2d(np.asarray(q, dtype=np.float64)), 0.0, None)
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-300, None)
    q = q / np.clip(q.sum(axis=1, keepdims=True), 1e-300, None)
    bc = np.sqrt(p * q).sum(axis=1)
    return np.sqrt(np.clip(1.0 - bc, 0.0, 1.0))
