"""Multilayer perceptron over the flattened MMD joined with the scalar side inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polyinv.errors import PolyinvError
from polyinv.models.base import InverseRegressor, activation

NORMS = ("none", "batch", "layer")


def dense_stack(n_in: int, widths: Sequence[int], act: str, dropout, norm: str) -> tuple[nn.Sequential, int]:
    """Linear → [norm] → activation → [dropout] blocks; ``dropout`` is one value or one per layer."""
    if norm not in NORMS:
        raise PolyinvError(f"model.norm {norm!r} unknown; choose one of {NORMS}")
    drops = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * len(widths)
    if len(drops) != len(widths):
        raise PolyinvError(f"model.dropout has {len(drops)} values for {len(widths)} layers")
    layers: list[nn.Module] = []
    for width, p in zip(widths, drops, strict=True):
        layers.append(nn.Linear(n_in, int(width)))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(int(width)))
        elif norm == "layer":
            layers.append(nn.LayerNorm(int(width)))
        layers.append(activation(act))
        if p and float(p) > 0:
            layers.append(nn.Dropout(float(p)))
        n_in = int(width)
    return nn.Sequential(*layers), n_in


class MLPNet(nn.Module):
    def __init__(self, n_mmd: int, n_side: int, n_out: int, widths, act, dropout, norm) -> None:
        super().__init__()
        self.body, n_last = dense_stack(n_mmd + n_side, widths, act, dropout, norm)
        self.head = nn.Linear(n_last, n_out)

    def forward(self, mmd: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([mmd.flatten(1), side], dim=1)))


class MLP(InverseRegressor):
    """MLP regressor; the study's network is widths (256, 128, 64), dropout (0.2, 0.1, 0)."""

    kind = "mlp"

    def __init__(
        self,
        widths: Sequence[int] = (256, 128, 64),
        activation: str = "relu",
        dropout: float | Sequence[float] = 0.0,
        norm: str = "none",
        **base,
    ) -> None:
        super().__init__(**base)
        self.network = self.member_networks(
            lambda: MLPNet(self.n_mmd_features, self.n_side, self.n_outputs, list(widths), activation, dropout, norm)
        )
