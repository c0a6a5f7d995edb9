"""What a user sees while polyinv works: one progress bar per training run with a total and time left,
and the libraries' informational noise turned off."""

from __future__ import annotations

import logging
import warnings

import lightning as L
from tqdm.auto import tqdm


class EpochProgress(L.Callback):
    """One bar over the training epochs (full-batch L-BFGS: one optimiser step each) with the training
    loss; replaces Lightning's per-batch bar, whose total is one batch for a full-batch run."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: tqdm | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            self.bar = tqdm(
                total=total, initial=trainer.current_epoch, desc=self.desc, unit="epoch", dynamic_ncols=True
            )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            loss = trainer.callback_metrics.get("train/loss")
            if loss is not None:
                self.bar.set_postfix(loss=f"{float(loss):.4g}", refresh=False)
            self.bar.update()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    on_exception = on_train_end


def quiet_libraries() -> None:
    """Lightning's device and tip messages and known harmless warnings off (errors and our output stay)."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (
        r".*does not have many workers.*",
        r".*LeafSpec.*",
        r".*The number of training batches.*",
        r".*Checkpoint directory .* exists and is not empty.*",
        r".*Total length of .* across ranks is zero.*",
        r".*GPU available but not used.*",
        r".*`ckpt_path`, callbacks used to create the checkpoint.*",
        r".*You defined a `validation_step` but have no `val_dataloader`.*",
        r".*`sklearn.utils.parallel.delayed` should be used with.*",
    ):
        warnings.filterwarnings("ignore", message=message)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings(
        "ignore", module=r"sklearn\.gaussian_process.*"
    )  # ConvergenceWarning at the bounds
