"""Model families: Lightning networks (MLP, CNN1D) and the random-forest baseline, plus checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import torch

from polyinv.errors import PolyinvError
from polyinv.models.base import InverseRegressor
from polyinv.models.cnn import CNN1D
from polyinv.models.forest import ForestModel
from polyinv.models.gp import GPModel
from polyinv.models.mlp import MLP

NETWORKS: dict[str, type[InverseRegressor]] = {"mlp": MLP, "cnn": CNN1D}
CLASSICAL = {ForestModel.kind: ForestModel, GPModel.kind: GPModel}
KINDS = (*NETWORKS, *CLASSICAL)
FOREST_FILE = "model.joblib"


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder resolves to its best.ckpt (networks) or model.joblib (forest)."""
    path = Path(path)
    if path.is_dir():
        for name in ("ensemble.json", "best.ckpt", FOREST_FILE, "last.ckpt"):
            if (path / name).exists():
                return path / name
        raise PolyinvError(f"{path}: no best.ckpt, {FOREST_FILE} or last.ckpt in this folder")
    if not path.exists():
        raise PolyinvError(f"{path}: checkpoint not found")
    return path


def load_model(path: str | Path) -> InverseRegressor | ForestModel:
    """Load any polyinv checkpoint on CPU, without the training config."""
    path = resolve_checkpoint(path)
    if path.name == "ensemble.json":  # a deep ensemble folder (polyinv.trust.ensemble)
        from polyinv.trust.ensemble import EnsembleModel

        return EnsembleModel.load(path.parent)
    if path.suffix == ".joblib":
        import joblib

        try:
            kind = joblib.load(path).get("polyinv_kind")
        except Exception as exc:
            raise PolyinvError(f"{path}: cannot read model file ({type(exc).__name__})") from exc
        if kind not in CLASSICAL:
            raise PolyinvError(f"{path}: not a polyinv model file (kind {kind!r})")
        return CLASSICAL[kind].load(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PolyinvError(f"{path}: cannot read checkpoint ({str(exc).splitlines()[0]})") from exc
    kind = checkpoint.get("polyinv_kind") if isinstance(checkpoint, dict) else None
    if kind not in NETWORKS:
        raise PolyinvError(f"{path}: not a polyinv checkpoint (kind {kind!r})")
    model = NETWORKS[kind].load_from_checkpoint(path, map_location="cpu", weights_only=True)
    model.eval()
    return model


__all__ = ["CNN1D", "MLP", "ForestModel", "GPModel", "CLASSICAL", "InverseRegressor", "NETWORKS", "KINDS", "load_model", "resolve_checkpoint"]
