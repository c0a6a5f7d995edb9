"""The calibration's least-squares problem: the weighted residual vector of a set of kinetic parameters over a
file's rows, its finite-difference Jacobian and a bounded fit (``scipy.optimize.least_squares``).

Independent simulations (a Jacobian's columns, scipy's finite differences, a list of starting points) run on a
Dask cluster's map where the caller gives one (:func:`polyinv.batch.parallel_map`); each is the same
computation as here, so the numbers are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from polyinv.batch import apply
from polyinv.schema import MMD_COLUMNS, MN, MONOMER_LEFT, MW, RECIPE_COLUMNS, TIME, frame_mmd_columns
from polyinv.sim.calibration_quality import residual_blocks
from polyinv.sim.forward import BY_NAME, ForwardModel, default_value
from polyinv.sim.grid import MMDAxis

SIGMA_FLOOR = {"mmd": 2e-4, MN: 2e-3, MW: 2e-3, MONOMER_LEFT: 2e-4, TIME: 2.0}
SIGMA_START = {"mmd": 5e-3, MN: 0.03, MW: 0.03, MONOMER_LEFT: 0.02, TIME: 60.0}
BLOCKS = tuple(SIGMA_START)
#: Weight of each block per row: the MMD's n points together weigh as much as one scalar outcome (1/√n each), so
#: that a scheme that cannot match everything does not give up the conversion (cBA_time, stop time) for the MMD's
#: shape. With an exact scheme every block goes to zero and the weights do not matter.
BLOCK_WEIGHT = {"mmd": 1.0 / math.sqrt(len(MMD_COLUMNS)), MN: 1.0, MW: 1.0, MONOMER_LEFT: 1.0, TIME: 1.0}


class Problem:
    """Residual vector of a subset of parameters (internal coordinates), counting simulations."""

    def __init__(
        self,
        frame: pd.DataFrame,
        axis: MMDAxis,
        t_max: float,
        x_stop: float,
        n_steps: int,
        tick: Callable[[], None],
        system: str = "ba",
        protocol: str = "stop",
        workers: Callable | None = None,
    ) -> None:
        self.frame, self.axis, self.t_max, self.x_stop, self.n_steps, self.tick = (
            frame,
            axis,
            t_max,
            x_stop,
            n_steps,
            tick,
        )
        self.system, self.protocol = system, protocol
        self.workers = workers  # a cluster's map (polyinv.batch.parallel_map), or None: here
        self.recipes = frame[[*RECIPE_COLUMNS, TIME]]
        self.sigma = dict(SIGMA_START)
        self.simulations = 0
        n_mmd = len(frame_mmd_columns(frame))
        self.weight = dict(BLOCK_WEIGHT, mmd=1.0 / math.sqrt(n_mmd))
        n = len(frame)  # the row of each element of the residual vector (blocks in BLOCKS order)
        self.row_of = np.concatenate([np.repeat(np.arange(n), n_mmd)] + [np.arange(n)] * (len(BLOCKS) - 1))

    def __getstate__(self) -> dict:  # what a worker gets: no progress bar, no cluster
        return {**self.__dict__, "tick": nothing, "workers": None}

    def map(self, fn: Callable, items: Sequence) -> list:
        """``[fn(item) for item in items]``, on the cluster where there is one; each item is one simulation."""
        return apply(self.parallel(), fn, items)

    def parallel(self) -> Callable | None:
        """scipy's ``least_squares(workers=...)``: the cluster's map, counting its simulations here; None without
        a cluster (scipy's own loop)."""
        if self.workers is None:
            return None

        def run(fn: Callable, items) -> list:
            items = list(items)
            out = self.workers(fn, items)
            self.simulations += len(items)
            for _ in items:
                self.tick()
            return out

        return run

    def forward(self, values: dict[str, float]) -> ForwardModel:
        return ForwardModel(
            values, self.axis, self.t_max, self.x_stop, system=self.system, protocol=self.protocol
        )

    def simulate(self, values: dict[str, float]) -> pd.DataFrame:
        self.simulations += 1
        self.tick()
        with np.errstate(all="ignore"):
            return self.forward(values).simulate(self.recipes, n_steps=self.n_steps)

    def blocks(self, values: dict[str, float]) -> dict[str, np.ndarray]:
        return residual_blocks(self.frame, self.simulate(values))

    def vector(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([(blocks[b] * self.weight[b] / self.sigma[b]).ravel() for b in BLOCKS])

    def values(self, names: Sequence[str], x: np.ndarray, base: dict[str, float]) -> dict[str, float]:
        out = dict(base)
        for name, xi in zip(names, x, strict=True):
            out[name] = BY_NAME[name].value(xi)
        return out

    def update_sigma(self, blocks: dict[str, np.ndarray]) -> None:
        self.sigma = {b: max(float(np.sqrt(np.mean(blocks[b] ** 2))), SIGMA_FLOOR[b]) for b in BLOCKS}


def nothing() -> None:
    return None


def coords(names: Sequence[str], values: dict[str, float]) -> np.ndarray:
    return np.array([BY_NAME[n].coordinate(values.get(n, default_value(n))) for n in names])


def coordinate_box(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([BY_NAME[n].box[0] for n in names]), np.array([BY_NAME[n].box[1] for n in names])


def jacobian(
    problem: Problem, names: Sequence[str], values: dict[str, float], step: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted residual vector and its forward-difference Jacobian in internal coordinates."""
    x0 = coords(names, values)
    points = [values]
    for j in range(len(names)):
        x = x0.copy()
        x[j] += step
        points.append(problem.values(names, x, values))
    r0, *moved = problem.map(lambda v: problem.vector(problem.blocks(v)), points)
    jac = np.empty((r0.size, len(names)))
    for j, r in enumerate(moved):
        jac[:, j] = (r - r0) / step
    return r0, jac


def fit_subset(
    problem: Problem, names: Sequence[str], values: dict[str, float], max_nfev: int
) -> dict[str, float]:

    if not names:
        return dict(values)
    lo, hi = coordinate_box(names)
    x0 = np.clip(coords(names, values), lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo))
    res = least_squares(
        lambda x: problem.vector(problem.blocks(problem.values(names, x, values))),
        x0,
        bounds=(lo, hi),
        method="trf",
        diff_step=1e-3,
        x_scale=1.0,
        max_nfev=max_nfev,
        xtol=1e-5,
        ftol=1e-6,
        workers=problem.parallel(),  # the finite-difference columns on the cluster: the same numbers
    )
    return problem.values(names, res.x, values)
