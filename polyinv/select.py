"""Model selection per target (``model.kind: auto``): candidates compete on the same held-out rows; the
winners become an :class:`~polyinv.models.auto.AutoModel`.

Candidates are configs (shipped ones by name, e.g. ``gp.yaml``): their ``model`` section on the run's data
and split. Every candidate is scored on the same K folds of the *training* rows (the test split is never
seen), so each held-out prediction comes from a model that saw the same (K−1)/K of the rows: the GPs' folds
exactly and without refits (their kernel fixed at the fit on every training row), the others by refitting
per fold. Scores go through the one evaluation harness (:func:`polyinv.metrics.evaluate`); every target takes
the candidate with the best held-out R².

Spending rule: classical candidates first, networks after, each in the order listed. A candidate after the
first runs only while the ones before it leave at least ``min_gain`` of global held-out R² to gain (the
mean over targets of 1 − the best R² so far: no candidate can add more). A network also needs its work —
rows × epochs × its kind's cost per row-epoch, over its K folds and the final fit — to fit in what is left
of ``budget`` (MLP row-epochs). Work is counted, not seconds, so the same file and seed give the same model
on an idle and on a busy machine; seconds are printed and recorded beside it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import KFold

from polyinv.config import find_config, parse
from polyinv.data.module import PolyDataModule
from polyinv.errors import PolyinvError
from polyinv.inference import predict_frame
from polyinv.log import say
from polyinv.metrics import evaluate
from polyinv.models import MODELS, AutoModel
from polyinv.models.auto import DEFAULT_CANDIDATES
from polyinv.models.base import InverseModel
from polyinv.models.network import MLP_SECONDS_PER_ROW_EPOCH
from polyinv.train import build_model, train_network


def candidate_configs(candidates: Sequence[str], run_config: dict) -> dict[str, dict]:
    """Each candidate config resolved (defaults included), with the run's seed, data and output settings."""
    out = {}
    for candidate in candidates:
        path = find_config(candidate)
        config = parse(["--config", str(path)])[0]
        if MODELS[config["model"]["kind"]].family == "auto":
            raise PolyinvError(f"model.candidates: {candidate} is itself an auto config")
        config.update(
            seed=run_config["seed"], model_seed=run_config.get("model_seed"), data=run_config["data"]
        )
        name = path.stem
        if name in out:
            raise PolyinvError(f"model.candidates names {name!r} twice")
        out[name] = config
    return out


def check_candidates(config: dict) -> None:
    """Bad candidate names fail here, before any run folder is made."""
    candidate_configs(config["model"].get("candidates", DEFAULT_CANDIDATES), config)


def _is_network(config: dict) -> bool:
    return MODELS[config["model"]["kind"]].family == "network"


def network_work(config: dict, n_rows: int, folds: int) -> float:
    """A network candidate's work in MLP row-epochs: its K fold fits on (K−1)/K of ``n_rows`` and the final
    fit on all of them, each rows × ``trainer.max_epochs`` × its kind's cost per row-epoch."""
    weight = MODELS[config["model"]["kind"]].work_per_row_epoch
    rows = (folds - 1) * n_rows + n_rows  # K folds of (K-1)/K rows each, then every row once
    return float(rows * config["trainer"]["max_epochs"] * weight)


def _arrays(frame, model: InverseModel) -> tuple[np.ndarray, ...]:
    return tuple(
        frame[list(c)].to_numpy(np.float64) for c in (model.mmd_names, model.side_names, model.target_names)
    )


def _gain_left(scores: dict[str, dict[str, float]], targets: list[str]) -> float:
    """The most global held-out R² any further candidate could add: mean over targets of 1 − best so far."""
    best = [max(s[t] for s in scores.values()) for t in targets]
    return float(np.mean([1.0 - min(b, 1.0) for b in best]))


def select(
    model: AutoModel,
    config: dict,
    dm: PolyDataModule,
    rows: np.ndarray,
    log: Callable[[str], None] | None = say,
) -> AutoModel:
    """Score every candidate on the same K folds of ``rows`` (training rows of ``dm``) under the spending rule,
    choose per target, fit the chosen networks on all of ``rows`` and hand the result to ``model``; ``log``
    gets a line per step."""
    hp = model.hparams
    targets = model.target_names
    started = time.perf_counter()
    say = log or (lambda _line: None)
    frame = dm.frame.iloc[rows]
    y = frame[targets].to_numpy(np.float64)
    folds = list(KFold(hp["folds"], shuffle=True, random_state=hp["random_state"]).split(rows))
    configs = candidate_configs(hp["candidates"], config)
    scores, heldout, seconds, work, how, skipped, fitted, trainers = {}, {}, {}, {}, {}, {}, {}, {}
    used = 0.0
    for name, cfg in sorted(configs.items(), key=lambda item: _is_network(item[1])):
        if scores and (gain := _gain_left(scores, targets)) < hp["min_gain"]:
            skipped[name] = (
                f"the candidates before it leave at most {gain:.4f} of global held-out R² to gain "
                f"(below model.min_gain {hp['min_gain']:g})"
            )
            say(f"auto: {name} skipped: {skipped[name]}")
            continue
        if _is_network(cfg):
            need = network_work(cfg, len(rows), hp["folds"])
            if used + need > hp["budget"]:
                skipped[name] = (
                    f"its {hp['folds']} folds and final fit need {need:.3g} MLP row-epochs (about "
                    f"{need * MLP_SECONDS_PER_ROW_EPOCH / 60:.0f} min on the reference machine), more than the "
                    f"{hp['budget'] - used:.3g} left of model.budget {hp['budget']:.3g}"
                )
                say(f"auto: {name} skipped: {skipped[name]}")
                continue
            used += need
            work[name] = need
        tick = time.perf_counter()
        if _is_network(cfg):
            pred, how[name] = (
                _kfold_network(name, cfg, dm, rows, folds, hp, targets, say),
                "refitted per fold",
            )
        else:
            member = build_model(cfg, dm, progress=False)
            member.fit(*_arrays(frame, member))
            if member.has_fold_cv:
                pred = member.loo_predict_arrays(*_arrays(frame, member), folds=[test for _, test in folds])
                how[name] = "exact folds, kernel fixed"
            else:
                pred, how[name] = _kfold_classical(cfg, dm, rows, folds, targets), "refitted per fold"
            fitted[name] = member
        seconds[name] = time.perf_counter() - tick
        metrics = evaluate(y, pred, targets)
        scores[name] = {t: metrics["targets"][t]["r2"] for t in targets}
        heldout[name] = pred
        say(
            f"auto: {name} {hp['folds']}-fold held-out R² "
            + ", ".join(f"{dm.system.column(t)} {r:.4f}" for t, r in scores[name].items())
            + f" ({seconds[name]:.0f} s)"
        )
    choice = {t: max(scores, key=lambda n, t=t: scores[n][t]) for t in targets}
    for name in dict.fromkeys(choice.values()):
        if name not in fitted:
            tick = time.perf_counter()
            fitted[name], trainers[name] = train_network(
                configs[name], dm.restricted(rows), hp["random_state"]
            )
            seconds[name] += time.perf_counter() - tick
            say(f"auto: {name} fitted on all {len(rows)} training rows ({time.perf_counter() - tick:.0f} s)")
    members = {name: fitted[name] for name in dict.fromkeys(choice.values())}
    selection = {
        "choice": choice,
        "heldout_r2": scores,
        "heldout_how": how,
        "seconds": seconds,
        "work": work,
        "skipped": skipped,
        "folds": hp["folds"],
        "budget": hp["budget"],
        "min_gain": hp["min_gain"],
        "seconds_total": time.perf_counter() - started,
    }
    model.adopt(members, choice, heldout, np.hstack(_arrays(frame, model)[:2]), y, selection, trainers)
    say(
        "auto: chosen "
        + ", ".join(f"{t} {n}" for t, n in choice.items())
        + f" ({selection['seconds_total']:.0f} s)"
    )
    return model


def fold_jobs(hp: dict, n_folds: int) -> int:
    """Worker processes for a network's folds: ``fold_jobs``, or with 0 one per CPU core (at most one per
    fold); one on a GPU machine. Each fold trains on one thread (``train.lbfgs_numerics``), so the folds run
    side by side on the cores a single fit leaves idle, and give the same predictions as one after another."""
    if torch.cuda.is_available():
        return 1
    jobs = hp.get("fold_jobs", 0) or os.cpu_count() or 1
    return max(1, min(int(jobs), n_folds))


def _fold_predictions(cfg: dict, sub: PolyDataModule, seed: int) -> np.ndarray:
    """One fold: the network trained on ``sub``'s training rows, its predictions of ``sub``'s test rows."""
    member, _ = train_network(cfg, sub, seed)
    return predict_frame(member, sub.test_frame)


def _kfold_network(
    name: str,
    cfg: dict,
    dm: PolyDataModule,
    rows: np.ndarray,
    folds: list,
    hp: dict,
    targets: list[str],
    say,
) -> np.ndarray:
    """Held-out predictions of ``rows`` by refitting the network on each fold's other rows (``fold_jobs``
    folds at a time, in worker processes)."""
    pred = np.empty((len(rows), len(targets)))
    subs = [dm.restricted(rows[train], rows[test]) for train, test in folds]
    jobs = fold_jobs(hp, len(folds))
    tick = time.perf_counter()
    if jobs == 1:
        answers = (_fold_predictions(cfg, sub, hp["random_state"]) for sub in subs)
    else:
        answers = Parallel(n_jobs=jobs, return_as="generator")(
            delayed(_fold_predictions)(cfg, sub, hp["random_state"]) for sub in subs
        )
    for k, ((_, test), answer) in enumerate(zip(folds, answers, strict=True)):
        pred[test] = answer
        say(f"auto: {name} fold {k + 1}/{len(folds)} ({time.perf_counter() - tick:.0f} s; {jobs} at a time)")
    return pred


def _kfold_classical(
    cfg: dict, dm: PolyDataModule, rows: np.ndarray, folds: list, targets: list[str]
) -> np.ndarray:
    pred = np.empty((len(rows), len(targets)))
    for train, test in folds:
        member = build_model(cfg, dm, progress=False)
        member.fit(*_arrays(dm.frame.iloc[rows[train]], member))
        pred[test] = member.predict_arrays(*_arrays(dm.frame.iloc[rows[test]], member)[:2])
    return pred
