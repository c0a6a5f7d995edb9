"""The trust columns that inference adds to a prediction table: intervals, applicability domain, verification."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.data.io import read_table
from polyinv.errors import PolyinvError
from polyinv.log import LOG
from polyinv.models.base import InverseModel
from polyinv.schema import SIDE_INPUTS, SYSTEM, TARGETS, System, system_of
from polyinv.sim.forward import ForwardModel
from polyinv.trust.domain import model_domain, model_forward
from polyinv.trust.verify import verify


def interval_columns(model: InverseModel, mmd: np.ndarray, side: np.ndarray, level: float) -> pd.DataFrame:
    """``<target>_lo`` / ``<target>_hi`` of the central ``level`` interval (physical units)."""
    check_interval(model, level)
    _, low, high = model.predict_interval(mmd, side, level)
    out = pd.DataFrame(index=range(len(mmd)))
    for j, name in enumerate(model.target_names):
        out[f"{name}_lo"], out[f"{name}_hi"] = low[:, j], high[:, j]
    return out


def check_interval(model: InverseModel, level: float) -> None:
    """One-line error unless ``model`` gives central intervals and ``level`` lies in (0, 1)."""
    if not 0 < level < 1:
        raise PolyinvError(f"--interval must lie between 0 and 1 (e.g. 0.9), got {level}")
    if not model.has_interval:
        raise PolyinvError(
            f"a {model.kind} model gives no intervals; use a Gaussian process or a deep ensemble (polyinv ensemble)"
        )


def domain_columns(model: InverseModel, frame: pd.DataFrame, recipe: np.ndarray) -> pd.DataFrame:
    """``in_domain``, ``domain_score`` (kNN distance / threshold), ``consistency_score`` (forward re-simulation
    statistic / threshold, models saved with that check) and ``domain_note``; empty without a stored domain."""
    domain = model_domain(model)
    if domain is None:
        return pd.DataFrame(index=range(len(frame)))
    result = domain.check(frame.reset_index(drop=True), recipe)
    out = pd.DataFrame({"in_domain": result.in_domain, "domain_score": result.score})
    if result.consistency is not None:  # forward-consistency check stored with the model
        out["consistency_score"] = result.consistency
    out["domain_note"] = result.reasons
    return out


def warn_outside(table: pd.DataFrame) -> None:
    """One warning line naming the rows outside the applicability domain."""
    if "in_domain" not in table.columns or table["in_domain"].all():
        return
    rows = table.loc[~table["in_domain"].astype(bool), "row"].tolist()
    shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
    LOG.warning(
        f"{len(rows)} of {len(table)} rows lie outside the model's applicability domain (rows {shown}); "
        "see the domain_note column"
    )


def optional_columns(
    path: str | Path, sheet: str | None, columns, system: System = SYSTEM
) -> pd.DataFrame | None:
    """The given columns (internal names) of an input file of ``system`` when it holds them all (validated), else
    None."""

    try:
        return system.to_internal(read_table(path, [system.column(c) for c in columns], sheet=sheet))
    except PolyinvError:
        return None


@dataclass
class Verification:
    """A prediction table with its verification columns, and the figures' inputs (None when it is off)."""

    table: pd.DataFrame
    predictions: pd.DataFrame | None = None  # the table before verification
    checks: pd.DataFrame | None = None
    sim: pd.DataFrame | None = None  # the re-simulated outcomes
    mmd: np.ndarray | None = None  # the requested MMDs
    forward: ForwardModel | None = None


def verify_requests(model: InverseModel, path: str | Path, sheet: str | None) -> pd.DataFrame | None:
    """The requested outcomes the model does not take as inputs (Mn, Mw, cBA_time) where the input file holds
    them: verify_table compares the re-simulated ones with them."""
    wanted = [c for c in SIDE_INPUTS if c not in model.side_names]
    return optional_columns(path, sheet, wanted, system_of(model.system))


def verify_table(
    model: InverseModel,
    frame: pd.DataFrame,
    table: pd.DataFrame,
    requests: pd.DataFrame | None,
) -> Verification:
    """Forward-verification columns appended to a prediction table, with the forward model stored in the
    model (its training file's kinetics, axis and protocol), and what the per-row figures need (the
    command draws them: polyinv.plots.verify_figures). ``requests``: :func:`verify_requests` of the rows.
    Without a forward model a warning says why and the table is returned as it is."""

    missing = [t for t in TARGETS if t not in table.columns]
    if missing:
        names = ", ".join(map(system_of(model.system).column, TARGETS))
        raise PolyinvError(
            f"--verify simulates whole runs: it needs a model that predicts {names} (a model of sampled rows "
            "predicts no time; `polyinv predict --calibration` answers those against a calibration)"
        )
    forward, why = model_forward(model)
    if forward is None:
        LOG.warning(f"forward verification is off for this model: {why}")
        return Verification(table)
    requested = frame[list(model.side_names)].reset_index(drop=True)
    if requests is not None:
        requested = pd.concat([requested, requests.reset_index(drop=True)], axis=1)
    mmd = frame[list(model.mmd_names)].to_numpy(np.float64)
    checks, sim = verify(mmd, table[list(TARGETS)], requested, forward)
    return Verification(pd.concat([table, checks], axis=1), table, checks, sim, mmd, forward)
