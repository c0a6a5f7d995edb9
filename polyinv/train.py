"""How each model family trains, without the run around it (polyinv.runner): build the data module and the
configured model, fit a network with Lightning into a run folder or in memory, fit a classical model on
arrays, and the checks of a finished fit.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from polyinv.data.module import PolyDataModule
from polyinv.errors import PolyinvError
from polyinv.inference import predict_frame
from polyinv.metrics import evaluate
from polyinv.models import MODELS, InverseModel, InverseRegressor
from polyinv.progress import EpochProgress
from polyinv.runs import check_resumable, sigterm_saves, tb_logger
from polyinv.schema import system_of
from polyinv.sim.file_info import read_file_metadata, stated_axis
from polyinv.sim.grid import MMDAxis


def build_datamodule(config: dict) -> PolyDataModule:
    return PolyDataModule(**config["data"], seed=config["seed"])


def _listify(value):
    return [_listify(v) for v in value] if isinstance(value, (list, tuple)) else value


def check_settings(config: dict, val_rows: int) -> None:
    """Settings that are valid alone but not together (before any folder is made)."""
    kind = config["model"]["kind"]
    refine_rows = (config.get("trust") or {}).get("refine_rows", 60)
    if refine_rows < 10:
        raise PolyinvError(f"trust.refine_rows must be at least 10, got {refine_rows}")
    if MODELS[kind].family != "network":
        return
    epochs = config["trainer"].get("max_epochs")
    if epochs is not None and epochs < 1:
        raise PolyinvError(f"trainer.max_epochs must be at least 1, got {epochs}")
    if config["checkpoint"]["every_n_epochs"] < 1:
        raise PolyinvError(
            f"checkpoint.every_n_epochs must be >= 1, got {config['checkpoint']['every_n_epochs']}"
        )
    monitored = [config["checkpoint"]["monitor"]]
    if config["early_stopping"]["patience"] is not None:
        monitored.append(config["early_stopping"]["monitor"])
    if not val_rows and any(m.startswith("val/") for m in monitored):
        raise PolyinvError(
            f"data.val_fraction is 0, so there is no validation split for {kind!r} to monitor "
            f"({', '.join(sorted(set(monitored)))}); set data.val_fraction > 0 or monitor train/loss"
        )


def build_model(config: dict, dm: PolyDataModule, progress: bool | None = None) -> InverseModel:
    """Instantiate the configured model with the data module's schema (bad settings → PolyinvError);
    ``progress`` overrides ``trainer.enable_progress_bar`` for a classical model's bar."""
    settings = {k: _listify(v) for k, v in config["model"].items() if k != "kind"}
    cls = MODELS[config["model"]["kind"]]
    schema = {
        "targets": list(dm.target_columns),
        "side_inputs": list(dm.side_columns),
        "mmd_columns": list(dm.mmd_columns),
        "transforms": dict(dm.transforms),
    }
    if progress is None:
        progress = bool(config["trainer"].get("enable_progress_bar", True))
    family_args = {
        "network": {"mmd_scaling": dm.mmd_scaling},
        "classical": {"random_state": config["seed"], "progress": progress},
        "auto": {"random_state": config["seed"]},
    }[cls.family]
    check_settings(config, len(dm.val_idx))
    try:
        model = cls(**schema, **family_args, **settings)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PolyinvError):
            raise
        raise PolyinvError(f"model settings: {str(exc).splitlines()[0]}") from exc
    axis = training_axis(dm)
    model.read_files_info({"system": dm.system.key, "axis": None if axis is None else asdict(axis)})
    rows = len(dm.train_idx)
    if model.family == "network" and model.hparams.optimizer == "lbfgs" and 0 < dm.batch_size < rows:
        # L-BFGS builds its curvature estimate from one objective: mini-batches would change it every step
        raise PolyinvError(
            f"model.optimizer lbfgs takes full-batch steps: data.batch_size {dm.batch_size} is below "
            f"the {rows} training rows (set data.batch_size to 0, full batch)"
        )
    return model


def training_axis(dm: PolyDataModule) -> MMDAxis | None:
    """The training file's MMD axis (``data.axis``, else its metadata's), stored in the model; None: unknown."""
    n = len(dm.mmd_columns)
    if dm.axis is not None:
        return MMDAxis.from_option(dm.axis, n, "data.axis")
    axis = stated_axis(read_file_metadata(dm.path))
    return axis if axis is not None and axis.n_points == n else None


def fit_rows(dm: PolyDataModule) -> pd.DataFrame:
    """The non-test rows (training + validation): what classical models fit and the trust checks use."""
    return dm.frame.iloc[np.concatenate([dm.train_idx, dm.val_idx])]


def fit_classical(model: InverseModel, dm: PolyDataModule) -> float:
    """Fit a classical model on the non-test rows (no early stopping, so validation rows train too); seconds."""
    started = time.perf_counter()
    frame = fit_rows(dm)
    model.fit(*(frame[list(c)].to_numpy() for c in (dm.mmd_columns, dm.side_columns, dm.target_columns)))
    return time.perf_counter() - started


def fit_network(
    config: dict,
    dm: PolyDataModule,
    model: InverseRegressor,
    run_dir: Path,
    resume: Path | None,
    progress: bool = True,
):
    """Train a network with Lightning into ``run_dir`` (best.ckpt, last.ckpt, TensorBoard); returns
    (best model on CPU, seconds, trainer, logger), or None in a DDP worker (rank > 0). ``progress`` False
    turns the epoch bar off whatever the config says."""
    model.fit_statistics(dm.scalers(), dm.train_frame)
    ckpt_cfg = config["checkpoint"]
    # saving a checkpoint every epoch would cost more than a full-batch epoch: save every n-th (and the final) one
    every_n_epochs = int(ckpt_cfg.get("every_n_epochs") or 1)
    max_epochs = config["trainer"].get("max_epochs")
    if isinstance(max_epochs, int) and max_epochs > 0 and max_epochs % every_n_epochs:
        every_n_epochs = _largest_divisor_at_most(max_epochs, every_n_epochs)  # so the final epoch is saved
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir,
            filename="best",
            monitor=ckpt_cfg["monitor"],
            mode=ckpt_cfg["mode"],
            save_top_k=1,
            save_last=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
            every_n_epochs=every_n_epochs,
        ),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if config["early_stopping"]["patience"] is not None:
        es = config["early_stopping"]
        callbacks.append(
            EarlyStopping(
                monitor=es["monitor"], mode=es["mode"], patience=es["patience"], min_delta=es["min_delta"]
            )
        )
    logger = tb_logger(run_dir)
    trainer_cfg = dict(config["trainer"])
    if not progress:
        trainer_cfg["enable_progress_bar"] = False
    elif (
        trainer_cfg.get("enable_progress_bar") is not False
    ):  # one bar over the epochs instead of Lightning's
        trainer_cfg["enable_progress_bar"] = False
        steps = "L-BFGS steps" if model.hparams.optimizer == "lbfgs" else "epochs"
        callbacks.append(EpochProgress(f"training {config['name']} ({steps})"))
    try:
        trainer = L.Trainer(default_root_dir=str(run_dir), logger=logger, callbacks=callbacks, **trainer_cfg)
    except (ValueError, TypeError, MisconfigurationException) as exc:  # a bad trainer.* value: one line
        raise PolyinvError(f"trainer settings: {str(exc).strip().splitlines()[0]}") from exc
    ckpt_path = None if resume is None else check_resumable(resume, trainer_cfg.get("max_epochs"))
    started = time.perf_counter()
    with sigterm_saves(trainer, run_dir), lbfgs_numerics(model.hparams.optimizer == "lbfgs"):
        trainer.fit(model, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    seconds = time.perf_counter() - started
    if trainer.global_rank != 0:
        return None
    best_path = run_dir / "best.ckpt"
    best = (
        type(model).load_from_checkpoint(best_path, map_location="cpu", weights_only=True)
        if best_path.exists()
        else model.cpu()
    )
    best.eval()
    return best, seconds, trainer, logger


def train_network(
    config: dict, dm: PolyDataModule, seed: int, callbacks: list | None = None
) -> tuple[InverseRegressor, L.Trainer]:
    """A network trained on ``dm``'s training rows with its config's trainer settings, in memory (no run
    folder); ``callbacks``: Lightning callbacks of the caller (polyinv tune's pruning)."""
    L.seed_everything(
        seed if config.get("model_seed") is None else config["model_seed"], workers=True, verbose=False
    )
    model = build_model(config, dm)
    model.fit_statistics(dm.scalers(), dm.train_frame)
    trainer_cfg = dict(config["trainer"])
    trainer_cfg.update(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    with quiet_lightning():
        trainer = L.Trainer(callbacks=callbacks, **trainer_cfg)
        with lbfgs_numerics(model.hparams.optimizer == "lbfgs"):
            trainer.fit(model, datamodule=dm)
    model.eval()
    return model.cpu(), trainer


#: Lightning's notes and warnings that say nothing about an in-memory fit (no validation rows, no logger)
LIGHTNING_NOISE = (".*LeafSpec.*", "Total length of `DataLoader` across ranks is zero.*")


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's info lines (devices, tips, why fit stopped) and its known empty-loader and deprecation
    warnings held back during an in-memory fit: auto's folds, also in worker processes that run no
    ``polyinv.log`` set-up. Lightning's other warnings still show."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]  # Lightning sets INFO on these itself
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


#: a network whose R² on its own training rows stays below this for a target has not fitted them
TRAIN_FIT_R2 = 0.9


def training_fit_check(model: InverseModel, train: pd.DataFrame) -> dict:
    """The network's R² per target on its own training rows, and a warning line for each below TRAIN_FIT_R2
    (a fit that diverged or stalled: its test figures cannot be better)."""
    targets = list(model.target_names)
    scores = evaluate(train[targets].to_numpy(np.float64), predict_frame(model, train), targets)
    name = system_of(model.system).column
    r2 = {name(t): scores["targets"][t]["r2"] for t in targets}
    warnings = [
        f"training-fit check: {t} R² on the training rows {v:.3f} (below {TRAIN_FIT_R2}): the network did not fit "
        "its own rows; try more steps (trainer.max_epochs) or another seed"
        for t, v in r2.items()
        if not v >= TRAIN_FIT_R2
    ]
    return {"train_r2": r2, "warnings": warnings}


def self_check_lines(checks: dict | None) -> list[str]:
    """One line per target the GP's self-check refitted (run.json keeps every target's figures)."""
    lines = []
    for target, check in (checks or {}).items():
        if "refit_loo_r2" in check:
            lines.append(
                f"GP self-check: {target} leave-one-out R² {check['loo_r2']:.3f} (shortest length scale "
                f"{check['length_scales_min']:.3g}); refitted with bounded length scales: {check['refit_loo_r2']:.3f}; "
                f"kept the {'refit' if check['kept'] == 'refit' else 'first fit'}"
            )
    return lines


@contextlib.contextmanager
def lbfgs_numerics(on: bool = True):
    """The numerics of a full-batch L-BFGS fit while ``on``; the previous settings are restored after.

    - cuDNN convolutions in full float32 (PyTorch lets them use TF32, a 10-bit mantissa, by default): L-BFGS's
      line search compares close losses, and with TF32 the shipped CNN fell short of its own training rows on
      an H200 (docs/benchmark.md, On a GPU).
    - One intra-op CPU thread: 4,000 L-BFGS iterations amplify any rounding difference, and torch's parallel
      reductions sum in an order set by the thread count, so the shipped MLP (seed 42) scored global R² 0.979,
      0.993 and 0.991 with 1, 2 and 4 threads. With one thread the fit is the same whatever the machine's thread
      count; on full batches of a few hundred rows a second thread saved under 10 % (docs/benchmark.md).
    """
    before = torch.backends.cudnn.allow_tf32, torch.get_num_threads()
    if on:
        torch.backends.cudnn.allow_tf32 = False
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before[0]
        if torch.get_num_threads() != before[1]:
            torch.set_num_threads(before[1])


def _largest_divisor_at_most(n: int, k: int) -> int:
    """Largest divisor of ``n`` not above ``k`` (so that saving every that many epochs includes the last)."""
    return max(d for d in range(1, min(n, k) + 1) if n % d == 0)
