"""Hyperparameter search on Optuna (``polyinv tune``): the search space comes from the config's ``tune:``
section, trials live in any Optuna storage (an SQLite file by default; a PostgreSQL or MySQL URL lets the same
command started on several machines share one study), and the study resumes where it stopped.

Each trial fits the config with its suggested settings on the training rows and is scored, through the one
metric harness, on validation rows carved out of the non-test rows (the same rows for every trial: the split
follows ``seed``); network trials report the validation R² each epoch, so Optuna's median pruner stops bad ones
early (optuna-integration's Lightning callback). The test split is never seen by a trial.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from polyinv import config as cfg
from polyinv.errors import PolyinvError
from polyinv.inference import predict_frame
from polyinv.metrics import evaluate
from polyinv.models import MODELS
from polyinv.train import build_datamodule, build_model, train_network

#: settings a search may not move: what is predicted from what, and how it is judged
FIXED = ("model.kind", "data.path", "data.sheet", "data.test_fraction", "data.val_fraction", "seed", "name")
#: the states that count towards --trials (a failed trial is retried by a later one)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
#: the metric a network trial reports each epoch for pruning (logged by the networks' validation step)
PRUNE_ON = "val/r2_global"


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a number range or a list of choices."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def suggest(self, trial: optuna.Trial):
        if self.choices is not None:  # stored as JSON text: Optuna's storages take plain values only
            return json.loads(trial.suggest_categorical(self.key, [json.dumps(c) for c in self.choices]))
        if isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float):
            return trial.suggest_int(self.key, self.low, self.high, step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)


def _dimension(key: str, spec, config: dict) -> Dimension:
    where = f"tune.space.{key}"
    section, _, name = key.partition(".")
    if key in FIXED or section in ("output", "tune", "checkpoint"):
        raise PolyinvError(f"{where}: {key} cannot be searched (it fixes the data, the split or the run)")
    if not name or not isinstance(config.get(section), dict) or name not in config[section]:
        raise PolyinvError(f"{where}: no setting {key} in a {config['model']['kind']} config")
    if not isinstance(spec, dict) or not spec:
        raise PolyinvError(f"{where}: expected {{low: A, high: B}} or {{choices: [...]}}, got {spec!r}")
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise PolyinvError(f"{where}: unknown key {sorted(unknown)[0]!r} (low, high, log, step or choices)")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise PolyinvError(f"{where}: choices must be a non-empty list, alone")
        return Dimension(key, choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not low < high:
        raise PolyinvError(f"{where}: low and high must be numbers with low < high, got {low!r}, {high!r}")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and low <= 0:
        raise PolyinvError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (log or not isinstance(step, (int, float)) or step <= 0):
        raise PolyinvError(f"{where}: step must be a positive number, and not with log, got {step!r}")
    return Dimension(key, low, high, log, step)


def search_space(config: dict) -> list[Dimension]:
    """The config's ``tune.space`` as dimensions (one-line errors naming the key)."""
    space = (config.get("tune") or {}).get("space")
    if not space:
        raise PolyinvError(
            "the config has no tune.space: list the settings to search "
            "(e.g. tune: {space: {model.lr: {low: 0.1, high: 1.0, log: true}}}; configs/mlp.yaml has one)"
        )
    if MODELS[config["model"]["kind"]].family == "auto":
        raise PolyinvError(
            "model.kind auto chooses among configs itself: tune one model kind (mlp, cnn, ...)"
        )
    return [_dimension(str(key), spec, config) for key, spec in space.items()]


def trial_config(argv: Sequence[str], values: dict, val_fraction: float | None = None) -> dict:
    """The run config of ``argv`` with ``values`` set (parsed again, so every value is type-checked);
    ``val_fraction`` also sets data.val_fraction (a trial's validation rows)."""
    extra = [a for key, value in values.items() for a in (f"--{key}", _text(value))]
    if val_fraction is not None:
        extra += ["--data.val_fraction", str(val_fraction)]
    config, _ = cfg.parse([*argv, *extra])
    return config


def _text(value) -> str:
    """A value as a command-line override: strings as they are (a quoted one would not match a choice)."""
    return value if isinstance(value, str) else json.dumps(value)


def score(config: dict, callbacks: list | None = None) -> tuple[float, dict]:
    """(global R², per-target R²) on the validation rows of a model fitted on the training rows."""
    dm = build_datamodule(config)
    dm.setup("fit")
    if MODELS[config["model"]["kind"]].family == "network":
        model, _ = train_network(config, dm, config["seed"], callbacks)
    else:
        model = build_model(config, dm, progress=False)
        train = dm.train_frame
        model.fit(*(train[list(c)].to_numpy() for c in (dm.mmd_columns, dm.side_columns, dm.target_columns)))
    val, targets = dm.val_frame, list(dm.target_columns)
    metrics = evaluate(val[targets].to_numpy(np.float64), predict_frame(model, val), targets, dm.system)
    return metrics["global"]["r2"], {t: m["r2"] for t, m in metrics["targets"].items()}


#: tries to open a storage whose tables another process is creating at the same moment
SCHEMA_TRIES = 5


def default_storage(config: dict, study: str) -> str:
    folder = Path(config["output"]["root"]) / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / study}.db"


def open_study(config: dict, dims: list[Dimension], storage: str, name: str, sampler_seed: int | None):
    """The study ``name`` in ``storage``, created or resumed; a resumed study must search the same space on
    the same data and split."""
    tune = config["tune"]
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=tune["startup_trials"], n_warmup_steps=tune["warmup_epochs"]
        )
        if tune["pruner"] == "median"
        else optuna.pruners.NopPruner()
    )
    for attempt in range(SCHEMA_TRIES):
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                direction="maximize",
                load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                pruner=pruner,
            )
            break
        except Exception as exc:  # SQLAlchemy's and Optuna's errors alike: a URL, driver or database problem
            # processes started together on a new storage race to create its tables (a unique or lock error
            # in the loser); once the winner's tables are in, the loser's next try opens them
            racing = type(exc).__name__ in ("IntegrityError", "OperationalError")
            if not racing or attempt == SCHEMA_TRIES - 1:
                raise PolyinvError(f"--storage {storage}: {str(exc).splitlines()[0][:200]}") from None
            time.sleep(0.5 * (attempt + 1))
    identity = {
        "kind": config["model"]["kind"],
        "data": str(config["data"]["path"]),
        "seed": config["seed"],
        "space": {d.key: [d.low, d.high, d.log, d.step, d.choices and list(d.choices)] for d in dims},
    }
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
    elif stored != identity:
        differ = ", ".join(k for k in identity if stored.get(k) != identity[k])
        raise PolyinvError(
            f"study {name!r} in {storage} was made with another {differ}; name a new study (--study)"
        )
    return study


def run_study(
    argv: Sequence[str],
    config: dict,
    trials: int,
    storage: str,
    name: str,
    sampler_seed: int | None = None,
    say: Callable[[str], None] = print,
) -> optuna.Study:
    """Run trials until the study holds ``trials`` finished (complete or pruned) ones, whoever ran them."""
    if trials < 1:
        raise PolyinvError(f"--trials must be at least 1, got {trials}")
    dims = search_space(config)
    tune = config["tune"]
    if not 0 < tune["val_fraction"] < 1:
        raise PolyinvError(f"tune.val_fraction must lie between 0 and 1, got {tune['val_fraction']}")
    val_fraction = None if config["data"]["val_fraction"] else tune["val_fraction"]
    trial_config(argv, {d.key: _middle(d) for d in dims}, val_fraction)  # a bad space fails before any trial
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(config, dims, storage, name, sampler_seed)
    network = MODELS[config["model"]["kind"]].family == "network"

    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        values = {d.key: d.suggest(trial) for d in dims}
        trial.set_user_attr("values", values)
        run_config = trial_config(argv, values, val_fraction)
        callbacks = [PyTorchLightningPruningCallback(trial, PRUNE_ON)] if network else None
        r2, per_target = score(run_config, callbacks)
        trial.set_user_attr("r2", per_target)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        return r2 if math.isfinite(r2) else float("nan")  # NaN: Optuna records a failed trial

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = sum(t.state in COUNTED for t in study.get_trials(deepcopy=False))
        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in trial.user_attrs.get("values", {}).items())
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        if trial.state == TrialState.COMPLETE:
            outcome = f"validation R² {trial.value:.4f}"
        elif trial.state == TrialState.PRUNED:
            last = trial.last_step
            outcome = f"pruned at epoch {last}" if last is not None else "pruned"
        else:
            outcome = "failed"
        best = best_trial(study)
        tail = f"; best {best.value:.4f} (trial {best.number})" if best is not None else ""
        say(f"trial {trial.number} [{done}/{trials}]: {outcome} in {seconds:.0f} s ({values}){tail}")

    finished = sum(t.state in COUNTED for t in study.get_trials(deepcopy=False))
    if finished < trials:
        study.optimize(
            objective,
            callbacks=[MaxTrialsCallback(trials, states=COUNTED), report],
            catch=(PolyinvError, ValueError, RuntimeError, FloatingPointError),
            gc_after_trial=True,
        )
    if best_trial(study) is None:
        raise PolyinvError(f"study {name!r}: no trial finished (see the failed trials' lines above)")
    return study


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return max(done, key=lambda t: t.value) if done else None


def _middle(d: Dimension):
    """A value inside the dimension (the check of the space before any trial)."""
    if d.choices is not None:
        return d.choices[0]
    if isinstance(d.low, int) and isinstance(d.high, int):
        return d.low
    return float(d.low)


def best_config(argv: Sequence[str], study: optuna.Study) -> dict:
    """The config of the study's best trial, as ``polyinv fit --config`` takes it (the config's own
    data.val_fraction: the final fit trains on every non-test row as the shipped config does)."""
    best = best_trial(study)
    config = trial_config(argv, best.user_attrs["values"])
    config["name"] = f"{config['name']}_tuned"
    return config


def trials_table(study: optuna.Study) -> list[dict]:
    """One row per trial: number, state, validation R², seconds and the values tried."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "val_r2": t.value,
                "seconds": t.user_attrs.get("seconds"),
                "last_epoch": t.last_step,
                **{k: json.dumps(v) for k, v in t.user_attrs.get("values", {}).items()},
            }
        )
    return rows
