"""Gaussian-process regression on a few principal components of the MMD plus the side inputs.

Features (fitted on the training rows only): the side inputs through their configured transforms (log
cBA_time, Mn, Mw), the MMD — or with ``mmd_transform: sqrt`` its square root, where KMC count noise is
about even — projected on its first ``mmd_pcs`` principal components, optionally log(Mw/Mn)
(``log_dispersity``), all standardised. One GP per target (own ARD length scales), Matérn kernel plus
white noise, targets transformed and standardised.

``time_model: censored`` (the run protocol: stop at t_max or at the conversion limit): the conversion
estimated from the measured ``cBA_time`` and the model's own ``cBA_0`` decides whether a run stopped
early; log(time) of such runs comes from a GP fitted on the stopped-early training rows only.
``time_model: plain``: time is one more smooth target.

Intervals: ``mean ± m·sd`` in the GP's target space, with ``m`` the conformal quantile of the exact
leave-one-out |residual|/sd of the training rows (:mod:`polyinv.models.intervals`). ``clip_outputs``
holds predictions and interval ends inside the training range; ``design_prior`` answers on a designed
experiment's levels (:mod:`polyinv.models.levels`). See docs/models.md.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from joblib import Parallel, delayed
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from polyinv.errors import PolyinvError
from polyinv.models import levels
from polyinv.models.base import register
from polyinv.models.classical import TINY, ClassicalModel, log_columns
from polyinv.models.gp_time import MIN_EARLY_ROWS, StopRuleTime
from polyinv.models.intervals import abs_z, gp_fold_cv, gp_loo, half_width_multiplier
from polyinv.schema import MN, MONOMER_0, MONOMER_LEFT, MW, TIME, stopped_early

KIND = "gaussian_process"
LENGTH_SCALE_BOUNDS = (1e-2, 1e3)  # on standardised inputs
#: self_check: the refit's lower length-scale bound. Below it a fit can settle in a local optimum that explains
#: the target as noise plus a few short-range wiggles (cAIBN_0 on a one-sided design: LOO R² 0.24, its
#: marginal likelihood far below the long-range optimum that this bound leads the optimiser to, LOO R² 0.998)
REFIT_LENGTH_FLOOR = 0.3
REFIT_RESTARTS = 2


def loo_r2(gp: GaussianProcessRegressor) -> float:
    """R² of a fitted GP's exact leave-one-out predictions of its own (standardised) training targets."""
    resid, _ = gp_loo(gp)
    y = np.asarray(gp.y_train_, dtype=np.float64).reshape(-1)
    return float(1.0 - np.mean(resid**2) / max(float(np.var(y)), 1e-300))


def _min_length_scale(gp: GaussianProcessRegressor) -> float:
    """Shortest fitted length scale of the GP's Matérn kernel."""
    return float(np.min(gp.kernel_.k1.k2.length_scale))


@register
class GPModel(StopRuleTime, ClassicalModel):
    """Per-target GP regressors on (transformed side inputs, MMD principal components)."""

    kind = KIND
    has_interval = True
    has_loo = True
    has_fold_cv = True

    def __init__(
        self,
        targets: list[str] | None = None,
        side_inputs: list[str] | None = None,
        mmd_columns: list[str] | None = None,
        transforms: dict[str, str] | None = None,
        mmd_pcs: int = 8,
        nu: float = 2.5,
        n_restarts: int = 1,
        noise_floor: float = 1e-9,
        self_check: bool = True,
        check_loo_r2: float = 0.99,
        time_model: Literal["censored", "plain"] = "censored",
        mmd_transform: Literal["none", "sqrt"] = "none",
        log_dispersity: bool = False,
        clip_outputs: bool = False,
        design_prior: bool = False,
        max_opt_rows: int = 1000,
        n_jobs: int = 1,
        random_state: int = 42,
        progress: bool = True,
    ) -> None:
        """
        Args:
            mmd_pcs: principal components of the MMD the GP sees
            nu: smoothness of the Matérn kernel (0.5, 1.5, 2.5 or inf)
            n_restarts: extra starts of the kernel optimiser per target
            noise_floor: lower bound of the white-noise level (standardised targets)
            self_check: a target whose exact leave-one-out R² is below check_loo_r2 is refitted from other
                starts (length scales bounded below); the fit with the better leave-one-out R² is kept
            check_loo_r2: leave-one-out R² (standardised target) below which a target is refitted
            time_model: censored (stop rule of the run protocol) or plain (time as a smooth target)
            mmd_transform: none, or sqrt (components of the square root of the MMD: KMC-like data)
            log_dispersity: log(Mw/Mn) as one more input
            clip_outputs: hold predictions and interval ends inside the training range
            design_prior: answer on the levels of a designed experiment (queries from the same design only)
            max_opt_rows: above this many rows the kernel is optimised on a seeded subset of them
            n_jobs: targets fitted in parallel
            random_state: seed (set from the run's seed)
            progress: a progress bar over the targets while fitting
        """
        if time_model not in ("censored", "plain"):
            raise PolyinvError(f"model.time_model {time_model!r} unknown; choose censored or plain")
        if mmd_transform not in ("none", "sqrt"):
            raise PolyinvError(f"model.mmd_transform {mmd_transform!r} unknown; choose none or sqrt")
        super().__init__(
            targets=targets,
            side_inputs=side_inputs,
            mmd_columns=mmd_columns,
            transforms=transforms,
            mmd_pcs=int(mmd_pcs),
            nu=float(nu),
            n_restarts=int(n_restarts),
            noise_floor=float(noise_floor),
            self_check=bool(self_check),
            check_loo_r2=float(check_loo_r2),
            time_model=time_model,
            mmd_transform=mmd_transform,
            log_dispersity=bool(log_dispersity),
            clip_outputs=bool(clip_outputs),
            design_prior=bool(design_prior),
            max_opt_rows=int(max_opt_rows),
            n_jobs=int(n_jobs),
            random_state=int(random_state),
            progress=bool(progress),
        )
        if self.hparams["log_dispersity"] and not {MN, MW} <= set(self.side_names):
            raise PolyinvError(
                f"model.log_dispersity needs Mn and Mw among the side inputs, got {self.side_names}"
            )
        self._train_times: np.ndarray | None = None

    # ------------------------------------------------------------------ features
    def _mmd_view(self, mmd: np.ndarray) -> np.ndarray:
        """The MMD as the principal components see it (``mmd_transform``)."""
        if self.hparams["mmd_transform"] == "sqrt":
            return np.sqrt(np.clip(mmd, 0.0, None))
        return mmd

    def _log_dispersity(self, side: np.ndarray) -> np.ndarray:
        """log(Mw/Mn) per row; values <= 0 (refused at fit) are held at the smallest positive float."""
        mn, mw = (np.maximum(side[:, self.side_names.index(c)], TINY) for c in (MN, MW))
        return np.log(mw) - np.log(mn)

    def _raw_features(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        parts = [log_columns(side, self.side_log), self.state["pca"].transform(self._mmd_view(mmd))]
        if self.hparams["log_dispersity"]:
            parts.append(self._log_dispersity(side)[:, None])
        return np.hstack(parts)

    def _features(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Standardised GP inputs of physical rows."""
        return self.state["feature_scaler"].transform(self._raw_features(mmd, side))

    def _gp(
        self, dim: int, seed: int, length_floor: float = LENGTH_SCALE_BOUNDS[0], restarts: int | None = None
    ) -> GaussianProcessRegressor:
        hp = self.hparams
        kernel = ConstantKernel(1.0, (1e-5, 1e5)) * Matern(
            length_scale=np.ones(dim), length_scale_bounds=(length_floor, LENGTH_SCALE_BOUNDS[1]), nu=hp["nu"]
        ) + WhiteKernel(1e-4, (hp["noise_floor"], 1.0))
        restarts = hp["n_restarts"] if restarts is None else restarts
        return GaussianProcessRegressor(
            kernel, normalize_y=False, n_restarts_optimizer=restarts, random_state=seed
        )

    def _fit_gp(self, x: np.ndarray, y: np.ndarray, seed: int, **kernel) -> GaussianProcessRegressor:
        """Fit one target's GP. Above ``max_opt_rows`` rows the kernel hyper-parameters are optimised on a
        seeded random subset of that size (the cost grows as n³ per optimiser step), then the GP is
        fitted on all rows with that kernel held fixed. ``kernel``: :meth:`_gp`'s bound and restarts."""

        limit = self.hparams["max_opt_rows"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if limit <= 0 or len(x) <= limit:
                return self._gp(x.shape[1], seed, **kernel).fit(x, y)
            subset = np.random.default_rng(seed).choice(len(x), size=limit, replace=False)
            found = self._gp(x.shape[1], seed, **kernel).fit(x[subset], y[subset]).kernel_
            return GaussianProcessRegressor(found, normalize_y=False, optimizer=None).fit(x, y)

    def _fit_checked(
        self, x: np.ndarray, y: np.ndarray, seed: int, check: bool = True
    ) -> tuple[GaussianProcessRegressor, dict]:
        """Fit one target's GP and check it by its exact leave-one-out R² (``self_check``).

        A fit below ``check_loo_r2`` is refitted with the length scales bounded below by
        :data:`REFIT_LENGTH_FLOOR` and more restarts; the better of the two by leave-one-out R² is kept.
        Returns the GP and what was found and done.
        """
        gp = self._fit_gp(x, y, seed)
        wanted, check = check, {"loo_r2": loo_r2(gp), "length_scales_min": _min_length_scale(gp)}
        if not (self.hparams["self_check"] and wanted) or check["loo_r2"] >= self.hparams["check_loo_r2"]:
            return gp, check
        refit = self._fit_gp(
            x,
            y,
            seed,
            length_floor=REFIT_LENGTH_FLOOR,
            restarts=max(REFIT_RESTARTS, self.hparams["n_restarts"]),
        )
        check["refit_loo_r2"] = loo_r2(refit)
        check["kept"] = "refit" if check["refit_loo_r2"] > check["loo_r2"] else "first"
        return (refit if check["kept"] == "refit" else gp), check

    @property
    def fit_checks(self) -> dict | None:
        """Per target: the fit's leave-one-out R², its shortest length scale and any refit (``self_check``)."""
        return self.state.get("fit_checks")

    # ------------------------------------------------------------------ fit / predict
    def _fit(self, mmd, side, y) -> None:
        hp = self.hparams
        if hp["log_dispersity"]:
            for column in (MN, MW):
                if (side[:, self.side_names.index(column)] <= 0).any():
                    raise PolyinvError(
                        f"column {column!r} has values <= 0: model.log_dispersity needs log(Mw/Mn)"
                    )
        for column, is_log in zip(self.side_names, self.side_log, strict=True):
            if is_log and (side[:, self.side_names.index(column)] <= 0).any():
                raise PolyinvError(f"column {column!r} has values <= 0 and cannot take the 'log' transform")
        n_comp = min(hp["mmd_pcs"], mmd.shape[0] - 1, mmd.shape[1])
        self.state["pca"] = PCA(n_components=n_comp, random_state=hp["random_state"]).fit(self._mmd_view(mmd))
        self.state["feature_scaler"] = StandardScaler().fit(self._raw_features(mmd, side))
        x = self._features(mmd, side)
        censored = self._censoring_usable()
        bar = tqdm(
            total=y.shape[1] + int(censored),
            desc=f"GP kernels ({hp['n_restarts']} restarts each)",
            unit="target",
            disable=not hp["progress"],
            leave=False,
        )
        # with the censored time the plain time GP answers nothing (the stopped-early GP does): not worth a refit
        early = stopped_early(self._train_times)[1] if self._train_times is not None else None
        censors = censored and early is not None and early.sum() >= MIN_EARLY_ROWS and (~early).any()
        wanted = [not (censors and t == TIME) for t in self.target_names]
        fits = []
        if hp["n_jobs"] == 1:
            for j in range(y.shape[1]):
                fits.append(self._fit_checked(x, y[:, j], hp["random_state"] + j, wanted[j]))
                bar.update()
        else:
            for fit in Parallel(n_jobs=hp["n_jobs"], return_as="generator")(
                delayed(self._fit_checked)(x, y[:, j], hp["random_state"] + j, wanted[j])
                for j in range(y.shape[1])
            ):
                fits.append(fit)
                bar.update()
        gps = [gp for gp, _ in fits]
        self.state["gps"] = gps
        self.state["fit_checks"] = {t: check for t, (_, check) in zip(self.target_names, fits, strict=True)}
        # interval calibration from the exact leave-one-out residuals of the training rows (sorted |z|)
        loo = [gp_loo(gp) for gp in gps]
        self.state["calibration"] = {
            t: abs_z(r, 0.0, sd).tolist() for t, (r, sd) in zip(self.target_names, loo, strict=True)
        }
        self.state["censored"] = None
        if censored:
            self._fit_censored_time(mmd, side, x)
            bar.update()
        bar.close()
        self.state["time_classes"] = (
            self._time_class_calibration(loo) if self.state["censored"] is None else None
        )

    def _clip(self, physical: np.ndarray) -> np.ndarray:
        """Physical targets held inside the training range (``clip_outputs``)."""
        if not self.hparams["clip_outputs"]:
            return physical
        low, high = np.asarray(self.state["target_range"])
        return np.clip(physical, low, high)

    def _design(
        self,
        mean: np.ndarray,
        low: np.ndarray | None = None,
        high: np.ndarray | None = None,
        level: float = 0.9,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The factors' posterior mean (and interval) over the design's recipes (``design_prior``); as given
        without one. Rows go in chunks so the rows × candidates weights stay small."""
        design = self.state.get("design")
        if design is None:
            return mean, low, high
        mean = np.array(mean, dtype=np.float64, copy=True)
        rows = max(1, levels.CHUNK_CELLS // len(design["candidates"]))
        for start in range(0, len(mean), rows):
            sl = slice(start, start + rows)
            w = levels.weights(design, self.scaled_targets(mean[sl]))
            mean[sl] = levels.posterior_mean(design, w, mean[sl])
            if low is not None:
                low[sl], high[sl] = levels.posterior_interval(design, w, mean[sl], low[sl], high[sl], level)
        return mean, low, high

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        return self._clip(self._design(super().predict_arrays(mmd, side))[0])

    def fit(self, mmd, side, targets):
        targets = np.asarray(targets, dtype=np.float64)
        self._train_times = targets[:, self.target_names.index(TIME)] if TIME in self.target_names else None
        super().fit(mmd, side, targets)
        # the training rows' range of every target, taken from the physical values themselves: a round trip
        # through the target scaling would move the ends by rounding and leave a value on the range's edge
        # (a design level) just outside its clipped interval
        self.state["target_range"] = np.vstack([targets.min(axis=0), targets.max(axis=0)]).tolist()
        self.state["design"] = None
        if self.hparams["design_prior"]:
            residuals = np.column_stack([gp_loo(gp)[0] for gp in self.state["gps"]])
            outcomes = (
                [TIME] if self._train_times is not None and stopped_early(self._train_times)[1].any() else []
            )
            self.state["design"] = levels.fit_design(
                self.target_names, targets, residuals, self.scaled_targets, outcomes
            )
        return self

    def _predict(self, mmd, side) -> np.ndarray:
        x = self._features(mmd, side)
        scaled = np.column_stack([gp.predict(x) for gp in self.state["gps"]])
        if self.state.get("censored"):
            jt = self.target_names.index(TIME)
            physical = self.physical_targets(scaled)
            physical[:, jt] = self._time_censored(side, x)
            scaled = self.scaled_targets(physical)
        return scaled

    def loo_predict_arrays(
        self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray, folds=None
    ) -> np.ndarray:
        """Exact held-out recipes (N, T), physical units, of the rows this model was fitted on, kernel fixed:
        leave-one-out, or with ``folds`` (index arrays of held-out rows) K-fold, each fold predicted from
        the other rows without a refit (:func:`~polyinv.models.intervals.gp_fold_cv`).

        ``time`` with the censored model: the stop decision from the held-out cBA_0, the stopped-early runs'
        time from the stopped-early GP's own held-out mean. Rows other than the fit rows (same order) are an
        error.
        """
        mmd, side = self._arrays(mmd, side)
        x = self._features(mmd, side)
        gps = self.state["gps"]
        if x.shape != gps[0].X_train_.shape or not np.allclose(x, gps[0].X_train_):
            raise PolyinvError("held-out predictions need exactly the rows the GP was fitted on, in order")
        y = self.scaled_targets(targets)
        scaled = np.empty_like(y)
        for j, gp in enumerate(gps):
            scaled[:, j] = y[:, j] - (gp_loo(gp) if folds is None else gp_fold_cv(gp, folds))[0]
        physical = self.physical_targets(scaled)
        if self.state.get("censored"):
            physical[:, self.target_names.index(TIME)] = self._time_censored_loo(
                side, x, physical, targets, folds
            )
        return self._clip(self._design(physical)[0])

    def multipliers(self, level: float) -> np.ndarray:
        """Per-target half-width multipliers of sd for a central ``level`` interval (calibrated when stored)."""
        calibration = self.state.get("calibration") or {}
        return np.array([half_width_multiplier(calibration.get(t), level) for t in self.target_names])

    def predict_interval(
        self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) of the calibrated central ``level`` interval, physical units."""
        mmd, side = self._arrays(mmd, side)
        x = self._features(mmd, side)
        mu, sd = zip(*(gp.predict(x, return_std=True) for gp in self.state["gps"]), strict=True)
        mu, sd = np.column_stack(mu), np.column_stack(sd)
        mean = self.physical_targets(mu)
        mult = np.tile(self.multipliers(level), (len(mu), 1))
        classes = self.state.get("time_classes")
        if classes is not None:  # plain time: the multiplier of the class each row's predicted time falls in
            jt = self.target_names.index(TIME)
            mult[:, jt] = np.where(
                mean[:, jt] < classes["cut"],
                half_width_multiplier(classes["early"], level),
                half_width_multiplier(classes["full"], level),
            )
        low, high = self.physical_targets(mu - mult * sd), self.physical_targets(mu + mult * sd)
        if self.state.get("censored"):
            c = self.state["censored"]
            jt, jc = self.target_names.index(TIME), self.target_names.index(MONOMER_0)
            t, early, log_t, log_sd = self._time_censored(side, x, with_std=True)
            m_t = half_width_multiplier(c.get("calibration"), level)
            t_max = c["t_max"]
            early_low = np.minimum(np.exp(log_t - m_t * log_sd), t_max)
            early_high = np.minimum(np.exp(log_t + m_t * log_sd), t_max)
            # conversion implied by the ends of the cBA_0 interval: does it straddle the stop threshold?
            left = side[:, self.side_names.index(MONOMER_LEFT)]
            conv_a = 1.0 - left / np.maximum(low[:, jc], 1e-12)
            conv_b = 1.0 - left / np.maximum(high[:, jc], 1e-12)
            maybe_early = np.maximum(conv_a, conv_b) >= c["threshold"]
            maybe_full = np.minimum(conv_a, conv_b) < c["threshold"]
            mean[:, jt] = t
            low[:, jt] = np.where(maybe_early, early_low, t_max)
            high[:, jt] = np.where(maybe_full, t_max, early_high)
        mean, low, high = self._design(
            mean, low, high, level
        )  # the factors' posterior over the design's levels
        return self._clip(mean), self._clip(low), self._clip(high)
