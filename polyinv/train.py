"""Library side of ``polyinv fit`` and ``polyinv ensemble``: build data and model from a resolved config,
train, evaluate through the one harness, save.

Every run gets its own folder ``<output.root>/<name>/version_N`` holding the resolved config,
``best.ckpt``/``last.ckpt`` (networks) or ``model.skops`` (random forest, GP), ``metrics.json``,
``predictions_test.csv``, ``parity.png``, ``run.json`` and TensorBoard event files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from polyinv.atomic import atomic_path, write_figure
from polyinv.config import dump
from polyinv.data.module import PolyDataModule
from polyinv.errors import PolyinvError, RunInterrupted
from polyinv.inference import predict_frame
from polyinv.metrics import evaluate, format_table, parity_figure, write_json
from polyinv.models import CLASSICAL, MODEL_FILE, NETWORKS, AutoModel, ClassicalModel, InverseRegressor, auto
from polyinv.progress import EpochProgress, quiet_libraries
from polyinv.trust.domain import fit_domain, fit_model_consistency

RUN_DIR_ENV = "POLYINV_RUN_DIR"  # hands the run folder to DDP worker processes


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    train_seconds: float
    model: Any


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
    if kind not in NETWORKS:
        return
    epochs = config["trainer"].get("max_epochs")
    if epochs is not None and epochs < 1:
        raise PolyinvError(f"trainer.max_epochs must be at least 1, got {epochs}")
    if config["checkpoint"]["every_n_epochs"] < 1:
        raise PolyinvError(f"checkpoint.every_n_epochs must be >= 1, got {config['checkpoint']['every_n_epochs']}")
    monitored = [config["checkpoint"]["monitor"]]
    if config["early_stopping"]["patience"] is not None:
        monitored.append(config["early_stopping"]["monitor"])
    if not val_rows and any(m.startswith("val/") for m in monitored):
        raise PolyinvError(f"data.val_fraction is 0, so there is no validation split for {kind!r} to monitor "
                           f"({', '.join(sorted(set(monitored)))}); set data.val_fraction > 0 or monitor train/loss")


def build_model(config: dict, dm: PolyDataModule) -> InverseRegressor | ClassicalModel:
    """Instantiate the configured model with the data module's schema (bad settings → PolyinvError)."""
    settings = {k: _listify(v) for k, v in config["model"].items() if k != "kind"}
    kind = config["model"]["kind"]
    schema = {
        "targets": list(dm.target_columns), "side_inputs": list(dm.side_columns),
        "mmd_columns": list(dm.mmd_columns), "transforms": dict(dm.transforms),
    }
    check_settings(config, len(dm.val_idx))
    try:
        if kind == AutoModel.kind:
            auto.candidate_configs(settings.get("candidates", auto.DEFAULT_CANDIDATES), config)  # bad names fail here
            return AutoModel(**schema, random_state=config["seed"], **settings)
        if kind in CLASSICAL:
            if kind == "gaussian_process":
                settings["progress"] = bool(config["trainer"].get("enable_progress_bar", True))
            return CLASSICAL[kind](**schema, random_state=config["seed"], **settings)
        model = NETWORKS[kind](**schema, mmd_scaling=dm.mmd_scaling, **settings)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PolyinvError):
            raise
        raise PolyinvError(f"model settings: {str(exc).splitlines()[0]}") from exc
    rows = len(dm.train_idx)
    if model.hparams.optimizer == "lbfgs" and 0 < dm.batch_size < rows:
        # L-BFGS builds its curvature estimate from one objective: mini-batches would change it every step
        raise PolyinvError(f"model.optimizer lbfgs takes full-batch steps: data.batch_size {dm.batch_size} is below "
                           f"the {rows} training rows (set data.batch_size to 0, full batch)")
    return model


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create and return ``root/name/version_N`` with the next free N (never reuses a folder)."""
    group = Path(root) / name
    try:
        group.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolyinvError(f"output.root {root}: cannot create the run folder {group} ({exc.strerror or exc})") from None
    existing = [int(p.name.split("_", 1)[1]) for p in group.glob("version_*") if p.name.split("_", 1)[1].isdigit()]
    n = max(existing, default=-1) + 1
    while True:
        candidate = group / f"version_{n}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
        except OSError as exc:
            raise PolyinvError(f"output.root {root}: cannot create the run folder {candidate} "
                               f"({exc.strerror or exc})") from None


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _tb_logger(run_dir: Path):
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(run_dir), name="", version="tensorboard", default_hp_metric=False)


def finish_run(config: dict, run_dir: Path, model, dm: PolyDataModule, logger, train_seconds: float, extra: dict) -> dict:
    """Evaluate on the test split through the one harness and write every run artefact."""
    test = dm.test_frame
    targets = list(dm.target_columns)
    y_true = test[targets].to_numpy(np.float64)
    y_pred = predict_frame(model, test)
    metrics = evaluate(y_true, y_pred, targets)
    write_json(metrics, run_dir / "metrics.json")
    preds = pd.DataFrame({"row": dm.test_idx})
    for j, t in enumerate(targets):
        preds[f"{t}_true"] = y_true[:, j]
        preds[f"{t}_pred"] = y_pred[:, j]
    with atomic_path(run_dir / "predictions_test.csv") as tmp:
        preds.to_csv(tmp, index=False)
    write_figure(parity_figure(y_true, y_pred, targets, title=f"{config['name']} — test split"), run_dir / "parity.png")
    if logger is not None:
        for j, t in enumerate(targets):
            single = parity_figure(y_true[:, [j]], y_pred[:, [j]], [t])
            logger.experiment.add_figure(f"parity/{t}", single, close=True)
        hp_metrics = {"hp/test_r2_global": metrics["global"]["r2"], "hp/test_mse_global": metrics["global"]["mse"]}
        hp_metrics.update({f"hp/test_r2/{t}": m["r2"] for t, m in metrics["targets"].items()})
        logger.log_hyperparams(_flat(config), metrics=hp_metrics)
        logger.finalize("success")
    info = {
        "name": config["name"], "kind": config["model"].get("kind"), "seed": config["seed"],
        "train_seconds": train_seconds, "rows": {"train": len(dm.train_idx), "val": len(dm.val_idx), "test": len(dm.test_idx)},
        "data": str(dm.path), **forward_info(getattr(model, "domain", None)), **extra,
    }
    write_json(info, run_dir / "run.json")
    return metrics


def run(config: dict, resume: Path | None = None, verbose: bool = True, forward: tuple | None = None) -> RunResult | None:
    """Train and evaluate one configured model. Returns None in DDP worker processes (rank > 0).

    ``forward``: the trust checks' (forward model, how) when the caller already has it (an ensemble's members)."""
    quiet_libraries()
    model_seed = config["seed"] if config.get("model_seed") is None else config["model_seed"]
    L.seed_everything(model_seed, workers=True, verbose=False)  # the split keeps config["seed"]
    dm = build_datamodule(config)
    dm.setup("fit")  # validates the data before any folder is made
    model = build_model(config, dm)
    model.domain = fit_domain(dm).to_dict()  # applicability domain of the training rows, saved with the model
    kind = config["model"]["kind"]
    if forward is None:  # the trust checks' forward model, from the training rows
        forward = run_forward(config, dm, verbose)

    worker_dir = os.environ.get(RUN_DIR_ENV)
    fresh = False
    if resume is not None:
        run_dir = resume
    elif worker_dir and os.environ.get("LOCAL_RANK", "0") != "0":
        run_dir = Path(worker_dir)
    else:
        try:
            run_dir = new_run_dir(config["output"]["root"], config["name"])
        except OSError as exc:
            raise PolyinvError(f"output.root {config['output']['root']}: cannot create the run folder ({exc.strerror or exc})") from exc
        os.environ[RUN_DIR_ENV] = str(run_dir)
        fresh = True
    try:
        return _train(config, dm, model, kind, run_dir, resume, verbose, forward)
    except BaseException:
        if fresh:
            _discard_unfinished(run_dir)
        raise


def run_forward(config: dict, dm: PolyDataModule, verbose: bool) -> tuple:
    """(forward model of the trust checks or None, what it is or why there is none), from the run's ``trust``
    settings and its non-test rows (docs/forward-model.md)."""
    from polyinv.sim.calibrate import forward_for_training

    trust = config.get("trust") or {}
    rows = dm.frame.iloc[np.concatenate([dm.train_idx, dm.val_idx])]
    try:
        forward = forward_for_training(trust.get("forward", "auto"), trust.get("calibration"), dm.path, rows,
                                       log=print if verbose else None, progress=verbose)
        if verbose and forward[0] is not None:
            print(f"forward model of the trust checks: {forward[1]}")
        return forward
    except ValueError as exc:
        if trust.get("calibration"):
            raise PolyinvError(f"trust.calibration {exc}") from None
        if verbose:
            print(f"warning: forward checks off (domain consistency, --verify): {exc}")
        return None, str(exc)


def forward_info(domain: dict | None) -> dict:
    """What run.json says about the trust checks' forward model."""
    from polyinv.trust.domain import ApplicabilityDomain

    if not domain:
        return {"forward_model": None}
    dom = ApplicabilityDomain.from_dict(domain)
    fm = dom.forward_model()
    refine = {"refine_check": dom.refine} if dom.refine else {}
    if fm is None:
        return {"forward_model": None, "forward_off": dom.forward_off, **refine}
    return {"forward_model": fm.describe(), "forward_fit": fm.fit, **refine}


def refine_rows(dm: PolyDataModule, kind: str) -> pd.DataFrame:
    """The held-out rows of a run's refine check: the non-test rows for models that answer them by leave-one-out
    (or judge themselves on them: forests), a network's validation rows (the non-test rows below 10 of them)."""
    fit_rows = dm.frame.iloc[np.concatenate([dm.train_idx, dm.val_idx])]
    if kind in CLASSICAL or kind == AutoModel.kind or len(dm.val_idx) < 10:
        return fit_rows
    return dm.val_frame


def refine_check(config: dict, model, frame: pd.DataFrame, forward: tuple, verbose: bool) -> dict | None:
    """The model's stored domain with the refine check (polyinv.refine.fit_check) on held-out ``frame`` rows."""
    from polyinv.refine import fit_check

    trust = config.get("trust") or {}
    return fit_check(model, getattr(model, "domain", None), frame, forward[0], trust.get("refine", "auto"),
                     int(trust.get("refine_rows", 60)), seed=int(config["seed"]), log=print if verbose else None)


def _discard_unfinished(run_dir: Path) -> None:
    """Remove a run folder this run created if it failed before saving any model (nothing to resume)."""
    if not any((run_dir / name).exists() for name in ("best.ckpt", "last.ckpt", MODEL_FILE, auto.MANIFEST)):
        shutil.rmtree(run_dir, ignore_errors=True)


def _train(config: dict, dm: PolyDataModule, model, kind: str, run_dir: Path, resume: Path | None, verbose: bool,
           forward: tuple = (None, "")) -> RunResult | None:
    """Train and evaluate into ``run_dir`` (see :func:`run`)."""
    is_worker = os.environ.get("LOCAL_RANK", "0") != "0"
    if not is_worker and resume is None:  # a resumed run rewrites its config only once it has trained
        _write_text(run_dir / "config.yaml", dump(config))

    if kind == AutoModel.kind:
        return _train_auto(config, dm, model, run_dir, verbose, forward)
    if kind in CLASSICAL:
        started = time.perf_counter()
        fit_rows = np.concatenate([dm.train_idx, dm.val_idx])  # no early stopping: classical models use train + val
        frame = dm.frame.iloc[fit_rows]
        model.fit(frame[list(dm.mmd_columns)].to_numpy(), frame[list(dm.side_columns)].to_numpy(), frame[list(dm.target_columns)].to_numpy())
        seconds = time.perf_counter() - started
        model.domain = fit_model_consistency(model, model.domain, frame, *forward)  # forward-consistency thresholds
        model.domain = refine_check(config, model, frame, forward, verbose)
        model.save(run_dir / MODEL_FILE)
        checks = getattr(model, "fit_checks", None)
        if verbose:
            for line in fit_check_lines(checks):
                print(line)
        extra = {"best_params": getattr(model, "best_params", None), "fit_checks": checks}
        metrics = finish_run(config, run_dir, model, dm, _tb_logger(run_dir), seconds, extra)
        if verbose:
            print(format_table(metrics, title=f"test split ({len(dm.test_idx)} rows), physical units"))
        return RunResult(run_dir, metrics, seconds, model)

    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    model.fit_statistics(dm.scalers(), dm.train_frame)
    ckpt_cfg = config["checkpoint"]
    # saving a checkpoint every epoch would cost more than a full-batch epoch: save every n-th (and the final) one
    every_n_epochs = int(ckpt_cfg.get("every_n_epochs") or 1)
    max_epochs = config["trainer"].get("max_epochs")
    if isinstance(max_epochs, int) and max_epochs > 0 and max_epochs % every_n_epochs:
        every_n_epochs = _largest_divisor_at_most(max_epochs, every_n_epochs)  # so the final epoch is saved
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir, filename="best", monitor=ckpt_cfg["monitor"], mode=ckpt_cfg["mode"],
            save_top_k=1, save_last=True, enable_version_counter=False, auto_insert_metric_name=False,
            every_n_epochs=every_n_epochs,
        ),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if config["early_stopping"]["patience"] is not None:
        es = config["early_stopping"]
        callbacks.append(EarlyStopping(monitor=es["monitor"], mode=es["mode"], patience=es["patience"], min_delta=es["min_delta"]))
    logger = _tb_logger(run_dir)
    trainer_cfg = dict(config["trainer"])
    if trainer_cfg.get("enable_progress_bar") is not False:  # one bar over the epochs instead of Lightning's
        trainer_cfg["enable_progress_bar"] = False
        steps = "L-BFGS steps" if model.hparams.optimizer == "lbfgs" else "epochs"
        callbacks.append(EpochProgress(f"training {config['name']} ({steps})"))
    try:
        trainer = L.Trainer(default_root_dir=str(run_dir), logger=logger, callbacks=callbacks, **trainer_cfg)
    except (ValueError, TypeError, MisconfigurationException) as exc:  # a bad trainer.* value: one line
        raise PolyinvError(f"trainer settings: {str(exc).strip().splitlines()[0]}") from exc
    ckpt_path = None if resume is None else check_resumable(resume, trainer_cfg.get("max_epochs"))
    started = time.perf_counter()
    try:
        with lbfgs_numerics(model.hparams.optimizer == "lbfgs"):
            trainer.fit(model, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except SIGTERMException as exc:  # Lightning ends a SIGTERM'd fit in a code-less SystemExit (exit status 0)
        trainer.save_checkpoint(run_dir / "last.ckpt")
        raise RunInterrupted(signal.SIGTERM, f"{run_dir}: training stopped by SIGTERM after {trainer.current_epoch} "
                                             f"epochs; continue with: polyinv fit --resume {run_dir}") from exc
    seconds = time.perf_counter() - started
    if trainer.global_rank != 0:
        return None
    if resume is not None:
        _write_text(run_dir / "config.yaml", dump(config))
    best_path = run_dir / "best.ckpt"
    best = type(model).load_from_checkpoint(best_path, map_location="cpu", weights_only=True) if best_path.exists() else model.cpu()
    best.eval()
    # forward-consistency thresholds of the applicability domain need the trained model: fit them on the
    # non-test rows (training + validation) and store them in both checkpoints
    fit_rows = dm.frame.iloc[np.concatenate([dm.train_idx, dm.val_idx])]
    best.domain = fit_model_consistency(best, getattr(best, "domain", None) or model.domain, fit_rows, *forward)
    best.domain = refine_check(config, best, refine_rows(dm, kind), forward, verbose)
    store_domain(run_dir / "best.ckpt", best.domain, drop_training_state=True)  # the model file: weights only
    store_domain(run_dir / "last.ckpt", best.domain)  # keeps the optimizer state: --resume starts from it
    checks = training_fit_check(best, dm.train_frame)
    if verbose:
        for line in checks["warnings"]:
            print(line)
    extra = {"epochs": int(trainer.current_epoch), "best_epoch": _best_epoch(trainer), "device": str(trainer.strategy.root_device),
             "fit_checks": checks}
    metrics = finish_run(config, run_dir, best, dm, logger, seconds, extra)
    if verbose:
        print(format_table(metrics, title=f"test split ({len(dm.test_idx)} rows), physical units, best.ckpt"))
    return RunResult(run_dir, metrics, seconds, best)


def _train_auto(config: dict, dm: PolyDataModule, model: AutoModel, run_dir: Path, verbose: bool,
                forward: tuple = (None, "")) -> RunResult:
    """The per-target choice by cross-validation on the training rows, saved as one loadable folder."""
    started = time.perf_counter()
    fit_rows = np.concatenate([dm.train_idx, dm.val_idx])
    model.fit(config, dm, fit_rows, log=print if verbose else None)
    seconds = time.perf_counter() - started
    model.domain = fit_model_consistency(model, model.domain, dm.frame.iloc[fit_rows], *forward)  # held-out recipes
    model.domain = refine_check(config, model, dm.frame.iloc[fit_rows], forward, verbose)
    model.save(run_dir)
    logger = _tb_logger(run_dir)
    selection = model.selection
    for name, scores in selection["heldout_r2"].items():
        for target, r2 in scores.items():
            logger.experiment.add_scalar(f"auto/heldout_r2/{target}/{name}", r2)
    logger.experiment.add_text("auto/choice", ", ".join(f"{t}: {n}" for t, n in selection["choice"].items()))
    logger.experiment.add_scalar("auto/seconds", selection["seconds_total"])
    metrics = finish_run(config, run_dir, model, dm, logger, seconds, {"selection": selection})
    if verbose:
        print(format_table(metrics, title=f"test split ({len(dm.test_idx)} rows), physical units, {auto.MANIFEST}"))
    return RunResult(run_dir, metrics, seconds, model)


#: a network whose R² on its own training rows stays below this for a target has not fitted them
TRAIN_FIT_R2 = 0.9


def training_fit_check(model, train: pd.DataFrame) -> dict:
    """The network's R² per target on its own training rows, and a warning line for each below TRAIN_FIT_R2
    (a fit that diverged or stalled: its test figures cannot be better)."""
    targets = list(model.target_names)
    scores = evaluate(train[targets].to_numpy(np.float64), predict_frame(model, train), targets)
    r2 = {t: scores["targets"][t]["r2"] for t in targets}
    warnings = [f"training-fit check: {t} R² on the training rows {v:.3f} (below {TRAIN_FIT_R2}): the network did not fit "
                "its own rows; try more steps (trainer.max_epochs) or another seed" for t, v in r2.items() if not v >= TRAIN_FIT_R2]
    return {"train_r2": r2, "warnings": warnings}


def fit_check_lines(checks: dict | None) -> list[str]:
    """One line per target the GP's self-check refitted (run.json keeps every target's figures)."""
    lines = []
    for target, check in (checks or {}).items():
        if "refit_loo_r2" in check:
            lines.append(f"GP self-check: {target} leave-one-out R² {check['loo_r2']:.3f} (shortest length scale "
                         f"{check['length_scales_min']:.3g}); refitted with bounded length scales: {check['refit_loo_r2']:.3f}; "
                         f"kept the {'refit' if check['kept'] == 'refit' else 'first fit'}")
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
    import torch

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


def check_resumable(run_dir: Path, max_epochs: int | None) -> Path:
    """The run's last.ckpt, refused with one line (before anything is written) if it cannot continue."""
    import torch

    path = run_dir / "last.ckpt"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        done = int(checkpoint["epoch"]) + 1
    except Exception as exc:
        raise PolyinvError(f"{path}: cannot resume from it ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from exc
    if max_epochs is not None and max_epochs <= done:
        raise PolyinvError(f"{run_dir}: the run has trained {done} epochs; give --trainer.max_epochs above {done} to continue")
    return path


def store_domain(path: Path, domain: dict | None, drop_training_state: bool = False) -> None:
    """Replace the applicability domain stored in a Lightning checkpoint (atomic rewrite).

    ``drop_training_state`` also removes the optimizer and scheduler states, which inference never reads
    (L-BFGS keeps 2 × 50 weight-sized vectors: about 100× the weights); resuming reads last.ckpt."""
    import torch

    if (domain is None and not drop_training_state) or not path.exists():
        return
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if domain is not None:
        checkpoint["polyinv_domain"] = domain
    if drop_training_state:
        checkpoint.pop("optimizer_states", None)
        checkpoint.pop("lr_schedulers", None)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _largest_divisor_at_most(n: int, k: int) -> int:
    """Largest divisor of ``n`` not above ``k`` (so that saving every that many epochs includes the last)."""
    return max(d for d in range(1, min(n, k) + 1) if n % d == 0)


def _best_epoch(trainer) -> int | None:
    cb = trainer.checkpoint_callback
    if cb is None or not cb.best_model_path:
        return None
    try:
        import torch

        return int(torch.load(cb.best_model_path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        return None


def fit_ensemble(config: dict, members: int, level: float = 0.9, verbose: bool = False):
    """Train ``members`` copies of one network config that differ only in their initialisation seed
    (``model_seed`` = seed + i; the split keeps ``seed``), calibrate the interval on the validation split
    and save one loadable folder ``<root>/<name>_ensemble/version_K``; returns (folder, test metrics)."""
    from polyinv.models import EnsembleModel, load_model

    if members < 2:
        raise PolyinvError(f"--members must be at least 2, got {members}")
    if config["model"]["kind"] not in NETWORKS:
        raise PolyinvError(f"ensembles are built from networks ({', '.join(NETWORKS)}), not {config['model']['kind']!r}")
    if not config["data"]["val_fraction"]:
        raise PolyinvError("an ensemble calibrates its intervals on the validation split; set data.val_fraction > 0 "
                           "(e.g. --data.val_fraction 0.1)")
    if not 0 < level < 1:
        raise PolyinvError(f"--level must lie between 0 and 1, got {level}")
    base_seed = config["seed"] if config.get("model_seed") is None else config["model_seed"]
    dm = build_datamodule(config)
    dm.setup("fit")
    build_model(config, dm)  # bad data or model settings fail here, before any folder is made
    forward = run_forward(config, dm, verbose)  # one forward model for every member (same training rows)
    folder = new_run_dir(config["output"]["root"], f"{config['name']}_ensemble")
    files, runs = [], []
    for i in range(members):
        result = run(dict(config, model_seed=base_seed + i, name=f"{config['name']}_ensemble_member"), verbose=verbose,
                     forward=forward)
        if result is None:  # DDP worker
            return None, None
        name = f"member_{i:02d}.ckpt"
        shutil.copyfile(result.run_dir / "best.ckpt", folder / name)
        files.append(name)
        runs.append(str(result.run_dir))
    model = EnsembleModel([load_model(folder / f) for f in files])

    def arrays(frame):
        return tuple(frame[list(cols)].to_numpy(np.float64) for cols in (dm.mmd_columns, dm.side_columns, dm.target_columns))

    model.calibrate(*arrays(dm.val_frame))
    fit_rows = dm.frame.iloc[np.concatenate([dm.train_idx, dm.val_idx])]
    model.domain = fit_model_consistency(model, model.domain, fit_rows, *forward)  # thresholds of the ensemble's own recipes
    model.domain = refine_check(config, model, dm.val_frame, forward, verbose)
    mmd, side, y = arrays(dm.test_frame)
    mean, low, high = model.predict_interval(mmd, side, level)
    metrics = evaluate(y, mean, list(dm.target_columns))
    coverage = ((y >= low) & (y <= high)).mean(axis=0)
    metrics["interval"] = {"level": level, "coverage": dict(zip(dm.target_columns, coverage.tolist(), strict=True))}
    write_json(metrics, folder / "metrics.json")
    model.save(folder, files, {"member_runs": runs, "level": level, "test_coverage": metrics["interval"]["coverage"]})
    if verbose:
        print(format_table(metrics, title=f"ensemble of {members}, test split ({len(y)} rows)"))
        print(f"coverage of the {level:g} interval: " + ", ".join(f"{t} {c:.3f}" for t, c in zip(dm.target_columns, coverage, strict=True)))
    return folder, metrics
