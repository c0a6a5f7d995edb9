"""Networks: shapes, overfitting 32 rows, hyper-parameters that survive a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyinv.errors import PolyinvError
from polyinv.models import CNN1D, MLP, load_model
from polyinv.models.base import INPUT_BOUNDS
from polyinv.schema import SIDE_INPUTS

from synthetic import synthetic_frame


@pytest.mark.parametrize("cls", [MLP, CNN1D])
def test_forward_shapes(cls):
    model = cls()
    assert model(torch.rand(7, 1, 100), torch.rand(7, 3) + 1).shape == (7, 4)
    mmd_only = cls(side_inputs=[])
    assert mmd_only(torch.rand(7, 1, 100), torch.rand(7, 0)).shape == (7, 4)


@pytest.mark.parametrize("cls,kw", [(MLP, {"widths": [128, 128]}), (CNN1D, {"batch_norm": False})])
def test_overfits_32_rows(tmp_path, cls, kw):
    """Acceptance: scaled training MSE below 0.01 on 32 rows."""
    from tests_helpers import overfit_model

    model, dm = overfit_model(tmp_path, cls, epochs=800, rows=45, lr=3e-3, **kw)
    train = dm.train_frame
    assert len(train) == 32
    mmd, side, targets = dm.tensors(train)
    model.eval()
    with torch.no_grad():
        mse = torch.mean((model(mmd, side) - model.target_scaler(targets)) ** 2).item()
    assert mse < 0.01


@pytest.mark.parametrize("cls,kw", [(MLP, {"widths": [64, 64]}), (CNN1D, {"channels": [4, 4], "head_widths": [32], "batch_norm": False})])
def test_lbfgs_full_batch_steps_fit_32_rows(tmp_path, cls, kw):
    """optimizer lbfgs: 30 full-batch steps (20 L-BFGS iterations each) bring the scaled training MSE below
    0.01 where Adam at the same number of steps does not; weight decay is refused (L-BFGS has none)."""
    from tests_helpers import overfit_model

    def train_mse(model, dm):
        mmd, side, targets = dm.tensors(dm.train_frame)
        with torch.no_grad():
            return torch.mean((model(mmd, side) - model.target_scaler(targets)) ** 2).item()

    model, dm = overfit_model(tmp_path, cls, epochs=30, rows=45, lr=1.0, optimizer="lbfgs", **kw)
    assert len(dm.train_frame) == 32 and dm.batch_size == 32  # one batch per step
    assert isinstance(model.trainer.optimizers[0], torch.optim.LBFGS)
    assert train_mse(model, dm) < 0.01
    adam, dm = overfit_model(tmp_path, cls, epochs=30, rows=45, lr=3e-3, **kw)
    assert train_mse(adam, dm) > 0.01
    with pytest.raises(PolyinvError, match="weight_decay 0.0001: the lbfgs optimizer has no weight decay"):
        cls(optimizer="lbfgs", weight_decay=1e-4)
    with pytest.raises(PolyinvError, match=r"model.dropout \[0.0, 0.1\]: the lbfgs optimizer needs a fixed objective"):
        cls(optimizer="lbfgs", dropout=[0.0, 0.1], **({"widths": [8, 8]} if cls is MLP else {"head_widths": [8, 8]}))


def test_optimizer_state_of_runs_saved_with_the_conversion_gain_as_a_parameter_resumes():
    """Runs saved before the unused conversion gain became a buffer hold optimizer state for one parameter
    more (index 0): loading drops it and renumbers the rest, so AdamW takes the state of the right weights."""
    model = MLP(widths=[8], time_model="stop_rule")
    assert "conversion_gain" in dict(model.named_buffers()) and "conversion_gain" in model.state_dict()
    assert "conversion_gain" in dict(MLP(widths=[8], time_model="censored").named_parameters())
    params = list(model.parameters())
    old_gain = torch.nn.Parameter(torch.tensor(3.0))
    old_opt = torch.optim.AdamW([old_gain, *params], lr=1e-3)
    loss = sum((p**2).sum() for p in params) + old_gain**2
    loss.backward()
    old_opt.step()
    checkpoint = {"optimizer_states": [old_opt.state_dict()]}
    model.on_load_checkpoint(checkpoint)
    new_opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    new_opt.load_state_dict(checkpoint["optimizer_states"][0])
    for p in params:
        torch.testing.assert_close(new_opt.state[p]["exp_avg"], old_opt.state[p]["exp_avg"])


def test_cnn_joins_pc_scores_to_the_head_and_depends_on_them():
    """CNN with mmd_pcs: convolutions see the grid, the head also gets the standardised PC scores."""
    model = CNN1D(mmd_pcs=3, batch_norm=False).double().eval()
    mmd = torch.rand(20, 1, 100, dtype=torch.float64)
    side = torch.rand(20, 3, dtype=torch.float64) + 1
    model.set_pca(mmd.flatten(1).numpy())
    grid, scalars = model.encode_inputs(mmd, side)
    assert grid.shape == (20, 1, 100) and scalars.shape == (20, 3 + 3)
    torch.testing.assert_close(scalars[:, 3:].std(dim=0, correction=0), torch.ones(3, dtype=torch.float64))
    n_conv = model.network.conv(grid).flatten(1).shape[1]
    assert model.network.head_body[0].in_features == n_conv + 3 + 3
    before = model(mmd, side)
    model.pca_components.copy_(model.pca_components.flip(0))  # other PC scores, same grid and side inputs
    assert not torch.allclose(model(mmd, side), before)


def test_cnn_feature_width_projects_the_conv_map_before_the_side_inputs_join(tmp_path):
    """feature_width k: the flattened conv map goes through one linear map to k features, then the side
    inputs join; 0 keeps the flattened map (checkpoints without the key load as before)."""
    wide = CNN1D(batch_norm=False).double().eval()
    n_conv = wide.network.conv(torch.rand(2, 1, 100, dtype=torch.float64)).flatten(1).shape[1]
    assert wide.network.head_body[0].in_features == n_conv + 3
    narrow = CNN1D(batch_norm=False, feature_width=6).double().eval()
    assert narrow.network.bottleneck.in_features == n_conv and narrow.network.bottleneck.out_features == 6
    assert narrow.network.head_body[0].in_features == 6 + 3
    mmd, side = torch.rand(5, 1, 100, dtype=torch.float64), torch.rand(5, 3, dtype=torch.float64) + 1
    assert narrow(mmd, side).shape == (5, 4)
    assert not torch.allclose(narrow(mmd, side), narrow(torch.rand_like(mmd), side))
    with torch.no_grad():
        narrow.network.bottleneck.weight.zero_()  # no conv feature reaches the head: the grid no longer matters
    torch.testing.assert_close(narrow(mmd, side), narrow(torch.rand_like(mmd), side))
    save_without_trainer(narrow, tmp_path / "narrow.ckpt")
    loaded = load_model(tmp_path / "narrow.ckpt").double()
    assert loaded.hparams.feature_width == 6
    torch.testing.assert_close(loaded(mmd, side), narrow(mmd, side))
    save_without_trainer(wide, tmp_path / "wide.ckpt")
    old = torch.load(tmp_path / "wide.ckpt", map_location="cpu", weights_only=True)
    del old["hyper_parameters"]["feature_width"]  # a checkpoint saved before the option existed
    torch.save(old, tmp_path / "wide.ckpt")
    loaded = load_model(tmp_path / "wide.ckpt").double()
    torch.testing.assert_close(loaded(mmd, side), wide(mmd, side))
    with pytest.raises(PolyinvError, match="feature_width"):
        CNN1D(feature_width=-1)


def test_pca_on_scaled_mmd_uses_the_scaled_grid():
    """pca_on_scaled: components of the column-standardised MMD, so a grid point with a tiny spread
    weighs as much as the peak; the raw PCA is dominated by the high-variance points."""
    rng = np.random.default_rng(0)
    mmd = np.zeros((200, 100))
    mmd[:, 50] = rng.normal(0, 1.0, 200)    # big spread at the peak
    mmd[:, 10] = rng.normal(0, 1e-3, 200)   # tiny spread in the tail, independent
    mmd += 5.0
    for on_scaled, loaded_point in ((False, 50), (True, None)):
        model = MLP(mmd_pcs=1, pca_on_scaled=on_scaled, mmd_scaling="column")
        scaler = model.mmd_scaler
        scaler.mean.copy_(torch.as_tensor(mmd.mean(axis=0), dtype=scaler.mean.dtype))
        scaler.std.copy_(torch.as_tensor(np.maximum(mmd.std(axis=0), 1e-12), dtype=scaler.std.dtype))
        model.set_pca(mmd)
        weights = model.pca_components[0].abs()
        if loaded_point is not None:
            assert int(weights.argmax()) == loaded_point and float(weights[10]) < 1e-2
        else:  # standardised, both points have unit variance: the components are (1, ±1)/√2, the tail counts
            assert float(weights[10]) > 0.3 and float(weights[50]) > 0.3
        scores = model.pc_scores(torch.as_tensor(mmd, dtype=torch.float32).unsqueeze(1))
        assert scores.shape == (200, 1) and abs(float(scores.std()) - 1.0) < 0.05


def test_hparams_are_primitive_and_checkpoint_self_contained(tmp_path):
    from tests_helpers import overfit_model

    model, _ = overfit_model(tmp_path, CNN1D, epochs=1, save=tmp_path / "c.ckpt", channels=[4, 8])
    ckpt = torch.load(tmp_path / "c.ckpt", map_location="cpu", weights_only=True)  # no pickled objects
    assert ckpt["polyinv_kind"] == "cnn"
    loaded = load_model(tmp_path / "c.ckpt")
    assert isinstance(loaded, CNN1D) and list(loaded.hparams.channels) == [4, 8]
    assert loaded.side_names == list(SIDE_INPUTS)
    for name in ("mean", "std", "log_mask"):
        assert torch.equal(getattr(loaded.target_scaler, name), getattr(model.target_scaler, name))


def test_stop_rule_holds_low_conversion_runs_at_t_max():
    """time_model stop_rule: only runs near the conversion limit may stop early; time never exceeds t_max."""
    model = MLP(time_model="stop_rule")
    times = torch.tensor([3600.0, 3600.0, 2000.0, 2500.0]).numpy()
    cba0 = torch.tensor([1.0, 2.0, 1.0, 2.0]).numpy()
    cba_time = torch.tensor([0.5, 1.2, 0.1, 0.2]).numpy()  # conversions 0.5, 0.4, 0.9, 0.9
    model.set_stop_rule(times, cba_time, cba0)
    # the gate tolerates a 10 % error of the predicted cBA_0: 1 − 0.1·1.1 = 0.89
    assert float(model.t_max) == 3600.0 and float(model.stop_conversion) == pytest.approx(0.89)
    # recipe rows (cBA_0, cAIBN_0, temp, time) and side rows (cBA_time, Mn, Mw)
    physical = torch.tensor([[1.0, 0.01, 70.0, 1500.0], [1.0, 0.01, 70.0, 1500.0], [1.0, 0.01, 70.0, 4000.0]], dtype=torch.float64)
    side = torch.tensor([[0.6, 1e4, 2e4], [0.1, 1e4, 2e4], [0.1, 1e4, 2e4]], dtype=torch.float64)
    out = model.apply_stop_rule(physical, side)
    assert out[:, 3].tolist() == [3600.0, 1500.0, 3600.0]  # 40 % conversion → full run; cap at t_max
    assert torch.equal(out[:, :3], physical[:, :3])


def test_stop_rule_loss_is_censored_at_t_max():
    """A run that went to t_max only bounds its time from below: outputs above t_max cost nothing there,
    outputs below it cost as in plain regression; stopped-early runs are regressed as usual."""
    model = MLP(time_model="stop_rule", loss="mse")
    model.set_stop_rule(np.array([3600.0, 2000.0]), None, None)
    model.target_scaler.mean.zero_()  # identity scaling: outputs are physical values
    model.target_scaler.std.fill_(1.0)
    model.target_scaler.log_mask.zero_()
    targets = torch.tensor([[1.0, 0.01, 70.0, 3600.0], [1.0, 0.01, 70.0, 2000.0]])
    above = torch.tensor([[1.0, 0.01, 70.0, 5000.0], [1.0, 0.01, 70.0, 2000.0]])
    assert float(model.compute_loss(above, targets)) == 0.0
    below = torch.tensor([[1.0, 0.01, 70.0, 3500.0], [1.0, 0.01, 70.0, 2000.0]])
    assert float(model.compute_loss(below, targets)) == pytest.approx(100.0**2 / 8)
    early_off = torch.tensor([[1.0, 0.01, 70.0, 3600.0], [1.0, 0.01, 70.0, 2100.0]])
    assert float(model.compute_loss(early_off, targets)) == pytest.approx(100.0**2 / 8)
    plain = MLP(time_model="plain", loss="mse")
    plain.target_scaler.load_state_dict(model.target_scaler.state_dict())
    assert float(plain.compute_loss(above, targets)) == pytest.approx(1400.0**2 / 8)


def test_stop_rule_without_cba_time_only_caps_and_clip_outputs_bounds_predictions():
    mmd_only = MLP(time_model="stop_rule", side_inputs=[])
    mmd_only.set_stop_rule(np.array([3600.0, 1000.0]), None, None)
    capped = mmd_only.apply_stop_rule(torch.tensor([[1.0, 0.01, 70.0, 5000.0], [1.0, 0.01, 70.0, 20.0]], dtype=torch.float64), torch.zeros(2, 0))
    assert capped[:, 3].tolist() == [3600.0, 20.0]
    model = MLP(clip_outputs=True)
    model.set_bounds(np.array([[0.5, 0.0025, 60.0, 100.0], [3.0, 0.02, 80.0, 3600.0]]))
    out = torch.tensor([[9.0, -3.0, 0.5, 1.0]])
    model.target_scaler.mean.zero_()  # identity scaling: the output is the physical value
    model.target_scaler.std.fill_(1.0)
    model.target_scaler.log_mask.zero_()
    assert model.to_physical(out).tolist() == [[3.0, 0.0025, 60.0, 100.0]]


@pytest.mark.parametrize("cls", [MLP, CNN1D])
def test_members_train_side_by_side_and_predict_their_mean(tmp_path, cls):
    """members > 1: independent copies (own initialisation), each member's loss counts alone in training,
    predictions are the mean of the members' outputs; the checkpoint restores every member."""
    from tests_helpers import overfit_model

    # no batch norm: train-mode outputs are then comparable with eval-mode ones
    kw = {"widths": [32, 32]} if cls is MLP else {"channels": [4, 4], "head_widths": [16], "batch_norm": False}
    model, dm = overfit_model(tmp_path, cls, epochs=3, save=tmp_path / "m.ckpt", members=3, **kw)
    nets = list(model.network.nets)
    assert len(nets) == 3
    assert not torch.equal(next(nets[0].parameters()), next(nets[1].parameters()))  # own initialisation
    mmd, side, targets = dm.tensors(dm.train_frame)
    model.eval()
    with torch.no_grad():
        each = torch.stack([net(*model.network_inputs(mmd, side)) for net in nets], dim=1)
        torch.testing.assert_close(model(mmd, side), each.mean(dim=1))
        model.train()
        per_row = model(mmd, side)
        assert per_row.shape == (len(mmd) * 3, 4)
        torch.testing.assert_close(per_row[1::3], each[:, 1])  # member-major within each row
        # the training loss is the mean of the members' own losses
        scaled = model.target_scaler(targets)
        expected = torch.stack([torch.mean((each[:, k] - scaled) ** 2) for k in range(3)]).mean()
        torch.testing.assert_close(model.compute_loss(per_row, targets.repeat_interleave(3, dim=0)), expected)
    model.eval()
    loaded = load_model(tmp_path / "m.ckpt")
    torch.testing.assert_close(loaded.predict_physical(mmd, side), model.predict_physical(mmd, side))
    with pytest.raises(Exception, match="members must be at least 1"):
        cls(members=0)


@pytest.mark.parametrize("cls", [MLP, CNN1D])
def test_clip_inputs_holds_the_network_inputs_inside_the_training_range(tmp_path, cls):
    """clip_inputs: a row beyond the training rows' range gets the prediction of its clipped inputs;
    inside the range nothing changes; the bounds travel in the checkpoint."""
    from tests_helpers import overfit_model

    kw = {"widths": [32, 32], "mmd_pcs": 4} if cls is MLP else {"channels": [4, 4], "head_widths": [16], "batch_norm": False}
    model, dm = overfit_model(tmp_path, cls, epochs=3, clip_inputs=True, **kw)
    mmd, side, _ = dm.tensors(dm.train_frame)
    inside = model.predict_physical(mmd, side)
    model.set_input_bounds(mmd.squeeze(1).numpy(), side.numpy())
    torch.testing.assert_close(model.predict_physical(mmd, side), inside)  # no training row is clipped
    grid, scalars = model.encode_inputs(mmd, side)
    assert torch.equal(model.input_high_side, scalars.amax(dim=0)) and model.input_low_mmd.shape == grid.shape[1:]
    far_side = side.clone()
    far_side[:, 1] *= 50.0  # Mn fifty times the training rows' (log-scaled: far beyond their range)
    clipped = model.predict_physical(mmd, far_side)
    _, far_scalars = model.network_inputs(mmd, far_side)
    assert torch.all(far_scalars[:, 1] == model.input_high_side[1])
    model.clip_inputs = False
    assert not torch.allclose(model.predict_physical(mmd, far_side), clipped)
    model.clip_inputs = True
    path = tmp_path / "c.ckpt"
    save_without_trainer(model, path)
    loaded = load_model(path)
    torch.testing.assert_close(loaded.predict_physical(mmd, far_side), clipped)
    # a checkpoint saved before clip_inputs existed (no bounds) still loads, unbounded
    old = torch.load(path, weights_only=True)
    old["hyper_parameters"].pop("clip_inputs")
    for name in INPUT_BOUNDS:
        old["state_dict"].pop(name)
    torch.save(old, path)
    loaded = load_model(path)
    assert not loaded.clip_inputs and torch.isinf(loaded.input_high_side).all()


def save_without_trainer(model, path):
    """Write a Lightning-format checkpoint of ``model`` without a Trainer (hyper-parameters + state)."""
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": __import__("lightning").__version__}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)


GP_TRANSFORMS = {"Mn": "log", "Mw": "log", "cBA_time": "log", "cAIBN_0": "log"}


def _gp_arrays(frame):
    """(mmd, side, targets) physical arrays of a synthetic frame, for the GP's own fit/predict."""
    from polyinv.schema import MMD_COLUMNS, TARGETS

    return tuple(frame[list(c)].to_numpy(np.float64) for c in (MMD_COLUMNS, SIDE_INPUTS, TARGETS))


def test_gp_sqrt_mmd_transform_fits_components_on_the_square_root_and_survives_saving(tmp_path, frame):
    """``model.mmd_transform: sqrt`` (configs/gp_noisy.yaml): the principal components are those of √MMD,
    at fit and at prediction; the setting travels with the saved model; models saved before it (without
    mmd_transform, log_dispersity and clip_outputs) load as they were."""
    import joblib

    from polyinv.models import GPModel

    mmd, side, y = _gp_arrays(frame)
    with pytest.raises(PolyinvError, match="mmd_transform 'log' unknown"):
        GPModel(transforms=GP_TRANSFORMS, mmd_transform="log")
    fitted = {}
    for name in ("none", "sqrt"):
        gp = GPModel(transforms=GP_TRANSFORMS, n_components=3, n_restarts=0, time_model="plain", mmd_transform=name)
        fitted[name] = gp.fit(mmd, side, y)
    pca = fitted["sqrt"].state["pca"]
    np.testing.assert_allclose(pca.mean_, np.sqrt(mmd).mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(fitted["none"].state["pca"].mean_, mmd.mean(axis=0), rtol=1e-10)
    x = fitted["sqrt"]._features(mmd, side)
    np.testing.assert_allclose(x[:, len(SIDE_INPUTS):] * fitted["sqrt"].state["x_std"][len(SIDE_INPUTS):]
                               + fitted["sqrt"].state["x_mean"][len(SIDE_INPUTS):], pca.transform(np.sqrt(mmd)), atol=1e-9)
    assert not np.allclose(fitted["sqrt"].predict_arrays(mmd, side), fitted["none"].predict_arrays(mmd, side))

    path = tmp_path / "gp.joblib"
    fitted["sqrt"].save(path)
    again = load_model(path)
    assert again.hparams["mmd_transform"] == "sqrt"
    np.testing.assert_allclose(again.predict_arrays(mmd, side), fitted["sqrt"].predict_arrays(mmd, side))
    fitted["none"].save(path)  # as a model saved before the setting existed: its components are those of the MMD
    old = joblib.load(path)
    del old["hparams"]["mmd_transform"], old["hparams"]["log_dispersity"], old["hparams"]["clip_outputs"]
    joblib.dump(old, path)
    np.testing.assert_allclose(load_model(path).predict_arrays(mmd, side), fitted["none"].predict_arrays(mmd, side))


def test_gp_log_dispersity_joins_log_mw_over_mn_to_the_features(frame):
    """``model.log_dispersity: true`` (configs/gp_noisy.yaml): log(Mw/Mn) is one more GP input with its own
    length scale; it needs Mn and Mw among the side inputs."""
    from polyinv.models import GPModel

    mmd, side, y = _gp_arrays(frame)
    with pytest.raises(PolyinvError, match="log_dispersity needs Mn and Mw among the side inputs"):
        GPModel(side_inputs=["cBA_time", "Mn"], log_dispersity=True)
    gp = GPModel(transforms=GP_TRANSFORMS, n_components=3, n_restarts=0, time_model="plain", log_dispersity=True).fit(mmd, side, y)
    x = gp._features(mmd, side)
    assert x.shape[1] == len(SIDE_INPUTS) + 3 + 1
    pdi = np.log(frame["Mw"].to_numpy() / frame["Mn"].to_numpy())
    np.testing.assert_allclose(x[:, -1] * gp.state["x_std"][-1] + gp.state["x_mean"][-1], pdi, rtol=1e-9, atol=1e-12)
    assert all(len(g.kernel_.k1.k2.length_scale) == x.shape[1] for g in gp.state["gps"])
    plain = GPModel(transforms=GP_TRANSFORMS, n_components=3, n_restarts=0, time_model="plain").fit(mmd, side, y)
    assert plain._features(mmd, side).shape[1] == x.shape[1] - 1
    bad = side.copy()
    bad[5, SIDE_INPUTS.index("Mw")] = 0.0
    assert np.isfinite(gp.predict_arrays(mmd, bad)).all()  # a bad row at prediction: far off, not NaN
    with pytest.raises(PolyinvError, match="column 'Mw' has values <= 0: model.log_dispersity needs log"):
        GPModel(transforms={}, n_components=3, n_restarts=0, log_dispersity=True).fit(mmd, bad, y)


def test_gp_clip_outputs_holds_predictions_and_intervals_inside_the_training_range(frame):
    """``model.clip_outputs: true`` (configs/gp_noisy.yaml): predictions, leave-one-out recipes and interval ends
    are the unclipped model's, held inside the training rows' range of each target."""
    from polyinv.models import GPModel

    mmd, side, y = _gp_arrays(frame)
    fitted = {c: GPModel(transforms=GP_TRANSFORMS, n_components=3, n_restarts=0, time_model="plain", clip_outputs=c).fit(mmd, side, y)
              for c in (False, True)}
    low, high = y.min(axis=0), y.max(axis=0)
    np.testing.assert_allclose(fitted[True].state["target_range"], [low, high], rtol=1e-9)
    free, held = fitted[False].predict_interval(mmd, side), fitted[True].predict_interval(mmd, side)
    assert (free[1] < low - 1e-9).any() and (free[2] > high + 1e-9).any()  # the unclipped intervals leave the range
    for a, b in zip(free, held, strict=True):
        np.testing.assert_allclose(b, np.clip(a, low, high), rtol=1e-12)
    covered = lambda interval: (y >= interval[1]) & (y <= interval[2])  # noqa: E731
    assert np.all(covered(held) >= covered(free))  # clipping uncovers no training value, design edges included
    np.testing.assert_allclose(fitted[True].predict_arrays(mmd, side), np.clip(fitted[False].predict_arrays(mmd, side), low, high), rtol=1e-12)
    np.testing.assert_allclose(fitted[True].loo_predict_arrays(mmd, side, y),
                               np.clip(fitted[False].loo_predict_arrays(mmd, side, y), low, high), rtol=1e-12)


def test_design_prior_posterior_recovers_a_level_combination():
    """polyinv/models/design_prior.py alone: with a sharp error model a prediction at a candidate recipe
    returns that recipe, its interval is that level; halfway between two levels it answers their mean."""
    from polyinv.models import design_prior

    targets = np.array([[a, b, t] for a in (1.0, 2.0) for b in (10.0, 20.0, 30.0) for t in (100.0, 250.0, 400.0)])
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


def test_gp_design_prior_answers_on_the_designs_levels(tmp_path, monkeypatch):
    """``model.design_prior: true`` (configs/gp_design.yaml): on a designed experiment the factors (targets
    on a few levels) become the posterior mean over the level combinations, closer to the truth than the
    plain GP under input noise; `time` (runs stop early) stays the GP's; intervals end on levels or hold the
    posterior mean; saving keeps it; targets without levels are refused at fit, naming the setting."""
    from polyinv.models import GPModel, load_model

    frame = synthetic_frame(150, seed=3, levels=True)
    mmd, side, y = _gp_arrays(frame)
    mmd = mmd * np.random.default_rng(1).lognormal(0.0, 0.15, mmd.shape)  # sampling-like input noise
    fit, test = slice(0, 110), slice(110, None)
    kw = dict(transforms=GP_TRANSFORMS, n_components=3, n_restarts=0, time_model="plain")
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
    model.save(tmp_path / "model.joblib")
    np.testing.assert_allclose(load_model(tmp_path).predict_arrays(mmd[test], side[test]), p)
    from polyinv.models import design_prior

    monkeypatch.setattr(design_prior, "CHUNK_CELLS", 100)  # rows weighed two at a time: the same answers
    np.testing.assert_allclose(model.predict_arrays(mmd[test], side[test]), p, rtol=1e-12)
    for a, b in zip(model.predict_interval(mmd[test], side[test], level=0.9), (mean, low, high), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    mmd_box, side_box, y_box = _gp_arrays(synthetic_frame(60, seed=4))
    with pytest.raises(PolyinvError, match="design_prior needs targets set on at most 30 levels"):
        GPModel(**kw, design_prior=True).fit(mmd_box, side_box, y_box)
