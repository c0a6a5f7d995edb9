"""Run configuration: defaults, YAML loading, ``--a.b value`` overrides and validation of every key."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml

from polyinv.errors import PolyinvError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "data/ba_aibn_grid432.xlsx"

DEFAULTS: dict[str, Any] = {
    "name": None,  # run group under output.root; defaults to the config file's stem
    "seed": 42,
    "data": {
        "path": DEFAULT_DATA,
        "sheet": None,
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
        "log_every_n_steps": 1,
        "enable_progress_bar": True,
    },
    "early_stopping": {"monitor": "val/loss", "mode": "min", "patience": 50, "min_delta": 0.0},
    "checkpoint": {"monitor": "val/loss", "mode": "min"},
    "output": {"root": "checkpoints"},
}

# schema keys are not user settings: they come from the data's feature set
_SCHEMA_ARGS = {"self", "targets", "side_inputs", "mmd_columns", "transforms", "mmd_scaling", "base", "random_state"}


def model_keys(kind: str) -> set[str]:
    """The settable ``model.*`` keys of a model kind (its constructor's arguments)."""
    from polyinv.models import KINDS, NETWORKS, ForestModel, InverseRegressor

    if kind not in KINDS:
        raise PolyinvError(f"model.kind {kind!r} unknown; choose one of {', '.join(KINDS)}")
    if kind in NETWORKS:
        params = set(inspect.signature(NETWORKS[kind].__init__).parameters)
        params |= set(inspect.signature(InverseRegressor.__init__).parameters)
    else:
        params = set(inspect.signature(ForestModel.__init__).parameters)
    return (params - _SCHEMA_ARGS) | {"kind"}


def _trainer_keys() -> set[str]:
    return set(inspect.signature(L.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "default_root_dir"}


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
        data = yaml.safe_load(path.read_text()) or {}
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
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            overrides[key] = value
        i += 1
    return overrides


def apply_overrides(config: dict, overrides: Mapping[str, Any]) -> dict:
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = config
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {} if node.get(part) is None else node[part]
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
    for section in ("data", "early_stopping", "checkpoint", "output"):
        value = config.get(section)
        if value is None and section == "early_stopping":
            continue
        if not isinstance(value, Mapping):
            raise PolyinvError(f"{origin}: section {section!r} must be a mapping")
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


def resolve(config_path: str | Path | None, overrides: Mapping[str, Any], base: Mapping | None = None) -> dict:
    """Defaults ← config file (or ``base``, e.g. a run's saved config) ← overrides, validated."""
    if base is not None:
        config = merge(DEFAULTS, base)
        origin = "saved run config"
    else:
        assert config_path is not None
        raw = load_yaml(config_path)
        config = merge(DEFAULTS, raw)
        origin = str(config_path)
        validate(config, origin)
        if config.get("name") is None:
            config["name"] = Path(config_path).stem
    config = apply_overrides(config, overrides)
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
