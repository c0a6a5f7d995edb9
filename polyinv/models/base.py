"""Shared base LightningModule: scaling, loss, metrics, logging and optimisers for every network.

Subclasses only build their network (``self.network``, through :meth:`member_networks`). The model
holds the column schema as hyper-parameters (primitive lists) and the train-split scaling statistics
as buffers, so a checkpoint alone rebuilds a model that takes physical inputs and returns physical
recipes.

Convention: ``forward`` returns *scaled* targets (training space; the loss lives there);
``predict_step`` and :meth:`predict_physical` return physical units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanAbsoluteError

from polyinv.errors import PolyinvError
from polyinv.metrics import ExactR2
from polyinv.scaling import ColumnScaler
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}
OPTIMIZERS = ("adam", "adamw", "lbfgs")
#: optimizer lbfgs: every training step (one full batch) runs this many L-BFGS iterations (strong-Wolfe line
#: search, this many past steps in the curvature history); model.lr is the step length, 1 as usual
LBFGS_MAX_ITER = 20
LBFGS_HISTORY = 50
SCHEDULERS = ("none", "cosine", "plateau")
LOSSES = {"mse": nn.MSELoss, "huber": nn.SmoothL1Loss}
TIME_MODELS = ("plain", "censored", "stop_rule")
#: stop_rule: the gate tolerates this relative error of the predicted cBA_0 before it calls a run "ran to t_max"
#: (conversion below 1 − (1 − X_stop)·(1 + tolerance), e.g. 0.89 for X_stop = 0.90)
STOP_RULE_TOLERANCE = 0.1
#: clip_inputs: buffers holding the training rows' range of the encoded inputs (MMD part, side part)
INPUT_BOUNDS = ("input_low_mmd", "input_high_mmd", "input_low_side", "input_high_side")


def before_t_max(times, t_max):
    """Mask of the runs that stopped before ``t_max`` (numpy arrays or tensors, physical seconds)."""
    return times < t_max * (1 - 1e-9)


def stopped_early(times: np.ndarray) -> tuple[float, np.ndarray]:
    """(t_max, mask of the runs that stopped before t_max) for physical run times (seconds)."""
    times = np.asarray(times, dtype=np.float64)
    t_max = float(times.max())
    return t_max, before_t_max(times, t_max)


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise PolyinvError(f"model.activation {name!r} unknown; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class Members(nn.Module):
    """Independent copies of one network on the same inputs: outputs stacked to (B, members, outputs)."""

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(networks)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(*inputs) for net in self.nets], dim=1)


class InverseRegressor(L.LightningModule):
    """Multi-output regressor from (MMD, side inputs) to the recipe; base of MLP and CNN1D."""

    kind = "base"

    def __init__(
        self,
        targets: Sequence[str] = TARGETS,
        side_inputs: Sequence[str] = SIDE_INPUTS,
        mmd_columns: Sequence[str] = MMD_COLUMNS,
        transforms: Mapping[str, str] | None = None,
        mmd_scaling: str = "column",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        scheduler: str = "none",
        scheduler_patience: int = 20,
        loss: str = "mse",
        time_model: str = "plain",
        mmd_pcs: int = 0,
        pca_on_scaled: bool = False,
        clip_outputs: bool = False,
        members: int = 1,
        clip_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # collects the subclass's arguments too
        for name, value, allowed in (
            ("model.optimizer", optimizer, OPTIMIZERS),
            ("model.scheduler", scheduler, SCHEDULERS),
            ("model.loss", loss, tuple(LOSSES)),
            ("model.time_model", time_model, TIME_MODELS),
        ):
            if value not in allowed:
                raise PolyinvError(f"{name} {value!r} unknown; choose one of {allowed}")
        if optimizer == "lbfgs" and weight_decay:
            raise PolyinvError(f"model.weight_decay {weight_decay}: the lbfgs optimizer has no weight decay; set it to 0 or use adamw")
        dropout = self.hparams.get("dropout", 0.0)  # a subclass argument (one rate or one per layer)
        if optimizer == "lbfgs" and any(float(d) > 0 for d in np.atleast_1d(dropout or 0.0)):
            raise PolyinvError(f"model.dropout {dropout}: the lbfgs optimizer needs a fixed objective within a step "
                               "(dropout draws new masks at every line-search trial); set it to 0")
        if int(members) < 1:
            raise PolyinvError(f"model.members must be at least 1, got {members}")
        # members > 1: that many copies of the network, each with its own initialisation, trained side by
        # side on the same rows (each member's loss counts alone); predictions average the members' outputs
        self.members = int(members)
        self.target_names = list(targets)
        self.side_names = list(side_inputs)
        self.mmd_names = list(mmd_columns)
        self.mmd_scaler = ColumnScaler(self.mmd_names, transforms, pooled=mmd_scaling == "pooled")
        self.side_scaler = ColumnScaler(self.side_names, transforms)
        self.target_scaler = ColumnScaler(self.target_names, transforms)
        self.loss_fn = LOSSES[loss]()
        # time censored by the run protocol (stop at t_max or at the conversion limit): one extra output,
        # the logit of "stopped early"; the time output is then standardised log(time) of early rows
        self.censored = time_model == "censored" and "time" in self.target_names
        self.time_index = self.target_names.index("time") if "time" in self.target_names else -1
        # optional projection of the MMD on its first mmd_pcs principal components (training rows only)
        self.mmd_pcs = int(mmd_pcs)
        if not 0 <= self.mmd_pcs <= len(self.mmd_names):
            raise PolyinvError(f"model.mmd_pcs must lie in 0..{len(self.mmd_names)}, got {mmd_pcs}")
        # pca_on_scaled: the components of the scaled MMD (data.mmd_scaling column: every grid point
        # standardised, so small shape differences count as much as the peak) instead of the raw one
        self.pca_on_scaled = bool(pca_on_scaled)
        self.register_buffer("pca_mean", torch.zeros(len(self.mmd_names), dtype=torch.float64))
        self.register_buffer("pca_components", torch.zeros(self.mmd_pcs, len(self.mmd_names), dtype=torch.float64))
        self.register_buffer("pca_std", torch.ones(self.mmd_pcs, dtype=torch.float64))
        self.register_buffer("t_max", torch.tensor(float("nan"), dtype=torch.float64))
        self.register_buffer("log_t_mean", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("log_t_std", torch.tensor(1.0, dtype=torch.float64))
        # with composite inputs the early-stop logit also sees the conversion implied by the measured
        # cBA_time and the model's own cBA_0 prediction: logit += k·(b − log(cBA_time / cBA_0_pred))
        self.conversion_aware = self.censored and "cBA_time" in self.side_names and "cBA_0" in self.target_names
        self.register_buffer("log_ratio_threshold", torch.tensor(0.0, dtype=torch.float64))
        # time_model stop_rule: time is regressed like any target, then set to t_max where the conversion
        # implied by the measured cBA_time and the predicted cBA_0 is below stop_conversion (runs stop early
        # only at the conversion limit), and capped at t_max
        # (without the cBA_time input or the cBA_0 target only the cap at t_max applies)
        self.stop_rule = time_model == "stop_rule" and "time" in self.target_names
        self.stop_gate = self.stop_rule and "cBA_time" in self.side_names and "cBA_0" in self.target_names
        self.register_buffer("stop_conversion", torch.tensor(float("-inf"), dtype=torch.float64))
        # clip_outputs: predictions are held inside the training rows' range of every target
        self.clip_outputs = bool(clip_outputs)
        self.register_buffer("target_low", torch.full((len(self.target_names),), float("-inf"), dtype=torch.float64))
        self.register_buffer("target_high", torch.full((len(self.target_names),), float("inf"), dtype=torch.float64))
        # clip_inputs: what the network sees (scaled grid / PC scores, scaled side inputs) is held inside the
        # training rows' range, so a recipe beyond the grid's corners is not extrapolated along directions
        # no training row spans (the higher MMD components grow fast at the corners)
        self.clip_inputs = bool(clip_inputs)
        mmd_width, side_width = self.encoded_widths
        self.register_buffer("input_low_mmd", torch.full((1, mmd_width), float("-inf")))
        self.register_buffer("input_high_mmd", torch.full((1, mmd_width), float("inf")))
        self.register_buffer("input_low_side", torch.full((side_width,), float("-inf")))
        self.register_buffer("input_high_side", torch.full((side_width,), float("inf")))
        gain = torch.tensor(3.0)  # softplus → about 3 at the start
        if self.conversion_aware:
            self.conversion_gain = nn.Parameter(gain)
        else:  # unused: a buffer (same checkpoint key), since DDP refuses parameters that never get a gradient
            self.register_buffer("conversion_gain", gain)
        self.val_r2 = nn.ModuleDict({t: ExactR2() for t in self.target_names})
        self.val_mae = nn.ModuleDict({t: MeanAbsoluteError() for t in self.target_names})
        self.val_r2_best = MaxMetric()
        self._loss_logged = False  # lbfgs: train/loss logged once per step (on_train_batch_start resets it)

    # ------------------------------------------------------------------ for subclasses
    def member_networks(self, build: Callable[[], nn.Module]) -> nn.Module:
        """``build()`` once, or ``members`` times side by side (:class:`Members`) when ``members`` > 1."""
        return build() if self.members == 1 else Members([build() for _ in range(self.members)])

    @property
    def n_mmd(self) -> int:
        return len(self.mmd_names)

    @property
    def n_mmd_features(self) -> int:
        """Length of the MMD representation the network sees: the grid, or its principal components."""
        return self.mmd_pcs or self.n_mmd

    @property
    def encoded_widths(self) -> tuple[int, int]:
        """Widths of :meth:`encode_inputs`' two outputs (MMD part (B, 1, w), side part (B, w))."""
        return self.n_mmd_features, self.n_side

    @property
    def n_side(self) -> int:
        return len(self.side_names)

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    @property
    def n_outputs(self) -> int:
        """Network outputs: one per target, plus the stopped-early logit when time is censored."""
        return self.n_targets + int(self.censored)

    # ------------------------------------------------------------------ scaling
    def set_scalers(self, scalers: Mapping[str, ColumnScaler]) -> None:
        """Copy train-split statistics (from :meth:`PolyDataModule.scalers`) into this model's buffers."""
        for name, own in (("mmd", self.mmd_scaler), ("side", self.side_scaler), ("targets", self.target_scaler)):
            if list(scalers[name].columns) != list(own.columns):
                raise PolyinvError(f"scaler {name!r} columns do not match the model's")
            own.load_state_dict(scalers[name].state_dict())

    def set_pca(self, mmd: np.ndarray) -> None:
        """Fit the MMD principal components (``mmd_pcs`` > 0) on the training rows' MMDs (N, L)."""
        x = np.asarray(mmd, dtype=np.float64)
        if self.pca_on_scaled:
            x = self.mmd_scaler(torch.as_tensor(x).unsqueeze(1)).flatten(1).double().numpy()
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        components = vt[: self.mmd_pcs]
        scores = (x - mean) @ components.T
        self.pca_mean.copy_(torch.as_tensor(mean))
        self.pca_components.copy_(torch.as_tensor(components))
        self.pca_std.copy_(torch.as_tensor(np.maximum(scores.std(axis=0), 1e-12)))

    def pc_scores(self, mmd: torch.Tensor) -> torch.Tensor:
        """Physical MMD (B, 1, L) → its standardised scores on the ``mmd_pcs`` principal components (B, k)."""
        flat = (self.mmd_scaler(mmd) if self.pca_on_scaled else mmd).flatten(1).double() - self.pca_mean
        return ((flat @ self.pca_components.T) / self.pca_std).to(mmd.dtype)

    def encode_mmd(self, mmd: torch.Tensor) -> torch.Tensor:
        """Physical MMD (B, 1, L) → what the network sees: scaled grid values, or standardised PC scores."""
        if not self.mmd_pcs:
            return self.mmd_scaler(mmd)
        return self.pc_scores(mmd).unsqueeze(1)

    def encode_inputs(self, mmd: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical (MMD, side inputs) → the network's two inputs (subclasses may combine them differently)."""
        return self.encode_mmd(mmd), self.side_scaler(side)

    def set_input_bounds(self, mmd: np.ndarray, side: np.ndarray) -> None:
        """Store the range of the encoded inputs over the training rows (physical (N, L) MMD, (N, k) side)."""
        with torch.no_grad():
            grid, scalars = self.encode_inputs(*self.input_tensors(mmd, side))
        self.input_low_mmd.copy_(grid.amin(dim=0))
        self.input_high_mmd.copy_(grid.amax(dim=0))
        self.input_low_side.copy_(scalars.amin(dim=0))
        self.input_high_side.copy_(scalars.amax(dim=0))

    def network_inputs(self, mmd: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode_inputs`, held inside the training range when ``clip_inputs``."""
        grid, scalars = self.encode_inputs(mmd, side)
        if self.clip_inputs:
            grid = torch.clamp(grid, self.input_low_mmd.to(grid.dtype), self.input_high_mmd.to(grid.dtype))
            scalars = torch.clamp(scalars, self.input_low_side.to(scalars.dtype), self.input_high_side.to(scalars.dtype))
        return grid, scalars

    def set_bounds(self, targets: np.ndarray) -> None:
        """Store the training rows' range of every target (physical units, (N, T)) for ``clip_outputs``."""
        y = np.asarray(targets, dtype=np.float64)
        self.target_low.copy_(torch.as_tensor(y.min(axis=0)))
        self.target_high.copy_(torch.as_tensor(y.max(axis=0)))

    def set_stop_rule(self, times: np.ndarray, cba_time: np.ndarray | None, cba0: np.ndarray | None) -> None:
        """Fit t_max and the stop-rule conversion gate on the training rows (physical units).

        ``cba_time``/``cba0`` are used only when the model has the gate (cBA_time input, cBA_0 target)."""
        t_max, early = stopped_early(times)
        self.t_max.fill_(t_max)
        if not self.stop_gate or cba_time is None or cba0 is None:
            return
        conversion = 1.0 - np.asarray(cba_time, dtype=np.float64) / np.asarray(cba0, dtype=np.float64)
        # no stopped-early training run: every run went to t_max, so every prediction does
        if early.any():
            gate = 1.0 - (1.0 - float(conversion[early].min())) * (1.0 + STOP_RULE_TOLERANCE)
        else:
            gate = float("inf")
        self.stop_conversion.fill_(gate)

    def set_censoring(self, times: np.ndarray, cba_time: np.ndarray | None = None, cba0: np.ndarray | None = None) -> None:
        """Fit the censored-time statistics on the training rows' times (physical seconds)."""
        times = np.asarray(times, dtype=np.float64)
        t_max, early = stopped_early(times)
        # with no stopped-early run time is the constant t_max: log-time statistics are then moot and the
        # conversion threshold sits far below any ratio, so the early logit says "no"
        log_t = np.log(times[early]) if early.any() else np.array([np.log(t_max)])
        threshold = -50.0
        if self.conversion_aware and cba_time is not None and cba0 is not None and early.any() and (~early).any():
            log_ratio = np.log(np.asarray(cba_time, dtype=np.float64) / np.asarray(cba0, dtype=np.float64))
            threshold = 0.5 * float(log_ratio[early].max() + log_ratio[~early].min())
        self.log_ratio_threshold.fill_(threshold)
        self.t_max.fill_(t_max)
        self.log_t_mean.fill_(float(log_t.mean()))
        self.log_t_std.fill_(max(float(log_t.std()), 1e-8))

    def to_physical(self, out: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        """Network outputs (model space) → physical recipe (float64); with the physical side inputs
        ``side`` the stop rule applies too (:meth:`apply_stop_rule`)."""
        out = out.double()
        physical = self.target_scaler.inverse(out[:, : self.n_targets])
        if self.censored:
            log_t = out[:, self.time_index] * self.log_t_std + self.log_t_mean
            early = out[:, -1] > 0
            t = torch.where(early, torch.minimum(torch.exp(log_t), self.t_max), self.t_max)
            physical = physical.clone()
            physical[:, self.time_index] = t
        if self.clip_outputs:
            physical = torch.maximum(torch.minimum(physical, self.target_high), self.target_low)
        return physical if side is None else self.apply_stop_rule(physical, side)

    def apply_stop_rule(self, physical: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """time_model stop_rule on a physical recipe (B, T) given the physical side inputs (B, k)."""
        if not self.stop_rule:
            return physical
        t = torch.minimum(physical[:, self.time_index], self.t_max)
        physical = physical.clone()
        if not self.stop_gate:
            physical[:, self.time_index] = t
            return physical
        cba0 = physical[:, self.target_names.index("cBA_0")]
        cba_time = side[:, self.side_names.index("cBA_time")].to(physical.dtype)
        conversion = 1.0 - cba_time / cba0.clamp_min(1e-12)
        physical[:, self.time_index] = torch.where(conversion < self.stop_conversion, self.t_max, t)
        return physical

    def compute_loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss in model space (standardised targets; censored time: masked log-time MSE + early-stop BCE)."""
        scaled = self.target_scaler(targets)
        if self.stop_rule and bool(torch.isfinite(self.t_max)):
            # censored regression: a run that went to t_max only says "its time to the conversion limit is
            # ≥ t_max", so its time output is pulled up to t_max when below and left alone above (so it need
            # not fit the kink at t_max; predictions are capped at t_max again)
            full = ~before_t_max(targets[:, self.time_index].double(), self.t_max)
            if bool(full.any()):
                t = self.time_index
                scaled = scaled.clone()
                scaled[full, t] = torch.maximum(scaled[full, t], out[full, t].detach().to(scaled.dtype))
        if not self.censored:
            return self.loss_fn(out, scaled)
        keep = [j for j in range(self.n_targets) if j != self.time_index]
        loss = self.loss_fn(out[:, keep], scaled[:, keep]) * len(keep)
        time = targets[:, self.time_index].double()
        early = before_t_max(time, self.t_max)
        if bool(early.any()):
            z = ((torch.log(time[early]) - self.log_t_mean) / self.log_t_std).to(out.dtype)
            loss = loss + self.loss_fn(out[early, self.time_index], z) * early.float().mean()
        bce = nn.functional.binary_cross_entropy_with_logits(out[:, -1], early.to(out.dtype))
        return (loss + bce) / self.n_targets

    def forward(self, mmd: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Physical inputs → scaled targets (B, outputs).

        With ``members`` > 1: in training mode every member's outputs, member-major within each row
        (B·members rows; :meth:`training_step` repeats the targets to match); in eval mode their mean."""
        out = self.network(*self.network_inputs(mmd, side))
        if out.dim() == 3:  # (B, members, outputs)
            if self.training:
                out = out.flatten(0, 1)
                side = side.repeat_interleave(self.members, dim=0)
            else:
                out = out.mean(dim=1)
        if self.conversion_aware:
            cba0 = self.target_scaler.inverse(out[:, : self.n_targets].double())[:, self.target_names.index("cBA_0")]
            cba_time = side[:, self.side_names.index("cBA_time")].double()
            log_ratio = torch.log(cba_time.clamp_min(1e-12)) - torch.log(cba0.clamp_min(1e-6))
            gain = nn.functional.softplus(self.conversion_gain).double()
            logit = out[:, -1].double() + gain * 10.0 * (self.log_ratio_threshold - log_ratio)
            out = torch.cat([out[:, :-1], logit.to(out.dtype).unsqueeze(1)], dim=1)
        return out

    @torch.no_grad()
    def predict_physical(self, mmd: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Physical inputs → physical recipe (float64), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            out = self(mmd.to(self.device), side.to(self.device))
            return self.to_physical(out, side.to(self.device)).cpu()
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch, batch_idx):
        mmd, side, targets = batch
        if self.members > 1:  # forward gives one row per member: each member's loss counts alone
            targets = targets.repeat_interleave(self.members, dim=0)
        loss = self.compute_loss(self(mmd, side), targets)
        lbfgs = self.hparams.optimizer == "lbfgs"
        if lbfgs and torch.distributed.is_available() and torch.distributed.is_initialized():
            # L-BFGS's line search and stopping test compare loss values: every process must see exactly the
            # same one (the mean over the processes' equal shards; written as 0 + mean, so no rounding
            # differs between processes), while the gradient stays local (DDP averages it)
            loss = loss - loss.detach() + self.all_gather(loss.detach()).mean()
        # L-BFGS evaluates the loss ~20 times per step (line-search trials too): log only the first, the
        # loss at the start of the step, so train/loss is the loss of weights the model really had
        if not lbfgs or not self._loss_logged:
            self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(targets), sync_dist=True)
            self._loss_logged = True
        return loss

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._loss_logged = False

    def validation_step(self, batch, batch_idx):
        mmd, side, targets = batch
        scaled = self(mmd, side)
        loss = self.compute_loss(scaled, targets)
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(targets), sync_dist=True)
        physical = self.to_physical(scaled, side).float()
        for j, name in enumerate(self.target_names):
            self.val_r2[name].update(physical[:, j], targets[:, j])
            self.val_mae[name].update(physical[:, j], targets[:, j])

    def on_train_start(self) -> None:
        self.val_r2_best.reset()  # the sanity check must not count as a best value
        resumed_best = getattr(self, "_resumed_r2_best", None)
        if resumed_best is not None:  # a resumed run keeps the best value of the epochs before it
            self.val_r2_best.update(resumed_best)

    def on_validation_epoch_end(self) -> None:
        # metric.compute() already syncs across DDP ranks; sync_dist only averages identical values
        r2s = []
        for name in self.target_names:
            r2 = self.val_r2[name].compute()
            r2s.append(r2)
            self.log(f"val/r2/{name}", r2, sync_dist=True)
            self.log(f"val/mae/{name}", self.val_mae[name].compute(), sync_dist=True)
            self.val_r2[name].reset()
            self.val_mae[name].reset()
        global_r2 = torch.stack(r2s).mean()
        self.log("val/r2_global", global_r2, prog_bar=True, sync_dist=True)
        if not self.trainer.sanity_checking:
            self.val_r2_best.update(global_r2)
            self.log("val/r2_global_best", self.val_r2_best.compute(), sync_dist=True)

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0) -> torch.Tensor:
        mmd, side = batch[0], batch[1]
        return self.to_physical(self(mmd, side), side)

    def test_step(self, batch, batch_idx):
        mmd, side, targets = batch
        loss = self.compute_loss(self(mmd, side), targets)
        self.log("test/loss", loss, batch_size=len(targets))

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "lbfgs":  # full-batch quasi-Newton steps (the data module must hand over every row at once)
            optimizer = torch.optim.LBFGS(self.parameters(), lr=hp.lr, max_iter=LBFGS_MAX_ITER, history_size=LBFGS_HISTORY,
                                          line_search_fn="strong_wolfe")
        else:
            opt_cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
            optimizer = opt_cls(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "cosine":
            t_max = max(1, int(self.trainer.max_epochs or 1))
            return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, t_max)}
        if hp.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=hp.scheduler_patience)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss"}}
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["polyinv_kind"] = self.kind
        best = float(self.val_r2_best.max_value)  # the state itself: no collective inside a checkpoint hook
        if np.isfinite(best):
            checkpoint["polyinv_val_r2_global_best"] = best
        if getattr(self, "domain", None):  # applicability domain (polyinv.trust.domain): plain lists
            checkpoint["polyinv_domain"] = self.domain

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # runs saved while the unused conversion gain was still a parameter (index 0, registered before the
        # network) carry optimizer state for one parameter more than this model has: drop it so they resume
        if not self.conversion_aware:
            n_params = len(list(self.parameters()))
            for opt in checkpoint.get("optimizer_states", []):
                groups = opt.get("param_groups", [])
                if len(groups) == 1 and len(groups[0]["params"]) == n_params + 1:
                    groups[0]["params"] = list(range(n_params))
                    opt["state"] = {int(k) - 1: v for k, v in opt.get("state", {}).items() if int(k) != 0}
        # checkpoints saved before clip_inputs existed lack its bounds: they load with the unbounded defaults
        state = checkpoint.get("state_dict", {})
        for name in INPUT_BOUNDS:
            state.setdefault(name, getattr(self, name).clone())
        self._resumed_r2_best = checkpoint.get("polyinv_val_r2_global_best")
        self.domain = checkpoint.get("polyinv_domain")

    # ------------------------------------------------------------------ shared inference interface
    def input_tensors(self, mmd: np.ndarray, side: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,L) MMD and (N,k) side-input arrays → float32 tensors (N,1,L), (N,k) (copies: inputs may be read-only)."""
        m = torch.tensor(np.asarray(mmd), dtype=torch.float32).unsqueeze(1)
        return m, torch.tensor(np.asarray(side), dtype=torch.float32).reshape(len(m), self.n_side)

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """(N,L) MMD and (N,k) side inputs in physical units → (N,T) physical recipe."""
        outs = []
        for start in range(0, len(mmd), batch_size):
            m, s = self.input_tensors(mmd[start : start + batch_size], side[start : start + batch_size])
            outs.append(self.predict_physical(m, s).numpy())
        return np.concatenate(outs) if outs else np.empty((0, self.n_targets))
