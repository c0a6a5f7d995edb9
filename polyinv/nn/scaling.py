"""Column transforms and standardisation as an ``nn.Module`` whose statistics travel in the checkpoint.

A :class:`ColumnScaler` maps physical values to model space: an optional per-column transform
(``log`` = natural log) followed by standardisation with statistics fitted on the training split
only. ``inverse`` maps back to physical units. The statistics are registered buffers, so they are
saved in every checkpoint's state_dict and restored by ``load_from_checkpoint``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from polyinv.errors import PolyinvError

TRANSFORMS = ("none", "log")
MIN_STD = 1e-8  # clamp for constant columns (MMD tails) so standardising never divides by zero


class ColumnScaler(nn.Module):
    """Per-column transform + standardisation over the last dimension of a tensor.

    ``pooled=True`` uses one mean/std for all columns (keeps the shape of a signal such as the
    MMD intact, as a CNN wants); otherwise each column gets its own statistics.
    """

    def __init__(
        self, columns: Sequence[str], transforms: Mapping[str, str] | None = None, pooled: bool = False
    ) -> None:
        super().__init__()
        self.columns = list(columns)
        self.pooled = pooled
        transforms = dict(transforms or {})
        for column, kind in transforms.items():
            if kind not in TRANSFORMS:
                raise PolyinvError(
                    f"transform {kind!r} for column {column!r} unknown; choose one of {TRANSFORMS}"
                )
        log_mask = torch.tensor([transforms.get(c, "none") == "log" for c in self.columns], dtype=torch.bool)
        n = len(self.columns)
        self.register_buffer("log_mask", log_mask)
        self.register_buffer("mean", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("std", torch.ones(n, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.log_mask.any()):
            return x
        # the masked-out branch must stay finite too, or its gradient turns into NaN (inf · 0)
        safe = torch.where(self.log_mask, torch.clamp(x, min=torch.finfo(x.dtype).tiny), torch.ones_like(x))
        return torch.where(self.log_mask, torch.log(safe), x)

    def fit(self, values: np.ndarray | torch.Tensor) -> ColumnScaler:
        """Fit mean and spread on ``values`` (rows x columns, physical units); returns self."""
        x = torch.as_tensor(
            np.array(values, dtype=np.float64)
        )  # a copy: pandas may hand out read-only arrays
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise ValueError(
                f"expected an array with {len(self.columns)} columns, got shape {tuple(x.shape)}"
            )
        if len(self.columns) == 0:
            self.fitted.fill_(True)
            return self
        bad = self.log_mask & (x <= 0).any(dim=0)
        if bool(bad.any()):
            column = self.columns[int(torch.nonzero(bad)[0])]
            raise PolyinvError(f"column {column!r} has values <= 0 and cannot take the 'log' transform")
        z = self._transform(x)
        if self.pooled:
            mean = z.mean().expand(len(self.columns))
            std = z.std(unbiased=False).expand(len(self.columns))
        else:
            mean, std = z.mean(dim=0), z.std(dim=0, unbiased=False)
        self.mean.copy_(mean)
        self.std.copy_(torch.clamp(std, min=MIN_STD))
        self.fitted.fill_(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical → model space."""
        z = self._transform(x)
        return ((z - self.mean.to(z.dtype)) / self.std.to(z.dtype)).to(x.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Model space → physical units."""
        x = z * self.std.to(z.dtype) + self.mean.to(z.dtype)
        if bool(self.log_mask.any()):
            x = torch.where(self.log_mask, torch.exp(torch.where(self.log_mask, x, torch.zeros_like(x))), x)
        return x

    def extra_repr(self) -> str:
        logs = [c for c, m in zip(self.columns, self.log_mask.tolist(), strict=True) if m]
        return f"columns={len(self.columns)}, log={logs}, pooled={self.pooled}"
