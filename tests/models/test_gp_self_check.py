"""The GP's self-check: a target whose exact leave-one-out R² is poor is refitted, and the run says so."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from polyinv.models import GPModel, load_model
from polyinv.models.gp import REFIT_LENGTH_FLOOR, loo_r2
from polyinv.train import self_check_lines

from tests.models.test_classical import GP_TRANSFORMS, _gp_arrays
from tests.synthetic import synthetic_frame

_REAL_FIT = GPModel._fit_gp


def _trapped(self, x, y, seed, **kernel):
    """The local optimum seen on a one-sided design: short length scales and most of the target called noise."""
    if kernel:  # the refit runs as usual
        return _REAL_FIT(self, x, y, seed, **kernel)
    bad = ConstantKernel(1.0) * Matern(length_scale=np.full(x.shape[1], 0.05), nu=2.5) + WhiteKernel(0.3)
    return GaussianProcessRegressor(bad, optimizer=None).fit(x, y)


@pytest.mark.slow
def test_a_trapped_fit_is_refitted_and_the_refit_kept(monkeypatch, tmp_path):
    frame = synthetic_frame(160, seed=5)
    mmd, side, y = _gp_arrays(frame)
    fit, test = slice(0, 120), slice(120, None)
    kw = dict(transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, time_model="plain")
    monkeypatch.setattr(GPModel, "_fit_gp", _trapped)
    unchecked = GPModel(**kw, self_check=False).fit(mmd[fit], side[fit], y[fit])
    checked = GPModel(**kw).fit(mmd[fit], side[fit], y[fit])
    for target, check in checked.fit_checks.items():
        assert check["loo_r2"] < 0.9  # the trap is visible in the leave-one-out residuals
        assert check["kept"] == "refit" and check["refit_loo_r2"] > check["loo_r2"] + 0.1, target
    assert all("refit_loo_r2" not in c for c in unchecked.fit_checks.values())
    # the kept kernel respects the refit's bound and predicts held-out rows far better
    for gp in checked.state["gps"]:
        assert np.min(gp.kernel_.k1.k2.length_scale) >= REFIT_LENGTH_FLOOR * (1 - 1e-9)
        assert loo_r2(gp) > 0.1
    span = y[fit].max(axis=0) - y[fit].min(axis=0)
    err = lambda m: np.abs((m.predict_arrays(mmd[test], side[test]) - y[test]) / span).mean(axis=0)  # noqa: E731
    assert np.all(
        err(checked)[:3] < 0.75 * err(unchecked)[:3]
    )  # the synthetic time is noise-like for any fit
    lines = self_check_lines(checked.fit_checks)
    assert len(lines) == 4 and "cAIBN_0 leave-one-out R²" in lines[1] and "kept the refit" in lines[1]
    path = tmp_path / "model.skops"
    checked.save(path)
    assert load_model(path).fit_checks == checked.fit_checks


def test_a_good_fit_is_left_alone():
    frame = synthetic_frame(120, seed=2)
    mmd, side, y = _gp_arrays(frame)
    model = GPModel(
        transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, time_model="plain", check_loo_r2=-1.0
    ).fit(mmd, side, y)
    assert set(model.fit_checks) == {"cBA_0", "cAIBN_0", "temp", "time"}
    assert all(set(c) == {"loo_r2", "length_scales_min"} for c in model.fit_checks.values())
    assert self_check_lines(model.fit_checks) == []
