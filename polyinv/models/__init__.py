"""Model families — Lightning networks (MLP, CNN), scikit-learn models (random forest, Gaussian process),
deep ensembles — and loading any saved polyinv model."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import torch

from polyinv.errors import PolyinvError
from polyinv.models import auto
from polyinv.models.auto import AutoModel
from polyinv.models.base import MODELS, InverseModel
from polyinv.models.classical import MODEL_FILE, ClassicalModel
from polyinv.models.cnn import CNN
from polyinv.models.ensemble import MANIFEST, EnsembleModel, read_manifest
from polyinv.models.forest import ForestModel
from polyinv.models.gp import GPModel
from polyinv.models.mlp import MLP
from polyinv.models.network import InverseRegressor

# every module of this package is imported, so that a new model kind is its module (``@register``) and its config
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
_FIRST = ("mlp", "cnn", "random_forest", "gaussian_process", "auto")
#: every configurable kind: the shipped ones in their usual order, then any other by name
KINDS = tuple(sorted(MODELS, key=lambda kind: (_FIRST.index(kind) if kind in _FIRST else len(_FIRST), kind)))


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder resolves to its ensemble.json, auto.json, best.ckpt or model.skops (then last.ckpt)."""
    path = Path(path)
    if path.is_dir():
        for name in (MANIFEST, auto.MANIFEST, "best.ckpt", MODEL_FILE, "last.ckpt"):
            if (path / name).exists():
                return path / name
        raise PolyinvError(f"{path}: no best.ckpt, {MODEL_FILE} or {MANIFEST} in this folder")
    if not path.exists():
        raise PolyinvError(f"{path}: checkpoint not found")
    return path


def _plain(exc: Exception) -> str:
    """The first line of an exception's message without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_model(path: str | Path):
    """Load any polyinv model on CPU from its file or run folder; nothing in the file is executed."""
    path = resolve_checkpoint(path)
    if path.name == MANIFEST:
        manifest, files = read_manifest(path.parent)
        return EnsembleModel(
            [load_model(f) for f in files], manifest.get("calibration"), manifest.get("domain")
        )
    if path.name == auto.MANIFEST:
        manifest, files = auto.read_manifest(path.parent)
        return AutoModel.from_manifest(manifest, {name: load_model(f) for name, f in files.items()})
    if path.suffix == ".joblib":
        raise PolyinvError(
            f"{path}: joblib model files are no longer read (unpickling runs code); retrain the run"
        )
    if path.suffix == ".skops":
        payload = ClassicalModel.read_payload(path)
        kind = payload.get("polyinv_kind")
        if kind not in MODELS or MODELS[kind].family != "classical":
            raise PolyinvError(f"{path}: not a polyinv model file (kind {kind!r})")
        return MODELS[kind].from_payload(payload)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise PolyinvError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head != b"PK\x03\x04":  # torch.save writes a zip archive; anything else is not a polyinv checkpoint
        raise PolyinvError(
            f"{path}: not a polyinv model file (give a run folder, best.ckpt, model.skops or an "
            f"ensemble/auto folder)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = _plain(exc)
        raise PolyinvError(f"{path}: cannot read checkpoint ({first})") from exc
    kind = checkpoint.get("polyinv_kind") if isinstance(checkpoint, dict) else None
    if kind not in MODELS or MODELS[kind].family != "network":
        raise PolyinvError(f"{path}: not a polyinv checkpoint (kind {kind!r})")
    try:
        model = MODELS[kind].load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = _plain(exc)
        raise PolyinvError(
            f"{path}: checkpoint does not match a {kind} model of this polyinv version ({first})"
        ) from exc
    model.eval()
    return model


__all__ = [
    "CNN",
    "KINDS",
    "MLP",
    "MODELS",
    "AutoModel",
    "ClassicalModel",
    "EnsembleModel",
    "ForestModel",
    "GPModel",
    "InverseModel",
    "InverseRegressor",
    "load_model",
    "resolve_checkpoint",
]
