"""Random-forest baseline (the study's model) behind the same data split, harness and inference command.

Targets are transformed/standardised with the same :class:`ColumnScaler` as the networks (a
multi-output forest splits on the summed squared error of all outputs, so unscaled targets would
let ``time`` decide every split); inputs stay physical because trees are invariant to monotone
input scaling. The fitted model is saved with joblib together with its schema and scaler state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import RandomizedSearchCV

from polyinv import __version__
from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.scaling import ColumnScaler
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

#: The study's randomized-search space (n_estimators, max_depth, min_samples_split, min_samples_leaf).
SEARCH_SPACE = {
    "n_estimators": [100, 200, 300, 500],
    "max_depth": [None, 10, 20, 30],
    "min_samples_split": [2, 5, 10],
    "min_samples_leaf": [1, 2, 4],
}
KIND = "random_forest"


class ForestModel:
    """Multi-output ``RandomForestRegressor`` with optional randomized search (20 iterations, 3-fold)."""

    kind = KIND

    def __init__(
        self,
        targets: Sequence[str] = TARGETS,
        side_inputs: Sequence[str] = SIDE_INPUTS,
        mmd_columns: Sequence[str] = MMD_COLUMNS,
        transforms: Mapping[str, str] | None = None,
        n_estimators: int = 300,
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
        max_features: float | str | None = 1.0,
        search: bool = False,
        search_iter: int = 20,
        search_cv: int = 3,
        n_jobs: int = -1,
        random_state: int = 42,
    ) -> None:
        self.hparams = {
            "targets": list(targets), "side_inputs": list(side_inputs), "mmd_columns": list(mmd_columns),
            "transforms": dict(transforms or {}), "n_estimators": int(n_estimators), "max_depth": max_depth,
            "min_samples_split": int(min_samples_split), "min_samples_leaf": int(min_samples_leaf),
            "max_features": max_features, "search": bool(search), "search_iter": int(search_iter),
            "search_cv": int(search_cv), "n_jobs": int(n_jobs), "random_state": int(random_state),
        }
        self.target_names = list(targets)
        self.side_names = list(side_inputs)
        self.mmd_names = list(mmd_columns)
        # transforms of inputs are irrelevant to trees; keep only the target ones
        self.target_scaler = ColumnScaler(self.target_names, {k: v for k, v in self.hparams["transforms"].items() if k in targets})
        self.estimator: RandomForestRegressor | None = None
        self.best_params: dict | None = None

    @property
    def n_side(self) -> int:
        return len(self.side_names)

    def _features(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        return np.hstack([np.asarray(side, dtype=np.float64).reshape(len(mmd), self.n_side), np.asarray(mmd, dtype=np.float64)])

    def fit(self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray) -> ForestModel:
        """Fit on physical arrays (N,L), (N,k), (N,T)."""
        hp = self.hparams
        self.target_scaler.fit(targets)
        y = self.target_scaler(torch.as_tensor(targets, dtype=torch.float64)).numpy()
        x = self._features(mmd, side)
        base = RandomForestRegressor(
            n_estimators=hp["n_estimators"], max_depth=hp["max_depth"], min_samples_split=hp["min_samples_split"],
            min_samples_leaf=hp["min_samples_leaf"], max_features=hp["max_features"], n_jobs=hp["n_jobs"],
            random_state=hp["random_state"],
        )
        if hp["search"]:
            search = RandomizedSearchCV(
                base, SEARCH_SPACE, n_iter=hp["search_iter"], cv=hp["search_cv"], scoring="r2",
                random_state=hp["random_state"], n_jobs=1,
            )
            search.fit(x, y)
            self.estimator, self.best_params = search.best_estimator_, dict(search.best_params_)
        else:
            self.estimator = base.fit(x, y)
        return self

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Physical inputs → physical recipe (N,T)."""
        if self.estimator is None:
            raise PolyinvError("the random forest is not fitted")
        scaled = self.estimator.predict(self._features(mmd, side)).reshape(len(mmd), len(self.target_names))
        return self.target_scaler.inverse(torch.as_tensor(scaled, dtype=torch.float64)).numpy()

    def save(self, path: str | Path) -> None:
        """Save atomically with joblib (estimator, schema, scaler statistics, hparams)."""
        payload = {
            "polyinv_kind": KIND, "polyinv_version": __version__, "hparams": self.hparams,
            "best_params": self.best_params, "target_scaler": self.target_scaler.state_dict(),
            "estimator": self.estimator,
        }
        with atomic_path(path) as tmp:
            joblib.dump(payload, tmp, compress=3)

    @classmethod
    def load(cls, path: str | Path) -> ForestModel:
        payload = joblib.load(path)
        if not isinstance(payload, dict) or payload.get("polyinv_kind") != KIND:
            raise PolyinvError(f"{path}: not a polyinv random-forest file")
        model = cls(**payload["hparams"])
        model.target_scaler.load_state_dict(payload["target_scaler"])
        model.estimator, model.best_params = payload["estimator"], payload["best_params"]
        return model
