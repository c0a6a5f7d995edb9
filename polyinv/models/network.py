"""The Lightning regressor shared by the networks: scaling, loss, metrics, logging and optimiser.

:class:`MLP` and :class:`CNN` only build their body (a plain ``nn.Module`` from :mod:`polyinv.nn.networks`).
The model holds the column schema as primitive hyper-parameters and the training split's scaling
statistics as buffers, so a checkpoint alone rebuilds a model that takes physical inputs and returns
physical recipes. ``forward`` returns *scaled* targets (the loss lives there); ``predict_step`` and
:meth:`predict_arrays` return physical units.

``time_model: censored`` (the run protocol: stop at t_max or at the conversion limit): ``time`` is fitted
with :class:`~polyinv.nn.losses.CensoredMSE`, capped at t_max, and set to t_max where the conversion
implied by the measured ``cBA_time`` and the predicted ``cBA_0`` lies below that of every stopped-early
training run by more than a ``STOP_RULE_TOLERANCE`` error of cBA_0 explains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import lightning as L
import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn
from torchmetrics import MeanAbsoluteError

from polyinv.errors import PolyinvError
from polyinv.metrics import ExactR2
from polyinv.models.base import InverseModel
from polyinv.nn import ACTIVATIONS, CensoredMSE, ColumnScaler
from polyinv.schema import (
    MMD_COLUMNS,
    MONOMER_0,
    MONOMER_LEFT,
    SIDE_INPUTS,
    TARGETS,
    TIME,
    conversion,
    stopped_early,
)

#: L-BFGS: iterations per training step (strong-Wolfe line search) and curvature history
LBFGS_MAX_ITER = 20
LBFGS_HISTORY = 50
#: the stop gate tolerates this relative error of the predicted cBA_0 (conversion below 1 − (1 − X)·1.1)
STOP_RULE_TOLERANCE = 0.1
#: seconds per MLP row-epoch (full-batch L-BFGS, float64) on the reference machine (the 2-core sandbox):
#: only to print what a counted ``model.budget`` of an auto run means in minutes (docs/benchmark.md)
MLP_SECONDS_PER_ROW_EPOCH = 1.3e-3
Optimizer = Literal["adam", "lbfgs"]
TimeModel = Literal["plain", "censored"]
Activation = Literal["relu", "silu", "tanh", "gelu"]


class InverseRegressor(InverseModel, L.LightningModule):
    """Multi-output regressor from (MMD, side inputs) to the recipe; base of :class:`MLP` and :class:`CNN`."""

    kind = "base"
    family = "network"
    #: cost of one training row for one epoch relative to the MLP's (an auto run's counted work)
    work_per_row_epoch: float = 1.0

    def __init__(
        self,
        targets: Sequence[str] = TARGETS,
        side_inputs: Sequence[str] = SIDE_INPUTS,
        mmd_columns: Sequence[str] = MMD_COLUMNS,
        transforms: Mapping[str, str] | None = None,
        mmd_scaling: str = "column",
        lr: float = 1e-3,
        optimizer: Optimizer = "adam",
        time_model: TimeModel = "plain",
        mmd_pcs: int = 0,
        clip_outputs: bool = False,
        clip_inputs: bool = False,
    ) -> None:
        """
        Args:
            lr: learning rate (Adam) or step length (L-BFGS, usually 1)
            optimizer: adam (mini-batches) or lbfgs (full-batch quasi-Newton steps; data.batch_size 0)
            time_model: censored (the run protocol's stop at t_max) or plain (time as an ordinary target)
            mmd_pcs: principal components of the MMD the network sees (0: the grid values; the CNN adds them to its head)
            clip_outputs: hold predictions inside the training rows' range of each target
            clip_inputs: hold what the network sees inside the training rows' range
        """
        super().__init__()
        self.save_hyperparameters()  # the subclass's arguments too
        if optimizer not in ("adam", "lbfgs"):
            raise PolyinvError(f"model.optimizer {optimizer!r} unknown; choose adam or lbfgs")
        if time_model not in ("plain", "censored"):
            raise PolyinvError(f"model.time_model {time_model!r} unknown; choose plain or censored")
        dropout = self.hparams.get("dropout", 0.0)
        if optimizer == "lbfgs" and any(float(d) > 0 for d in np.atleast_1d(dropout or 0.0)):
            raise PolyinvError(
                f"model.dropout {dropout}: lbfgs needs a fixed objective within a step "
                "(dropout draws new masks at every line-search trial); set it to 0"
            )
        activation = self.hparams.get("activation", "relu")
        if activation not in ACTIVATIONS:
            raise PolyinvError(
                f"model.activation {activation!r} unknown; choose one of {', '.join(ACTIVATIONS)}"
            )
        self.target_names = list(targets)
        self.side_names = list(side_inputs)
        self.mmd_names = list(mmd_columns)
        self.mmd_scaler = ColumnScaler(self.mmd_names, transforms, pooled=mmd_scaling == "pooled")
        self.side_scaler = ColumnScaler(self.side_names, transforms)
        self.target_scaler = ColumnScaler(self.target_names, transforms)
        self.time_index = self.target_names.index(TIME) if TIME in self.target_names else -1
        self.censored = time_model == "censored" and self.time_index >= 0
        self.loss_fn = CensoredMSE(self.time_index if self.censored else -1)
        self.mmd_pcs = int(mmd_pcs)
        if not 0 <= self.mmd_pcs <= len(self.mmd_names):
            raise PolyinvError(f"model.mmd_pcs must lie in 0..{len(self.mmd_names)}, got {mmd_pcs}")
        self.register_buffer("pca_mean", torch.zeros(len(self.mmd_names), dtype=torch.float64))
        self.register_buffer(
            "pca_components", torch.zeros(self.mmd_pcs, len(self.mmd_names), dtype=torch.float64)
        )
        self.register_buffer("pca_std", torch.ones(self.mmd_pcs, dtype=torch.float64))
        self.register_buffer("t_max", torch.tensor(float("nan"), dtype=torch.float64))
        # the stop gate needs the measured cBA_time and a predicted cBA_0; without them only the cap applies
        self.stop_gate = self.censored and MONOMER_LEFT in self.side_names and MONOMER_0 in self.target_names
        self.register_buffer("stop_conversion", torch.tensor(float("-inf"), dtype=torch.float64))
        self.clip_outputs = bool(clip_outputs)
        self.register_buffer(
            "target_low", torch.full((len(self.target_names),), float("-inf"), dtype=torch.float64)
        )
        self.register_buffer(
            "target_high", torch.full((len(self.target_names),), float("inf"), dtype=torch.float64)
        )
        # clip_inputs: what the network sees is held inside the training rows' range, so a recipe beyond
        # the grid's corners is not extrapolated along directions no training row spans
        self.clip_inputs = bool(clip_inputs)
        mmd_width, side_width = self.encoded_widths
        self.register_buffer("input_low_mmd", torch.full((1, mmd_width), float("-inf")))
        self.register_buffer("input_high_mmd", torch.full((1, mmd_width), float("inf")))
        self.register_buffer("input_low_side", torch.full((side_width,), float("-inf")))
        self.register_buffer("input_high_side", torch.full((side_width,), float("inf")))
        self.val_r2 = nn.ModuleDict({t: ExactR2() for t in self.target_names})
        self.val_mae = nn.ModuleDict({t: MeanAbsoluteError() for t in self.target_names})
        self._loss_logged = False  # lbfgs: train/loss logged once per step
        self.domain: dict | None = (
            None  # applicability domain (polyinv.trust.domain), saved in the checkpoint
        )

    # ------------------------------------------------------------------ shapes
    @property
    def encoded_widths(self) -> tuple[int, int]:
        """Widths of :meth:`encode_inputs`' two outputs (MMD part, scalar part)."""
        return self.mmd_pcs or len(self.mmd_names), self.n_side

    # ------------------------------------------------------------------ statistics of the training rows
    def fit_statistics(self, scalers: Mapping[str, ColumnScaler], train) -> None:
        """Copy the data module's scalers and fit PCA, stop rule and bounds on the training frame."""
        for name, own in (
            ("mmd", self.mmd_scaler),
            ("side", self.side_scaler),
            ("targets", self.target_scaler),
        ):
            if list(scalers[name].columns) != list(own.columns):
                raise PolyinvError(f"scaler {name!r} columns do not match the model's")
            own.load_state_dict(scalers[name].state_dict())
        mmd = train[self.mmd_names].to_numpy(np.float64)
        side = train[self.side_names].to_numpy(np.float64)
        targets = train[self.target_names].to_numpy(np.float64)
        if self.mmd_pcs:
            pca = PCA(self.mmd_pcs, svd_solver="full").fit(mmd)
            self.pca_mean.copy_(torch.as_tensor(pca.mean_))
            self.pca_components.copy_(torch.as_tensor(pca.components_))
            self.pca_std.copy_(torch.as_tensor(np.maximum(pca.transform(mmd).std(axis=0), 1e-12)))
        if self.time_index >= 0:
            t_max, early = stopped_early(targets[:, self.time_index])
            self.t_max.fill_(t_max)
            if self.stop_gate and early.any():
                converted = conversion(
                    side[:, self.side_names.index(MONOMER_LEFT)],
                    targets[:, self.target_names.index(MONOMER_0)],
                )
                self.stop_conversion.fill_(
                    1.0 - (1.0 - float(converted[early].min())) * (1.0 + STOP_RULE_TOLERANCE)
                )
            elif self.stop_gate:  # no stopped-early training run: every prediction runs to t_max
                self.stop_conversion.fill_(float("inf"))
        self.target_low.copy_(torch.as_tensor(targets.min(axis=0)))
        self.target_high.copy_(torch.as_tensor(targets.max(axis=0)))
        if self.clip_inputs:
            with torch.no_grad():
                grid, scalars = self.encode_inputs(*self.input_tensors(mmd, side))
            self.input_low_mmd.copy_(grid.amin(dim=0))
            self.input_high_mmd.copy_(grid.amax(dim=0))
            self.input_low_side.copy_(scalars.amin(dim=0))
            self.input_high_side.copy_(scalars.amax(dim=0))

    # ------------------------------------------------------------------ encoding
    def pc_scores(self, mmd: torch.Tensor) -> torch.Tensor:
        """Physical MMD (B, 1, L) → standardised scores on the first ``mmd_pcs`` principal components (B, k)."""
        flat = mmd.flatten(1).double() - self.pca_mean
        return ((flat @ self.pca_components.T) / self.pca_std).to(mmd.dtype)

    def encode_inputs(self, mmd: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical (MMD, side inputs) → the network's two inputs: scaled grid or PC scores, scaled scalars."""
        grid = self.pc_scores(mmd).unsqueeze(1) if self.mmd_pcs else self.mmd_scaler(mmd)
        return grid, self.side_scaler(side)

    def network_inputs(self, mmd: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid, scalars = self.encode_inputs(mmd, side)
        if self.clip_inputs:
            grid = torch.clamp(grid, self.input_low_mmd.to(grid.dtype), self.input_high_mmd.to(grid.dtype))
            scalars = torch.clamp(
                scalars, self.input_low_side.to(scalars.dtype), self.input_high_side.to(scalars.dtype)
            )
        return grid, scalars

    def forward(self, mmd: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Physical inputs → scaled targets (B, T), computed in the dtype of the network's weights."""
        dtype = next(self.network.parameters()).dtype
        return self.network(*(t.to(dtype) for t in self.network_inputs(mmd, side)))

    def to_physical(self, out: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Scaled outputs → physical recipe (float64): clipped to the training range, time under the stop rule."""
        physical = self.target_scaler.inverse(out.double())
        if self.clip_outputs:
            physical = torch.maximum(torch.minimum(physical, self.target_high), self.target_low)
        if not self.censored:
            return physical
        physical = physical.clone()
        t = torch.minimum(physical[:, self.time_index], self.t_max)
        if self.stop_gate:
            cba0 = physical[:, self.target_names.index(MONOMER_0)]
            cba_time = side[:, self.side_names.index(MONOMER_LEFT)].to(physical.dtype)
            conversion = 1.0 - cba_time / cba0.clamp_min(1e-12)
            t = torch.where(conversion < self.stop_conversion, self.t_max, t)
        physical[:, self.time_index] = t
        return physical

    def compute_loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(out, self.target_scaler(targets), targets, self.t_max)

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch, batch_idx):
        mmd, side, targets = batch
        loss = self.compute_loss(self(mmd, side), targets)
        lbfgs = self.hparams.optimizer == "lbfgs"
        if lbfgs and torch.distributed.is_available() and torch.distributed.is_initialized():
            # the line search compares loss values: every process must see the same one (the mean of the
            # processes' equal shards), while the gradient stays local (DDP averages it)
            loss = loss - loss.detach() + self.all_gather(loss.detach()).mean()
        # L-BFGS evaluates the loss ~20 times per step: log the first, the loss of the weights the model had
        if not lbfgs or not self._loss_logged:
            self.log(
                "train/loss",
                loss,
                on_step=False,
                on_epoch=True,
                prog_bar=True,
                batch_size=len(targets),
                sync_dist=True,
            )
            self._loss_logged = True
        return loss

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._loss_logged = False

    def on_train_epoch_end(self) -> None:
        """Per-target R² and MAE on the training rows (physical units, eval mode), for TensorBoard only:
        nothing monitors them, so they do not steer training."""
        loss = self.trainer.callback_metrics.get("train/loss")
        if loss is not None and not bool(torch.isfinite(loss)):
            raise PolyinvError(
                f"the training loss became {float(loss)} at epoch {self.current_epoch}: the run stops "
                "(check the data for extreme values, or lower model.lr)"
            )
        tensors = getattr(self.trainer.datamodule, "train_tensors", None) if self.trainer else None
        if tensors is None:
            return
        mmd, side, targets = (t.to(self.device) for t in tensors)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            physical = self.to_physical(self(mmd, side), side).float()
        self.train(was_training)
        self._log_target_metrics("train", physical, targets)

    def _log_target_metrics(self, stage: str, physical: torch.Tensor, targets: torch.Tensor) -> None:
        p, t = physical.double(), targets.double()
        rss = ((t - p) ** 2).sum(dim=0)
        tss = ((t - t.mean(dim=0)) ** 2).sum(dim=0).clamp_min(1e-300)
        r2s = []
        for j, name in enumerate(self.target_names):
            r2s.append(1.0 - rss[j] / tss[j])
            self.log(f"{stage}/r2/{name}", r2s[-1], sync_dist=True)
            self.log(f"{stage}/mae/{name}", (physical[:, j] - targets[:, j]).abs().mean(), sync_dist=True)
        self.log(f"{stage}/r2_global", torch.stack(r2s).mean(), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        mmd, side, targets = batch
        scaled = self(mmd, side)
        self.log(
            "val/loss",
            self.compute_loss(scaled, targets),
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(targets),
            sync_dist=True,
        )
        physical = self.to_physical(scaled, side).float()
        for j, name in enumerate(self.target_names):
            self.val_r2[name].update(physical[:, j], targets[:, j])
            self.val_mae[name].update(physical[:, j], targets[:, j])

    def on_validation_epoch_end(self) -> None:
        r2s = []
        for name in self.target_names:  # compute() syncs across DDP ranks already
            r2s.append(self.val_r2[name].compute())
            self.log(f"val/r2/{name}", r2s[-1], sync_dist=True)
            self.log(f"val/mae/{name}", self.val_mae[name].compute(), sync_dist=True)
            self.val_r2[name].reset()
            self.val_mae[name].reset()
        self.log("val/r2_global", torch.stack(r2s).mean(), prog_bar=True, sync_dist=True)

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0) -> torch.Tensor:
        mmd, side = batch[0], batch[1]
        return self.to_physical(self(mmd, side), side)

    def configure_optimizers(self):
        if (
            self.hparams.optimizer == "lbfgs"
        ):  # full-batch quasi-Newton steps (the data module hands over every row)
            return torch.optim.LBFGS(
                self.parameters(),
                lr=self.hparams.lr,
                max_iter=LBFGS_MAX_ITER,
                history_size=LBFGS_HISTORY,
                line_search_fn="strong_wolfe",
            )
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["polyinv_kind"] = self.kind
        checkpoint["polyinv_files"] = self.files_info()
        if self.domain:
            checkpoint["polyinv_domain"] = self.domain

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.domain = checkpoint.get("polyinv_domain")
        self.read_files_info(checkpoint.get("polyinv_files"))
        weights = [
            v
            for k, v in checkpoint.get("state_dict", {}).items()
            if k.startswith("network.") and v.is_floating_point()
        ]
        if (
            weights and weights[0].dtype == torch.float64
        ):  # trained with trainer.precision 64-true: predict so too
            self.double()

    # ------------------------------------------------------------------ inference on arrays
    def input_tensors(self, mmd: np.ndarray, side: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,L) MMD and (N,k) side arrays → float32 tensors (N,1,L), (N,k) (copies: inputs may be read-only)."""
        m = torch.tensor(np.asarray(mmd), dtype=torch.float32).unsqueeze(1)
        return m, torch.tensor(np.asarray(side), dtype=torch.float32).reshape(len(m), self.n_side)

    @torch.no_grad()
    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """(N,L) MMD and (N,k) side inputs in physical units → (N,T) physical recipe, eval mode."""
        was_training = self.training
        self.eval()
        outs = []
        try:
            for start in range(0, len(mmd), batch_size):
                m, s = (
                    t.to(self.device)
                    for t in self.input_tensors(
                        mmd[start : start + batch_size], side[start : start + batch_size]
                    )
                )
                outs.append(self.to_physical(self(m, s), s).cpu().numpy())
        finally:
            self.train(was_training)
        return np.concatenate(outs) if outs else np.empty((0, self.n_targets))
