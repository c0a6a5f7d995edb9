"""Applicability domain: is a new input like the training inputs, and is the answer inside the training recipes?

Feature space (fitted on the training rows only):

* each scalar side input (``cBA_time``, ``Mn``, ``Mw``) as log10 — they span decades and are positive;
* the MMD projected on its first ``n_components`` principal components (scikit-learn's PCA of the raw
  training MMD vectors; six components hold well over 99.9 % of the variance of the shipped grid);
* every feature standardised with the training mean and standard deviation, so side inputs and
  MMD shape weigh alike.

Score of a row = mean Euclidean distance to its ``k`` nearest training rows in that space (scikit-learn's
``NearestNeighbors``).
Threshold = the ``quantile`` (default 99 %) of the training rows' own leave-one-out scores, so about
1 % of training-like rows sit above it. ``domain_score`` is reported as score / threshold (> 1 means
far from the training data); a row is in domain up to ``knn_margin`` (default 1.25) times the
threshold: recipes between the points of a grid design sit farther from their neighbours than grid
rows do from each other (docs/trust.md).
Independently, the predicted recipe must lie inside the training range of every target widened by
``range_tolerance`` (default 5 %) of that range's width.

Forward consistency (optional, :meth:`ApplicabilityDomain.fit_consistency`, fitted once the model is
trained): the predicted recipe (``cBA_0``, ``cAIBN_0``, ``temp``) is simulated again with the training
file's forward model (:class:`polyinv.sim.forward.ForwardModel`: polyinv's kinetics or a calibration on the
training rows, the file's MMD axis and run protocol; stored here) and compared with the input: Hellinger distance between the MMDs and |log(simulated /
input)| (≈ relative error) of each scalar side input the model reads (``Mn``, ``Mw``, ``cBA_time``).
Each statistic has its own threshold: ``consistency_margin`` × its ``consistency_quantile`` over
training rows (held-out predictions where the model gives them, e.g. the GP's leave-one-out
recipes). A row whose statistics exceed any threshold is outside the domain: an MMD that no recipe
the model would predict can produce (e.g. from 0.05 mol/L AIBN, far outside the training recipes
yet with inputs near training rows) is caught here. ``consistency_score`` = max over the
statistics of value / threshold. Cost: one simulation per row with ``n_steps`` = 120 time steps.

The fitted domain is plain lists and numbers (:meth:`ApplicabilityDomain.to_dict`), so it is stored
inside a Lightning checkpoint (loadable with ``torch.load(weights_only=True)``) or a skops model file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from polyinv.errors import PolyinvError
from polyinv.metrics import hellinger
from polyinv.models.base import InverseModel
from polyinv.schema import MN, MONOMER_LEFT, MW, TIME
from polyinv.sim import RECIPE_FIELDS
from polyinv.sim.forward import ForwardModel
from polyinv.trust.verify import resimulate

VERSION = 1
TINY = 1e-300
KNN_MARGIN = 1.25  # in domain up to this multiple of the kNN threshold (grid-trained models: LHS rows between grid points)
CONSISTENCY_SIDE = (MONOMER_LEFT, MN, MW)  # side inputs the forward-consistency check compares
CONSISTENCY_STEPS = 120  # simulator time steps of the check: half the default, ~2x faster; statistics within
# 0.0003 (Hellinger) and 0.001 (|log ratio|) of the 240-step values, < 6 % of the fitted thresholds


@dataclass
class DomainResult:
    """Per-row verdicts: ``in_domain`` = ``inputs_ok`` and ``recipe_ok``; ``score`` = kNN distance / threshold."""

    in_domain: np.ndarray
    score: np.ndarray
    inputs_ok: np.ndarray
    recipe_ok: np.ndarray
    reasons: list[str]
    consistency: np.ndarray | None = None  # max statistic / threshold per row; None without the check


class ApplicabilityDomain:
    """kNN distance in a standardised (log side inputs + MMD principal components) space, plus recipe ranges."""

    def __init__(
        self,
        side_names: Sequence[str],
        mmd_names: Sequence[str],
        target_names: Sequence[str],
        k: int = 5,
        quantile: float = 0.99,
        n_components: int = 6,
        range_tolerance: float = 0.05,
        knn_margin: float = KNN_MARGIN,
    ) -> None:
        if not 0 < quantile <= 1:
            raise PolyinvError(f"domain quantile must lie in (0, 1], got {quantile}")
        if not knn_margin > 0:
            raise PolyinvError(f"domain knn_margin must be positive, got {knn_margin}")
        self.side_names = list(side_names)
        self.mmd_names = list(mmd_names)
        self.target_names = list(target_names)
        self.k = int(k)
        self.quantile = float(quantile)
        self.n_components = int(n_components)
        self.range_tolerance = float(range_tolerance)
        self.knn_margin = float(knn_margin)
        self.consistency: dict | None = None
        self.forward_off: str | None = None  # why there is no forward-consistency check (the run says so)
        self.refine: dict | None = None  # the fit-time refine check (polyinv.refine.check.check_refinement)
        self.mmd_mean = self.components = self.feat_mean = self.feat_std = self.train_features = None
        self._neighbours: NearestNeighbors | None = None
        self.threshold = float("nan")
        self.target_low = self.target_high = None

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        side_names: Sequence[str],
        mmd_names: Sequence[str],
        target_names: Sequence[str],
        **settings,
    ) -> ApplicabilityDomain:
        """Fit on the training rows of a validated frame (physical units, targets included)."""
        dom = cls(side_names, mmd_names, target_names, **settings)
        if len(frame) < 3:
            raise PolyinvError(f"the applicability domain needs at least 3 training rows, got {len(frame)}")
        mmd = frame[dom.mmd_names].to_numpy(np.float64)
        pca = PCA(max(1, min(dom.n_components, len(frame) - 1, mmd.shape[1])), svd_solver="full").fit(mmd)
        dom.mmd_mean, dom.components = pca.mean_, pca.components_
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
        side = np.log10(np.clip(frame[self.side_names].to_numpy(np.float64), TINY, None)).reshape(
            len(frame), -1
        )
        pcs = (frame[self.mmd_names].to_numpy(np.float64) - self.mmd_mean) @ self.components.T
        return np.hstack([side, pcs])

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """Standardised domain features of rows holding the model's input columns."""
        return (self._raw_features(frame) - self.feat_mean) / self.feat_std

    def _knn_distance(self, x: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        """Mean distance to the ``k`` nearest training rows (a training row itself left out with ``leave_one_out``)."""
        if self._neighbours is None:
            self._neighbours = NearestNeighbors().fit(self.train_features)
        k = min(self.k + int(leave_one_out), len(self.train_features))
        distances, _ = self._neighbours.kneighbors(x, n_neighbors=k)
        return (distances[:, 1:] if leave_one_out else distances).mean(axis=1)

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

    # ------------------------------------------------------------------ forward consistency
    def consistency_names(self) -> list[str]:
        """The statistics of the forward-consistency check this domain can compute."""
        return ["hellinger", *(c for c in CONSISTENCY_SIDE if c in self.side_names)]

    def _consistency_usable(self, forward) -> str | None:
        """Why the check cannot run with ``forward`` (None: it can)."""

        if not all(t in self.target_names for t in RECIPE_FIELDS):
            return "the model does not predict every recipe field"
        if len(self.mmd_names) != forward.axis.n_points:
            return f"the model reads {len(self.mmd_names)} MMD points, the forward model's axis has {forward.axis.n_points}"
        return None

    def forward_model(self):
        """The stored forward model of the check (polyinv's own for models saved before it was stored), or None."""

        if not self.consistency:
            return None
        stored = self.consistency.get("forward")
        return (
            ForwardModel.from_dict(stored)
            if stored
            else ForwardModel(t_max=float(self.consistency.get("t_max", 3600.0)))
        )

    def consistency_stats(
        self,
        frame: pd.DataFrame,
        recipe: np.ndarray,
        t_max: float | None = None,
        n_steps: int | None = None,
        forward=None,
    ) -> np.ndarray:
        """(N, S) forward-consistency statistics (:meth:`consistency_names`) of predicted recipes (N, T)."""

        settings = self.consistency or {}
        forward = forward or self.forward_model()
        t_max = float(forward.t_max if t_max is None else t_max)
        n_steps = int(settings.get("n_steps", CONSISTENCY_STEPS) if n_steps is None else n_steps)
        recipe = np.asarray(recipe, dtype=np.float64).reshape(len(frame), len(self.target_names))
        recipes = pd.DataFrame({t: recipe[:, self.target_names.index(t)] for t in RECIPE_FIELDS})
        recipes[TIME] = t_max
        with np.errstate(all="ignore"):  # absurd recipes give NaN outcomes, judged inconsistent below
            sim, _ = resimulate(recipes, n_steps=n_steps, forward=forward)
        sim_mmd = sim[[f"MMD{i}" for i in range(1, len(self.mmd_names) + 1)]].to_numpy()
        stats = [hellinger(frame[self.mmd_names].to_numpy(np.float64), sim_mmd)]
        for column in self.consistency_names()[1:]:
            want = np.clip(frame[column].to_numpy(np.float64), TINY, None)
            stats.append(np.abs(np.log(np.clip(sim[column].to_numpy(np.float64), TINY, None) / want)))
        return np.column_stack(stats)

    def fit_consistency(
        self,
        frame: pd.DataFrame,
        recipe: np.ndarray,
        forward,
        quantile: float = 0.99,
        margin: float = 2.0,
        n_steps: int = CONSISTENCY_STEPS,
        off_reason: str = "",
    ) -> ApplicabilityDomain:
        """Fit the forward-consistency thresholds on training rows and the model's recipes for them, with
        ``forward`` (a :class:`~polyinv.sim.forward.ForwardModel`; None: no check, ``off_reason`` says why)."""
        why = (off_reason or "no forward model") if forward is None else self._consistency_usable(forward)
        if why:
            self.consistency, self.forward_off = None, why
            return self
        stats = self.consistency_stats(frame, recipe, t_max=forward.t_max, n_steps=n_steps, forward=forward)
        finite = np.where(np.isfinite(stats), stats, np.nan)
        base = np.nanquantile(finite, quantile, axis=0)
        self.consistency = {
            "names": self.consistency_names(),
            "threshold": (margin * np.maximum(base, 1e-6)).tolist(),
            "quantile": float(quantile),
            "margin": float(margin),
            "t_max": forward.t_max,
            "n_steps": int(n_steps),
            "train_rows": int(len(frame)),
            "forward": forward.to_dict(),
        }
        self.forward_off = None
        return self

    def consistency_ratio(self, frame: pd.DataFrame, recipe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) max statistic / threshold, and (N, S) the per-statistic ratios."""
        stats = self.consistency_stats(frame, recipe)
        ratios = stats / np.asarray(self.consistency["threshold"])
        ratios = np.where(np.isfinite(ratios), ratios, np.inf)
        return ratios.max(axis=1), ratios

    # ------------------------------------------------------------------ judging
    def check(self, frame: pd.DataFrame, recipe: np.ndarray | None = None) -> DomainResult:
        """Judge rows (model input columns) and, when given, their predicted recipes (N, T)."""
        score = self.score(frame)
        inputs_ok = score <= self.knn_margin
        if recipe is None:
            inside = np.ones((len(frame), len(self.target_names)), dtype=bool)
        else:
            inside = self.recipe_inside(recipe)
        recipe_ok = inside.all(axis=1)
        consistency = ratios = None
        consistent = np.ones(len(frame), dtype=bool)
        if self.consistency and recipe is not None and len(frame):
            consistency, ratios = self.consistency_ratio(frame, recipe)
            consistent = consistency <= 1.0
        names = (self.consistency or {}).get("names", [])
        reasons = []
        for i in range(len(frame)):
            why = [] if inputs_ok[i] else [f"inputs far from training data ({score[i]:.2f}x threshold)"]
            why += [
                f"{t} outside training range" for j, t in enumerate(self.target_names) if not inside[i, j]
            ]
            if not consistent[i]:
                worst = [f"{n} {r:.1f}x" for n, r in zip(names, ratios[i], strict=True) if r > 1.0]
                why.append(
                    f"predicted recipe does not reproduce the input when simulated ({', '.join(worst)} threshold)"
                )
            reasons.append("; ".join(why))
        return DomainResult(
            inputs_ok & recipe_ok & consistent, score, inputs_ok, recipe_ok, reasons, consistency
        )

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """Plain lists/numbers/strings (safe for ``torch.load(weights_only=True)`` and skops)."""
        as_list = lambda a: np.asarray(a, dtype=np.float64).tolist()  # noqa: E731
        return {
            "version": VERSION,
            "side_names": self.side_names,
            "mmd_names": self.mmd_names,
            "target_names": self.target_names,
            "k": self.k,
            "quantile": self.quantile,
            "n_components": self.n_components,
            "range_tolerance": self.range_tolerance,
            "threshold": self.threshold,
            "mmd_mean": as_list(self.mmd_mean),
            "components": as_list(self.components),
            "feat_mean": as_list(self.feat_mean),
            "feat_std": as_list(self.feat_std),
            "train_features": as_list(self.train_features),
            "target_low": as_list(self.target_low),
            "target_high": as_list(self.target_high),
            "knn_margin": self.knn_margin,
            "consistency": self.consistency,
            "forward_off": self.forward_off,
            "refine": self.refine,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ApplicabilityDomain:
        if not isinstance(data, Mapping) or data.get("version") != VERSION:
            raise PolyinvError("the stored applicability domain has an unknown format")
        dom = cls(
            data["side_names"],
            data["mmd_names"],
            data["target_names"],
            k=data["k"],
            quantile=data["quantile"],
            n_components=data["n_components"],
            range_tolerance=data["range_tolerance"],
            knn_margin=data["knn_margin"],
        )
        dom.consistency = data.get("consistency")
        dom.forward_off = data.get("forward_off")
        dom.refine = data.get("refine")
        dom.threshold = float(data["threshold"])
        for key in (
            "mmd_mean",
            "components",
            "feat_mean",
            "feat_std",
            "train_features",
            "target_low",
            "target_high",
        ):
            setattr(dom, key, np.asarray(data[key], dtype=np.float64))
        dom.components = dom.components.reshape(-1, len(dom.mmd_names))
        dom.train_features = dom.train_features.reshape(-1, len(dom.feat_mean))
        return dom


def fit_domain(dm) -> ApplicabilityDomain:
    """The domain of a set-up :class:`~polyinv.data.module.PolyDataModule`, from its training rows only."""
    return ApplicabilityDomain.fit(dm.train_frame, dm.side_columns, dm.mmd_columns, dm.target_columns)


def heldout_recipes(model: InverseModel, frame: pd.DataFrame) -> np.ndarray:
    """The model's recipes (N, T) for its own training rows: held-out (leave-one-out) where it offers them."""
    mmd = frame[list(model.mmd_names)].to_numpy(np.float64)
    side = frame[list(model.side_names)].to_numpy(np.float64)
    if model.has_loo:
        return model.loo_predict_arrays(mmd, side, frame[list(model.target_names)].to_numpy(np.float64))
    return model.predict_arrays(mmd, side)


def fit_model_consistency(
    model: InverseModel, domain: Mapping | None, frame: pd.DataFrame, forward=None, off_reason: str = ""
) -> dict | None:
    """``domain`` (a stored dict) with forward-consistency thresholds fitted on the model's training rows
    with ``forward`` (None: the check is off, ``off_reason`` says why)."""
    if not domain:
        return domain
    dom = ApplicabilityDomain.from_dict(domain)
    recipes = heldout_recipes(model, frame) if forward is not None else None
    return dom.fit_consistency(frame, recipes, forward, off_reason=off_reason).to_dict()


def model_forward(model: InverseModel):
    """(forward model of a loaded model's trust checks or None, why none)."""
    dom = model_domain(model)
    if dom is None:
        return None, "the model file stores no applicability domain"
    fm = dom.forward_model()
    return (
        (fm, "")
        if fm is not None
        else (None, dom.forward_off or "the model was saved without a forward model")
    )


def model_domain(model: InverseModel) -> ApplicabilityDomain | None:
    """The domain stored with a loaded model (``model.domain``, a dict), or None for older checkpoints."""
    data = model.domain
    return ApplicabilityDomain.from_dict(data) if data else None
