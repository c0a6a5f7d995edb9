"""scikit-learn models: the GP's features and options, the design-level posterior, safe model files."""

from __future__ import annotations

import numpy as np
import pytest

from polyinv.errors import PolyinvError
from polyinv.models import ForestModel, GPModel, load_model
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

from tests.synthetic import synthetic_frame

GP_TRANSFORMS = {"Mn": "log", "Mw": "log", "cBA_time": "log", "cAIBN_0": "log"}


def _gp_arrays(frame):
    """(mmd, side, targets) physical arrays of a synthetic frame, for the GP's own fit/predict."""
    return tuple(frame[list(c)].to_numpy(np.float64) for c in (MMD_COLUMNS, SIDE_INPUTS, TARGETS))


@pytest.mark.slow
def test_gp_sqrt_mmd_transform_fits_components_on_the_square_root_and_survives_saving(tmp_path, frame):
    """``model.mmd_transform: sqrt`` (configs/gp_noisy.yaml): the principal components are those of √MMD,
    at fit and at prediction; the setting travels with the saved model file."""
    mmd, side, y = _gp_arrays(frame)
    with pytest.raises(PolyinvError, match="mmd_transform 'log' unknown"):
        GPModel(transforms=GP_TRANSFORMS, mmd_transform="log")
    fitted = {}
    for name in ("none", "sqrt"):
        gp = GPModel(
            transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, time_model="plain", mmd_transform=name
        )
        fitted[name] = gp.fit(mmd, side, y)
    pca = fitted["sqrt"].state["pca"]
    np.testing.assert_allclose(pca.mean_, np.sqrt(mmd).mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(fitted["none"].state["pca"].mean_, mmd.mean(axis=0), rtol=1e-10)
    scaler = fitted["sqrt"].state["feature_scaler"]
    x = scaler.inverse_transform(fitted["sqrt"]._features(mmd, side))
    np.testing.assert_allclose(x[:, len(SIDE_INPUTS) :], pca.transform(np.sqrt(mmd)), atol=1e-9)
    assert not np.allclose(fitted["sqrt"].predict_arrays(mmd, side), fitted["none"].predict_arrays(mmd, side))

    path = tmp_path / "model.skops"
    fitted["sqrt"].save(path)
    again = load_model(path)
    assert again.hparams["mmd_transform"] == "sqrt"
    np.testing.assert_allclose(again.predict_arrays(mmd, side), fitted["sqrt"].predict_arrays(mmd, side))


@pytest.mark.slow
def test_gp_log_dispersity_joins_log_mw_over_mn_to_the_features(frame):
    """``model.log_dispersity: true`` (configs/gp_noisy.yaml): log(Mw/Mn) is one more GP input with its own
    length scale; it needs Mn and Mw among the side inputs."""
    mmd, side, y = _gp_arrays(frame)
    with pytest.raises(PolyinvError, match="log_dispersity needs Mn and Mw among the side inputs"):
        GPModel(side_inputs=["cBA_time", "Mn"], log_dispersity=True)
    gp = GPModel(
        transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, time_model="plain", log_dispersity=True
    ).fit(mmd, side, y)
    x = gp._features(mmd, side)
    assert x.shape[1] == len(SIDE_INPUTS) + 3 + 1
    pdi = np.log(frame["Mw"].to_numpy() / frame["Mn"].to_numpy())
    np.testing.assert_allclose(
        gp.state["feature_scaler"].inverse_transform(x)[:, -1], pdi, rtol=1e-9, atol=1e-12
    )
    assert all(len(g.kernel_.k1.k2.length_scale) == x.shape[1] for g in gp.state["gps"])
    plain = GPModel(transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, time_model="plain").fit(mmd, side, y)
    assert plain._features(mmd, side).shape[1] == x.shape[1] - 1
    bad = side.copy()
    bad[5, SIDE_INPUTS.index("Mw")] = 0.0
    assert np.isfinite(gp.predict_arrays(mmd, bad)).all()  # a bad row at prediction: far off, not NaN
    with pytest.raises(PolyinvError, match="column 'Mw' has values <= 0: model.log_dispersity needs log"):
        GPModel(transforms={}, mmd_pcs=3, n_restarts=0, log_dispersity=True).fit(mmd, bad, y)


@pytest.mark.slow
def test_gp_clip_outputs_holds_predictions_and_intervals_inside_the_training_range(frame):
    """``model.clip_outputs: true`` (configs/gp_noisy.yaml): predictions, leave-one-out recipes and interval ends
    are the unclipped model's, held inside the training rows' range of each target."""
    mmd, side, y = _gp_arrays(frame)
    fitted = {
        c: GPModel(transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, time_model="plain", clip_outputs=c).fit(
            mmd, side, y
        )
        for c in (False, True)
    }
    low, high = y.min(axis=0), y.max(axis=0)
    np.testing.assert_allclose(fitted[True].state["target_range"], [low, high], rtol=1e-9)
    free, held = fitted[False].predict_interval(mmd, side), fitted[True].predict_interval(mmd, side)
    assert (free[1] < low - 1e-9).any() and (
        free[2] > high + 1e-9
    ).any()  # the unclipped intervals leave the range
    for a, b in zip(free, held, strict=True):
        np.testing.assert_allclose(b, np.clip(a, low, high), rtol=1e-12)
    covered = lambda interval: (y >= interval[1]) & (y <= interval[2])  # noqa: E731
    assert np.all(
        covered(held) >= covered(free)
    )  # clipping uncovers no training value, design edges included
    np.testing.assert_allclose(
        fitted[True].predict_arrays(mmd, side),
        np.clip(fitted[False].predict_arrays(mmd, side), low, high),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        fitted[True].loo_predict_arrays(mmd, side, y),
        np.clip(fitted[False].loo_predict_arrays(mmd, side, y), low, high),
        rtol=1e-12,
    )


def test_design_prior_posterior_recovers_a_level_combination():
    """polyinv/models/levels.py alone: with a sharp error model a prediction at a candidate recipe
    returns that recipe, its interval is that level; halfway between two levels it answers their mean."""
    from polyinv.models import levels as design_prior

    targets = np.array(
        [[a, b, t] for a in (1.0, 2.0) for b in (10.0, 20.0, 30.0) for t in (100.0, 250.0, 400.0)]
    )
    residuals = np.random.default_rng(0).normal(scale=1e-3, size=targets.shape)
    design = design_prior.fit_design(["a", "b", "t"], targets, residuals, lambda phys: phys / 10.0)
    assert design["factors"] == [0, 1, 2] and len(design["candidates"]) == 18
    query = np.array([[2.0, 20.0, 250.0], [1.5, 30.0, 400.0]])
    w = design_prior.weights(design, query / 10.0)
    mean = design_prior.posterior_mean(design, w, query)
    np.testing.assert_allclose(mean, query, atol=1e-9)  # the midpoint 1.5 is the two levels' equal mix
    low, high = design_prior.posterior_interval(design, w, mean, query, query, level=0.9)
    assert low[0].tolist() == high[0].tolist() == [2.0, 20.0, 250.0]
    assert (low[1, 0], high[1, 0]) == (1.0, 2.0)
    few = np.random.default_rng(1).uniform(size=(12, 3))  # 12 runs, every value distinct: no levels
    with pytest.raises(PolyinvError, match="at most 6 levels"):
        design_prior.fit_design(["a", "b", "t"], few, few, lambda phys: phys)


@pytest.mark.slow
def test_gp_design_prior_answers_on_the_designs_levels(tmp_path, monkeypatch):
    """``model.design_prior: true`` (configs/gp_design.yaml): on a designed experiment the factors (targets
    on a few levels) become the posterior mean over the level combinations, closer to the truth than the
    plain GP under input noise; `time` (runs stop early) stays the GP's; intervals end on levels or hold the
    posterior mean; saving keeps it; targets without levels are refused at fit, naming the setting."""
    frame = synthetic_frame(150, seed=3, levels=True)
    mmd, side, y = _gp_arrays(frame)
    mmd = mmd * np.random.default_rng(1).lognormal(0.0, 0.15, mmd.shape)  # sampling-like input noise
    fit, test = slice(0, 110), slice(110, None)
    # the self-check off: it compares the design prior with one and the same kernel fit
    kw = dict(transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, time_model="plain", self_check=False)
    plain = GPModel(**kw).fit(mmd[fit], side[fit], y[fit])
    model = GPModel(**kw, design_prior=True).fit(mmd[fit], side[fit], y[fit])
    names = model.target_names
    assert [names[j] for j in model.state["design"]["factors"]] == ["cBA_0", "cAIBN_0", "temp"]
    p_plain, p = plain.predict_arrays(mmd[test], side[test]), model.predict_arrays(mmd[test], side[test])
    jt = names.index("time")
    np.testing.assert_allclose(p[:, jt], p_plain[:, jt])
    factors = [names.index(t) for t in ("cBA_0", "cAIBN_0", "temp")]
    span = y[fit][:, factors].max(axis=0) - y[fit][:, factors].min(axis=0)
    err = lambda pred: (((pred[:, factors] - y[test][:, factors]) / span) ** 2).mean()  # noqa: E731
    assert err(p) < err(p_plain)
    mean, low, high = model.predict_interval(mmd[test], side[test], level=0.9)
    np.testing.assert_allclose(mean, p)
    for j in factors:  # ends on the levels, or stretched to the posterior mean
        for end in (low[:, j], high[:, j]):
            assert (np.isin(end, np.unique(y[fit][:, j])) | np.isclose(end, p[:, j], rtol=1e-12)).all()
        assert (low[:, j] <= p[:, j] + 1e-12).all() and (p[:, j] <= high[:, j] + 1e-12).all()
    model.save(tmp_path / "model.skops")
    np.testing.assert_allclose(load_model(tmp_path).predict_arrays(mmd[test], side[test]), p)
    from polyinv.models import levels

    monkeypatch.setattr(levels, "CHUNK_CELLS", 100)  # rows weighed two at a time: the same answers
    np.testing.assert_allclose(model.predict_arrays(mmd[test], side[test]), p, rtol=1e-12)
    for a, b in zip(model.predict_interval(mmd[test], side[test], level=0.9), (mean, low, high), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    mmd_box, side_box, y_box = _gp_arrays(synthetic_frame(60, seed=4))
    with pytest.raises(PolyinvError, match="design_prior needs targets set on at most 30 levels"):
        GPModel(**kw, design_prior=True).fit(mmd_box, side_box, y_box)


def test_model_files_load_without_running_code_and_refuse_foreign_content(tmp_path, frame):
    """Random forest and GP files are skops files: they reload to the same predictions, a file holding a
    type polyinv never writes is refused before anything in it is built, and joblib files are refused."""
    import skops.io as sio

    mmd, side, y = _gp_arrays(frame)
    forest = ForestModel(transforms=GP_TRANSFORMS, n_estimators=5, random_state=0).fit(mmd, side, y)
    forest.save(tmp_path / "model.skops")
    np.testing.assert_allclose(
        load_model(tmp_path).predict_arrays(mmd, side), forest.predict_arrays(mmd, side)
    )
    payload = {
        "polyinv_kind": "random_forest",
        "hparams": {},
        "state": {"x": __import__("fractions").Fraction(1, 3)},
    }
    sio.dump(payload, tmp_path / "foreign.skops")
    with pytest.raises(PolyinvError, match="refused: the file holds types polyinv never writes"):
        load_model(tmp_path / "foreign.skops")
    (tmp_path / "model.joblib").write_bytes(b"not read")
    with pytest.raises(PolyinvError, match="joblib model files are no longer read"):
        load_model(tmp_path / "model.joblib")
    (tmp_path / "broken.skops").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PolyinvError, match="not a readable polyinv model file"):
        load_model(tmp_path / "broken.skops")


def test_gp_leave_one_out_censored_time_refits_nothing_it_should_not_see():
    """The censored time's leave-one-out recipe of a stopped-early fit row is what the stopped-early GP (kernel
    fixed) predicts with that row left out; the stop decision uses the leave-one-out cBA_0."""
    from sklearn.gaussian_process import GaussianProcessRegressor

    from polyinv.schema import stopped_early
    from polyinv.sim import lhs_design, simulate_many

    mmd, side, y = _gp_arrays(simulate_many(lhs_design(80, seed=2), progress=False))  # about 20 % stop early
    model = GPModel(transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, progress=False).fit(mmd, side, y)
    c = model.state["censored"]
    assert c is not None
    loo = model.loo_predict_arrays(mmd, side, y)
    jt, jc = TARGETS.index("time"), TARGETS.index("cBA_0")
    _, early = stopped_early(y[:, jt])
    x = model._features(mmd, side)
    rows = np.flatnonzero(early)
    conv = 1.0 - side[:, SIDE_INPUTS.index("cBA_time")] / loo[:, jc]
    checked = 0
    for k, i in enumerate(rows[:6]):
        keep = np.delete(np.arange(len(rows)), k)
        gp = GaussianProcessRegressor(c["gp"].kernel_, optimizer=None).fit(
            c["gp"].X_train_[keep], np.asarray(c["gp"].y_train_)[keep]
        )
        t = min(np.exp(gp.predict(x[[i]])[0] * c["std"] + c["mean"]), c["t_max"])
        expected = t if conv[i] >= c["threshold"] else c["t_max"]
        assert loo[i, jt] == pytest.approx(expected, rel=1e-6)
        checked += conv[i] >= c["threshold"]
    assert checked >= 3
    in_sample = model.predict_arrays(mmd, side)[:, jt]
    assert not np.allclose(loo[rows, jt], in_sample[rows])


@pytest.mark.slow
def test_gp_fold_predictions_are_refits_with_the_kernel_fixed():
    """K-fold held-out recipes (auto's scores) equal what each target's GP, kernel fixed, predicts for a fold
    from the other folds' rows — censored time included; one row per fold is leave-one-out."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.model_selection import KFold

    from polyinv.models.intervals import gp_fold_cv, gp_loo
    from polyinv.schema import stopped_early
    from polyinv.sim import lhs_design, simulate_many

    mmd, side, y = _gp_arrays(simulate_many(lhs_design(80, seed=2), progress=False))
    model = GPModel(transforms=GP_TRANSFORMS, mmd_pcs=3, n_restarts=0, progress=False).fit(mmd, side, y)
    folds = [test for _, test in KFold(3, shuffle=True, random_state=0).split(mmd)]
    held = model.loo_predict_arrays(mmd, side, y, folds=folds)
    scaled = model.scaled_targets(held)
    jt, jc = TARGETS.index("time"), TARGETS.index("cBA_0")
    for j, gp in enumerate(model.state["gps"]):
        if j == jt:
            continue
        for test in folds:
            train = np.setdiff1d(np.arange(len(mmd)), test)
            refit = GaussianProcessRegressor(gp.kernel_, optimizer=None).fit(
                gp.X_train_[train], np.asarray(gp.y_train_)[train]
            )
            np.testing.assert_allclose(scaled[test, j], refit.predict(gp.X_train_[test]), atol=1e-7)
    # the censored time: a stopped-early row held out with its fold, predicted by the stopped-early GP
    c = model.state["censored"]
    _, early = stopped_early(y[:, jt])
    position = np.cumsum(early) - 1
    conv = 1.0 - side[:, SIDE_INPUTS.index("cBA_time")] / held[:, jc]
    x = model._features(mmd, side)
    checked = 0
    for test in folds:
        keep = np.setdiff1d(np.arange(early.sum()), position[test][early[test]])
        refit = GaussianProcessRegressor(c["gp"].kernel_, optimizer=None).fit(
            c["gp"].X_train_[keep], np.asarray(c["gp"].y_train_)[keep]
        )
        rows = test[early[test] & (conv[test] >= c["threshold"])]
        expected = np.minimum(np.exp(refit.predict(x[rows]) * c["std"] + c["mean"]), c["t_max"])
        np.testing.assert_allclose(held[rows, jt], expected, rtol=1e-6)
        checked += len(rows)
    assert checked >= 3
    # one row per fold is the closed-form leave-one-out
    gp = model.state["gps"][0]
    singles = gp_fold_cv(gp, [[i] for i in range(len(mmd))])
    for a, b in zip(singles, gp_loo(gp), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
