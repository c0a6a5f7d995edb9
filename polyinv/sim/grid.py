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
from scipy.interpolate import PchipInterpolator
from scipy.optimize import minimize_scalar

from polyinv.errors import PolyinvError
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
        if not (
            np.isfinite(self.log10m_min)
            and np.isfinite(self.log10m_max)
            and self.log10m_max > self.log10m_min
        ):
            raise ValueError(
                f"MMD axis: log10 M range {self.log10m_min}..{self.log10m_max} is not increasing"
            )
        if self.n_points < 2:
            raise ValueError(f"MMD axis: n_points must be >= 2, got {self.n_points}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"MMD axis: normalisation {self.normalisation!r} unknown; choose one of {NORMALISATIONS}"
            )

    @classmethod
    def from_option(cls, values, n_points: int, option: str) -> MMDAxis:
        """The axis of an option's ``MIN MAX NORM`` (``--axis``, ``data.axis``) for ``n_points`` MMD columns;
        a bad value is one line naming the option."""
        try:
            low, high, norm = values
            return cls(float(low), float(high), int(n_points), str(norm))
        except (TypeError, ValueError) as exc:
            raise PolyinvError(f"{option} {' '.join(map(str, values))}: {exc}") from None

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
        scale = (
            density.sum(axis=-1, keepdims=True)
            if self.normalisation == "sum"
            else density.max(axis=-1, keepdims=True)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(scale != 0, density / scale, 0.0)  # a row with no mass stays zero, not NaN

    def metadata(self) -> list[tuple[str, str]]:
        """Key/value rows describing the axis (a data file's metadata)."""
        last = f"MMD{self.n_points}"
        text = {
            "density": f"sum(MMD1..{last}) * mmd_delta_log10M = 1",
            "sum": f"sum(MMD1..{last}) = 1",
            "max": f"max(MMD1..{last}) = 1",
        }[self.normalisation]
        return [
            ("mmd_log10M_min", repr(self.log10m_min)),
            ("mmd_log10M_max", repr(self.log10m_max)),
            ("mmd_n_points", str(self.n_points)),
            ("mmd_delta_log10M", repr(self.delta)),
            ("mmd_normalisation", text),
        ]


#: polyinv's own axis (the shipped data set's).
DEFAULT_AXIS = MMDAxis()


def rebin(values: np.ndarray, source: MMDAxis, target: MMDAxis) -> tuple[np.ndarray, np.ndarray]:
    """Rows of an MMD on ``source`` re-binned onto ``target``, and each row's share of mass outside ``target``.

    Each point stands for its cell (width delta, centred on it); the cumulative mass at the target's cell edges
    is interpolated from the source's (monotone cubic, PCHIP: no negative mass where the trace has none), so mass
    is conserved whichever axis is finer. The rows are
    renormalised on the target (mass beyond its ends is dropped: hence the returned share) in its normalisation.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    mass = values * source.delta
    edges = source.log10m_min - source.delta / 2 + source.delta * np.arange(source.n_points + 1)
    cdf = np.concatenate([np.zeros((len(values), 1)), np.cumsum(mass, axis=1)], axis=1)
    total = cdf[:, -1:]
    target_edges = target.log10m_min - target.delta / 2 + target.delta * np.arange(target.n_points + 1)
    inside = np.clip(target_edges, edges[0], edges[-1])  # the cumulative is flat beyond the source's ends
    at = PchipInterpolator(edges, cdf, axis=1)(inside)
    kept = at[:, -1:] - at[:, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        outside = np.where(total[:, 0] > 0, 1.0 - kept[:, 0] / total[:, 0], np.nan)  # NaN: no mass
        density = np.diff(at, axis=1) / target.delta / np.where(kept > 0, kept, np.nan)
    return target.normalise(np.nan_to_num(density)), np.clip(outside, 0.0, 1.0)  # NaN stays NaN


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


#: A file's MMD and its Mn/Mw agree with an axis when the rms of log10(Mn, Mw from the points / stated) is
#: below this (0.01 decades = 2.3 %); a midpoint rule on 100 points is ~1e-4 decades off for a covered MMD.
AXIS_RMS_OK = 0.01
#: A normalisation holds when the rows' median relative deviation from it is below this.
NORMALISATION_OK = 1e-3


@dataclass(frozen=True)
class AxisFit:
    """An MMD axis inferred from a file's Mn/Mw: the axis, the rms residual in log10 (decades) of the Mn
    and Mw recomputed from the 100 points, and how far the rows are from the chosen normalisation."""

    axis: MMDAxis
    rms_log10: float
    normalisation_deviation: float
    rows: int

    @property
    def ok(self) -> bool:
        """Whether an evenly spaced log axis reconciles the MMD points with Mn and Mw."""
        return bool(self.rms_log10 <= AXIS_RMS_OK)

    def describe(self) -> str:
        a = self.axis
        return (
            f"log10 M {a.log10m_min:.4f}..{a.log10m_max:.4f} ({a.n_points} points), {a.normalisation} "
            f"normalisation; Mn/Mw from the points vs stated: rms {self.rms_log10:.2g} decades over {self.rows} rows"
        )


def _log_moments(w: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """log10 Mn and Mw of MMD rows on an axis starting at log10 M = 0 with spacing ``delta``."""
    i = np.arange(w.shape[1]) * delta
    scale = i.max() / 2  # centre the exponent: no overflow for wide axes
    up = 10.0 ** (i - scale)
    down = 10.0 ** (scale - i)
    total = w.sum(axis=1)
    return np.log10(total / (w * down).sum(axis=1)) + scale, np.log10((w * up).sum(axis=1) / total) + scale


def infer_axis(mmd: np.ndarray, mn: np.ndarray, mw: np.ndarray, min_covered: int = 10) -> AxisFit:
    """The evenly spaced log10 M axis (start, spacing) and the normalisation under which MMD rows agree
    with their stated Mn and Mw.

    For a spacing ``d`` the start ``a`` follows in closed form (a shifts log Mn and log Mw alike), so the
    search is one-dimensional: a coarse scan of d over 0.2-20 decades of range, then a bounded refinement
    (scipy). Rows with a non-positive Mn, Mw or MMD sum are left out, and so are rows cut off by the axis
    (an end point above 1e-3 of the row's peak: their points miss mass that Mn/Mw include) when at least
    ``min_covered`` rows are not. Mn enters only for rows whose low end is negligible (1e-5 of the peak):
    a number average weighs the low tail most, and a tail of 1e-4 below the first point already moves
    it by ~0.005 decades, where Mw is exact to ~2e-4.
    """

    w = np.clip(np.asarray(mmd, dtype=float), 0.0, None)
    mn, mw = np.asarray(mn, dtype=float), np.asarray(mw, dtype=float)
    keep = (
        (w.sum(axis=1) > 0)
        & (mn > 0)
        & (mw > 0)
        & np.isfinite(mn)
        & np.isfinite(mw)
        & np.isfinite(w).all(axis=1)
    )
    if keep.sum() < 2:
        raise ValueError("inferring the MMD axis needs at least 2 rows with a positive MMD, Mn and Mw")
    peak = np.where(keep, w.max(axis=1), 1.0)
    covered = keep & (w[:, 0] <= 1e-3 * peak) & (w[:, -1] <= 1e-3 * peak)
    if covered.sum() >= min_covered:
        keep = covered
    use_mn = w[keep, 0] <= 1e-5 * peak[keep]
    w, ln, lw = w[keep], np.log10(mn[keep]), np.log10(mw[keep])
    n_points = w.shape[1]

    def fit(delta: float) -> tuple[float, float]:
        gn, gw = _log_moments(w, delta)
        resid = np.concatenate([(ln - gn)[use_mn], lw - gw])
        start = float(np.mean(resid))
        return start, float(np.sqrt(np.mean((resid - start) ** 2)))

    spans = np.geomspace(0.2, 20.0, 240)
    scores = [fit(s / (n_points - 1))[1] for s in spans]
    best = int(np.argmin(scores))
    lo, hi = spans[max(best - 1, 0)], spans[min(best + 1, len(spans) - 1)]
    res = minimize_scalar(
        lambda s: fit(s / (n_points - 1))[1], bounds=(lo, hi), method="bounded", options={"xatol": 1e-7}
    )
    span = float(res.x)
    start, rms = fit(span / (n_points - 1))
    delta = span / (n_points - 1)
    deviation = {
        "density": np.median(np.abs(w.sum(axis=1) * delta - 1.0)),
        "sum": np.median(np.abs(w.sum(axis=1) - 1.0)),
        "max": np.median(np.abs(w.max(axis=1) - 1.0)),
    }
    norm = min(deviation, key=deviation.get)
    axis = MMDAxis(start, start + span, n_points, norm)
    return AxisFit(axis, rms, float(deviation[norm]), int(keep.sum()))
