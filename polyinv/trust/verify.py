"""Forward verification: simulate each predicted recipe again and compare with the requested outcome.

Each recipe is first clipped to physical sense (positive concentrations, monomer below pure BA,
temperature 0–200 °C, reaction time from 1 s to the protocol's limit), then simulated with the model's
forward model (:class:`polyinv.sim.forward.ForwardModel`: polyinv's kinetics or a calibration, on the
training file's MMD axis) with ``t_max`` = the predicted time (the run still stops earlier at the
protocol's conversion, as in the study).
Reported per row: the Hellinger distance between the requested and the re-simulated MMD, each
normalised to unit sum (0 = identical, 1 = disjoint), and the relative errors
(simulated − requested) / requested of ``Mn``, ``Mw`` and ``cBA_time`` where the input holds them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polyinv.errors import PolyinvError
from polyinv.metrics import hellinger
from polyinv.schema import (
    INITIATOR_0,
    MONOMER_0,
    SIDE_INPUTS,
    TARGETS,
    TEMP,
    TIME,
    frame_mmd_columns,
)
from polyinv.sim import DEFAULT_PARAMETERS
from polyinv.sim.designs import TEMP_LIMITS
from polyinv.sim.forward import ForwardModel

MIN_CONC = 1e-6  # mol/L: the smallest concentration a clipped recipe keeps
MIN_TIME = 1.0  # s
MAX_INITIATOR = 1.0  # mol/L: far above any sensible AIBN charge
VERIFY_COLUMNS = ("verify_hellinger", *(f"verify_rel_err_{c}" for c in SIDE_INPUTS), "verify_clipped")


def clip_recipes(recipes: pd.DataFrame, t_max: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Recipes clipped to physical sense, and a per-row flag telling whether anything was clipped."""
    out = pd.DataFrame(index=recipes.index)
    limits = {
        MONOMER_0: (MIN_CONC, 0.99 * DEFAULT_PARAMETERS.max_cBA),
        INITIATOR_0: (MIN_CONC, MAX_INITIATOR),
        TEMP: TEMP_LIMITS,
        TIME: (MIN_TIME, t_max),
    }
    clipped = np.zeros(len(recipes), dtype=bool)
    for name, (low, high) in limits.items():
        values = recipes[name].to_numpy(np.float64)
        values = np.where(np.isfinite(values), values, low)
        new = np.clip(values, low, high)
        clipped |= ~np.isclose(new, recipes[name].to_numpy(np.float64), rtol=1e-12, atol=0.0)
        out[name] = new
    return out, clipped


def resimulate(
    recipes: pd.DataFrame, n_steps: int | None = None, forward: ForwardModel | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The one re-simulation path of the trust checks: recipes (cBA_0, cAIBN_0, temp and ``time``, the
    run's time limit) clipped to physical sense and simulated with ``forward`` (polyinv's own by default),
    each up to its own time (it still stops at the protocol's conversion). Returns (compuesta frame on
    the forward model's axis, per-row flag: was anything clipped)."""
    forward = forward or ForwardModel()
    clipped, was_clipped = clip_recipes(recipes[list(TARGETS)], forward.t_max)
    sim = forward.simulate(clipped, t_max=clipped[TIME].to_numpy(np.float64), n_steps=n_steps)
    sim.index = recipes.index
    sim[TIME] = np.minimum(sim[TIME].to_numpy(), clipped[TIME].to_numpy())
    return sim, was_clipped


def verify(
    mmd: np.ndarray,
    recipes: pd.DataFrame,
    requested: pd.DataFrame | None = None,
    forward: ForwardModel | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Verify predicted ``recipes`` (TARGETS columns) against requested ``mmd`` (N, L: the forward model's axis)
    and scalars.

    Returns (per-row verification table with :data:`VERIFY_COLUMNS`, re-simulated compuesta frame).
    """
    mmd = np.asarray(mmd, dtype=np.float64)
    n_points = (forward or ForwardModel()).axis.n_points
    if mmd.ndim != 2 or mmd.shape[1] != n_points:
        raise PolyinvError(
            f"forward verification needs the simulator's {n_points}-point MMD, got {mmd.shape[1]} points"
        )
    missing = [t for t in TARGETS if t not in recipes.columns]
    if missing:
        raise PolyinvError(f"forward verification needs predicted {', '.join(missing)}")
    recipes = recipes.reset_index(drop=True)
    sim, was_clipped = resimulate(recipes, forward=forward)
    table = pd.DataFrame({"verify_hellinger": hellinger(mmd, sim[list(frame_mmd_columns(sim))].to_numpy())})
    for column in SIDE_INPUTS:
        if requested is not None and column in requested.columns:
            want = requested[column].to_numpy(np.float64)
            table[f"verify_rel_err_{column}"] = (sim[column].to_numpy() - want) / np.where(
                want != 0, np.abs(want), np.nan
            )
        else:
            table[f"verify_rel_err_{column}"] = np.nan
    table["verify_clipped"] = was_clipped
    return table, sim
