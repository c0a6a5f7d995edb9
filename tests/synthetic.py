"""Small synthetic data sets in the study's schema, made by the tests themselves (fast, offline).

A crude closed-form stand-in for the kinetics: first-order monomer decay with an Arrhenius rate,
a log-normal MMD centred on a kinetic-chain-length estimate. Good enough to exercise the pipeline
and to be learnable; physics lives in ``polyinv.sim``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd

from polyinv.data.module import PolyDataModule
from polyinv.schema import COMPOSITE_COLUMNS, M_MONOMER, N_MMD

LOG_M = np.linspace(2.5, 7.0, N_MMD)


def synthetic_frame(n: int = 120, seed: int = 0, levels: bool = False) -> pd.DataFrame:
    """``levels``: recipes drawn from a few levels of each factor (a designed experiment) instead of a box."""
    rng = np.random.default_rng(seed)
    if levels:
        c0 = rng.choice([0.5, 1.5, 2.5, 3.0], n)
        i0 = rng.choice([0.0025, 0.01, 0.02], n)
        temp = rng.choice([60.0, 70.0, 80.0], n)
    else:
        c0 = rng.uniform(0.5, 3.0, n)
        i0 = rng.uniform(0.0025, 0.02, n)
        temp = rng.uniform(60, 80, n)
    k = 3e-4 * np.sqrt(i0 / 0.01) * np.exp(0.07 * (temp - 70))
    t90 = np.log(10) / k
    time = np.minimum(3600.0, t90)
    cba_time = c0 * np.exp(-k * time)
    chain = 400 * c0 / np.sqrt(i0 / 0.01) * np.exp(-0.03 * (temp - 70)) * (1 + 0.1 * (1 - np.exp(-k * time)))
    mn = chain * M_MONOMER
    sigma = 0.25 + 0.02 * (temp - 60) / 20
    mw = mn * np.exp((sigma * np.log(10)) ** 2)
    centre = np.log10(mn) + 0.5 * sigma**2 * np.log(10) * 2
    mmd = np.exp(-0.5 * ((LOG_M[None, :] - centre[:, None]) / sigma[:, None]) ** 2)
    mmd /= mmd.sum(axis=1, keepdims=True) * (LOG_M[1] - LOG_M[0])
    data = np.column_stack([c0, i0, temp, time, cba_time, mn, mw, mmd])
    return pd.DataFrame(data, columns=list(COMPOSITE_COLUMNS))


def write_synthetic(path, n: int = 120, seed: int = 0, sheet: str = "compuesta") -> pd.DataFrame:
    frame = synthetic_frame(n, seed)
    path = str(path)
    if path.endswith(".xlsx"):
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            frame.to_excel(writer, sheet_name=sheet, index=False)
    elif path.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return frame


TRANSFORMS = {"Mn": "log", "Mw": "log", "cAIBN_0": "log"}


def overfit_model(tmp_path: Path, cls, epochs: int, rows: int = 120, save: Path | None = None, **model_kw):
    """Fit ``cls`` on a small synthetic set (no validation logic needed) and return (model, datamodule)."""
    L.seed_everything(0, workers=True, verbose=False)
    path = tmp_path / "train.csv"
    write_synthetic(path, n=rows, seed=3)
    dm = PolyDataModule(
        path, transforms=TRANSFORMS, batch_size=32, mmd_scaling=model_kw.pop("mmd_scaling", "column")
    )
    dm.setup()
    model = cls(transforms=TRANSFORMS, mmd_scaling=dm.mmd_scaling, lr=model_kw.pop("lr", 3e-3), **model_kw)
    model.fit_statistics(dm.scalers(), dm.train_frame)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(model, train_dataloaders=dm.train_dataloader())
    if save is not None:
        trainer.save_checkpoint(save)
    model.eval()
    return model, dm


REPO = Path(__file__).resolve().parents[1]


def fast_overrides(data_path: Path, root: Path, epochs: int = 2) -> list[str]:
    """Command-line overrides for a tiny, quiet CPU run."""
    return [
        "--data.path",
        str(data_path),
        "--output.root",
        str(root),
        "--trainer.max_epochs",
        str(epochs),
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trust.forward",
        "default",  # no calibration in quick tests
        "--trust.refine",
        "none",
    ]


def save_without_trainer(model, path):
    """Write a Lightning-format checkpoint of ``model`` without a Trainer (hyper-parameters + state)."""
    import torch

    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": L.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
