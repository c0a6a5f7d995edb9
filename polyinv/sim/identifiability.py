"""Which kinetic parameters a file's rows determine (Brun, Reichert & Künsch 2001), and how well.

From the weighted sensitivities of every candidate (normalised per column), a parameter joins the fitted set
(least known first) while the collinearity index ``1/√λmin`` of the set stays at most :data:`GAMMA_MAX` and
every standard error within :data:`SE_LIMIT`; standard errors are clustered by row
(:func:`robust_covariance`), because the points of one MMD share the row's noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from polyinv.sim.forward import BY_NAME

GAMMA_MAX = (
    30.0  # collinearity index above which a set is not identifiable (Brun et al. 2001 suggest 10-15 for
)

# small data; with ~10^4 residuals per file the standard errors stay small up to ~30, and kp's exact redundancy
# with kt, kbb, kpt shows as an index in the thousands)
SE_LIMIT = {
    "factor": 0.3,
    "energy": 8.0,
    "value": 0.15,
    "odds": 1.0,
}  # largest standard error kept: ln factor (±35 %), kJ/mol, value


def robust_covariance(r: np.ndarray, jac: np.ndarray, row_of: np.ndarray) -> np.ndarray:
    """Covariance of the fitted coordinates, clustered by row (sandwich estimator): the residuals of one
    row (its 100 MMD points and scalars) share the row's noise draw and the forward model's error for
    that recipe, so they are not independent; treating them so understates the standard errors ~10x."""
    bread = np.linalg.pinv(jac.T @ jac)
    n_rows = int(row_of.max()) + 1
    scores = np.zeros((n_rows, jac.shape[1]))
    np.add.at(scores, row_of, jac * r[:, None])
    meat = scores.T @ scores * n_rows / max(n_rows - jac.shape[1], 1)
    return bread @ meat @ bread


def choose_identifiable(
    jac: np.ndarray, names: Sequence[str], dof_scale: float = 1.0
) -> tuple[list[str], dict[str, str]]:
    """The parameters the data determine, and for each one left out the reason.

    Forward selection in the order of ``names`` (least known first, :data:`PARAMETERS`): a parameter joins
    when it moves the outcomes, the collinearity index of the set with it stays at most :data:`GAMMA_MAX`
    and every standard error of the set stays within :data:`SE_LIMIT`.
    """
    names = list(names)
    norms = np.linalg.norm(jac, axis=0)
    keep: list[int] = []
    why: dict[str, str] = {}
    for j, name in enumerate(names):
        if norms[j] <= 1e-9 * max(norms.max(), 1e-300):
            why[name] = "no effect on the outcomes"
            continue
        trial = keep + [j]
        s = jac[:, trial] / norms[trial]
        gamma = 1.0 / math.sqrt(max(float(np.linalg.eigvalsh(s.T @ s)[0]), 1e-300))
        if gamma > GAMMA_MAX:
            why[name] = (
                f"collinear with {', '.join(names[k] for k in keep)} (collinearity index {gamma:.0f} > {GAMMA_MAX:g})"
            )
            continue
        cov = np.linalg.pinv(jac[:, trial].T @ jac[:, trial]) * dof_scale
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        limits = np.array([SE_LIMIT[BY_NAME[names[k]].kind] / BY_NAME[names[k]].scale for k in trial])
        if np.any(se > limits):
            why[name] = "not determined by the rows (standard error above its limit)"
            continue
        keep = trial
    return [names[j] for j in keep], why
