"""Gaussian-process regression on a few principal components of the MMD plus the side inputs.

Preprocessing (fitted on the training rows only): side inputs through their configured transforms
(log cBA_time, Mn, Mw), the MMD projected on its first ``n_components`` principal components,
every feature standardised. One GP per target (each target gets its own ARD length scales) with a
Matérn kernel and a white-noise term; targets transformed (e.g. log cAIBN_0) and standardised.

``time`` is censored by the run protocol: a run stops at ``t_max`` (3600 s) or when conversion
reaches ``x_stop`` (90 %), whichever comes first, so ``time`` is a constant for most rows and a
smooth function of the recipe for the rest. With ``time_model: censored`` (default, composite
inputs) the model estimates the conversion from the measured ``cBA_time`` and its own ``cBA_0``
prediction, learns the conversion threshold that separates stopped-early runs in the training
rows, and regresses log(time) with a GP fitted on the stopped-early rows only. Otherwise ``time``
is one more smooth target. The GP's predictive standard deviation gives intervals in physical
units (the transforms are monotone, so quantiles map).
"""

from __future__ import annotations

import numpy as np
import torch
from joblib import Parallel, delayed
from scipy.stats import norm
from sklearn.decomposition import PCA
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from polyinv.errors import PolyinvError
from polyinv.models.classical import ClassicalModel
from polyinv.scaling import ColumnScaler

KIND = "gaussian_process"
TIME_MODELS = ("censored", "plain")
MIN_EARLY_ROWS = 5  # fewer stopped-early training rows than this: fall back to the plain time GP


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
        n_restarts: int = 1,
        noise_floor: float = 1e-9,
        time_model: str = "censored",
        n_jobs: int = 1,
        random_state: int = 42,
    ) -> None:
        if time_model not in TIME_MODELS:
            raise PolyinvError(f"model.time_model {time_model!r} unknown; choose one of {TIME_MODELS}")
        super().__init__(
            targets=targets, side_inputs=side_inputs, mmd_columns=mmd_columns, transforms=transforms, n_components=int(n_components), nu=float(nu),
            n_restarts=int(n_restarts), noise_floor=float(noise_floor), time_model=time_model,
            n_jobs=int(n_jobs), random_state=int(random_state),
        )

    # ------------------------------------------------------------------ features
    def _features(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        side_z = self.state["side_scaler"](torch.tensor(np.array(side, dtype=np.float64))).numpy()
        x = np.hstack([side_z, self.state["pca"].transform(mmd)])
        return (x - self.state["x_mean"]) / self.state["x_std"]

    def _gp(self, dim: int, seed: int) -> GaussianProcessRegressor:
        hp = self.hparams
        kernel = ConstantKernel(1.0, (1e-5, 1e5)) * Matern(
            length_scale=np.ones(dim), length_scale_bounds=(1e-2, 1e3), nu=hp["nu"]
        ) + WhiteKernel(1e-4, (hp["noise_floor"], 1.0))
        return GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=hp["n_restarts"], random_state=seed)

    def _censoring_usable(self) -> bool:
        names = self.target_names
        return (
            self.hparams["time_model"] == "censored" and "time" in names and "cBA_0" in names
            and "cBA_time" in self.side_names
        )

    # ------------------------------------------------------------------ fit / predict
    def _fit(self, mmd, side, y) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        hp = self.hparams
        side_scaler = ColumnScaler(self.side_names, {k: v for k, v in self.transforms.items() if k in self.side_names})
        side_scaler.fit(side)
        n_comp = min(hp["n_components"], mmd.shape[0] - 1, mmd.shape[1])
        pca = PCA(n_components=n_comp, random_state=hp["random_state"]).fit(mmd)
        self.state = {"side_scaler": side_scaler, "pca": pca, "x_mean": 0.0, "x_std": 1.0}
        x = self._features(mmd, side)
        self.state.update(x_mean=x.mean(axis=0), x_std=np.maximum(x.std(axis=0), 1e-12))
        x = self._features(mmd, side)

        def fit_one(j: int) -> GaussianProcessRegressor:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return self._gp(x.shape[1], hp["random_state"] + j).fit(x, y[:, j])

        self.state["gps"] = Parallel(n_jobs=hp["n_jobs"])(delayed(fit_one)(j) for j in range(y.shape[1]))
        self.state["censored"] = None
        if self._censoring_usable():
            self._fit_censored_time(mmd, side, x)

    def _physical_targets(self, scaled: np.ndarray) -> np.ndarray:
        return self.target_scaler.inverse(torch.as_tensor(scaled, dtype=torch.float64)).numpy()

    def _conversion(self, side: np.ndarray, x: np.ndarray) -> np.ndarray:
        j = self.target_names.index("cBA_0")
        scaled = np.zeros((len(x), self.n_targets))
        scaled[:, j] = self.state["gps"][j].predict(x)
        cba0 = self._physical_targets(scaled)[:, j]
        return 1.0 - side[:, self.side_names.index("cBA_time")] / np.maximum(cba0, 1e-12)

    def _fit_censored_time(self, mmd, side, x) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        # the physical times of the training rows, recovered from the fitted target scaler
        jt = self.target_names.index("time")
        times = self._train_times
        t_max = float(times.max())
        early = times < t_max * (1 - 1e-9)
        if early.sum() < MIN_EARLY_ROWS or (~early).sum() < 1:
            return
        conv = self._conversion(side, x)
        threshold = 0.5 * (conv[~early].max() + conv[early].min())
        xe = np.hstack([x, conv[:, None]])[early]
        log_t = np.log(times[early])
        mean, std = log_t.mean(), max(log_t.std(), 1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp = self._gp(xe.shape[1], self.hparams["random_state"] + 100 + jt).fit(xe, (log_t - mean) / std)
        self.state["censored"] = {
            "t_max": t_max, "threshold": float(threshold), "gp": gp, "mean": float(mean), "std": float(std),
            "n_early": int(early.sum()),
        }

    def fit(self, mmd, side, targets):
        self._train_times = np.asarray(targets, dtype=np.float64)[:, self.target_names.index("time")] if "time" in self.target_names else None
        return super().fit(mmd, side, targets)

    def _time_censored(self, side, x, with_std: bool = False):
        c = self.state["censored"]
        conv = self._conversion(side, x)
        early = conv >= c["threshold"]
        mu, sd = c["gp"].predict(np.hstack([x, conv[:, None]]), return_std=True)
        log_t = mu * c["std"] + c["mean"]
        t = np.where(early, np.minimum(np.exp(log_t), c["t_max"]), c["t_max"])
        if not with_std:
            return t
        return t, early, log_t, sd * c["std"]

    def _predict(self, mmd, side) -> np.ndarray:
        x = self._features(mmd, side)
        scaled = np.column_stack([gp.predict(x) for gp in self.state["gps"]])
        if self.state.get("censored"):
            jt = self.target_names.index("time")
            physical = self._physical_targets(scaled)
            physical[:, jt] = self._time_censored(side, x)
            scaled = self.target_scaler(torch.as_tensor(physical, dtype=torch.float64)).numpy()
        return scaled

    def predict_interval(self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) of the central ``level`` predictive interval, physical units."""
        mmd, side = self._arrays(mmd, side)
        x = self._features(mmd, side)
        z = norm.ppf(0.5 + level / 2)
        mu, sd = zip(*(gp.predict(x, return_std=True) for gp in self.state["gps"]), strict=True)
        mu, sd = np.column_stack(mu), np.column_stack(sd)
        mean, low, high = (self._physical_targets(a) for a in (mu, mu - z * sd, mu + z * sd))
        if self.state.get("censored"):
            jt = self.target_names.index("time")
            t, early, log_t, log_sd = self._time_censored(side, x, with_std=True)
            t_max = self.state["censored"]["t_max"]
            mean[:, jt] = t
            low[:, jt] = np.where(early, np.minimum(np.exp(log_t - z * log_sd), t_max), t_max)
            high[:, jt] = np.where(early, np.minimum(np.exp(log_t + z * log_sd), t_max), t_max)
        return mean, low, high
