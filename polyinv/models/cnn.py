"""1D CNN over the MMD signal; the flattened feature map (optionally projected onto ``feature_width`` learned
features) is joined with the scalar side inputs (and optionally the MMD's PC scores) in an MLP head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polyinv.errors import PolyinvError
from polyinv.models.base import InverseRegressor, activation
from polyinv.models.mlp import dense_stack


class CNNNet(nn.Module):
    def __init__(
        self, n_mmd, n_side, n_out, channels, kernel_size, pool, act, head_widths, dropout, norm, batch_norm,
        feature_width=0,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in, length = 1, n_mmd
        for c in channels:
            blocks.append(nn.Conv1d(c_in, int(c), int(kernel_size), padding=int(kernel_size) // 2))
            if batch_norm:
                blocks.append(nn.BatchNorm1d(int(c)))
            blocks.append(activation(act))
            if pool > 1 and length // pool >= 1:
                blocks.append(nn.MaxPool1d(int(pool)))
                length //= int(pool)
            c_in = int(c)
        self.conv = nn.Sequential(*blocks)
        # flatten keeps where in the molar-mass grid a feature sits, which matters for the recipe; a
        # feature_width > 0 projects the flattened map linearly onto that many features (a learned
        # counterpart of the MLP's principal-component scores) before the side inputs are joined
        n_features, feature_width = c_in * length, int(feature_width)
        self.bottleneck = nn.Linear(n_features, feature_width) if feature_width else nn.Identity()
        n_features = feature_width or n_features
        self.head_body, n_last = dense_stack(n_features + n_side, head_widths, act, dropout, norm)
        self.head = nn.Linear(n_last, n_out)

    def forward(self, mmd: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        features = self.bottleneck(self.conv(mmd).flatten(1))
        return self.head(self.head_body(torch.cat([features, side], dim=1)))


class CNN1D(InverseRegressor):
    """Conv blocks (conv → [batch norm] → activation → max-pool) over the (1, 100) MMD, flattened, then
    [a linear map onto ``feature_width`` features] joined with the side inputs [+ ``mmd_pcs`` scores] in an MLP head."""

    kind = "cnn"

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        kernel_size: int = 5,
        pool: int = 2,
        activation: str = "relu",
        head_widths: Sequence[int] = (128, 64),
        dropout: float | Sequence[float] = 0.0,
        norm: str = "none",
        batch_norm: bool = True,
        feature_width: int = 0,
        **base,
    ) -> None:
        if int(feature_width) < 0:
            raise PolyinvError(f"model.feature_width must be ≥ 0 (0: no projection), got {feature_width}")
        super().__init__(**base)
        # the convolutions always see the whole scaled grid; mmd_pcs > 0 joins the MMD's first principal
        # component scores (standardised) to the scalar side inputs of the head
        self.network = self.member_networks(
            lambda: CNNNet(
                self.n_mmd, self.n_side + self.mmd_pcs, self.n_outputs, list(channels), kernel_size, pool, activation,
                list(head_widths), dropout, norm, batch_norm, feature_width,
            )
        )

    @property
    def encoded_widths(self) -> tuple[int, int]:
        return self.n_mmd, self.n_side + self.mmd_pcs

    def encode_inputs(self, mmd: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid, scalars = self.mmd_scaler(mmd), self.side_scaler(side)
        if self.mmd_pcs:
            scalars = torch.cat([scalars, self.pc_scores(mmd).to(scalars.dtype)], dim=1)
        return grid, scalars
