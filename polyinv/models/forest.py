"""Random-forest baseline (the study's model) behind the same data split, harness and inference command.

Targets are transformed and standardised (:class:`~polyinv.models.classical.ClassicalModel`; a multi-output forest
splits on the summed squared error of all outputs, so unscaled targets would let ``time`` decide
every split); inputs stay physical because trees are invariant to monotone input scaling.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import RandomizedSearchCV

from polyinv.models.base import register
from polyinv.models.classical import ClassicalModel

#: The study's randomized-search space (n_estimators, max_depth, min_samples_split, min_samples_leaf).
SEARCH_SPACE = {
    "n_estimators": [100, 200, 300, 500],
    "max_depth": [None, 10, 20, 30],
    "min_samples_split": [2, 5, 10],
    "min_samples_leaf": [1, 2, 4],
}
KIND = "random_forest"


@register
class ForestModel(ClassicalModel):
    """Multi-output ``RandomForestRegressor`` with optional randomized search (20 iterations, 3-fold)."""

    kind = KIND
    has_importances = True

    def __init__(
        self,
        targets: list[str] | None = None,
        side_inputs: list[str] | None = None,
        mmd_columns: list[str] | None = None,
        transforms: dict[str, str] | None = None,
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
        progress: bool = False,
    ) -> None:
        """
        Args:
            n_estimators: trees in the forest (without search)
            max_depth: deepest tree (null: unlimited)
            min_samples_split: fewest rows a node must hold to be split
            min_samples_leaf: fewest rows in a leaf
            max_features: share (or sqrt/log2) of the inputs tried at each split
            search: the study's randomized search over the forest settings
            search_iter: settings tried by the search
            search_cv: folds of the search's cross-validation
            n_jobs: worker processes of the forest (-1: every core)
            random_state: seed (set from the run's seed)
            progress: taken like every classical model's; a forest fits without a progress bar
        """
        super().__init__(
            targets=targets,
            side_inputs=side_inputs,
            mmd_columns=mmd_columns,
            transforms=transforms,
            n_estimators=int(n_estimators),
            max_depth=max_depth,
            min_samples_split=int(min_samples_split),
            min_samples_leaf=int(min_samples_leaf),
            max_features=max_features,
            search=bool(search),
            search_iter=int(search_iter),
            search_cv=int(search_cv),
            n_jobs=int(n_jobs),
            random_state=int(random_state),
        )

    @property
    def best_params(self) -> dict | None:
        return self.state.get("best_params")

    @property
    def estimator(self) -> RandomForestRegressor | None:
        return self.state.get("estimator")

    def _features(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        return np.hstack([side, mmd])

    def _fit(self, mmd, side, y) -> None:
        hp = self.hparams
        base = RandomForestRegressor(
            n_estimators=hp["n_estimators"],
            max_depth=hp["max_depth"],
            min_samples_split=hp["min_samples_split"],
            min_samples_leaf=hp["min_samples_leaf"],
            max_features=hp["max_features"],
            n_jobs=hp["n_jobs"],
            random_state=hp["random_state"],
        )
        x = self._features(mmd, side)
        if hp["search"]:
            search = RandomizedSearchCV(
                base,
                SEARCH_SPACE,
                n_iter=hp["search_iter"],
                cv=hp["search_cv"],
                scoring="r2",
                random_state=hp["random_state"],
                n_jobs=1,
            )
            search.fit(x, y)
            self.state.update(estimator=search.best_estimator_, best_params=dict(search.best_params_))
        else:
            self.state.update(estimator=base.fit(x, y), best_params=None)

    def _predict(self, mmd, side) -> np.ndarray:
        return self.estimator.predict(self._features(mmd, side))

    def feature_importances(self) -> dict[str, float]:
        """Impurity importances by input column name."""
        names = self.side_names + self.mmd_names
        return dict(zip(names, self.estimator.feature_importances_.tolist(), strict=True))
