"""The columns ``predict --refine`` and ``--candidates`` add, from the refine check stored in a model file."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from polyinv.models.base import InverseModel
from polyinv.refine.solver import REFINED, NoiseModel, as_targets, candidates, refine, refine_box
from polyinv.trust.domain import model_domain, model_forward


def model_refine(model: InverseModel):
    """(forward model, noise model, why) of a loaded model's refinement; the first two None when it declines."""

    forward, why = model_forward(model)
    if forward is None:
        return None, None, f"no forward model in the model file: {why}"
    record = model_domain(model).refine
    if not record:
        return None, None, "the model file holds no refine check (saved by an older polyinv)"
    if not record.get("use"):
        return None, None, record.get("why", "refinement declined at fit time")
    return forward, NoiseModel.from_dict(record["noise"]), record.get("why", "")


def _prepared(model: InverseModel):
    """(forward model, noise model, refined columns' indices in the model's targets, box low, box high) of a
    loaded model whose refine check let refinement run, else None."""

    forward, noise, _ = model_refine(model)
    if forward is None:
        return None
    names = list(model.target_names)
    return forward, noise, [names.index(t) for t in REFINED], *refine_box(model_domain(model), forward)


def candidate_columns(
    model: InverseModel, frame: pd.DataFrame, recipe: np.ndarray, k: int, progress: bool = True
) -> pd.DataFrame | None:
    """``candidate<j>_<target>``, ``candidate<j>_hellinger`` and ``candidate<j>_loglik`` (j = 1..k, best first) of
    ``predict --candidates``; None when the model's refine check declined."""

    prepared = _prepared(model)
    if prepared is None:
        return None
    forward, noise, cols, low, high = prepared
    names = list(model.target_names)
    with tqdm(total=len(frame), desc="candidates", unit="row", disable=not progress) as bar:
        found = candidates(
            forward, frame.reset_index(drop=True), recipe[:, cols], noise, low, high, k, progress=bar.update
        )
    out = {}
    for j, result in enumerate(found, start=1):
        values = as_targets(result, names, np.full_like(recipe, np.nan))  # a reverted optimum is no candidate
        out.update({f"candidate{j}_{t}": values[:, i] for i, t in enumerate(names)})
        out[f"candidate{j}_hellinger"] = np.where(result.reverted, np.nan, result.hellinger)
        out[f"candidate{j}_loglik"] = np.where(result.reverted, np.nan, result.loglik)
    return pd.DataFrame(out)


def refine_columns(
    model: InverseModel, frame: pd.DataFrame, recipe: np.ndarray, progress: bool = True
) -> tuple[np.ndarray, pd.DataFrame] | None:
    """Refined recipes (N, T) for validated input rows and the extra columns of ``predict --refine``
    (``model_<target>``, ``refine_hellinger``, ``refine_loglik``, ``refine_changed``); None when the model's
    refine check declined (:func:`model_refine` says why)."""

    prepared = _prepared(model)
    if prepared is None:
        return None
    forward, noise, cols, low, high = prepared
    names = list(model.target_names)
    observed = frame.reset_index(drop=True)
    with tqdm(total=len(observed), desc="refining", unit="row", disable=not progress) as bar:
        result = refine(forward, observed, recipe[:, cols], noise, low, high, progress=bar.update)
    refined = as_targets(result, names, recipe)
    extra = pd.DataFrame({f"model_{t}": recipe[:, j] for j, t in enumerate(names)})
    changed = np.any(
        np.abs(refined - recipe) > 1e-9 * (1 + np.abs(recipe)), axis=1
    )  # the answer differs from the model's
    extra["refine_hellinger"], extra["refine_loglik"], extra["refine_changed"] = (
        result.hellinger,
        result.loglik,
        changed,
    )
    return refined, extra
