"""The dead polymer's chain-length distribution from the chain formation rates (Hamielec): moments and the MMD.

Takes :class:`polyinv.sim.kinetics.ChainRates` (instantaneous dead-chain formation at every time node) and the
quadrature weights of a trajectory; see :mod:`polyinv.sim.kinetics` for the method.
"""

from __future__ import annotations

import numpy as np

from polyinv.schema import M_MONOMER
from polyinv.sim.grid import DEFAULT_AXIS, MMDAxis


def _chain_moments(a):
    """Per-chain moments (m1, m2) of the geometric (exp) and the combined (comb) chain lengths."""
    m1_exp = (1.0 + a) / a
    m2_exp = (2.0 + a) * (1.0 + a) / a**2
    return m1_exp, m2_exp, 2.0 * m1_exp, (6.0 + 4.0 * a) * (1.0 + a) / a**2


def instantaneous_moments(tau, beta) -> tuple[np.ndarray, np.ndarray]:
    """Number- and weight-average chain length of the instantaneous dead polymer (Hamielec, discrete).

    Mw/Mn tends to 2 for disproportionation/transfer only and to 1.5 for combination only.
    """
    tau, beta = np.asarray(tau, float), np.asarray(beta, float)
    a = tau + beta
    m1e, m2e, m1c, m2c = _chain_moments(a)
    lam0 = tau + beta / 2.0
    lam1 = tau * m1e + beta / 2.0 * m1c
    lam2 = tau * m2e + beta / 2.0 * m2c
    return lam1 / lam0, lam2 / lam1


def cumulative_moments(cr, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time-integrated moments lambda0, lambda1, lambda2 (mol/L; chain length units) of the dead polymer."""
    m1e, m2e, m1c, m2c = _chain_moments(cr.a)
    lam0 = (weights * (cr.chains_exp + cr.chains_comb)).sum(axis=1)
    lam1 = (weights * (cr.chains_exp * m1e + cr.chains_comb * m1c)).sum(axis=1)
    lam2 = (weights * (cr.chains_exp * m2e + cr.chains_comb * m2c)).sum(axis=1)
    return lam0, lam1, lam2


def number_density(cr, weights: np.ndarray, chain_length: np.ndarray) -> np.ndarray:
    """Cumulative dead chains per unit chain length, mol/L, shape (n, len(chain_length)).

    At integer chain lengths this is the exact number of chains of that length. At real x it is the
    continuous extension used for the MMD: the pmf formula with chain length r spread over
    [r - 1/2, r + 1/2] (support x >= 1/2 for geometric chains, x >= 3/2 for combined ones), so that
    integrals over x equal the sums over r to second order (midpoint rule).
    """
    x = np.asarray(chain_length, dtype=float)
    a = cr.a
    log_phi = -np.log1p(a)
    p = a / (1.0 + a)
    E = np.exp(log_phi[:, :, None] * (x[None, None, :] - 1.0))  # phi^(x-1)
    c_exp = weights * cr.chains_exp * p
    c_comb = weights * cr.chains_comb * p * p * (1.0 + a)  # (1-phi)^2 phi^(x-2) = p^2 / phi * phi^(x-1)
    exp_part = np.einsum("nk,nkg->ng", c_exp, E) * (x >= 0.5)
    comb_part = np.einsum("nk,nkg->ng", c_comb, E) * np.where(x >= 1.5, x - 1.0, 0.0)
    return exp_part + comb_part


def mmd_from_rates(
    cr,
    weights: np.ndarray,
    lam1: np.ndarray,
    axis: MMDAxis = DEFAULT_AXIS,
    monomer_molar_mass: float = M_MONOMER,
) -> tuple[np.ndarray, np.ndarray]:
    """MMD w(log10 M) = ln(10) x^2 n(x) / lambda1 (x = M / M_MONOMER) on ``axis``, normalised, and its coverage.

    Evaluated on the axis points from the continuous extension of the full chain-length distribution (see
    ``number_density``), never interpolated from another axis. Normalised as the axis says (polyinv's own:
    ``sum(w) * delta = 1``); coverage is ``sum(w) * delta`` before normalisation (~1 when the axis holds the
    whole distribution).
    """
    x = 10.0 ** axis.points() / monomer_molar_mass
    nd = number_density(cr, weights, x)
    w = np.log(10.0) * x * x * nd / lam1[:, None]
    coverage = w.sum(axis=1) * axis.delta
    return axis.normalise(w / coverage[:, None]), coverage
