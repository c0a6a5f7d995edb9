"""Shared base of the scikit-learn model families (random forest, Gaussian process).

They plug into the same data split, harness and inference command as the networks: physical arrays in,
physical recipe out. Targets go through their configured transforms (e.g. log cAIBN_0) and scikit-learn's
``StandardScaler``. A model is saved as one ``model.skops`` file (``skops.io``: no pickle, so loading runs
no code) holding the estimators, the schema, the settings and the applicability domain; a file holding
any type outside :data:`TRUSTED` is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.preprocessing import StandardScaler

from polyinv import __version__
from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.models.base import InverseModel
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

MODEL_FILE = "model.skops"
#: The types beyond skops' defaults that a polyinv model file may hold.
TRUSTED = [
    "sklearn.gaussian_process.kernels.ConstantKernel",
    "sklearn.gaussian_process.kernels.Matern",
    "sklearn.gaussian_process.kernels.Product",
    "sklearn.gaussian_process.kernels.Sum",
    "sklearn.gaussian_process.kernels.WhiteKernel",
    "sklearn.tree._tree.Tree",
]
TINY = np.finfo(np.float64).tiny


def log_columns(values: np.ndarray, mask: Sequence[bool]) -> np.ndarray:
    """Natural log of the masked columns (values held at the smallest positive float first), others as given."""
    values = np.array(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    values[:, mask] = np.log(np.maximum(values[:, mask], TINY))
    return values


class ClassicalModel(InverseModel):
    """Base: subclasses implement ``_fit(mmd, side, y_scaled)`` and ``_predict(mmd, side) -> y_scaled``."""

    kind = "classical"
    family = "classical"

    def __init__(
        self,
        targets: Sequence[str] | None = None,
        side_inputs: Sequence[str] | None = None,
        mmd_columns: Sequence[str] | None = None,
        transforms: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.target_names = list(TARGETS if targets is None else targets)
        self.side_names = list(SIDE_INPUTS if side_inputs is None else side_inputs)
        self.mmd_names = list(MMD_COLUMNS if mmd_columns is None else mmd_columns)
        self.transforms = dict(transforms or {})
        self.hparams = {
            "targets": self.target_names,
            "side_inputs": self.side_names,
            "mmd_columns": self.mmd_names,
            "transforms": self.transforms,
            **settings,
        }
        self.target_log = [self.transforms.get(t) == "log" for t in self.target_names]
        self.side_log = [self.transforms.get(c) == "log" for c in self.side_names]
        self.state: dict[str, Any] = {}  # fitted estimators and preprocessing, saved with the model
        self.domain: dict | None = None

    def _arrays(self, mmd, side) -> tuple[np.ndarray, np.ndarray]:
        mmd = np.asarray(mmd, dtype=np.float64).reshape(len(mmd), len(self.mmd_names))
        return mmd, np.asarray(side, dtype=np.float64).reshape(len(mmd), self.n_side)

    # ------------------------------------------------------------------ target scaling
    def scaled_targets(self, physical: np.ndarray) -> np.ndarray:
        """Physical targets → model space (transforms, then the training rows' standardisation)."""
        return self.state["target_scaler"].transform(log_columns(np.atleast_2d(physical), self.target_log))

    def physical_targets(self, scaled: np.ndarray) -> np.ndarray:
        """Model space → physical targets."""
        raw = self.state["target_scaler"].inverse_transform(
            np.atleast_2d(np.asarray(scaled, dtype=np.float64))
        )
        raw[:, self.target_log] = np.exp(raw[:, self.target_log])
        return raw

    # ------------------------------------------------------------------ fit / predict
    def fit(self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray):
        """Fit on physical arrays (N,L), (N,k), (N,T)."""
        targets = np.asarray(targets, dtype=np.float64)
        bad = [
            t
            for t, is_log, col in zip(self.target_names, self.target_log, targets.T, strict=True)
            if is_log and (col <= 0).any()
        ]
        if bad:
            raise PolyinvError(f"column {bad[0]!r} has values <= 0 and cannot take the 'log' transform")
        self.state = {"target_scaler": StandardScaler().fit(log_columns(targets, self.target_log))}
        self._fit(*self._arrays(mmd, side), self.scaled_targets(targets))
        return self

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Physical inputs → physical recipe (N,T)."""
        if not self.state:
            raise PolyinvError(f"the {self.kind} model is not fitted")
        return self.physical_targets(
            self._predict(*self._arrays(mmd, side)).reshape(len(mmd), self.n_targets)
        )

    def _fit(self, mmd: np.ndarray, side: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit_report(self) -> dict[str, Any]:
        """A randomized search's chosen settings and the GP's self-check (None where the model has none)."""
        return {"best_params": self.state.get("best_params"), "fit_checks": self.state.get("fit_checks")}

    # ------------------------------------------------------------------ model file
    def save(self, path: str | Path) -> None:
        """Write the model atomically as a skops file."""

        payload = {
            "polyinv_kind": self.kind,
            "polyinv_version": __version__,
            "hparams": self.hparams,
            "state": self.state,
            "polyinv_domain": self.domain,
            "polyinv_files": self.files_info(),
        }
        with atomic_path(path) as tmp:
            sio.dump(payload, tmp)

    @classmethod
    def read_payload(cls, path: str | Path) -> dict:
        """The stored dict of a polyinv skops file; anything else (or a type outside TRUSTED) is refused."""

        try:
            untrusted = set(sio.get_untrusted_types(file=path)) - set(TRUSTED)
            if untrusted:
                raise PolyinvError(
                    f"{path}: refused: the file holds types polyinv never writes ({', '.join(sorted(untrusted)[:3])})"
                )
            payload = sio.load(path, trusted=TRUSTED)
        except PolyinvError:
            raise
        except Exception as exc:
            raise PolyinvError(
                f"{path}: not a readable polyinv model file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from exc
        if not isinstance(payload, dict) or "polyinv_kind" not in payload:
            raise PolyinvError(f"{path}: not a polyinv model file")
        return payload

    @classmethod
    def from_payload(cls, payload: dict):
        model = cls(**payload["hparams"])
        model.state = payload["state"]
        model.domain = payload.get("polyinv_domain")
        model.read_files_info(payload.get("polyinv_files"))
        return model
