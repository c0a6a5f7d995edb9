"""Run configuration on jsonargparse: the settings of data, model, trainer, checkpoints and output.

One parser per model kind: ``data.*`` from :class:`~polyinv.data.module.PolyDataModule`'s signature,
``model.*`` from the model class of ``model.kind``, ``trainer.*`` from ``lightning.Trainer``, the rest
from the dataclasses below; types, defaults and help come from the signatures and docstrings. A config
file (``--config``), then ``--section.key value`` overrides; unknown keys, wrong types and bad values
are one-line errors naming the key. ``--config mlp.yaml`` also finds the shipped ``configs/mlp.yaml``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import yaml
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

from polyinv.data.module import PolyDataModule
from polyinv.errors import PolyinvError
from polyinv.models import KINDS, MODELS
from polyinv.schema import TARGETS

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
#: schema arguments of the models: they come from the data, not from the user
SCHEMA_ARGS = {"targets", "side_inputs", "mmd_columns", "transforms", "mmd_scaling", "random_state"}
#: Trainer arguments polyinv sets itself
TRAINER_SKIP = {"logger", "callbacks", "default_root_dir", "plugins", "enable_checkpointing"}
#: metrics a checkpoint or early stopping may watch: the losses, global R² and each target's R² and MAE
Monitor = Literal[
    ("val/loss", "train/loss", "val/r2_global", *(f"val/{m}/{t}" for m in ("r2", "mae") for t in TARGETS))
]


@dataclass
class Checkpointing:
    """Checkpoints of network runs (best.ckpt, last.ckpt).

    Args:
        monitor: metric whose best value picks best.ckpt
        mode: whether the best value of the monitor is its min or its max
        every_n_epochs: save every n-th epoch (and always the last)
    """

    monitor: Monitor = "val/loss"
    mode: Literal["min", "max"] = "min"
    every_n_epochs: int = 1


@dataclass
class EarlyStopping:
    """Early stopping of network runs on a monitored metric.

    Args:
        monitor: metric to watch
        mode: whether that metric should go down (min) or up (max)
        patience: epochs without improvement before training stops (null: no early stopping)
        min_delta: smallest change that counts as an improvement
    """

    monitor: Monitor = "val/loss"
    mode: Literal["min", "max"] = "min"
    patience: int | None = None
    min_delta: float = 0.0


@dataclass
class Output:
    """Where runs go.

    Args:
        root: folder holding the run groups (<root>/<name>/version_N)
    """

    root: str = "checkpoints"


@dataclass
class Trust:
    """The forward model of the trust checks (the domain's forward consistency, predict --verify and
    --plot-dir): kinetics, MMD axis and run protocol of the training file, stored in the model file.

    Args:
        forward: auto: polyinv's kinetics when the file's metadata says polyinv's default simulator made
            it, else the simulator calibrated on the training rows (polyinv calibrate); default: polyinv's
            kinetics on the file's axis; calibrate: always calibrate; none: no forward checks
        calibration: a calibration file (polyinv calibrate) to use instead of ``forward``
        refine: auto: check on held-out training rows whether refining answers against the forward model
            improves them, and store the noise model it chose (predict --refine uses it); none: no check
            (predict --refine then returns the model's answer)
        refine_rows: held-out training rows the refine check uses (more: steadier choice, slower fit)
    """

    forward: Literal["auto", "default", "calibrate", "none"] = "auto"
    calibration: str | None = None
    refine: Literal["auto", "none"] = "auto"
    refine_rows: int = 60


@dataclass
class Tune:
    """The hyperparameter search of ``polyinv tune`` (``polyinv fit`` ignores this section).

    Args:
        space: the settings searched, each ``section.key: {low: A, high: B}`` (a range; integers when A and B
            are; ``log: true`` searches it on a log scale, ``step: S`` on a grid) or ``{choices: [...]}``
        val_fraction: share of the non-test rows each trial is scored on when data.val_fraction is 0
        pruner: median: stop a network trial whose validation R² at an epoch is below the median of the
            earlier trials' at that epoch; none: every trial runs to its end
        warmup_epochs: epochs a network trial runs before it may be pruned
        startup_trials: trials that finish before pruning starts
    """

    space: dict | None = None
    val_fraction: float = 0.2
    pruner: Literal["median", "none"] = "median"
    warmup_epochs: int = 50
    startup_trials: int = 5


def model_class(kind: str):
    return MODELS[kind]


def find_config(path: str | Path) -> Path:
    """A config file as given, else the shipped one of that name (``mlp.yaml`` → ``configs/mlp.yaml``)."""
    path = Path(path)
    for candidate in (path, REPO_ROOT / path, CONFIG_DIR / path.name):
        if candidate.is_file():
            return candidate
    if path.is_dir():
        raise PolyinvError(f"{path}: is a folder, expected a YAML config file")
    shipped = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
    raise PolyinvError(f"{path}: config file not found (shipped configs: {shipped})")


def load_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file (one-line errors)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise PolyinvError(f"{path}: cannot read config ({type(exc).__name__})") from exc
    except yaml.YAMLError as exc:
        raise PolyinvError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise PolyinvError(f"{path}: a config must be a mapping of sections")
    return data


def _kind(argv: Sequence[str]) -> str:
    """``model.kind`` from the config files and overrides on the command line (last one wins; default mlp)."""
    kind = "mlp"
    for i, arg in enumerate(argv):
        value = argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("--config="):
            arg, value = "--config", arg.split("=", 1)[1]
        if arg.startswith("--model.kind="):
            arg, value = "--model.kind", arg.split("=", 1)[1]
        if arg == "--config" and value:
            model = load_yaml(find_config(value)).get("model")
            kind = model.get("kind", kind) if isinstance(model, dict) else kind
        elif arg == "--model.kind" and value:
            kind = value
    if kind not in KINDS:
        raise PolyinvError(f"model.kind {kind!r} unknown; choose one of {', '.join(KINDS)}")
    return kind


def build_parser(
    kind: str = "mlp",
    prog: str = "polyinv fit",
    description: str = "",
    extra: Callable[[Any], None] | None = None,
):
    """The jsonargparse parser of a run whose model is of ``kind``; ``extra`` adds a command's own options."""
    parser = ArgumentParser(
        prog=prog, description=description, exit_on_error=False, default_env=False, allow_abbrev=False
    )
    parser.add_argument(
        "--config", action=ActionConfigFile, help="YAML config (e.g. configs/mlp.yaml or mlp.yaml)"
    )
    # -q/-v are read by polyinv.errors.run_cli before parsing; listed here for --help
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and results only: no narration or bars"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more detail in the narration")
    parser.add_argument(
        "--name",
        type=str | None,
        default=None,
        help="run group under output.root (default: the config's stem)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of the split (and of the model unless model_seed)"
    )
    parser.add_argument(
        "--model_seed", type=int | None, default=None, help="initialisation seed of the model (null: seed)"
    )
    parser.add_class_arguments(PolyDataModule, "data", skip={"seed"})
    parser.add_argument("--model.kind", type=Literal[KINDS], default="mlp", help="model family")  # type: ignore[valid-type]
    parser.add_class_arguments(model_class(kind), "model", skip=SCHEMA_ARGS | {"progress"})
    parser.add_class_arguments(L.Trainer, "trainer", skip=TRAINER_SKIP)
    parser.set_defaults(
        {"trainer.max_epochs": 300, "trainer.log_every_n_steps": 1, "trainer.enable_model_summary": False}
    )
    parser.add_class_arguments(EarlyStopping, "early_stopping")
    parser.add_class_arguments(Checkpointing, "checkpoint")
    parser.add_class_arguments(Output, "output")
    parser.add_class_arguments(Trust, "trust")
    parser.add_class_arguments(Tune, "tune")
    if extra is not None:
        extra(parser)
    return parser


def _resolve_config_paths(argv: Sequence[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = str(find_config(out[i + 1]))
        elif arg.startswith("--config="):
            out[i] = "--config=" + str(find_config(arg.split("=", 1)[1]))
    return out


def one_line(exc: Exception) -> str:
    """jsonargparse's message as one line that names the key, the value and what was expected."""
    text = " ".join(str(exc).split())
    text = re.sub(r"<class '(\w+)'>", r"\1", text).replace("NoneType", "null")
    text = re.sub(r"typing\.Literal\[([^\]]*)\]", lambda m: "one of " + m.group(1).replace("'", ""), text)
    if m := re.match(r"Group '([\w.]+)' does not accept option '([\w.]+)'", text):
        return f"unknown config key '{m.group(1)}.{m.group(2)}'"
    if m := re.match(r"unrecognized arguments: --([\w.]+)", text):
        return f"unknown config key '{m.group(1)}'"
    if m := re.match(r"Option '([\w.]+)' is not accepted", text):
        return f"unknown config key '{m.group(1)}'"
    if m := re.match(r'Parser key "([\w.]+)": (.*)', text):
        key, rest = m.groups()
        given = re.search(r"Given value: (.*)$", rest) or re.search(r"Got value: (.*)$", rest)
        wanted = re.findall(r"Expected an? ([^.\-]+?)(?:\. Got value|\s+-|\s+Given|$)", rest)
        if given and wanted:
            return f"{key} must be {' or '.join(dict.fromkeys(w.strip() for w in wanted))}; got {given.group(1)!r}"
        return f"{key}: {rest}"
    return text


def parse(
    argv: Sequence[str] | None,
    prog: str = "polyinv fit",
    description: str = "",
    extra: Callable[[Any], None] | None = None,
) -> tuple[dict, dict]:
    """(run config, the command's own options) from a command line; one-line PolyinvError on any problem."""
    argv = _resolve_config_paths(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_kind(argv), prog, description, extra)
    try:
        namespace = parser.parse_args(argv)
    except ArgumentError as exc:
        raise PolyinvError(_where(parser, argv) + one_line(exc)) from exc
    config = namespace.as_dict()
    configs = config.pop("config", None) or []
    own = {key: config.pop(key) for key in list(config) if key not in SECTIONS}
    if config.get("name") is None:
        config["name"] = Path(str(configs[-1])).stem if configs else config["model"]["kind"]
    if config.get("name") in (".", "..") or "/" in str(config["name"]) or "\\" in str(config["name"]):
        raise PolyinvError(f"name {config['name']!r}: a run name is a plain folder name")
    return config, own


def _where(parser, argv: Sequence[str]) -> str:
    """``"FILE: "`` when the config file alone already fails to parse (the error is in the file)."""
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    for path in files:
        try:
            parser.parse_args(["--config", path])
        except ArgumentError:
            return f"{path}: "
    return ""


SECTIONS = (
    "name",
    "seed",
    "model_seed",
    "data",
    "model",
    "trainer",
    "early_stopping",
    "checkpoint",
    "output",
    "trust",
    "tune",
)


def dump(config: dict) -> str:
    """The resolved config as YAML (saved in every run folder)."""
    return yaml.safe_dump(_plain(config), sort_keys=False)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
