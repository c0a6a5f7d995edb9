"""A training run, whatever the model: ``polyinv fit`` and ``polyinv ensemble`` call this module.

The protocol: build data and model from a resolved config (bad settings fail before any folder is made),
choose the trust checks' forward model from the non-test rows, train the model by its family
(:mod:`polyinv.train`, or :mod:`polyinv.select` for ``auto``), fit the domain's consistency thresholds
and the refine check, save the model, then evaluate on the test split through the one harness and write
every run artefact: the resolved config, the model file(s), ``metrics.json``, ``predictions_test.csv``,
``parity.png``, ``run.json`` and TensorBoard event files in ``<output.root>/<name>/version_N``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd

from polyinv.atomic import atomic_path
from polyinv.config import dump
from polyinv.data.module import PolyDataModule
from polyinv.errors import PolyinvError
from polyinv.inference import predict_frame
from polyinv.log import LOG, say
from polyinv.metrics import evaluate, format_table, write_json
from polyinv.models import MODEL_FILE, MODELS, AutoModel, EnsembleModel, InverseModel, auto, load_model
from polyinv.plots import parity_figure, write_figure
from polyinv.progress import quiet_libraries
from polyinv.refine import check_refinement
from polyinv.runs import (
    best_epoch,
    discard_unfinished,
    flat,
    is_worker,
    new_run_dir,
    run_folder,
    store_domain,
    tb_logger,
    write_text,
)
from polyinv.select import check_candidates, select
from polyinv.sim.calibration_file import forward_for_training
from polyinv.sim.forward import ForwardChoice
from polyinv.train import (
    build_datamodule,
    build_model,
    fit_classical,
    fit_network,
    fit_rows,
    self_check_lines,
    training_axis,
    training_fit_check,
)
from polyinv.trust.domain import ApplicabilityDomain, fit_domain, fit_model_consistency

#: files whose presence means a run saved a model (a failed run without one leaves no folder behind)
MODEL_FILES = ("best.ckpt", "last.ckpt", MODEL_FILE, auto.MANIFEST)


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    train_seconds: float
    model: InverseModel
    title: str = ""  # what the metric table shows: the split and the model file

    def table(self) -> str:
        """The test metrics as the table ``polyinv fit`` prints."""
        return format_table(self.metrics, title=self.title)


@dataclass(frozen=True)
class _Run:
    """What every family's fit needs besides its model: the run's config, data, folder and settings."""

    config: dict
    dm: PolyDataModule
    run_dir: Path
    resume: Path | None
    verbose: bool
    forward: ForwardChoice
    progress: bool


def finish_run(
    config: dict,
    run_dir: Path,
    model: InverseModel,
    dm: PolyDataModule,
    logger,
    train_seconds: float,
    extra: dict,
) -> dict:
    """Evaluate on the test split through the one harness and write every run artefact."""
    test = dm.test_frame
    targets = list(dm.target_columns)
    y_true = test[targets].to_numpy(np.float64)
    y_pred = predict_frame(model, test)
    metrics = evaluate(y_true, y_pred, targets, dm.system)
    names = [dm.system.column(t) for t in targets]  # the file's own column names
    write_json(metrics, run_dir / "metrics.json")
    preds = pd.DataFrame({"row": dm.test_idx})
    for j, t in enumerate(names):
        preds[f"{t}_true"] = y_true[:, j]
        preds[f"{t}_pred"] = y_pred[:, j]
    with atomic_path(run_dir / "predictions_test.csv") as tmp:
        preds.to_csv(tmp, index=False)
    write_figure(
        parity_figure(y_true, y_pred, names, title=f"{config['name']} — test split"), run_dir / "parity.png"
    )
    if logger is not None:
        for j, t in enumerate(names):
            single = parity_figure(y_true[:, [j]], y_pred[:, [j]], [t])
            logger.experiment.add_figure(f"parity/{t}", single, close=True)
        hp_metrics = {
            "hp/test_r2_global": metrics["global"]["r2"],
            "hp/test_mse_global": metrics["global"]["mse"],
        }
        hp_metrics.update({f"hp/test_r2/{t}": m["r2"] for t, m in metrics["targets"].items()})
        logger.log_hyperparams(flat(config), metrics=hp_metrics)
        logger.finalize("success")
    info = {
        "name": config["name"],
        "system": dm.system.name,
        "protocol": dm.protocol,
        "kind": config["model"].get("kind"),
        "seed": config["seed"],
        "train_seconds": train_seconds,
        "rows": {"train": len(dm.train_idx), "val": len(dm.val_idx), "test": len(dm.test_idx)},
        "data": str(dm.path),
        **forward_info(model.domain),
        **extra,
    }
    write_json(info, run_dir / "run.json")
    return metrics


def run(
    config: dict,
    resume: Path | None = None,
    verbose: bool = True,
    forward: ForwardChoice | None = None,
    progress: bool | None = None,
) -> RunResult | None:
    """Train and evaluate one configured model. Returns None in DDP worker processes (rank > 0).

    ``forward``: the trust checks' forward model when the caller already has it (an ensemble's members);
    ``progress`` False: no progress bars whatever ``trainer.enable_progress_bar`` says (``-q``; the saved
    config keeps the user's setting)."""
    if progress is None:
        progress = bool(config["trainer"].get("enable_progress_bar", True))
    quiet_libraries()
    model_seed = config["seed"] if config.get("model_seed") is None else config["model_seed"]
    L.seed_everything(model_seed, workers=True, verbose=False)  # the split keeps config["seed"]
    dm = build_datamodule(config)
    dm.setup("fit")  # validates the data before any folder is made
    model = build_model(config, dm, progress=progress)
    if model.family == "auto":
        check_candidates(config)
    model.domain = fit_domain(dm).to_dict()  # applicability domain of the training rows, saved with the model
    if forward is None:  # the trust checks' forward model, from the training rows
        forward = run_forward(config, dm, verbose)
    run_dir, fresh = run_folder(config["output"]["root"], config["name"], resume)
    try:
        if not is_worker() and resume is None:  # a resumed run rewrites its config only once it has trained
            write_text(run_dir / "config.yaml", dump(config))
        fitters = {"network": _fit_network, "classical": _fit_classical, "auto": _fit_auto}
        return fitters[model.family](_Run(config, dm, run_dir, resume, verbose, forward, progress), model)
    except BaseException:
        if fresh:
            discard_unfinished(run_dir, MODEL_FILES)
        raise


def run_forward(config: dict, dm: PolyDataModule, verbose: bool) -> ForwardChoice:
    """The forward model of the trust checks (or None and why there is none), from the run's ``trust``
    settings and its non-test rows (docs/forward-model.md)."""
    trust = config.get("trust") or {}
    try:
        forward = forward_for_training(
            trust.get("forward", "auto"),
            trust.get("calibration"),
            dm.path,
            fit_rows(dm),
            log=say if verbose else None,
            progress=verbose,
            system=dm.system.key,
            protocol=dm.protocol,
            axis=training_axis(dm) if dm.axis is not None else None,  # the metadata's is file_axis's
        )
        if verbose and forward.model is not None:
            LOG.info(f"forward model of the trust checks: {forward.how}")
        return forward
    except ValueError as exc:
        if trust.get("calibration"):
            raise PolyinvError(f"trust.calibration {exc}") from None
        if verbose:
            LOG.warning(f"forward checks off (domain consistency, --verify): {exc}")
        return ForwardChoice(None, str(exc))


def forward_info(domain: dict | None) -> dict:
    """What run.json says about the trust checks' forward model."""
    if not domain:
        return {"forward_model": None}
    dom = ApplicabilityDomain.from_dict(domain)
    fm = dom.forward_model()
    refine = {"refine_check": dom.refine} if dom.refine else {}
    if fm is None:
        return {"forward_model": None, "forward_off": dom.forward_off, **refine}
    return {"forward_model": fm.describe(), "forward_fit": fm.fit, **refine}


def refine_rows(dm: PolyDataModule, model: InverseModel) -> pd.DataFrame:
    """The held-out rows of a run's refine check: the non-test rows for models that answer them by leave-one-out
    (or judge themselves on them: forests), a network's validation rows (the non-test rows below 10 of them)."""
    if model.family != "network" or len(dm.val_idx) < 10:
        return fit_rows(dm)
    return dm.val_frame


def refine_check(
    config: dict, model: InverseModel, frame: pd.DataFrame, forward: ForwardChoice, verbose: bool
) -> dict | None:
    """The model's stored domain with the refine check (polyinv.refine.check.check_refinement) on held-out ``frame`` rows."""
    trust = config.get("trust") or {}
    return check_refinement(
        model,
        model.domain,
        frame,
        forward.model,
        trust.get("refine", "auto"),
        int(trust.get("refine_rows", 60)),
        seed=int(config["seed"]),
        log=say if verbose else None,
    )


def _trust_checks(ctx: _Run, model: InverseModel) -> None:
    """The domain's forward-consistency thresholds (on the non-test rows, which need the trained model) and
    the refine check, stored in ``model.domain``."""
    started = time.perf_counter()
    model.domain = fit_model_consistency(model, model.domain, fit_rows(ctx.dm), *ctx.forward)
    model.domain = refine_check(ctx.config, model, refine_rows(ctx.dm, model), ctx.forward, ctx.verbose)
    if ctx.verbose:
        say(f"trust checks (forward consistency, refine check): {time.perf_counter() - started:.0f} s")


def _fit_classical(ctx: _Run, model: InverseModel) -> RunResult:
    seconds = fit_classical(model, ctx.dm)
    _trust_checks(ctx, model)
    model.save(ctx.run_dir / MODEL_FILE)
    report = model.fit_report()
    if ctx.verbose:
        for line in self_check_lines(report.get("fit_checks")):
            LOG.info(line)
    metrics = finish_run(ctx.config, ctx.run_dir, model, ctx.dm, tb_logger(ctx.run_dir), seconds, report)
    return RunResult(
        ctx.run_dir, metrics, seconds, model, f"test split ({len(ctx.dm.test_idx)} rows), physical units"
    )


def _fit_network(ctx: _Run, model: InverseModel) -> RunResult | None:
    fitted = fit_network(ctx.config, ctx.dm, model, ctx.run_dir, ctx.resume, ctx.progress)
    if fitted is None:  # a DDP worker
        return None
    best, seconds, trainer, logger = fitted
    if ctx.resume is not None:
        write_text(ctx.run_dir / "config.yaml", dump(ctx.config))
    best.domain = best.domain or model.domain
    _trust_checks(ctx, best)
    store_domain(
        ctx.run_dir / "best.ckpt", best.domain, drop_training_state=True
    )  # the model file: weights only
    store_domain(ctx.run_dir / "last.ckpt", best.domain)  # keeps the optimizer state: --resume starts from it
    checks = training_fit_check(best, ctx.dm.train_frame)
    if ctx.verbose:
        for line in checks["warnings"]:
            LOG.warning(line)
    extra = {
        "epochs": int(trainer.current_epoch),
        "best_epoch": best_epoch(trainer),
        "device": str(trainer.strategy.root_device),
        "fit_checks": checks,
    }
    metrics = finish_run(ctx.config, ctx.run_dir, best, ctx.dm, logger, seconds, extra)
    return RunResult(
        ctx.run_dir,
        metrics,
        seconds,
        best,
        f"test split ({len(ctx.dm.test_idx)} rows), physical units, best.ckpt",
    )


def _fit_auto(ctx: _Run, model: AutoModel) -> RunResult:
    """The per-target choice by cross-validation on the training rows, saved as one loadable folder."""
    started = time.perf_counter()
    select(
        model,
        ctx.config,
        ctx.dm,
        np.concatenate([ctx.dm.train_idx, ctx.dm.val_idx]),
        log=say if ctx.verbose else None,
    )
    seconds = time.perf_counter() - started
    _trust_checks(ctx, model)  # consistency on the held-out recipes
    model.save(ctx.run_dir)
    logger = tb_logger(ctx.run_dir)
    selection = model.selection
    for name, scores in selection["heldout_r2"].items():
        for target, r2 in scores.items():
            logger.experiment.add_scalar(f"auto/heldout_r2/{target}/{name}", r2)
    logger.experiment.add_text("auto/choice", ", ".join(f"{t}: {n}" for t, n in selection["choice"].items()))
    logger.experiment.add_scalar("auto/seconds", selection["seconds_total"])
    metrics = finish_run(ctx.config, ctx.run_dir, model, ctx.dm, logger, seconds, {"selection": selection})
    return RunResult(
        ctx.run_dir,
        metrics,
        seconds,
        model,
        f"test split ({len(ctx.dm.test_idx)} rows), physical units, {auto.MANIFEST}",
    )


def fit_ensemble(
    config: dict, members: int, level: float = 0.9, verbose: bool = False, progress: bool | None = None
) -> RunResult | None:
    """Train ``members`` copies of one network config that differ only in their initialisation seed
    (``model_seed`` = seed + i; the split keeps ``seed``), calibrate the interval on the validation split
    and save one loadable folder ``<root>/<name>_ensemble/version_K``; returns its RunResult (None in a DDP
    worker)."""
    if members < 2:
        raise PolyinvError(f"--members must be at least 2, got {members}")
    if MODELS[config["model"]["kind"]].family != "network":
        networks = ", ".join(k for k, c in MODELS.items() if c.family == "network")
        raise PolyinvError(f"ensembles are built from networks ({networks}), not {config['model']['kind']!r}")
    if not config["data"]["val_fraction"]:
        raise PolyinvError(
            "an ensemble calibrates its intervals on the validation split; set data.val_fraction > 0 "
            "(e.g. --data.val_fraction 0.1)"
        )
    if not 0 < level < 1:
        raise PolyinvError(f"--level must lie between 0 and 1, got {level}")
    base_seed = config["seed"] if config.get("model_seed") is None else config["model_seed"]
    dm = build_datamodule(config)
    dm.setup("fit")
    build_model(config, dm)  # bad data or model settings fail here, before any folder is made
    forward = run_forward(config, dm, verbose)  # one forward model for every member (same training rows)
    folder = new_run_dir(config["output"]["root"], f"{config['name']}_ensemble")
    files, runs, seconds = [], [], 0.0
    for i in range(members):
        result = run(
            dict(config, model_seed=base_seed + i, name=f"{config['name']}_ensemble_member"),
            verbose=verbose,
            forward=forward,
            progress=progress,
        )
        if verbose and result is not None:
            LOG.info(f"member {i}: " + result.table())
        if result is None:  # DDP worker
            return None
        name = f"member_{i:02d}.ckpt"
        shutil.copyfile(result.run_dir / "best.ckpt", folder / name)
        files.append(name)
        runs.append(str(result.run_dir))
        seconds += result.train_seconds
    model = EnsembleModel([load_model(folder / f) for f in files])

    def arrays(frame):
        return tuple(
            frame[list(cols)].to_numpy(np.float64)
            for cols in (dm.mmd_columns, dm.side_columns, dm.target_columns)
        )

    model.calibrate(*arrays(dm.val_frame))
    model.domain = fit_model_consistency(
        model, model.domain, fit_rows(dm), *forward
    )  # thresholds of the ensemble's own recipes
    model.domain = refine_check(config, model, dm.val_frame, forward, verbose)
    mmd, side, y = arrays(dm.test_frame)
    mean, low, high = model.predict_interval(mmd, side, level)
    metrics = evaluate(y, mean, list(dm.target_columns), dm.system)
    coverage = ((y >= low) & (y <= high)).mean(axis=0)
    metrics["interval"] = {
        "level": level,
        "coverage": dict(zip(map(dm.system.column, dm.target_columns), coverage.tolist(), strict=True)),
    }
    write_json(metrics, folder / "metrics.json")
    model.save(
        folder, files, {"member_runs": runs, "level": level, "test_coverage": metrics["interval"]["coverage"]}
    )
    title = f"ensemble of {members}, test split ({len(y)} rows)"
    return RunResult(folder, metrics, seconds, model, title)
