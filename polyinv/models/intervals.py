"""Interval calibration from held-out residuals of the training data (never the test split).

A model's raw interval is ``mean ± z·sd`` in its (scaled) target space. Calibration stores, per
target, the sorted normalised absolute held-out residuals ``|y - mean| / sd``; the calibrated
half-width multiplier for a central level ``p`` is their empirical ``p``-quantile (split-conformal
style), used instead of the Gaussian ``z``. For the Gaussian process the held-out residuals are its
exact leave-one-out predictions (closed form for the fitted kernel: no refits); for ensembles they
come from the validation split.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve
from scipy.stats import norm


def gp_loo(gp) -> tuple[np.ndarray, np.ndarray]:
    """Exact leave-one-out (residual y_i − LOO mean, LOO predictive sd) of a fitted sklearn
    ``GaussianProcessRegressor`` (kernel fixed), in its own target space.

    With ``A = K⁻¹`` (K including the white-noise term): LOO residual ``r_i = [A y]_i / A_ii``,
    LOO predictive variance ``1 / A_ii`` (Rasmussen & Williams 2006, eq. 5.12).
    """
    inv = cho_solve((gp.L_, True), np.eye(gp.L_.shape[0]))
    diag = np.clip(np.diag(inv), 1e-300, None)
    return np.asarray(gp.alpha_).reshape(-1) / diag, 1.0 / np.sqrt(diag)


def gp_fold_cv(gp, folds) -> tuple[np.ndarray, np.ndarray]:
    """Exact K-fold cross-validation (residual y_B − mean given the other rows, predictive sd) of a fitted
    sklearn ``GaussianProcessRegressor`` with its kernel fixed: each fold's rows predicted from the others
    without a refit. ``folds``: index arrays of the held-out rows, together every training row once.

    With ``A = K⁻¹``: residuals of fold B ``r_B = (A_BB)⁻¹ [A y]_B``, predictive covariance ``(A_BB)⁻¹``
    (Ginsbourger & Schärer 2021, "Fast calculation of Gaussian process multiple-fold cross-validation
    residuals"; :func:`gp_loo` is the case of one row per fold).
    """
    inv = cho_solve((gp.L_, True), np.eye(gp.L_.shape[0]))
    alpha = np.asarray(gp.alpha_).reshape(-1)
    resid, sd = np.full(len(alpha), np.nan), np.full(len(alpha), np.nan)
    for rows in folds:
        rows = np.asarray(rows, dtype=int)
        if len(rows) == 0:
            continue
        cov = np.linalg.inv(inv[np.ix_(rows, rows)])
        resid[rows] = cov @ alpha[rows]
        sd[rows] = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    if np.isnan(resid).any():
        raise ValueError("the folds do not cover every training row of the GP")
    return resid, sd


def gp_loo_abs_z(gp) -> np.ndarray:
    """Sorted normalised |LOO residuals| |r_i| / sd_i of a fitted GP (:func:`gp_loo`)."""
    resid, sd = gp_loo(gp)
    return np.sort(np.abs(resid) / sd)


def abs_z(y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(N, T) normalised absolute residuals |y - mean| / sd, sorted per column."""
    return np.sort(np.abs(np.asarray(y) - np.asarray(mean)) / np.clip(np.asarray(sd), 1e-300, None), axis=0)


def half_width_multiplier(sorted_abs_z: np.ndarray | None, level: float) -> float:
    """Multiplier of sd for a central ``level`` interval: calibrated quantile, or Gaussian z without data."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must lie in (0, 1), got {level}")
    if sorted_abs_z is None or len(sorted_abs_z) == 0:
        return float(norm.ppf(0.5 + level / 2))
    values = np.asarray(sorted_abs_z, dtype=np.float64)
    n = len(values)
    rank = min(n - 1, int(np.ceil(level * (n + 1))) - 1)  # conformal rank: finite-sample coverage >= level
    return float(values[max(rank, 0)])
