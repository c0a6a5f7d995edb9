"""The two network bodies as plain ``nn.Module``s: (MMD part, scalar part) in, one output per target out.

They know nothing of scaling, targets or training; :mod:`polyinv.models.network` composes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def dense_stack(
    n_in: int, widths: Sequence[int], activation: str, dropout: float | Sequence[float]
) -> tuple[nn.Sequential, int]:
    """Linear → activation → [dropout] blocks; ``dropout`` is one rate or one per layer."""
    drops = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * len(widths)
    if len(drops) != len(widths):
        raise ValueError(f"model.dropout has {len(drops)} values for {len(widths)} layers")
    layers: list[nn.Module] = []
    for width, p in zip(widths, drops, strict=True):
        layers += [nn.Linear(n_in, int(width)), ACTIVATIONS[activation]()]
        if p and float(p) > 0:
            layers.append(nn.Dropout(float(p)))
        n_in = int(width)
    return nn.Sequential(*layers), n_in


class MLPNet(nn.Module):
    """Dense layers over the flattened MMD part joined with the scalars."""

    def __init__(
        self,
        n_mmd: int,
        n_side: int,
        n_out: int,
        widths: Sequence[int],
        activation: str,
        dropout: float | Sequence[float],
    ) -> None:
        super().__init__()
        self.body, n_last = dense_stack(n_mmd + n_side, widths, activation, dropout)
        self.head = nn.Linear(n_last, n_out)

    def forward(self, mmd: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([mmd.flatten(1), side], dim=1)))


class CNNNet(nn.Module):
    """Conv blocks (conv → activation → max-pool) over the (1, L) MMD; the flattened map keeps where on the
    log M axis a feature sits, is projected linearly onto ``feature_width`` features and joins the scalars
    in a dense head."""

    def __init__(
        self,
        n_mmd: int,
        n_side: int,
        n_out: int,
        channels: Sequence[int],
        kernel_size: int,
        pool: int,
        activation: str,
        head_widths: Sequence[int],
        dropout: float | Sequence[float],
        feature_width: int,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in, length = 1, n_mmd
        for c in channels:
            blocks += [
                nn.Conv1d(c_in, int(c), int(kernel_size), padding=int(kernel_size) // 2),
                ACTIVATIONS[activation](),
            ]
            if pool > 1 and length // pool >= 1:
                blocks.append(nn.MaxPool1d(int(pool)))
                length //= int(pool)
            c_in = int(c)
        self.conv = nn.Sequential(*blocks)
        self.bottleneck = nn.Linear(c_in * length, int(feature_width))
        self.head_body, n_last = dense_stack(int(feature_width) + n_side, head_widths, activation, dropout)
        self.head = nn.Linear(n_last, n_out)

    def forward(self, mmd: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        features = self.bottleneck(self.conv(mmd).flatten(1))
        return self.head(self.head_body(torch.cat([features, side], dim=1)))
