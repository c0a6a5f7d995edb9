"""What a data file says about itself: the MMD axis and simulator its metadata state, and the run protocol and
axis its rows imply (used to choose the forward model of a run's trust checks, docs/forward-model.md)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from polyinv.schema import MN, MONOMER_LEFT, MW, TIME, frame_conversion, frame_mmd_columns
from polyinv.sim.grid import MMDAxis, infer_axis
from polyinv.sim.io import read_metadata
from polyinv.sim.kinetics import DEFAULT_T_MAX, DEFAULT_X_STOP
from polyinv.sim.parameters import parameters_of

# ---------------------------------------------------------------------- what a file says about itself
_NORMALISATION_TEXT = {
    "sum(MMD1..MMD100) * mmd_delta_log10M = 1": "density",
    "sum(MMD1..MMD100) = 1": "sum",
    "max(MMD1..MMD100) = 1": "max",
}


def stated_axis(meta: Mapping[str, str] | None) -> MMDAxis | None:
    """The MMD axis a file's polyinv metadata states, or None when it states none."""
    if not meta or "mmd_log10M_min" not in meta:
        return None
    try:
        norm = _NORMALISATION_TEXT.get(str(meta.get("mmd_normalisation", "")).strip(), "density")
        return MMDAxis(
            float(meta["mmd_log10M_min"]),
            float(meta["mmd_log10M_max"]),
            int(meta.get("mmd_n_points", 100)),
            norm,
        )
    except (TypeError, ValueError):
        return None


def states_default_kinetics(meta: Mapping[str, str] | None, system: str = "ba") -> bool:
    """Whether a file's metadata says polyinv's literature kinetics of ``system`` made it (that system named,
    every stored coefficient and constant equal to :func:`~polyinv.sim.parameters.parameters_of` its key)."""
    if not meta or meta.get("package") != "polyinv":
        return False
    if str(meta.get("system", "ba")).split(":")[0].strip() != system:
        return False
    expected = dict(parameters_of(system).metadata())
    numeric = [
        k
        for k, v in expected.items()
        if k.endswith((".A", ".Ea_kJ_per_mol"))
        or k in ("C_M", "C_S", "C_S_mcr", "comb_ss", "comb_st", "comb_tt", "f_values", "f_temps", "alpha_t")
    ]
    for key in numeric:
        # files written before alpha_t existed (chain-length-averaged termination) state none: that is its 0.0
        if str(meta.get(key, "0.0" if key == "alpha_t" else "")).strip() != expected[key]:
            return False
    return True


def protocol_from_data(frame: pd.DataFrame) -> tuple[float, float]:
    """The run protocol of a file's rows: the conversion that stops a run (median conversion of the rows
    that stopped before the longest time; polyinv's 90 % when none did) and the time limit (the longest
    time when a row ran that long without reaching the stop conversion; else no row met the limit, and it
    is taken as the longest time or polyinv's 3600 s, whichever is larger). Without the monomer left (an
    MMD-only sheet) the stop conversion is polyinv's and the limit the longest time where a row stopped before
    it, else as above."""
    time = frame[TIME].to_numpy(float)
    longest = float(np.nanmax(time))
    early = time < longest * (1 - 1e-6)
    if MONOMER_LEFT not in frame.columns:
        return (longest if early.any() else max(longest, DEFAULT_T_MAX)), DEFAULT_X_STOP
    converted = frame_conversion(frame)
    x_stop = (
        float(np.clip(np.nanmedian(converted[early]), 0.05, 0.995)) if early.sum() >= 3 else DEFAULT_X_STOP
    )
    limited = ~early & (converted < x_stop - 2e-3)
    t_max = longest if limited.any() else max(longest, DEFAULT_T_MAX)
    return t_max, x_stop


def read_file_metadata(path) -> dict[str, str] | None:
    """polyinv's metadata of a data file (metadata sheet, CSV sidecar or Parquet key), None when it has none."""

    try:
        meta = read_metadata(path)
    except Exception:  # noqa: BLE001 - any file without readable polyinv metadata simply has none
        return None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else None


def file_axis(meta: Mapping[str, str] | None, frame: pd.DataFrame) -> tuple[MMDAxis | None, str]:
    """The MMD axis of a file: stated in its metadata, else inferred from its Mn/Mw; None with the reason
    when neither works (then the checks that need the axis are off)."""

    stated = stated_axis(meta)
    if stated is not None:
        return stated, "stated in the file's metadata"
    mmd = list(frame_mmd_columns(frame))
    if not ({MN, MW} <= set(frame.columns) and len(mmd) >= 2):
        return None, "the file states no MMD axis and lacks Mn/Mw to infer it"
    try:
        fit = infer_axis(frame[mmd].to_numpy(float), frame[MN].to_numpy(float), frame[MW].to_numpy(float))
    except ValueError as exc:
        return None, str(exc)
    if not fit.ok:
        return (
            None,
            f"no evenly spaced log10 M axis reconciles the MMD with Mn and Mw (best: {fit.describe()})",
        )
    return fit.axis, f"inferred from Mn/Mw: {fit.describe()}"
