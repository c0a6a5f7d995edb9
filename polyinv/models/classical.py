"""Shared base of the scikit-learn model families (random forest, Gaussian process).

They plug into the same data split, harness and inference command as the networks: physical
arrays in, physical recipe out, targets transformed/standardised by the same :class:`ColumnScaler`,
and one joblib file holding estimator, schema, scaler statistics and settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch

from polyinv import __version__
from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.scaling import ColumnScaler
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS


class ClassicalModel:
    """Base: subclasses implement ``_fit(mmd, side, y_scaled)`` and ``_predict(mmd, side) -> y_scaled``."""

    kind = "classical"

    def __init__(
        self,
        targets: Sequence[str] | None = None,
        side_inputs: Sequence[str] | None = None,
        mmd_columns: Sequence[str] | None = None,
        transforms: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        """Schema arguments left at None take the study's columns (``polyinv.schema``)."""
        self.target_names = list(TARGETS if targets is None else targets)
        self.side_names = list(SIDE_INPUTS if side_inputs is None else side_inputs)
        self.mmd_names = list(MMD_COLUMNS if mmd_columns is None else mmd_columns)
        self.transforms = dict(transforms or {})
        self.hparams = {
            "targets": self.target_names, "side_inputs": self.side_names, "mmd_columns": self.mmd_names,
            "transforms": self.transforms, **settings,
        }
        self.target_scaler = ColumnScaler(self.target_names, {k: v for k, v in self.transforms.items() if k in self.target_names})
        self.state: dict[str, Any] = {}  # fitted estimators and preprocessing, saved with the model

    @property
    def n_side(self) -> int:
        return len(self.side_names)

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    def _arrays(self, mmd, side) -> tuple[np.ndarray, np.ndarray]:
        mmd = np.asarray(mmd, dtype=np.float64).reshape(len(mmd), len(self.mmd_names))
        return mmd, np.asarray(side, dtype=np.float64).reshape(len(mmd), self.n_side)

    def fit(self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray):
        """Fit on physical arrays (N,L), (N,k), (N,T)."""
        self.target_scaler.fit(targets)
        y = self.target_scaler(torch.as_tensor(targets, dtype=torch.float64)).numpy()
        self._fit(*self._arrays(mmd, side), y)
        return self

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Physical inputs → physical recipe (N,T)."""
        if not self.state:
            raise PolyinvError(f"the {self.kind} model is not fitted")
        scaled = self._predict(*self._arrays(mmd, side)).reshape(len(mmd), self.n_targets)
        return self.target_scaler.inverse(torch.as_tensor(scaled, dtype=torch.float64)).numpy()

    def _fit(self, mmd: np.ndarray, side: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Save atomically with joblib: estimator state, schema, scaler statistics, settings."""
        payload = {
            "polyinv_kind": self.kind, "polyinv_version": __version__, "hparams": self.hparams,
            "target_scaler": self.target_scaler.state_dict(), "state": self.state,
            "polyinv_domain": getattr(self, "domain", None),  # applicability domain (polyinv.trust.domain)
        }
        with atomic_path(path) as tmp:
            joblib.dump(payload, tmp, compress=3)

    @classmethod
    def load(cls, path: str | Path):
        try:
            payload = joblib.load(path)
        except Exception as exc:
            raise PolyinvError(f"{path}: cannot read model file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
        if not isinstance(payload, dict) or payload.get("polyinv_kind") != cls.kind:
            raise PolyinvError(f"{path}: not a polyinv {cls.kind} file")
        model = cls(**payload["hparams"])
        model.target_scaler.load_state_dict(payload["target_scaler"])
        model.state = payload["state"]
        model.domain = payload.get("polyinv_domain")
        return model
