"""The GP's time target under the run protocol (``time_model: censored``): a run stops at t_max or when its
conversion reaches the stop, so its time is t_max unless the conversion implied by the measured monomer left
and the predicted initial monomer reaches the stop; then a GP fitted on the stopped-early runs alone (log
time) answers. With the plain time model, intervals are calibrated apart for runs predicted to stop early and
the rest (Mondrian conformal calibration).
"""

from __future__ import annotations

import numpy as np

from polyinv.models.intervals import abs_z, gp_fold_cv, gp_loo, gp_loo_abs_z
from polyinv.schema import MONOMER_0, MONOMER_LEFT, TIME, conversion, stopped_early

MIN_EARLY_ROWS = 5  # fewer stopped-early training rows than this: fall back to the plain time GP
MIN_CLASS_ROWS = 10  # plain time: fewer training rows in a class than this: one pooled time calibration
EARLY_CUT = 0.98  # plain time: a predicted time below this fraction of t_max counts as a stopped-early run


class StopRuleTime:
    """Mixin of :class:`~polyinv.models.gp.GPModel`: the censored time model and its leave-one-out answers."""

    def _censoring_usable(self) -> bool:
        names = self.target_names
        return (
            self.hparams["time_model"] == "censored"
            and TIME in names
            and MONOMER_0 in names
            and MONOMER_LEFT in self.side_names
        )

    def _conversion(self, side: np.ndarray, x: np.ndarray) -> np.ndarray:
        j = self.target_names.index(MONOMER_0)
        scaled = np.zeros((len(x), self.n_targets))
        scaled[:, j] = self.state["gps"][j].predict(x)
        cba0 = self.physical_targets(scaled)[:, j]
        return conversion(side[:, self.side_names.index(MONOMER_LEFT)], np.maximum(cba0, 1e-12))

    def _fit_censored_time(self, mmd, side, x) -> None:
        # the physical times of the training rows, recovered from the fitted target scaler
        jt = self.target_names.index(TIME)
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
        gp, check = self._fit_checked(x[early], (log_t - mean) / std, self.hparams["random_state"] + 100 + jt)
        self.state["fit_checks"]["time (stopped early)"] = check
        self.state["censored"] = {
            "t_max": t_max,
            "threshold": float(threshold),
            "gp": gp,
            "mean": float(mean),
            "std": float(std),
            "n_early": int(early.sum()),
            "calibration": gp_loo_abs_z(gp).tolist(),
        }

    def _time_class_calibration(self, loo: list[tuple[np.ndarray, np.ndarray]]) -> dict | None:
        """Plain time: calibrate the intervals of runs predicted to stop early and of the rest apart.

        Pooled, the many runs that end exactly at t_max (tiny residuals) set a multiplier far too small
        for the stopped-early ones (noisy grid, seeds 0-2: 0.561 coverage of their time at 90 %). The
        classes follow each training row's leave-one-out predicted time, as a new row's predicted time
        will (Mondrian conformal calibration). ``loo``: each target GP's (residual, sd) from :func:`gp_loo`.
        """
        if TIME not in self.target_names or self._train_times is None:
            return None
        jt = self.target_names.index(TIME)
        resid, sd = loo[jt]
        scaled = np.zeros((len(resid), self.n_targets))
        scaled[:, jt] = np.asarray(self.state["gps"][jt].y_train_).reshape(-1) - resid
        cut = EARLY_CUT * float(self._train_times.max())
        predicted_early = self.physical_targets(scaled)[:, jt] < cut
        if min(predicted_early.sum(), (~predicted_early).sum()) < MIN_CLASS_ROWS:
            return None
        return {
            "cut": cut,
            **{
                name: abs_z(resid[rows], 0.0, sd[rows]).tolist()
                for name, rows in (("early", predicted_early), ("full", ~predicted_early))
            },
        }

    def _time_censored(self, side, x, with_std: bool = False):
        c = self.state["censored"]
        conv = self._conversion(side, x)
        early = conv >= c["threshold"]
        mu, sd = c["gp"].predict(x, return_std=True)
        log_t = mu * c["std"] + c["mean"]
        t = np.where(early, np.minimum(np.exp(log_t), c["t_max"]), c["t_max"])
        if not with_std:
            return t
        return t, early, log_t, sd * c["std"]

    def _time_censored_loo(
        self, side: np.ndarray, x: np.ndarray, loo: np.ndarray, targets: np.ndarray, folds=None
    ) -> np.ndarray:
        """Held-out censored time of the fit rows (``loo``: the other targets' held-out recipes; ``folds``:
        K-fold index arrays of the fit rows, or None for leave-one-out)."""
        c = self.state["censored"]
        jt, jc = self.target_names.index(TIME), self.target_names.index(MONOMER_0)
        conv = conversion(side[:, self.side_names.index(MONOMER_LEFT)], np.maximum(loo[:, jc], 1e-12))
        gp = c["gp"]
        mu = gp.predict(x)
        _, early_rows = stopped_early(np.asarray(targets, dtype=np.float64)[:, jt])
        if early_rows.sum() == len(gp.X_train_) and np.allclose(x[early_rows], gp.X_train_):
            if folds is None:
                resid = gp_loo(gp)[0]
            else:  # each fold's stopped-early rows, numbered among the stopped-early rows
                position = np.cumsum(early_rows) - 1
                resid = gp_fold_cv(gp, [position[f][early_rows[f]] for f in folds])[0]
            mu[early_rows] = np.asarray(gp.y_train_).reshape(-1) - resid
        log_t = mu * c["std"] + c["mean"]
        return np.where(conv >= c["threshold"], np.minimum(np.exp(log_t), c["t_max"]), c["t_max"])
