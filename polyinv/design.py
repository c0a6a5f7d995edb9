"""Recipes designed for target properties with a forward model (``polyinv design``, docs/refine.md).

The decision variables are the whole recipe (cBA_0, ln cAIBN_0, temp and the reaction time, each run
stopping at its time or at the protocol's conversion); the objective is each target's relative miss in units of
the tolerance (5 %: a residual of 1). Three properties leave a family of recipes, so many starts (a Latin
hypercube in the bounds) are solved at once (scipy's ``least_squares``, block-diagonal Jacobian) and the
recipes that meet every target are ranked by reaction time; the Pareto set of (worst miss, time) is returned.
A target MMD (on the forward model's axis) adds its shape: (√p − √q) / (√2 · the Hellinger tolerance) per point,
so that a Hellinger distance equal to the tolerance costs as much as a property missed by its tolerance; starting
recipes may be given besides the Latin hypercube (``polyinv design --mmd --ckpt`` gives a trained model's answers,
:func:`inverse_starts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.sparse import block_diag, csr_matrix
from scipy.stats import qmc

from polyinv.inference import predict_frame
from polyinv.metrics import hellinger
from polyinv.models.base import InverseModel
from polyinv.refine import sqrt_shape
from polyinv.schema import (
    INITIATOR_0,
    MN,
    MONOMER_0,
    MONOMER_LEFT,
    MW,
    TARGETS,
    TEMP,
    TIME,
    frame_conversion,
    frame_mmd_columns,
)

#: Properties a design can aim at; conversion is 1 - cBA_time / cBA_0 at the end of the run.
PROPERTIES = (MN, MW, "dispersity", "conversion")
#: The design's variables (time = the run's time limit; it may stop earlier at the protocol's conversion).
VARIABLES = TARGETS


@dataclass(frozen=True)
class Design:
    """The proposals (ranked, best first) and whether any meets every target within the tolerance."""

    table: pd.DataFrame
    met: bool
    message: str


def _outcome(sim: pd.DataFrame) -> dict[str, np.ndarray]:
    mn, mw = sim[MN].to_numpy(np.float64), sim[MW].to_numpy(np.float64)
    return {MN: mn, MW: mw, "dispersity": mw / mn, "conversion": frame_conversion(sim)}


def _to_z(recipes: np.ndarray) -> np.ndarray:
    """Rows of VARIABLES as the solver's coordinates (cAIBN_0 as its log); :func:`_simulate` reads them."""
    recipes = np.atleast_2d(np.asarray(recipes, dtype=np.float64))
    return np.column_stack([recipes[:, 0], np.log(recipes[:, 1]), recipes[:, 2], recipes[:, 3]])


def _simulate(forward, z: np.ndarray) -> pd.DataFrame:
    recipes = pd.DataFrame({MONOMER_0: z[:, 0], INITIATOR_0: np.exp(z[:, 1]), TEMP: z[:, 2]})
    with np.errstate(all="ignore"):
        return forward.simulate(recipes, t_max=z[:, 3])


def design(
    forward,
    targets: Mapping[str, float],
    bounds: Mapping[str, tuple[float, float]],
    tolerance: float = 0.05,
    n_starts: int = 48,
    top: int = 5,
    seed: int = 0,
    max_nfev: int = 40,
    mmd: np.ndarray | None = None,
    mmd_tolerance: float = 0.02,
    starts: np.ndarray | None = None,
    workers=None,
) -> Design:
    """Recipes inside ``bounds`` (VARIABLES → (low, high)) whose simulated properties meet ``targets``
    (PROPERTIES → value) within ``tolerance`` (relative) and, with ``mmd`` (a target MMD on the forward model's
    axis), whose MMD lies within ``mmd_tolerance`` (Hellinger) of it; shortest reaction first; at most ``top``
    rows. ``starts``: recipes (rows of VARIABLES) to start from besides ``n_starts`` Latin-hypercube points.
    ``workers``: a cluster's map (polyinv.batch.parallel_map) for the solver's finite differences (the same
    answers)."""
    names = [p for p in PROPERTIES if p in targets]
    want = np.array([float(targets[p]) for p in names])
    low = np.array([bounds[v][0] for v in VARIABLES], dtype=np.float64)
    high = np.array([bounds[v][1] for v in VARIABLES], dtype=np.float64)
    lo_z, hi_z = _to_z(low)[0], _to_z(high)[0]
    unit = qmc.LatinHypercube(d=4, seed=seed).random(n_starts)
    start = lo_z + unit * (hi_z - lo_z)
    starts = None if starts is None else starts[np.isfinite(starts).all(axis=1) & (starts > 0).all(axis=1)]
    if starts is not None and len(starts):  # a model's answers: inside the bounds, non-physical ones dropped
        inside = lo_z + 0.001 * (hi_z - lo_z), hi_z - 0.001 * (hi_z - lo_z)
        start = np.vstack([np.clip(_to_z(starts), *inside), start])
    n_starts = len(start)
    scale = np.log1p(tolerance)
    target_shape = None if mmd is None else sqrt_shape(np.asarray(mmd, dtype=np.float64)[None, :])
    n_res = len(names) + (0 if target_shape is None else target_shape.shape[1])

    def residuals(flat: np.ndarray) -> np.ndarray:
        sim = _simulate(forward, flat.reshape(n_starts, 4))
        got = _outcome(sim)
        r = np.column_stack(
            [np.log(np.clip(got[p], 1e-12, None) / w) / scale for p, w in zip(names, want, strict=True)]
        )
        if target_shape is not None:
            shape = (sqrt_shape(sim[list(frame_mmd_columns(sim))].to_numpy(np.float64)) - target_shape) / (
                np.sqrt(2.0) * mmd_tolerance
            )
            r = np.column_stack([r, shape])
        return np.where(np.isfinite(r), r, 1e3).ravel()

    sparsity = block_diag([csr_matrix(np.ones((n_res, 4)))] * n_starts, format="csr")
    res = least_squares(
        residuals,
        start.ravel(),
        jac_sparsity=sparsity,
        bounds=(np.tile(lo_z, n_starts), np.tile(hi_z, n_starts)),
        x_scale=np.tile(hi_z - lo_z, n_starts),
        diff_step=1e-4,
        max_nfev=max_nfev,
        method="trf",
        tr_solver="lsmr",
        ftol=1e-6,
        xtol=1e-6,
        workers=workers,
    )
    z = res.x.reshape(n_starts, 4)
    sim = _simulate(forward, z)
    got = _outcome(sim)
    table = pd.DataFrame(
        {
            MONOMER_0: z[:, 0],
            INITIATOR_0: np.exp(z[:, 1]),
            TEMP: z[:, 2],
            TIME: np.minimum(sim[TIME].to_numpy(np.float64), z[:, 3]),
        }
    )
    for p in PROPERTIES:
        table[f"sim_{p}"] = got[p]
    for p, w in zip(names, want, strict=True):
        table[f"miss_{p}"] = got[p] / w - 1.0
    table["worst_miss"] = table[[f"miss_{p}" for p in names]].abs().max(axis=1)
    score = table["worst_miss"] / tolerance  # the worst miss in units of its tolerance
    if target_shape is not None:
        table["hellinger"] = hellinger(
            np.asarray(mmd, dtype=np.float64)[None, :], sim[list(frame_mmd_columns(sim))].to_numpy(np.float64)
        )
        score = np.maximum(score, table["hellinger"] / mmd_tolerance)
    table["score"] = score
    table = table[np.isfinite(table["score"])].sort_values("score")
    if table.empty:  # no simulated outcome was finite: the forward model, not the targets, is at fault
        raise ValueError(
            f"the forward model ({forward.source}) gave non-finite outcomes for all {n_starts} "
            f"searched recipes; check its kinetics"
        )
    table = _distinct(table, hi_z - lo_z)
    meets = table["score"] <= 1.0
    if meets.any():  # every recipe that meets the targets, shortest first: the Pareto set of (miss, time)
        table = table[meets].sort_values([TIME, "score"])
        table = table[table["score"] <= table["score"].cummin()]
        message = (
            f"{int(meets.sum())} distinct recipes meet every target within {tolerance:.0%}"
            + ("" if target_shape is None else f" and the MMD within Hellinger {mmd_tolerance:g}")
            + "; those no faster recipe matches as well (the Pareto set of time and miss), fastest first"
        )
    else:
        best = table.iloc[0] if len(table) else None
        message = (
            f"no recipe inside the bounds meets every target within {tolerance:.0%}"
            + ("" if target_shape is None else f" and the MMD within Hellinger {mmd_tolerance:g}")
            + (f"; the closest misses by {best['worst_miss']:.1%}" if best is not None else "")
            + (
                f" (Hellinger {best['hellinger']:.4f})"
                if best is not None and target_shape is not None
                else ""
            )
        )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["meets"] = table.pop("score") <= 1.0
    return Design(table.head(top).reset_index(drop=True), bool(meets.any()), message)


def _distinct(table: pd.DataFrame, width: np.ndarray) -> pd.DataFrame:
    """Rows (sorted best first) that differ from every better row by more than 2 % of the bounds somewhere."""
    z = _to_z(table[list(VARIABLES)].to_numpy())
    kept: list[int] = []
    for i in range(len(z)):
        if all(np.max(np.abs(z[i] - z[j]) / width) > 0.02 for j in kept):
            kept.append(i)
    return table.iloc[kept]


def assumed_conversions(forward, conversion: float | None = None) -> list[float]:
    """Conversions at which a model is asked for a target MMD's recipe: the given one, else three across the
    protocol's range (0.2, the middle, just below the stop)."""
    return [conversion] if conversion is not None else list(np.linspace(0.2, forward.x_stop - 0.02, 3))


def inverse_starts(
    model: InverseModel,
    mmd: np.ndarray,
    mn: float,
    mw: float,
    conversions,
    bounds: Mapping[str, tuple[float, float]],
) -> np.ndarray:
    """The trained model's answers (rows of VARIABLES) for a target MMD at each assumed conversion: the model
    reads cBA_time, which a target does not have, so cBA_time = cBA_0 (1 − conversion), cBA_0 from the model's
    own answer (two passes from the middle of the bounds). Fields the model does not predict: the bounds' middle."""

    middle = {v: 0.5 * (lo + hi) for v, (lo, hi) in bounds.items()}
    targets = list(model.target_names)
    rows = []
    for conversion in conversions:
        c0 = middle[MONOMER_0]
        for _ in range(2):
            frame = pd.DataFrame([mmd], columns=list(model.mmd_names))
            for name, value in ((MONOMER_LEFT, c0 * (1.0 - conversion)), (MN, mn), (MW, mw)):
                frame[name] = value
            answer = predict_frame(model, frame)[0]
            c0 = float(answer[targets.index(MONOMER_0)]) if MONOMER_0 in targets else c0
        rows.append([float(answer[targets.index(v)]) if v in targets else middle[v] for v in VARIABLES])
    return np.array(rows, dtype=np.float64)
