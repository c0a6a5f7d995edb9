"""The contract every polyinv model keeps, and the optional abilities a model declares.

A model maps physical inputs (MMD on its grid, scalar side inputs) to a physical recipe. Every model
holds its column schema (``target_names``, ``side_names``, ``mmd_names``, in the internal role names), the
key of the system whose files it reads (``system``: input and output files carry that system's names) and
its applicability domain (``domain``), all saved in its file. What only some models can do is declared as a class attribute, never
probed with ``hasattr``: callers ask ``model.has_interval`` and then call ``predict_interval``.

``family`` says how a kind trains (polyinv.train): ``network`` (Lightning, in a run folder with
checkpoints), ``classical`` (``fit`` on arrays, one skops file), ``auto`` (chosen per target by
polyinv.select) or ``ensemble`` (built from networks; never a config's kind).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from polyinv.errors import PolyinvError
from polyinv.schema import SYSTEM

Family = Literal["network", "classical", "auto", "ensemble"]
#: The registry: every kind a config's ``model.kind`` may name, filled by :func:`register` as polyinv.models
#: imports its modules. A new kind is its module (a class with ``@register``) and its config.
MODELS: dict[str, type[InverseModel]] = {}


class InverseModel:
    """Base of every model family: column schema, domain, prediction and the declared optional abilities."""

    kind: ClassVar[str] = "base"
    family: ClassVar[Family]
    #: ``predict_interval(mmd, side, level) -> (mean, lower, upper)``
    has_interval: ClassVar[bool] = False
    #: ``loo_predict_arrays(mmd, side, targets)``: held-out predictions of the rows the model was fitted on
    has_loo: ClassVar[bool] = False
    #: ``loo_predict_arrays(mmd, side, targets, folds)``: exact K-fold predictions of the fitted rows, no refits
    has_fold_cv: ClassVar[bool] = False
    #: ``feature_importances() -> {input: importance}``
    has_importances: ClassVar[bool] = False

    target_names: list[str]
    side_names: list[str]
    mmd_names: list[str]
    domain: dict | None
    #: the chemistry of the training file (polyinv.schema.SYSTEMS); files before it was stored are the study's
    system: str = SYSTEM.key
    #: the training file's MMD axis (MMDAxis fields) where it was known (data.axis or the file's metadata), so that
    #: ``predict --axis`` can re-bin traces onto it; None: unknown
    axis: dict | None = None

    def files_info(self) -> dict:
        """What a model file stores about the files the model reads: its system and MMD axis."""
        return {"system": self.system, "axis": self.axis}

    def read_files_info(self, info: dict | None) -> None:
        """Set :meth:`files_info` from a model file (the study's system and no axis for files without it)."""
        info = info or {}
        self.system, self.axis = str(info.get("system", SYSTEM.key)), info.get("axis")

    @property
    def n_side(self) -> int:
        return len(self.side_names)

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """(N, L) MMD and (N, k) side inputs, physical units → (N, T) physical recipe."""
        raise NotImplementedError

    def predict_interval(self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9):
        """(mean, lower, upper) of the central ``level`` interval; only where ``has_interval``."""
        raise PolyinvError(f"{self.kind} models give no intervals")

    def loo_predict_arrays(
        self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray, folds=None
    ) -> np.ndarray:
        """Held-out predictions of the fitted rows; only where ``has_loo`` (``folds``: ``has_fold_cv``)."""
        raise PolyinvError(f"{self.kind} models give no leave-one-out predictions")

    def feature_importances(self) -> dict[str, float]:
        """Impurity importances of the inputs; only where ``has_importances``."""
        raise PolyinvError(f"{self.kind} models give no built-in importances")

    def fit_report(self) -> dict[str, Any]:
        """What run.json records of the fit beyond the metrics (a search's settings, a self-check)."""
        return {}


def register(cls: type[InverseModel]) -> type[InverseModel]:
    """Class decorator: make ``cls.kind`` a configurable model kind."""
    if cls.kind in MODELS and MODELS[cls.kind] is not cls:
        raise ValueError(f"model kind {cls.kind!r} registered twice")
    MODELS[cls.kind] = cls
    return cls
