"""Gaussian-process regression on a few principal components of the MMD plus the side inputs.

Preprocessing (fitted on the training rows only): side inputs through their configured transforms
(log cBA_time, Mn, Mw), the MMD (or, with ``mmd_transform: sqrt``, its square root) projected on its
first ``n_components`` principal components, every feature standardised. The square root suits data with
KMC sampling noise: a histogram of sampled chains has a variance that grows with its height, the square
root makes it about even along the curve, so the components follow the signal rather than the noisiest
points (negative MMD values count as 0 there). With ``log_dispersity: true`` log(Mw/Mn) joins the features:
the breadth of the distribution is a small difference of two large numbers, which one ARD length scale
per standardised log Mn and log Mw cannot single out, and under noise it is what tells temperature from
initiator (Mn and Mw are exact moments of the sampled chains, far less noisy than the histogram).
With ``clip_outputs: true`` every prediction and interval end is held inside the training rows' range of
its target (as the networks' ``clip_outputs``): a noisy input can push the mean past the design's edge,
e.g. a time above the run protocol's t_max; a true value inside the range is never further from the
clipped prediction. With ``design_prior: true`` the targets set on a few levels (a designed experiment)
are answered as the posterior mean over the combinations of the training rows' levels, the GP's error
taken from its leave-one-out residuals (:mod:`polyinv.models.design_prior`): for queries from the same
design only. One GP per target (each target gets its own ARD length scales) with a
Matérn kernel and a white-noise term; targets transformed (e.g. log cAIBN_0) and standardised.

``time`` is censored by the run protocol: a run stops at ``t_max`` (3600 s) or when conversion
reaches ``x_stop`` (90 %), whichever comes first, so ``time`` is a constant for most rows and a
smooth function of the recipe for the rest. With ``time_model: censored`` (default, composite
inputs) the model estimates the conversion from the measured ``cBA_time`` and its own ``cBA_0``
prediction, learns the conversion threshold that separates stopped-early runs in the training
rows, and regresses log(time) with a GP fitted on the stopped-early rows only. Otherwise ``time``
is one more smooth target.

Intervals: ``mean ± m·sd`` in the GP's own (transformed, standardised) target space, mapped to
physical units (the transforms are monotone, so quantiles map). The half-width multiplier ``m`` of
each target is calibrated at fit time on the training rows only: it is the conformal quantile of
the exact leave-one-out |residual| / sd of that target's GP (:func:`polyinv.trust.calibration.gp_loo_abs_z`;
closed form, no refits), instead of the Gaussian z. Censored time: rows whose estimated conversion
lies below the stop threshold get the point [t_max, t_max]; rows above it get the calibrated interval
of the stopped-early log(time) GP (its own leave-one-out calibration), capped at t_max; and rows where
the calibrated ``cBA_0`` interval makes the conversion straddle the threshold (the model cannot tell
whether the run stopped early) get an interval reaching from the early-time lower end to t_max. Plain
time: the time multiplier is calibrated separately for rows predicted to stop early and the rest.
"""

from __future__ import annotations

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.decomposition import PCA
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from polyinv.errors import PolyinvError
from polyinv.models import design_prior
from polyinv.models.base import stopped_early
from polyinv.models.classical import ClassicalModel
from polyinv.scaling import ColumnScaler
from polyinv.trust.calibration import abs_z, gp_loo, gp_loo_abs_z, half_width_multiplier

KIND = "gaussian_process"
TIME_MODELS = ("censored", "plain")
MMD_TRANSFORMS = ("none", "sqrt")
MIN_EARLY_ROWS = 5  # fewer stopped-early training rows than this: fall back to the plain time GP
MIN_CLASS_ROWS = 10  # plain time: fewer training rows in a class than this: one pooled time calibration
EARLY_CUT = 0.98  # plain time: a predicted time below this fraction of t_max counts as a stopped-early run


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
        mmd_transform: str = "none",
        log_dispersity: bool = False,
        clip_outputs: bool = False,
        design_prior: bool = False,
        max_opt_rows: int = 1000,
        n_jobs: int = 1,
        random_state: int = 42,
    ) -> None:
        if time_model not in TIME_MODELS:
            raise PolyinvError(f"model.time_model {time_model!r} unknown; choose one of {TIME_MODELS}")
        if mmd_transform not in MMD_TRANSFORMS:
            raise PolyinvError(f"model.mmd_transform {mmd_transform!r} unknown; choose one of {MMD_TRANSFORMS}")
        super().__init__(
            targets=targets, side_inputs=side_inputs, mmd_columns=mmd_columns, transforms=transforms, n_components=int(n_components), nu=float(nu),
            n_restarts=int(n_restarts), noise_floor=float(noise_floor), time_model=time_model, mmd_transform=mmd_transform,
            log_dispersity=bool(log_dispersity), clip_outputs=bool(clip_outputs), design_prior=bool(design_prior),
            max_opt_rows=int(max_opt_rows), n_jobs=int(n_jobs), random_state=int(random_state),
        )
        if self.hparams["log_dispersity"] and not {"Mn", "Mw"} <= set(self.side_names):
            raise PolyinvError(f"model.log_dispersity needs Mn and Mw among the side inputs, got {self.side_names}")

    # ------------------------------------------------------------------ features
    def _mmd_view(self, mmd: np.ndarray) -> np.ndarray:
        """The MMD as the principal components see it (``mmd_transform``)."""
        if self.hparams["mmd_transform"] == "sqrt":
            return np.sqrt(np.clip(mmd, 0.0, None))
        return mmd

    def _log_dispersity(self, side: np.ndarray) -> np.ndarray:
        """log(Mw/Mn) per row; values <= 0 (refused at fit) are held at the smallest positive float, as the
        side inputs' log transform does, so a bad row gets a far-off feature, not a NaN."""
        side = np.asarray(side, dtype=np.float64)
        tiny = np.finfo(np.float64).tiny
        mn, mw = (np.maximum(side[:, self.side_names.index(c)], tiny) for c in ("Mn", "Mw"))
        return np.log(mw) - np.log(mn)

    def _features(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        side_z = self.state["side_scaler"](torch.tensor(np.array(side, dtype=np.float64))).numpy()
        x = np.hstack([side_z, self.state["pca"].transform(self._mmd_view(mmd))])
        if self.hparams["log_dispersity"]:
            x = np.hstack([x, self._log_dispersity(side)[:, None]])
        return (x - self.state["x_mean"]) / self.state["x_std"]

    def _gp(self, dim: int, seed: int) -> GaussianProcessRegressor:
        hp = self.hparams
        kernel = ConstantKernel(1.0, (1e-5, 1e5)) * Matern(
            length_scale=np.ones(dim), length_scale_bounds=(1e-2, 1e3), nu=hp["nu"]
        ) + WhiteKernel(1e-4, (hp["noise_floor"], 1.0))
        return GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=hp["n_restarts"], random_state=seed)

    def _fit_gp(self, x: np.ndarray, y: np.ndarray, seed: int) -> GaussianProcessRegressor:
        """Fit one target's GP. Above ``max_opt_rows`` rows the kernel hyper-parameters are optimised on a
        seeded random subset of that size (the cost grows as n³ per optimiser step), then the GP is
        fitted on all rows with that kernel held fixed."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        limit = self.hparams["max_opt_rows"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if limit <= 0 or len(x) <= limit:
                return self._gp(x.shape[1], seed).fit(x, y)
            subset = np.random.default_rng(seed).choice(len(x), size=limit, replace=False)
            kernel = self._gp(x.shape[1], seed).fit(x[subset], y[subset]).kernel_
            return GaussianProcessRegressor(kernel, normalize_y=False, optimizer=None).fit(x, y)

    def _censoring_usable(self) -> bool:
        names = self.target_names
        return (
            self.hparams["time_model"] == "censored" and "time" in names and "cBA_0" in names
            and "cBA_time" in self.side_names
        )

    # ------------------------------------------------------------------ fit / predict
    def _fit(self, mmd, side, y) -> None:
        hp = self.hparams
        side_scaler = ColumnScaler(self.side_names, {k: v for k, v in self.transforms.items() if k in self.side_names})
        side_scaler.fit(side)
        if hp["log_dispersity"]:
            for column in ("Mn", "Mw"):
                if (side[:, self.side_names.index(column)] <= 0).any():
                    raise PolyinvError(f"column {column!r} has values <= 0: model.log_dispersity needs log(Mw/Mn)")
        n_comp = min(hp["n_components"], mmd.shape[0] - 1, mmd.shape[1])
        pca = PCA(n_components=n_comp, random_state=hp["random_state"]).fit(self._mmd_view(mmd))
        self.state = {"side_scaler": side_scaler, "pca": pca, "x_mean": 0.0, "x_std": 1.0}
        x = self._features(mmd, side)
        self.state.update(x_mean=x.mean(axis=0), x_std=np.maximum(x.std(axis=0), 1e-12))
        x = self._features(mmd, side)

        def fit_one(j: int) -> GaussianProcessRegressor:
            return self._fit_gp(x, y[:, j], hp["random_state"] + j)

        self.state["gps"] = Parallel(n_jobs=hp["n_jobs"])(delayed(fit_one)(j) for j in range(y.shape[1]))
        # interval calibration from the exact leave-one-out residuals of the training rows (sorted |z|)
        loo = [gp_loo(gp) for gp in self.state["gps"]]
        self.state["calibration"] = {t: abs_z(r, 0.0, sd).tolist() for t, (r, sd) in zip(self.target_names, loo, strict=True)}
        self.state["censored"] = None
        if self._censoring_usable():
            self._fit_censored_time(mmd, side, x)
        self.state["time_classes"] = self._time_class_calibration(loo) if self.state["censored"] is None else None

    def _physical_targets(self, scaled: np.ndarray) -> np.ndarray:
        return self.target_scaler.inverse(torch.as_tensor(scaled, dtype=torch.float64)).numpy()

    def _scaled_targets(self, physical: np.ndarray) -> np.ndarray:
        return self.target_scaler(torch.as_tensor(np.asarray(physical, dtype=np.float64))).numpy()

    def _clip(self, physical: np.ndarray) -> np.ndarray:
        """Physical targets held inside the training range (``clip_outputs``)."""
        if not self.hparams["clip_outputs"]:
            return physical
        low, high = np.asarray(self.state["target_range"])
        return np.clip(physical, low, high)

    def _design(self, mean: np.ndarray, low: np.ndarray | None = None, high: np.ndarray | None = None,
                level: float = 0.9) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The factors' posterior mean (and interval) over the design's recipes (``design_prior``); as given
        without one. Rows go in chunks so the rows × candidates weights stay small."""
        design = self.state.get("design")
        if design is None:
            return mean, low, high
        mean = np.array(mean, dtype=np.float64, copy=True)
        rows = max(1, design_prior.CHUNK_CELLS // len(design["candidates"]))
        for start in range(0, len(mean), rows):
            sl = slice(start, start + rows)
            w = design_prior.weights(design, self._scaled_targets(mean[sl]))
            mean[sl] = design_prior.posterior_mean(design, w, mean[sl])
            if low is not None:
                low[sl], high[sl] = design_prior.posterior_interval(design, w, mean[sl], low[sl], high[sl], level)
        return mean, low, high

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        return self._clip(self._design(super().predict_arrays(mmd, side))[0])

    def _conversion(self, side: np.ndarray, x: np.ndarray) -> np.ndarray:
        j = self.target_names.index("cBA_0")
        scaled = np.zeros((len(x), self.n_targets))
        scaled[:, j] = self.state["gps"][j].predict(x)
        cba0 = self._physical_targets(scaled)[:, j]
        return 1.0 - side[:, self.side_names.index("cBA_time")] / np.maximum(cba0, 1e-12)

    def _fit_censored_time(self, mmd, side, x) -> None:
        # the physical times of the training rows, recovered from the fitted target scaler
        jt = self.target_names.index("time")
        times = self._train_times
        t_max, early = stopped_early(times)
        if early.sum() < MIN_EARLY_ROWS or (~early).sum() < 1:
            return
        conv = self._conversion(side, x)
        threshold = 0.5 * (conv[~early].max() + conv[early].min())
        # the stopped-early GP sees the features only, not the estimated conversion: every stopped-early
        # run ended at the conversion limit, so that column is constant to ~1e-5 on its rows, and a GP
        # given it fits a length scale at its lower bound there and extrapolates wildly for a run just
        # below the limit (seed 39: two 3600-s runs at 89.95 % conversion predicted 837 s and 2134 s)
        log_t = np.log(times[early])
        mean, std = log_t.mean(), max(log_t.std(), 1e-12)
        gp = self._fit_gp(x[early], (log_t - mean) / std, self.hparams["random_state"] + 100 + jt)
        self.state["censored"] = {
            "t_max": t_max, "threshold": float(threshold), "gp": gp, "mean": float(mean), "std": float(std),
            "n_early": int(early.sum()), "calibration": gp_loo_abs_z(gp).tolist(), "conversion_input": False,
        }

    def _time_class_calibration(self, loo: list[tuple[np.ndarray, np.ndarray]]) -> dict | None:
        """Plain time: calibrate the intervals of runs predicted to stop early and of the rest apart.

        Pooled, the many runs that end exactly at t_max (tiny residuals) set a multiplier far too small
        for the stopped-early ones (noisy grid, seeds 0-2: 0.561 coverage of their time at 90 %). The
        classes follow each training row's leave-one-out predicted time, as a new row's predicted time
        will (Mondrian conformal calibration). ``loo``: each target GP's (residual, sd) from :func:`gp_loo`.
        """
        if "time" not in self.target_names or self._train_times is None:
            return None
        jt = self.target_names.index("time")
        resid, sd = loo[jt]
        scaled = np.zeros((len(resid), self.n_targets))
        scaled[:, jt] = np.asarray(self.state["gps"][jt].y_train_).reshape(-1) - resid
        cut = EARLY_CUT * float(self._train_times.max())
        predicted_early = self._physical_targets(scaled)[:, jt] < cut
        if min(predicted_early.sum(), (~predicted_early).sum()) < MIN_CLASS_ROWS:
            return None
        return {"cut": cut, **{name: abs_z(resid[rows], 0.0, sd[rows]).tolist()
                               for name, rows in (("early", predicted_early), ("full", ~predicted_early))}}

    def fit(self, mmd, side, targets):
        targets = np.asarray(targets, dtype=np.float64)
        self._train_times = targets[:, self.target_names.index("time")] if "time" in self.target_names else None
        super().fit(mmd, side, targets)
        # the training rows' range of every target, taken from the physical values themselves: a round trip
        # through the target scaling would move the ends by rounding and leave a value on the range's edge
        # (a design level) just outside its clipped interval
        self.state["target_range"] = np.vstack([targets.min(axis=0), targets.max(axis=0)]).tolist()
        self.state["design"] = None
        if self.hparams["design_prior"]:
            residuals = np.column_stack([gp_loo(gp)[0] for gp in self.state["gps"]])
            outcomes = ["time"] if self._train_times is not None and stopped_early(self._train_times)[1].any() else []
            self.state["design"] = design_prior.fit_design(self.target_names, targets, residuals, self._scaled_targets, outcomes)
        return self

    def _time_censored(self, side, x, with_std: bool = False):
        c = self.state["censored"]
        conv = self._conversion(side, x)
        early = conv >= c["threshold"]
        # models saved before the conversion column was dropped from the stopped-early GP still take it
        xe = np.hstack([x, conv[:, None]]) if c.get("conversion_input", True) else x
        mu, sd = c["gp"].predict(xe, return_std=True)
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
            scaled = self._scaled_targets(physical)
        return scaled

    def loo_predict_arrays(self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Exact leave-one-out recipes (N, T), physical units, for the rows this model was fitted on.

        Each target GP's LOO mean ``y_i - [K⁻¹y]_i / [K⁻¹]_ii`` (kernel fixed); ``time`` with the censored
        model stays the in-sample prediction. Rows other than the fit rows (same order) are an error.
        """
        mmd, side = self._arrays(mmd, side)
        x = self._features(mmd, side)
        gps = self.state["gps"]
        if x.shape != gps[0].X_train_.shape or not np.allclose(x, gps[0].X_train_):
            raise PolyinvError("leave-one-out predictions need exactly the rows the GP was fitted on, in order")
        y = self._scaled_targets(targets)
        scaled = np.empty_like(y)
        for j, gp in enumerate(gps):
            scaled[:, j] = y[:, j] - gp_loo(gp)[0]
        physical = self._physical_targets(scaled)
        if self.state.get("censored"):
            jt = self.target_names.index("time")
            physical[:, jt] = self._time_censored(side, x)
        return self._clip(self._design(physical)[0])

    @property
    def interval_calibrated(self) -> bool:
        """Whether the intervals are calibrated (models saved before calibration use the Gaussian z)."""
        return self.state.get("calibration") is not None

    def multipliers(self, level: float) -> np.ndarray:
        """Per-target half-width multipliers of sd for a central ``level`` interval (calibrated when stored)."""
        calibration = self.state.get("calibration") or {}
        return np.array([half_width_multiplier(calibration.get(t), level) for t in self.target_names])

    def predict_interval(self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) of the calibrated central ``level`` interval, physical units."""
        mmd, side = self._arrays(mmd, side)
        x = self._features(mmd, side)
        mu, sd = zip(*(gp.predict(x, return_std=True) for gp in self.state["gps"]), strict=True)
        mu, sd = np.column_stack(mu), np.column_stack(sd)
        mean = self._physical_targets(mu)
        mult = np.tile(self.multipliers(level), (len(mu), 1))
        classes = self.state.get("time_classes")
        if classes is not None:  # plain time: the multiplier of the class each row's predicted time falls in
            jt = self.target_names.index("time")
            mult[:, jt] = np.where(mean[:, jt] < classes["cut"], half_width_multiplier(classes["early"], level),
                                   half_width_multiplier(classes["full"], level))
        low, high = self._physical_targets(mu - mult * sd), self._physical_targets(mu + mult * sd)
        if self.state.get("censored"):
            c = self.state["censored"]
            jt, jc = self.target_names.index("time"), self.target_names.index("cBA_0")
            t, early, log_t, log_sd = self._time_censored(side, x, with_std=True)
            m_t = half_width_multiplier(c.get("calibration"), level)
            t_max = c["t_max"]
            early_low = np.minimum(np.exp(log_t - m_t * log_sd), t_max)
            early_high = np.minimum(np.exp(log_t + m_t * log_sd), t_max)
            # conversion implied by the ends of the cBA_0 interval: does it straddle the stop threshold?
            left = side[:, self.side_names.index("cBA_time")]
            conv_a = 1.0 - left / np.maximum(low[:, jc], 1e-12)
            conv_b = 1.0 - left / np.maximum(high[:, jc], 1e-12)
            maybe_early = np.maximum(conv_a, conv_b) >= c["threshold"]
            maybe_full = np.minimum(conv_a, conv_b) < c["threshold"]
            mean[:, jt] = t
            low[:, jt] = np.where(maybe_early, early_low, t_max)
            high[:, jt] = np.where(maybe_full, t_max, early_high)
        mean, low, high = self._design(mean, low, high, level)  # the factors' posterior over the design's levels
        return self._clip(mean), self._clip(low), self._clip(high)
