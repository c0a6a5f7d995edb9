"""Losses in the networks' scaled target space."""

from __future__ import annotations

import torch
from torch import nn

from polyinv.schema import before_t_max


class CensoredMSE(nn.Module):
    """Mean squared error with one target right-censored at a bound (as chemprop's bounded MSE).

    A run that went the full ``t_max`` only says "its time to the conversion limit is at least t_max":
    for such rows the censored column is pulled up to the bound when below it and left alone above it,
    so the network need not fit the kink at t_max (predictions are capped there again).
    ``bound`` and the censored targets are physical; the loss compares scaled values.
    """

    def __init__(self, column: int) -> None:
        super().__init__()
        self.column = int(column)
        self.mse = nn.MSELoss()

    def forward(
        self, out: torch.Tensor, scaled: torch.Tensor, physical: torch.Tensor, bound: torch.Tensor
    ) -> torch.Tensor:
        if self.column >= 0 and bool(torch.isfinite(bound)):
            full = ~before_t_max(physical[:, self.column].double(), bound)
            if bool(full.any()):
                t = self.column
                scaled = scaled.clone()
                scaled[full, t] = torch.maximum(scaled[full, t], out[full, t].detach().to(scaled.dtype))
        return self.mse(out, scaled)
