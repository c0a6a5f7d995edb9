"""Applicability domain: is a new input like the training inputs, and is the answer inside the training recipes?

Feature space (fitted on the training rows only):

* each scalar side input (``cBA_time``, ``Mn``, ``Mw``) as log10 — they span decades and are positive;
* the MMD projected on its first ``n_components`` principal components (PCA of the raw training
  MMD vectors; six components hold well over 99.9 % of the variance of the shipped grid);
* every feature standardised with the training mean and standard deviation, so side inputs and
  MMD shape weigh alike.

Score of a row = mean Euclidean distance to its ``k`` nearest training rows in that space.
Threshold = the ``quantile`` (default 99 %) of the training rows' own leave-one-out scores, so about
1 % of training-like rows sit above it. ``domain_score`` is reported as score / threshold (> 1 means
far from the training data). Independently, the predicted recipe must lie inside the training
range of every target widened by ``range_tolerance`` (default 5 %) of that range's width.

The fitted domain is plain lists and numbers (:meth:`ApplicabilityDomain.to_dict`), so it is stored
inside a Lightning checkpoint (loadable with ``torch.load(weights_only=True)``) or a joblib model file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from polyinv.errors import PolyinvError

VERSION = 1
TINY = 1e-300


@dataclass
class DomainResult:
    """Per-row verdicts: ``in_domain`` = ``inputs_ok`` and ``recipe_ok``; ``score`` = kNN distance / threshold."""

    in_domain: np.ndarray
    score: np.ndarray
    inputs_ok: np.ndarray
    recipe_ok: np.ndarray
    reasons: list[str]


class ApplicabilityDomain:
    """kNN distance in a standardised (log side inputs + MMD principal components) space, plus recipe ranges."""

    def __init__(self, side_names: Sequence[str], mmd_names: Sequence[str], target_names: Sequence[str],
                 k: int = 5, quantile: float = 0.99, n_components: int = 6, range_tolerance: float = 0.05) -> None:
        if not 0 < quantile <= 1:
            raise PolyinvError(f"domain quantile must lie in (0, 1], got {quantile}")
        self.side_names = list(side_names)
        self.mmd_names = list(mmd_names)
        self.target_names = list(target_names)
        self.k = int(k)
        self.quantile = float(quantile)
        self.n_components = int(n_components)
        self.range_tolerance = float(range_tolerance)
        self.mmd_mean = self.components = self.feat_mean = self.feat_std = self.train_features = None
        self.threshold = float("nan")
        self.target_low = self.target_high = None

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, frame: pd.DataFrame, side_names: Sequence[str], mmd_names: Sequence[str],
            target_names: Sequence[str], **settings) -> ApplicabilityDomain:
        """Fit on the training rows of a validated frame (physical units, targets included)."""
        dom = cls(side_names, mmd_names, target_names, **settings)
        if len(frame) < 3:
            raise PolyinvError(f"the applicability domain needs at least 3 training rows, got {len(frame)}")
        mmd = frame[dom.mmd_names].to_numpy(np.float64)
        dom.mmd_mean = mmd.mean(axis=0)
        n_comp = max(1, min(dom.n_components, len(frame) - 1, mmd.shape[1]))
        _, _, vt = np.linalg.svd(mmd - dom.mmd_mean, full_matrices=False)
        dom.components = vt[:n_comp]
        raw = dom._raw_features(frame)
        dom.feat_mean = raw.mean(axis=0)
        dom.feat_std = np.maximum(raw.std(axis=0), 1e-12)
        dom.train_features = (raw - dom.feat_mean) / dom.feat_std
        dom.k = max(1, min(dom.k, len(frame) - 1))
        loo = dom._knn_distance(dom.train_features, leave_one_out=True)
        dom.threshold = float(np.quantile(loo, dom.quantile))
        targets = frame[dom.target_names].to_numpy(np.float64)
        dom.target_low, dom.target_high = targets.min(axis=0), targets.max(axis=0)
        return dom

    def _raw_features(self, frame: pd.DataFrame) -> np.ndarray:
        side = np.log10(np.clip(frame[self.side_names].to_numpy(np.float64), TINY, None)).reshape(len(frame), -1)
        pcs = (frame[self.mmd_names].to_numpy(np.float64) - self.mmd_mean) @ self.components.T
        return np.hstack([side, pcs])

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardised domain features of rows holding the model's input columns."""
        return (self._raw_features(frame) - self.feat_mean) / self.feat_std

    def _knn_distance(self, x: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        out = np.empty(len(x))
        k = self.k + 1 if leave_one_out else self.k
        for start in range(0, len(x), 2048):  # bounded memory for large inputs
            block = x[start : start + 2048]
            d = np.sqrt(((block[:, None, :] - self.train_features[None, :, :]) ** 2).sum(axis=2))
            nearest = np.sort(np.partition(d, min(k, d.shape[1]) - 1, axis=1)[:, :k], axis=1)
            out[start : start + 2048] = (nearest[:, 1:] if leave_one_out else nearest).mean(axis=1)
        return out

    # ------------------------------------------------------------------ judging
    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """kNN mean distance / threshold per row (> 1: outside the training inputs)."""
        return self._knn_distance(self.features(frame)) / self.threshold

    def recipe_inside(self, recipe: np.ndarray) -> np.ndarray:
        """(N, T) booleans: each predicted target inside its widened training range."""
        width = self.target_high - self.target_low
        pad = self.range_tolerance * np.where(width > 0, width, np.abs(self.target_high) + 1e-12)
        recipe = np.asarray(recipe, dtype=np.float64).reshape(-1, len(self.target_names))
        return (recipe >= self.target_low - pad) & (recipe <= self.target_high + pad)

    def check(self, frame: pd.DataFrame, recipe: np.ndarray | None = None) -> DomainResult:
        """Judge rows (model input columns) and, when given, their predicted recipes (N, T)."""
        score = self.score(frame)
        inputs_ok = score <= 1.0
        if recipe is None:
            inside = np.ones((len(frame), len(self.target_names)), dtype=bool)
        else:
            inside = self.recipe_inside(recipe)
        recipe_ok = inside.all(axis=1)
        reasons = []
        for i in range(len(frame)):
            why = [] if inputs_ok[i] else [f"inputs far from training data ({score[i]:.2f}x threshold)"]
            why += [f"{t} outside training range" for j, t in enumerate(self.target_names) if not inside[i, j]]
            reasons.append("; ".join(why))
        return DomainResult(inputs_ok & recipe_ok, score, inputs_ok, recipe_ok, reasons)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """Plain lists/numbers/strings (safe for ``torch.load(weights_only=True)`` and joblib)."""
        as_list = lambda a: np.asarray(a, dtype=np.float64).tolist()  # noqa: E731
        return {
            "version": VERSION, "side_names": self.side_names, "mmd_names": self.mmd_names,
            "target_names": self.target_names, "k": self.k, "quantile": self.quantile,
            "n_components": self.n_components, "range_tolerance": self.range_tolerance,
            "threshold": self.threshold, "mmd_mean": as_list(self.mmd_mean), "components": as_list(self.components),
            "feat_mean": as_list(self.feat_mean), "feat_std": as_list(self.feat_std),
            "train_features": as_list(self.train_features), "target_low": as_list(self.target_low),
            "target_high": as_list(self.target_high),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ApplicabilityDomain:
        if not isinstance(data, Mapping) or data.get("version") != VERSION:
            raise PolyinvError("the stored applicability domain has an unknown format")
        dom = cls(data["side_names"], data["mmd_names"], data["target_names"], k=data["k"], quantile=data["quantile"],
                  n_components=data["n_components"], range_tolerance=data["range_tolerance"])
        dom.threshold = float(data["threshold"])
        for key in ("mmd_mean", "components", "feat_mean", "feat_std", "train_features", "target_low", "target_high"):
            setattr(dom, key, np.asarray(data[key], dtype=np.float64))
        dom.components = dom.components.reshape(-1, len(dom.mmd_names))
        dom.train_features = dom.train_features.reshape(-1, len(dom.feat_mean))
        return dom


def fit_domain(dm) -> ApplicabilityDomain:
    """The domain of a set-up :class:`~polyinv.data.module.PolyDataModule`, from its training rows only."""
    return ApplicabilityDomain.fit(dm.train_frame, dm.side_columns, dm.mmd_columns, dm.target_columns)


def model_domain(model) -> ApplicabilityDomain | None:
    """The domain stored with a loaded model (``model.domain``, a dict), or None for older checkpoints."""
    data = getattr(model, "domain", None)
    return ApplicabilityDomain.from_dict(data) if data else None
