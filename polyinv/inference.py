"""Inference on new data with any saved polyinv model (MLP, CNN or random forest)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.data.io import read_system_table, read_table
from polyinv.errors import PolyinvError
from polyinv.log import LOG
from polyinv.models import load_model
from polyinv.models.base import InverseModel
from polyinv.refine import candidate_columns, model_refine, one_thread, refine_columns
from polyinv.schema import SYSTEM, frame_mmd_columns, system_of
from polyinv.trust.report import domain_columns, interval_columns


def input_columns(model: InverseModel) -> list[str]:
    """The input columns a model was trained on, in the order it reads them."""
    return list(model.side_names) + list(model.mmd_names)


def read_inputs(
    model: InverseModel,
    path: str | Path,
    sheet: str | None = None,
    targets: bool = False,
    onto: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Read and validate an input file against the schema stored in the model's checkpoint (in the model's
    system's column names; returned in the internal names); ``targets``: the true recipe columns too; ``onto``:
    puts the file's MMD (of any length) on the model's axis (predict --axis)."""
    try:
        system = system_of(model.system)
    except ValueError as exc:
        raise PolyinvError(f"the model file names {exc}") from None
    wanted = [*model.side_names, *(model.target_names if targets else ())]
    columns = input_columns(model) + wanted[len(model.side_names) :]

    def expects(exc: PolyinvError) -> PolyinvError:
        side = ", ".join(system.column(c) for c in model.side_names) or "no scalar inputs"
        return PolyinvError(
            f"{exc} — the checkpoint expects {side} + {model.mmd_names[0]}..{model.mmd_names[-1]} ({system.name})"
        )

    try:
        if system.key == SYSTEM.key and onto is None:
            return read_table(path, columns, sheet=sheet, mmd_columns=model.mmd_names)
        frame = read_system_table(path, system, wanted, sheet)
    except PolyinvError as exc:
        raise expects(exc) from exc
    frame = frame if onto is None else onto(frame)  # its own errors (the axis) need no hint on the columns
    missing = [system.column(c) for c in wanted if c not in frame.columns]
    n = len(frame_mmd_columns(frame))
    if missing or n != len(model.mmd_names):
        what = f"missing column(s) {', '.join(missing)}" if missing else f"the MMD has {n} points"
        raise expects(PolyinvError(f"{path}: {what}"))
    return frame[columns]


def predict_frame(model: InverseModel, frame: pd.DataFrame) -> np.ndarray:
    """Physical recipe (N, T) for a validated frame holding the model's input columns."""
    mmd = frame[list(model.mmd_names)].to_numpy(np.float64)
    side = frame[list(model.side_names)].to_numpy(np.float64)
    return model.predict_arrays(mmd, side)


def predict_table(
    model: InverseModel,
    frame: pd.DataFrame,
    interval: float | None = None,
    refine: bool = False,
    candidates: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Recipe predictions (physical units) with the input's 0-based data-row number in ``row``.

    With ``interval`` (e.g. 0.9) adds ``<target>_lo``/``<target>_hi`` (models with ``predict_interval``).
    Models saved with an applicability domain add ``in_domain``, ``domain_score`` and ``domain_note``.
    With ``refine`` the recipe is refined against the model's forward model (polyinv.refine), the model's
    own answer kept in ``model_<target>``; where the model's refine check declined, a line says why and the
    table holds the model's answer. ``candidates`` K adds up to K distinct recipes that reproduce each row.
    """

    with one_thread() if (refine or candidates) else contextlib.nullcontext():
        return _predict_table(model, frame, interval, refine, candidates, progress)


def _predict_table(model, frame, interval, refine, candidates, progress) -> pd.DataFrame:
    recipe = predict_frame(model, frame)
    extra = []
    if refine or candidates:
        _, _, why = model_refine(model)
        if candidates:
            found = candidate_columns(model, frame, recipe, candidates, progress=progress)
            if found is None:
                LOG.warning(f"--candidates: none offered: {why}")
            else:
                LOG.info(f"--candidates: {why}")
            extra += [] if found is None else [found]
        if refine:
            refined = refine_columns(model, frame, recipe, progress=progress)
            if refined is None:
                LOG.warning(f"--refine: returning the model's answer: {why}")
            else:
                LOG.info(f"--refine: {why}")
                recipe, columns = refined
                extra.insert(0, columns)
    out = pd.DataFrame({"row": np.arange(len(frame))})
    for j, name in enumerate(model.target_names):
        out[name] = recipe[:, j]
    if interval is not None:
        mmd = frame[list(model.mmd_names)].to_numpy(np.float64)
        side = frame[list(model.side_names)].to_numpy(np.float64)
        bands = interval_columns(model, mmd, side, interval)
        changed = (
            extra[0]["refine_changed"].to_numpy(bool)
            if refine and extra and "refine_changed" in extra[0]
            else None
        )
        if changed is not None and len(bands.columns):
            # the model's interval describes the model's answer (model_<target>), not a refined recipe: kept
            # beside that answer, and under <target>_lo/_hi only on rows whose answer refinement left unchanged
            extra[0] = pd.concat([extra[0], bands.add_prefix("model_")], axis=1)
            bands.loc[changed, :] = np.nan
            if changed.any():
                LOG.warning(
                    f"--interval: {int(changed.sum())} refined row(s) carry no <target>_lo/_hi: the interval is "
                    f"the model's, around its own answer (model_<target>_lo/_hi), and says nothing of the "
                    f"refined recipe; --candidates lists other recipes that reproduce the row"
                )
        out = pd.concat([out, bands], axis=1)
    if extra:
        out = pd.concat([out, *extra], axis=1)
    return pd.concat([out, domain_columns(model, frame, recipe)], axis=1)


def predict_file(ckpt: str | Path, path: str | Path, sheet: str | None = None) -> pd.DataFrame:
    model = load_model(ckpt)
    return predict_table(model, read_inputs(model, path, sheet))
