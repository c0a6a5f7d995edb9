"""Run configuration: defaults, YAML loading, ``--a.b value`` overrides and validation of every key."""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml

from polyinv.errors import PolyinvError
from polyinv.schema import FEATURE_SETS, TARGETS


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-5`` and ``3E+2`` as numbers (YAML 1.2; PyYAML's 1.1 rules need a
    dot in the mantissa, so ``lr: 1e-3`` would be the text "1e-3")."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with exponent-only floats (``1e-5``) read as numbers."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "data/ba_aibn_grid432.xlsx"

DEFAULTS: dict[str, Any] = {
    "name": None,  # run group under output.root; defaults to the config file's stem
    "seed": 42,
    "model_seed": None,  # initialisation seed of the model; None = seed (the data split always uses seed)
    "data": {
        "path": DEFAULT_DATA,
        "sheet": None,
        "test_path": None,  # a separate file to test on (all its rows); then no test split is cut from data.path
        "feature_set": "composite",
        "transforms": {},
        "mmd_scaling": "column",
        "test_fraction": 0.2,
        "val_fraction": 0.1,
        "folds": None,
        "fold": 0,
        "batch_size": 32,
        "num_workers": 0,
    },
    "model": {"kind": "mlp"},
    "trainer": {
        "max_epochs": 300,
        "accelerator": "auto",
        "devices": "auto",
        "strategy": "auto",
        "log_every_n_steps": 50,  # metrics are epoch-level; per-step logging costs time
        "enable_progress_bar": True,
    },
    "early_stopping": {"monitor": "val/loss", "mode": "min", "patience": 50, "min_delta": 0.0},
    "checkpoint": {"monitor": "val/loss", "mode": "min", "every_n_epochs": 1},
    "output": {"root": "checkpoints"},
}

#: Types of the settings outside ``model`` and ``trainer`` (those two are checked against their constructors).
SETTING_TYPES: dict[str, str] = {
    "name": "str | None",
    "seed": "int",
    "model_seed": "int | None",
    "data.path": "str",
    "data.sheet": "str | None",
    "data.test_path": "str | None",
    "data.feature_set": "str",
    "data.mmd_scaling": "str",
    "data.test_fraction": "float",
    "data.val_fraction": "float",
    "data.folds": "int | None",
    "data.fold": "int",
    "data.batch_size": "int",
    "data.num_workers": "int",
    "early_stopping.monitor": "str",
    "early_stopping.mode": "str",
    "early_stopping.patience": "int | None",
    "early_stopping.min_delta": "float",
    "checkpoint.monitor": "str",
    "checkpoint.mode": "str",
    "checkpoint.every_n_epochs": "int",
    "output.root": "str",
}
#: Settings that name a file, sheet or folder: a YAML number there (``--data.sheet 2024``) means its text.
_TEXT_KEYS = ("name", "data.path", "data.sheet", "data.test_path", "output.root")
#: The metrics the networks log (polyinv.models.base), i.e. what checkpointing and early stopping can monitor.
MONITORS: tuple[str, ...] = (
    "val/loss", "train/loss", "val/r2_global", "val/r2_global_best",
    *(f"val/{metric}/{t}" for metric in ("r2", "mae") for t in TARGETS),
)
CHOICES: dict[str, tuple] = {
    "data.feature_set": tuple(FEATURE_SETS),
    "data.mmd_scaling": ("column", "pooled"),
    "early_stopping.mode": ("min", "max"),
    "checkpoint.mode": ("min", "max"),
    "early_stopping.monitor": MONITORS,
    "checkpoint.monitor": MONITORS,
}
_KNOWN_TYPES = {"int", "float", "bool", "str", "None", "NoneType", "Optional", "Union"}

# schema keys are not user settings: they come from the data's feature set
_SCHEMA_ARGS = {"self", "targets", "side_inputs", "mmd_columns", "transforms", "mmd_scaling", "base", "random_state"}


def model_keys(kind: str) -> set[str]:
    """The settable ``model.*`` keys of a model kind (its constructor's arguments)."""
    from polyinv.models import CLASSICAL, KINDS, NETWORKS, InverseRegressor

    if kind not in KINDS:
        raise PolyinvError(f"model.kind {kind!r} unknown; choose one of {', '.join(KINDS)}")
    if kind in NETWORKS:
        params = set(inspect.signature(NETWORKS[kind].__init__).parameters)
        params |= set(inspect.signature(InverseRegressor.__init__).parameters)
    else:
        params = set(inspect.signature(CLASSICAL[kind].__init__).parameters)
    return (params - _SCHEMA_ARGS) | {"kind"}


def _trainer_keys() -> set[str]:
    return set(inspect.signature(L.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "default_root_dir"}


def _annotation(*constructors, key: str) -> str | None:
    """The type annotation of constructor argument ``key`` as text (first constructor that has it)."""
    for constructor in constructors:
        param = inspect.signature(constructor).parameters.get(key)
        if param is not None and param.annotation is not inspect.Parameter.empty:
            ann = param.annotation
            return ann.__name__ if isinstance(ann, type) else str(ann)
    return None


def type_problem(value: Any, annotation: str | None) -> str | None:
    """What ``value`` should have been if it does not fit a simple annotation (int/float/bool/str/None).

    Annotations with anything else in them (sequences, Literal, classes) are not checked here.
    """
    if annotation is None:
        return None
    tokens = {t.rsplit(".", 1)[-1] for t in re.findall(r"[A-Za-z_][\w.]*", annotation)}
    if not tokens or not tokens <= _KNOWN_TYPES:
        return None
    ok = (
        (value is None and bool(tokens & {"None", "NoneType", "Optional"}))
        or (isinstance(value, bool) and "bool" in tokens)
        or (isinstance(value, int) and not isinstance(value, bool) and bool(tokens & {"int", "float"}))
        or (isinstance(value, float) and "float" in tokens)
        or (isinstance(value, str) and "str" in tokens)
    )
    if ok:
        return None
    names = {"bool": "true/false", "int": "an integer", "float": "a number", "str": "text"}
    wanted = [names[t] for t in ("bool", "int", "float", "str") if t in tokens]
    if "int" in tokens and "float" in tokens:
        wanted.remove("an integer")
    if tokens & {"None", "NoneType", "Optional"}:
        wanted.append("null")
    return " or ".join(wanted)


def _get(config: Mapping, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def merge(base: Mapping, update: Mapping) -> dict:
    """Recursive dict merge; ``update`` wins."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "transforms":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise PolyinvError(f"{path}: config file not found")
    try:
        data = parse_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PolyinvError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise PolyinvError(f"{path}: a config must be a mapping of sections")
    return data


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``['--trainer.max_epochs', '5', '--seed=1']`` → ``{'trainer.max_epochs': 5, 'seed': 1}`` (values as YAML)."""
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise PolyinvError(f"unexpected argument {arg!r}; overrides look like --section.key value")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 >= len(args):
                raise PolyinvError(f"override --{key} needs a value")
            value = args[i + 1]
            i += 1
        overrides[key] = parse_value(key, value)
        i += 1
    return overrides


def parse_value(key: str, text: str) -> Any:
    """One override's value as YAML (text that is not valid YAML stays text); a file, sheet or folder
    named like a number (``--data.sheet 1e5``) keeps exactly the text typed."""
    try:
        parsed = parse_yaml(text)
    except yaml.YAMLError:
        return text
    if key in _TEXT_KEYS and isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
        return text
    return parsed


def apply_overrides(config: dict, overrides: Mapping[str, Any]) -> dict:
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = config
        parts = dotted.split(".")
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                # a section switched off with null (e.g. early_stopping: null) comes back with its defaults
                default = DEFAULTS.get(part) if depth == 0 else None
                fresh = copy.deepcopy(default) if isinstance(default, dict) else {}
                node[part] = fresh if node.get(part) is None else node[part]
                if not isinstance(node[part], dict):
                    raise PolyinvError(f"unknown config key {dotted!r}")
            node = node[part]
        node[parts[-1]] = value
    return config


def validate(config: Mapping, origin: str = "config") -> None:
    """Every key must be known; raise PolyinvError naming the first unknown one."""
    sections = set(DEFAULTS)
    for key in config:
        if key not in sections:
            raise PolyinvError(f"{origin}: unknown config key {key!r}")
    for section in ("data", "early_stopping", "checkpoint", "output", "model", "trainer"):
        value = config.get(section)
        if value is None and section == "early_stopping":
            continue
        if not isinstance(value, Mapping):
            raise PolyinvError(f"{origin}: section {section!r} must be a mapping, got {value!r}")
        if section in ("model", "trainer"):
            continue
        for key in value:
            if key not in DEFAULTS[section]:
                raise PolyinvError(f"{origin}: unknown config key '{section}.{key}'")
    kind = config["model"].get("kind", "mlp")
    allowed = model_keys(kind)
    for key in config["model"]:
        if key not in allowed:
            raise PolyinvError(f"{origin}: unknown config key 'model.{key}' for model kind {kind!r}")
    trainer_keys = _trainer_keys()
    for key in config["trainer"]:
        if key not in trainer_keys:
            raise PolyinvError(f"{origin}: unknown config key 'trainer.{key}'")
    if not isinstance(config["data"].get("transforms") or {}, Mapping):
        raise PolyinvError(f"{origin}: data.transforms must map column names to 'log' or 'none'")
    _validate_values(config, origin, kind)


def _validate_values(config: Mapping, origin: str, kind: str) -> None:
    """Types and choices of the values, so that a bad one fails before any run folder exists."""
    from polyinv.models import CLASSICAL, NETWORKS, InverseRegressor

    checks: list[tuple[str, Any, str | None]] = [
        (key, _get(config, key), SETTING_TYPES[key])
        for key in SETTING_TYPES
        if key.split(".")[0] != "early_stopping" or config.get("early_stopping") is not None
    ]
    constructors = (NETWORKS[kind].__init__, InverseRegressor.__init__) if kind in NETWORKS else (CLASSICAL[kind].__init__,)
    checks += [(f"model.{k}", v, _annotation(*constructors, key=k)) for k, v in config["model"].items() if k != "kind"]
    checks += [(f"trainer.{k}", v, _annotation(L.Trainer.__init__, key=k)) for k, v in config["trainer"].items()]
    for key, value, annotation in checks:
        wanted = type_problem(value, annotation)
        if wanted:
            raise PolyinvError(f"{origin}: {key} must be {wanted}, got {value!r}")
        choices = CHOICES.get(key)
        if choices is not None and value not in choices:
            raise PolyinvError(f"{origin}: {key} {value!r} unknown; choose one of {', '.join(map(str, choices))}")
    every = config["checkpoint"].get("every_n_epochs", 1)
    if isinstance(every, int) and every < 1:
        raise PolyinvError(f"{origin}: checkpoint.every_n_epochs must be >= 1, got {every}")
    if kind in NETWORKS and not config["data"]["val_fraction"]:
        monitored = [config["checkpoint"]["monitor"]]
        if config.get("early_stopping") and config["early_stopping"].get("patience") is not None:
            monitored.append(config["early_stopping"]["monitor"])
        if config["model"].get("scheduler") == "plateau":
            monitored.append("val/loss")
        if any(str(m).startswith("val/") for m in monitored):
            raise PolyinvError(
                f"{origin}: data.val_fraction is 0, so there is no validation split for {kind!r} to monitor "
                f"({', '.join(sorted(set(monitored)))}); set data.val_fraction > 0"
            )


def _text_keys_as_text(config: dict) -> dict:
    """``--data.sheet 2024`` names the sheet "2024": YAML numbers in file/sheet/folder keys become text."""
    for dotted in _TEXT_KEYS:
        section, _, key = dotted.rpartition(".")
        node = config.get(section) if section else config
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            node[key] = str(value)
    return config


def resolve(config_path: str | Path | None, overrides: Mapping[str, Any], base: Mapping | None = None) -> dict:
    """Defaults ← config file (or ``base``, e.g. a run's saved config) ← overrides, validated."""
    if base is not None:
        config = merge(DEFAULTS, base)
        origin = "saved run config"
    else:
        assert config_path is not None
        raw = load_yaml(config_path)
        config = _text_keys_as_text(merge(DEFAULTS, raw))
        origin = str(config_path)
        validate(config, origin)
        if config.get("name") is None:
            config["name"] = Path(config_path).stem
    config = _text_keys_as_text(apply_overrides(config, overrides))
    validate(config, "command line" if overrides else origin)
    if config["seed"] is None or not isinstance(config["seed"], int):
        raise PolyinvError(f"seed must be an integer, got {config['seed']!r}")
    return config


def data_path(config: Mapping) -> Path:
    """The data file; a relative path that does not exist here is also looked up under the repository."""
    path = Path(config["data"]["path"])
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        return REPO_ROOT / path
    return path


def dump(config: Mapping) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)
