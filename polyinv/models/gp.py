"""Gaussian-process regression on a few principal components of the MMD plus the side inputs.

Preprocessing (fitted on the training rows only): side inputs through their configured transforms
(log Mn, Mw), the MMD projected on its first ``n_components`` principal components, every feature
standardised. One GP per target (each target gets its own length scales) with an ARD Matérn kernel
and a white-noise term; targets transformed (e.g. log cAIBN_0) and standardised. The GP's
predictive standard deviation gives intervals in physical units (monotone transforms map quantiles).
"""

from __future__ import annotations

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.decomposition import PCA
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from polyinv.models.classical import ClassicalModel
from polyinv.scaling import ColumnScaler

KIND = "gaussian_process"


class GPModel(ClassicalModel):
    """Per-target GP regressors on (transformed side inputs, MMD principal components)."""

    kind = KIND

    def __init__(
        self,
        targets=None,
        side_inputs=None,
        mmd_columns=None,
        transforms=None,
        n_components: int = 8,
        nu: float = 2.5,
        n_restarts: int = 2,
        noise_floor: float = 1e-8,
        n_jobs: int = -1,
        random_state: int = 42,
    ) -> None:
        schema = {k: v for k, v in (("targets", targets), ("side_inputs", side_inputs), ("mmd_columns", mmd_columns)) if v is not None}
        super().__init__(
            **schema, transforms=transforms, n_components=int(n_components), nu=float(nu),
            n_restarts=int(n_restarts), noise_floor=float(noise_floor), n_jobs=int(n_jobs), random_state=int(random_state),
        )

    def _features(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        side_z = self.state["side_scaler"](torch.tensor(np.array(side, dtype=np.float64))).numpy()
        pcs = self.state["pca"].transform(mmd)
        x = np.hstack([side_z, pcs])
        return (x - self.state["x_mean"]) / self.state["x_std"]

    def _fit(self, mmd, side, y) -> None:
        hp = self.hparams
        side_scaler = ColumnScaler(self.side_names, {k: v for k, v in self.transforms.items() if k in self.side_names})
        side_scaler.fit(side)
        n_comp = min(hp["n_components"], mmd.shape[0] - 1, mmd.shape[1])
        pca = PCA(n_components=n_comp, random_state=hp["random_state"]).fit(mmd)
        self.state = {"side_scaler": side_scaler, "pca": pca, "x_mean": 0.0, "x_std": 1.0}
        x = self._features(mmd, side)
        mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-12)
        self.state.update(x_mean=mean, x_std=std)
        x = (x - mean) / std
        dim = x.shape[1]

        def fit_one(j: int) -> GaussianProcessRegressor:
            kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
                length_scale=np.ones(dim), length_scale_bounds=(1e-2, 1e3), nu=hp["nu"]
            ) + WhiteKernel(1e-4, (hp["noise_floor"], 1.0))
            gp = GaussianProcessRegressor(
                kernel, normalize_y=False, n_restarts_optimizer=hp["n_restarts"], random_state=hp["random_state"] + j
            )
            return gp.fit(x, y[:, j])

        self.state["gps"] = Parallel(n_jobs=hp["n_jobs"])(delayed(fit_one)(j) for j in range(y.shape[1]))

    def _predict(self, mmd, side) -> np.ndarray:
        x = self._features(mmd, side)
        return np.column_stack([gp.predict(x) for gp in self.state["gps"]])

    def predict_interval(self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) of the central ``level`` predictive interval, physical units."""
        from scipy.stats import norm

        mmd, side = self._arrays(mmd, side)
        x = self._features(mmd, side)
        z = norm.ppf(0.5 + level / 2)
        mu, sd = zip(*(gp.predict(x, return_std=True) for gp in self.state["gps"]), strict=True)
        mu, sd = np.column_stack(mu), np.column_stack(sd)
        inv = lambda a: self.target_scaler.inverse(torch.as_tensor(a, dtype=torch.float64)).numpy()  # noqa: E731
        return inv(mu), inv(mu - z * sd), inv(mu + z * sd)
