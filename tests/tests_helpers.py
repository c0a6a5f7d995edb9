"""Helpers shared by model tests: train a small network directly with a Lightning Trainer."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from polyinv.data.module import PolyDataModule

from synthetic import write_synthetic

TRANSFORMS = {"Mn": "log", "Mw": "log", "cAIBN_0": "log"}


def overfit_model(tmp_path: Path, cls, epochs: int, rows: int = 120, save: Path | None = None, **model_kw):
    """Fit ``cls`` on a small synthetic set (no validation logic needed) and return (model, datamodule)."""
    L.seed_everything(0, workers=True, verbose=False)
    path = tmp_path / "train.csv"
    write_synthetic(path, n=rows, seed=3)
    dm = PolyDataModule(path, transforms=TRANSFORMS, batch_size=32, mmd_scaling=model_kw.pop("mmd_scaling", "column"))
    dm.setup()
    model = cls(transforms=TRANSFORMS, mmd_scaling=dm.mmd_scaling, lr=model_kw.pop("lr", 3e-3), **model_kw)
    model.set_scalers(dm.scalers())
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
    )
    trainer.fit(model, train_dataloaders=dm.train_dataloader())
    if save is not None:
        trainer.save_checkpoint(save)
    model.eval()
    return model, dm
