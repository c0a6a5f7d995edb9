"""The log10 M axis of the 100-point MMD, and moments computed back from it.

The MMD value at grid point i is the weight (mass) distribution per unit log10 M,
``w_i = dW / dlog10(M / (g/mol))``. polyinv's own files use :data:`DEFAULT_AXIS` and the ``density``
normalisation ``sum(w_i) * delta == 1``; other codes store other ranges and normalise to ``sum(w_i) == 1``
(``sum``) or to a peak of 1 (``max``). :class:`MMDAxis` holds such an axis so that the simulator can
render a distribution the way another file stores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from polyinv.schema import N_MMD

#: Grid range in log10(M / (g/mol)): chosen so every distribution of the 432-recipe grid and of the
#: Latin-hypercube domain fits with margin (checked by tests/sim: moments from the 100 points agree with
#: the full-distribution moments within 5 % on every grid recipe). The lower end, 71 g/mol, is just above half a
#: monomer unit: the MMD spreads chain length r over [r - 1/2, r + 1/2] (see kinetics.number_density).
#: The upper end, 4e6 g/mol, lies ~0.4 decades above the last grid value above 1e-6 of the peak.
LOG10M_MIN = 1.85
LOG10M_MAX = 6.6
N_POINTS = N_MMD

Normalisation = Literal["density", "sum", "max"]
NORMALISATIONS: tuple[str, ...] = ("density", "sum", "max")


@dataclass(frozen=True)
class MMDAxis:
    """An evenly spaced log10 M axis (both ends included) and how the MMD values on it are normalised.

    ``density``: sum(w) * delta = 1 (polyinv's files); ``sum``: sum(w) = 1; ``max``: max(w) = 1.
    """

    log10m_min: float = LOG10M_MIN
    log10m_max: float = LOG10M_MAX
    n_points: int = N_POINTS
    normalisation: Normalisation = "density"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.log10m_min) and np.isfinite(self.log10m_max) and self.log10m_max > self.log10m_min):
            raise ValueError(f"MMD axis: log10 M range {self.log10m_min}..{self.log10m_max} is not increasing")
        if self.n_points < 2:
            raise ValueError(f"MMD axis: n_points must be >= 2, got {self.n_points}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"MMD axis: normalisation {self.normalisation!r} unknown; choose one of {NORMALISATIONS}")

    @property
    def delta(self) -> float:
        """Spacing in log10 M."""
        return (self.log10m_max - self.log10m_min) / (self.n_points - 1)

    def points(self) -> np.ndarray:
        """The grid points in log10(M / (g/mol))."""
        return np.linspace(self.log10m_min, self.log10m_max, self.n_points)

    def normalise(self, density: np.ndarray) -> np.ndarray:
        """Rows of a density-normalised MMD (sum * delta = 1) in this axis' normalisation."""
        density = np.asarray(density, dtype=float)
        if self.normalisation == "density":
            return density
        if self.normalisation == "sum":
            return density / density.sum(axis=-1, keepdims=True)
        return density / density.max(axis=-1, keepdims=True)

    def metadata(self) -> list[tuple[str, str]]:
        """Key/value rows describing the axis (a data file's metadata)."""
        last = f"MMD{self.n_points}"
        text = {"density": f"sum(MMD1..{last}) * mmd_delta_log10M = 1", "sum": f"sum(MMD1..{last}) = 1",
                "max": f"max(MMD1..{last}) = 1"}[self.normalisation]
        return [("mmd_log10M_min", repr(self.log10m_min)), ("mmd_log10M_max", repr(self.log10m_max)),
                ("mmd_n_points", str(self.n_points)), ("mmd_delta_log10M", repr(self.delta)),
                ("mmd_normalisation", text)]


#: polyinv's own axis (the shipped data set's).
DEFAULT_AXIS = MMDAxis()


def log10m_grid() -> np.ndarray:
    """The 100 points of polyinv's own axis, evenly spaced in log10(M / (g/mol)), both ends included."""
    return DEFAULT_AXIS.points()


#: Spacing of polyinv's own axis in log10 M.
DELTA_LOG10M = DEFAULT_AXIS.delta


def moments_from_mmd(mmd: np.ndarray, axis: MMDAxis = DEFAULT_AXIS) -> tuple[np.ndarray, np.ndarray]:
    """Mn and Mw (g/mol) recomputed from MMD rows on ``axis`` (shape (n, points) or (points,)).

    ``Mn = sum(w) / sum(w / M)`` and ``Mw = sum(w M) / sum(w)``, a midpoint rule in log10 M (any
    normalisation: it cancels).
    """
    w = np.atleast_2d(np.asarray(mmd, dtype=float))
    m = 10.0 ** axis.points()
    total = w.sum(axis=1)
    mn = total / (w / m).sum(axis=1)
    mw = (w * m).sum(axis=1) / total
    if np.ndim(mmd) == 1:
        return mn[0], mw[0]
    return mn, mw
