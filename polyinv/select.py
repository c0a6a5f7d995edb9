"""Model selection per target (``model.kind: auto``): candidates compete on held-out predictions of the
training rows; the winners become an :class:`~polyinv.models.auto.AutoModel`.

Candidates are configs (shipped ones by name, e.g. ``gp.yaml``): their ``model`` section on the run's data
and split. Each is scored per target on held-out predictions of the *training* rows only — a model's exact
leave-one-out predictions where it has them (the GP: closed form, no refits), K-fold for the others —
through the one evaluation harness (:func:`polyinv.metrics.evaluate`). Every target takes the candidate
with the best held-out R². Cheap candidates go first; a costly one (a network) is skipped when the ones
before it already reach ``good_enough`` on every target, or when its folds would not fit in ``budget_s``.
The test split is never seen. This sits above training because choosing trains other models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
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
from polyinv.train import build_model, train_network

#: a network's final fit on every training row is assumed to cost this many of its folds (more rows per step)
FINAL_FIT_FOLDS = 1.5


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


def _arrays(frame, model: InverseModel) -> tuple[np.ndarray, ...]:
    return tuple(
        frame[list(c)].to_numpy(np.float64) for c in (model.mmd_names, model.side_names, model.target_names)
    )


def select(
    model: AutoModel,
    config: dict,
    dm: PolyDataModule,
    rows: np.ndarray,
    log: Callable[[str], None] | None = say,
) -> AutoModel:
    """Score every candidate on held-out predictions of ``rows`` (training rows of ``dm``), choose per target,
    fit the chosen networks on all of ``rows`` and hand the result to ``model``; ``log`` gets a line per step
    with the seconds used."""
    hp = model.hparams
    targets = model.target_names
    started = time.perf_counter()
    say = log or (lambda _line: None)
    frame = dm.frame.iloc[rows]
    y = frame[targets].to_numpy(np.float64)
    configs = candidate_configs(hp["candidates"], config)
    scores, heldout, costs, skipped, fitted, trainers = {}, {}, {}, {}, {}, {}
    for name, cfg in sorted(configs.items(), key=lambda item: _is_network(item[1])):
        elapsed = time.perf_counter() - started
        best = {t: max((s[t] for s in scores.values()), default=-np.inf) for t in targets}
        if _is_network(cfg) and scores and min(best.values()) >= hp["good_enough"]:
            skipped[name] = (
                f"the candidates before it reach held-out R² >= {hp['good_enough']} on every target"
            )
            say(f"auto: {name} skipped ({skipped[name]})")
            continue
        tick = time.perf_counter()
        if _is_network(cfg):
            pred = _kfold_network(name, cfg, dm, rows, hp, targets, started, say)
            if pred is None:
                skipped[name] = (
                    f"its {hp['folds']} folds and final fit would overrun budget_s {hp['budget_s']:g}"
                )
                continue
        else:
            member = build_model(cfg, dm, progress=False)
            member.fit(*_arrays(frame, member))
            pred = (
                member.loo_predict_arrays(*_arrays(frame, member))
                if member.has_loo
                else _kfold_classical(cfg, dm, rows, hp, targets)
            )
            fitted[name] = member
        costs[name] = time.perf_counter() - tick
        metrics = evaluate(y, pred, targets)
        scores[name] = {t: metrics["targets"][t]["r2"] for t in targets}
        heldout[name] = pred
        say(
            f"auto: {name} held-out R² "
            + ", ".join(f"{t} {r:.4f}" for t, r in scores[name].items())
            + f" ({costs[name]:.0f} s; {elapsed + costs[name]:.0f} of {hp['budget_s']:.0f} s used)"
        )
    if not scores:
        raise PolyinvError(f"auto: no candidate could be scored within model.budget_s {hp['budget_s']:g} s")
    choice = {t: max(scores, key=lambda n, t=t: scores[n][t]) for t in targets}
    for name in dict.fromkeys(choice.values()):
        if name not in fitted:
            tick = time.perf_counter()
            fitted[name], trainers[name] = train_network(
                configs[name], dm.restricted(rows), hp["random_state"]
            )
            costs[name] += time.perf_counter() - tick
            say(f"auto: {name} fitted on all {len(rows)} training rows ({time.perf_counter() - tick:.0f} s)")
    members = {name: fitted[name] for name in dict.fromkeys(choice.values())}
    selection = {
        "choice": choice,
        "heldout_r2": scores,
        "seconds": costs,
        "skipped": skipped,
        "folds": hp["folds"],
        "budget_s": hp["budget_s"],
        "seconds_total": time.perf_counter() - started,
    }
    model.adopt(members, choice, heldout, np.hstack(_arrays(frame, model)[:2]), y, selection, trainers)
    say(
        "auto: chosen "
        + ", ".join(f"{t} {n}" for t, n in choice.items())
        + f" ({selection['seconds_total']:.0f} s)"
    )
    return model


def _kfold_network(
    name: str,
    cfg: dict,
    dm: PolyDataModule,
    rows: np.ndarray,
    hp: dict,
    targets: list[str],
    started: float,
    say,
) -> np.ndarray | None:
    """Held-out predictions of ``rows`` by K-fold; None when the folds would overrun the budget."""
    pred = np.empty((len(rows), len(targets)))
    splits = list(KFold(hp["folds"], shuffle=True, random_state=hp["random_state"]).split(rows))
    for k, (train, test) in enumerate(splits):
        tick = time.perf_counter()
        sub = dm.restricted(rows[train], rows[test])
        member, _ = train_network(cfg, sub, hp["random_state"])
        pred[test] = predict_frame(member, sub.test_frame)
        fold = time.perf_counter() - tick
        left = (len(splits) - k - 1 + FINAL_FIT_FOLDS) * fold
        say(f"auto: {name} fold {k + 1}/{len(splits)} ({fold:.0f} s)")
        if time.perf_counter() - started + left > hp["budget_s"]:
            say(f"auto: {name} skipped: {left:.0f} s more would overrun budget_s {hp['budget_s']:g}")
            return None
    return pred


def _kfold_classical(
    cfg: dict, dm: PolyDataModule, rows: np.ndarray, hp: dict, targets: list[str]
) -> np.ndarray:
    pred = np.empty((len(rows), len(targets)))
    for train, test in KFold(hp["folds"], shuffle=True, random_state=hp["random_state"]).split(rows):
        member = build_model(cfg, dm, progress=False)
        member.fit(*_arrays(dm.frame.iloc[rows[train]], member))
        pred[test] = member.predict_arrays(*_arrays(dm.frame.iloc[rows[test]], member)[:2])
    return pred
