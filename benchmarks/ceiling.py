"""What a data set's outputs can tell about the recipe when the design is known: the exact posterior mean.

A benchmark yardstick, not a model to deploy. It needs the simulator that made the data (true for data
from :mod:`polyinv.sim`, false for a lab's or another KMC code's) and it knows the design: the recipes
are taken to be the combinations of the distinct levels the training rows hold (for the study's grid the
432 grid recipes, the held-out ones included). For each query row (``cBA_time``, ``Mn``, ``Mw``, MMD) it
weighs every candidate recipe, simulated noise-free under the simulator's default protocol (stop at
3600 s or at 90 % conversion, which the data must share), by a Gaussian likelihood and returns the weighted mean recipe: the least-squares-best answer
any estimator can give when it knows the design and the noise model. A model that predicts recipes
anywhere in the box does not know the design, so this bounds what the data allow on a grid benchmark;
it says nothing about recipes between the levels.

Noise model, calibrated on the training rows (their true recipes re-simulated noise-free and compared):
independent Gaussians on log ``Mn``, log ``Mw`` and the square root of each MMD point (the square root
makes chain-count noise about even across the curve), and a relative one on ``cBA_time``. The
independence is an approximation (one chain sample makes all of them), so the bound is approximate too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.models.levels import combinations, normalised_weights
from polyinv.schema import MMD_COLUMNS, TARGETS
from polyinv.sim import simulate_many
from polyinv.sim.designs import RECIPE_FIELDS

from benchmarks.harness import markdown_table, records_frame

FLOOR = 1e-3  # smallest noise width of any feature (noise-free data re-simulate to ~1e-12)
MAX_LEVEL_CANDIDATES = 20_000  # more level combinations than this: the design is no grid


@dataclass(frozen=True)
class NoiseScales:
    """Widths of the Gaussian noise model (see the module docstring)."""

    cba_time_rel: float
    log_mn: float
    log_mw: float
    sqrt_mmd: np.ndarray  # (100,)


def features(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(``cBA_time``, matrix of log Mn, log Mw, sqrt MMD) of a compuesta frame."""
    mmd = np.sqrt(np.clip(frame[list(MMD_COLUMNS)].to_numpy(np.float64), 0.0, None))
    rest = np.column_stack(
        [np.log(frame["Mn"].to_numpy(np.float64)), np.log(frame["Mw"].to_numpy(np.float64)), mmd]
    )
    return frame["cBA_time"].to_numpy(np.float64), rest


def calibrate(train: pd.DataFrame) -> NoiseScales:
    """Noise widths from training rows: observed features minus those of their true recipes re-simulated."""
    clean = simulate_many(train[list(RECIPE_FIELDS)], progress=False)
    c_obs, f_obs = features(train)
    c_sim, f_sim = features(clean)
    rms = np.sqrt(np.mean((f_obs - f_sim) ** 2, axis=0))
    rel_c = float(np.sqrt(np.mean(((c_obs - c_sim) / c_obs) ** 2)))
    return NoiseScales(
        max(rel_c, FLOOR), max(float(rms[0]), FLOOR), max(float(rms[1]), FLOOR), np.maximum(rms[2:], FLOOR)
    )


def posterior_mean(
    query: pd.DataFrame, candidates: pd.DataFrame, scales: NoiseScales, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean recipe (rows × TARGETS) of each query row over simulated ``candidates`` (equal prior
    weight each), and how many candidates carry the weight (effective sample size, 1 = one candidate)."""
    widths = np.concatenate([[scales.log_mn, scales.log_mw], scales.sqrt_mmd])
    c_cand, f_cand = features(candidates)
    z_cand = f_cand / widths
    sq_cand = (z_cand**2).sum(axis=1)
    y_cand = candidates[list(TARGETS)].to_numpy(np.float64)
    c_q, f_q = features(query)
    z_q = f_q / widths
    mean = np.empty((len(query), len(TARGETS)))
    ess = np.empty(len(query))
    for lo in range(0, len(query), chunk):
        sl = slice(lo, lo + chunk)
        cost = (z_q[sl] ** 2).sum(axis=1)[:, None] + sq_cand[None, :] - 2.0 * z_q[sl] @ z_cand.T
        cost += ((c_q[sl, None] - c_cand[None, :]) / (scales.cba_time_rel * c_q[sl, None])) ** 2
        w = normalised_weights(-0.5 * cost)
        mean[sl] = w @ y_cand
        ess[sl] = 1.0 / (w**2).sum(axis=1)
    return mean, ess


def level_candidates(train: pd.DataFrame) -> pd.DataFrame | None:
    """Every combination of the distinct recipe levels in ``train``, or None if that is no small grid."""
    levels = [np.unique(train[f].to_numpy(np.float64)) for f in RECIPE_FIELDS]
    if int(np.prod([len(v) for v in levels])) > MAX_LEVEL_CANDIDATES:
        return None
    return pd.DataFrame(combinations(levels), columns=list(RECIPE_FIELDS))


CEILING_NAME = "exact posterior mean over the design's recipes (knows the grid; a bound, no usable model)"
BOX_NAME = "posterior mean over the training box (uniform prior, no design; a yardstick, no usable model)"
BOX_CANDIDATES = 2**16  # Sobol recipes in the box of (cBA_0, ln cAIBN_0, temp)
TEMPERS = (
    1.0,
    2.0,
    3.0,
    5.0,
)  # noise widths × these: the Gaussian model treats correlated noise as independent


def box_candidates(train: pd.DataFrame, n: int = BOX_CANDIDATES) -> pd.DataFrame:
    """Recipes spread evenly (Sobol) over the training rows' box of cBA_0, ln cAIBN_0 and temp: a prior that
    knows the ranges but not the design."""
    from scipy.stats import qmc

    lo = np.array([train["cBA_0"].min(), np.log(train["cAIBN_0"].min()), train["temp"].min()])
    hi = np.array([train["cBA_0"].max(), np.log(train["cAIBN_0"].max()), train["temp"].max()])
    z = lo + qmc.Sobol(3, seed=0).random(n) * (hi - lo)
    return pd.DataFrame({"cBA_0": z[:, 0], "cAIBN_0": np.exp(z[:, 1]), "temp": z[:, 2]})


def tempered(scales: NoiseScales, factor: float) -> NoiseScales:
    return NoiseScales(
        scales.cba_time_rel * factor, scales.log_mn * factor, scales.log_mw * factor, scales.sqrt_mmd * factor
    )


def bound_table(
    data: str | Path,
    seeds: Sequence[int],
    out: str | Path,
    test_fraction: float = 0.2,
    progress=print,
    box: bool = False,
    box_size: int = BOX_CANDIDATES,
) -> pd.DataFrame:
    """The design-aware posterior mean of every test row (see :mod:`benchmarks.ceiling`) on the table's splits.

    Writes ``ceiling.md`` and ``ceiling_records.csv`` into ``out``. ``box``: the posterior mean under a uniform
    prior over the training box instead (what a model that knows the ranges but not the design could reach,
    approximately: 65,536 candidates, noise widths tempered by the factor of TEMPERS that scores best on the
    training rows); ``ceiling_box.md`` and ``ceiling_box_records.csv``.
    """
    import time

    from polyinv.data.module import read_frame, split_indices
    from polyinv.metrics import evaluate
    from polyinv.schema import COMPOSITE_COLUMNS
    from polyinv.sim import simulate_many

    data, out = Path(data), Path(out)
    frame = read_frame(data, COMPOSITE_COLUMNS, "compuesta" if data.suffix.startswith(".xls") else None)
    records, notes = [], []
    for seed in seeds:
        train_idx, _, test_idx = split_indices(len(frame), test_fraction, 0.0, seed, where=str(data))
        train, test = frame.iloc[train_idx], frame.iloc[test_idx]
        candidates = box_candidates(train, box_size) if box else level_candidates(train)
        if candidates is None:
            raise PolyinvError(
                f"{data}: the training rows of seed {seed} hold more than {MAX_LEVEL_CANDIDATES} "
                "level combinations; the bound needs a grid design"
            )
        start = time.perf_counter()
        scales = calibrate(train)
        simulated = simulate_many(candidates, progress=False)
        factor = 1.0
        if (
            box
        ):  # the tempering that scores best on the training rows (their recipes are not among the candidates)
            truth = train[list(TARGETS)].to_numpy(np.float64)
            factor = max(
                TEMPERS,
                key=lambda f: evaluate(truth, posterior_mean(train, simulated, tempered(scales, f))[0])[
                    "global"
                ]["r2"],
            )
            scales = tempered(scales, factor)
        pred, ess = posterior_mean(test, simulated, scales)
        rec = {
            "model": "posterior_box" if box else "posterior_levels",
            "seed": seed,
            "train_seconds": time.perf_counter() - start,
            "metrics": evaluate(test[list(TARGETS)].to_numpy(np.float64), pred),
        }
        records.append(rec)
        notes.append(
            f"seed {seed}: {len(candidates)} candidate recipes; noise widths (× {factor:g}) log Mn {scales.log_mn:.4f}, "
            f"log Mw {scales.log_mw:.4f}, sqrt MMD {np.median(scales.sqrt_mmd):.4f} (median point), "
            f"cBA_time {scales.cba_time_rel:.1e} (relative); candidates carrying the weight per row: "
            f"median {np.median(ess):.1f}"
        )
        progress(f"{rec['model']} seed {seed}: global R² {rec['metrics']['global']['r2']:.4f}")
    table_frame = records_frame(records)
    stem = "ceiling_box" if box else "ceiling"
    with atomic_path(out / f"{stem}_records.csv") as tmp:
        table_frame.to_csv(tmp, index=False)
    name = BOX_NAME if box else CEILING_NAME
    text = markdown_table(
        table_frame.replace({"model": {"posterior_levels": CEILING_NAME, "posterior_box": BOX_NAME}}),
        [name],
        f"{data.name}: what the outputs tell "
        + ("over the box, without the design" if box else "when the design is known"),
        with_study=False,
    )
    text += (
        "\nMean ± sample std over seeds " + ", ".join(map(str, seeds)) + " (the table's 80/20 splits; "
        "`train s` = seconds per seed). Not a model: it needs the simulator that made the data and "
        + (
            f"{box_size:,} simulated recipes spread over the training box; the noise widths are tempered by the factor "
            f"(of {', '.join(f'{t:g}' for t in TEMPERS)}) that scores best on the training rows"
            if box
            else "the design's levels"
        )
        + " (see `benchmarks/ceiling.py`).\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n"
    )
    with atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(text)
    return table_frame
