"""The 1D-CNN (``model.kind: cnn``): conv blocks over the MMD grid, the scalars joined in its dense head."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from polyinv.errors import PolyinvError
from polyinv.models.base import register
from polyinv.models.network import Activation, InverseRegressor
from polyinv.nn import CNNNet


@register
class CNN(InverseRegressor):
    """Conv blocks over the scaled MMD grid; ``mmd_pcs`` PC scores join the scalars of the dense head."""

    kind = "cnn"
    #: measured: 20 full-batch epochs on 230 rows of the shipped grid took 23.7 s against the MLP's 8.6 s
    work_per_row_epoch = 2.7

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 32),
        kernel_size: int = 5,
        pool: int = 2,
        activation: Activation = "silu",
        head_widths: Sequence[int] = (256, 256, 256),
        dropout: float | Sequence[float] = 0.0,
        feature_width: int = 8,
        **base,
    ) -> None:
        """
        Args:
            channels: output channels of each conv block (conv, activation, max-pool)
            kernel_size: width of the convolutions, in MMD points
            pool: max-pool factor after each conv block
            activation: activation of the conv blocks and the head
            head_widths: units of each hidden layer of the dense head
            dropout: dropout rate of the head, one or one per layer (not with lbfgs)
            feature_width: learned features the flattened conv map is projected onto
        """
        if int(feature_width) < 1:
            raise PolyinvError(f"model.feature_width must be at least 1, got {feature_width}")
        super().__init__(**base)
        self.network = CNNNet(
            len(self.mmd_names),
            self.n_side + self.mmd_pcs,
            self.n_targets,
            list(channels),
            kernel_size,
            pool,
            activation,
            list(head_widths),
            dropout,
            feature_width,
        )

    @property
    def encoded_widths(self) -> tuple[int, int]:
        return len(self.mmd_names), self.n_side + self.mmd_pcs

    def encode_inputs(self, mmd: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scalars = self.side_scaler(side)
        if self.mmd_pcs:
            scalars = torch.cat([scalars, self.pc_scores(mmd).to(scalars.dtype)], dim=1)
        return self.mmd_scaler(mmd), scalars
