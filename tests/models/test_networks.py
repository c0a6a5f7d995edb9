"""Networks: shapes, overfitting 32 rows, the censored time, clipping, hyper-parameters in the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyinv.errors import PolyinvError
from polyinv.models import CNN, MLP, load_model
from polyinv.nn import CensoredMSE
from polyinv.schema import SIDE_INPUTS, TARGETS

from tests.synthetic import overfit_model, save_without_trainer


def identity_targets(model) -> None:
    """Identity target scaling: network outputs are the physical values."""
    model.target_scaler.mean.zero_()
    model.target_scaler.std.fill_(1.0)
    model.target_scaler.log_mask.zero_()


@pytest.mark.parametrize("cls", [MLP, CNN])
def test_forward_shapes(cls):
    model = cls()
    assert model(torch.rand(7, 1, 100), torch.rand(7, 3) + 1).shape == (7, 4)
    mmd_only = cls(side_inputs=[])
    assert mmd_only(torch.rand(7, 1, 100), torch.rand(7, 0)).shape == (7, 4)


@pytest.mark.slow
@pytest.mark.parametrize("cls,kw", [(MLP, {"widths": [128, 128]}), (CNN, {})])
def test_overfits_32_rows(tmp_path, cls, kw):
    """Scaled training MSE below 0.01 on 32 rows with Adam."""
    model, dm = overfit_model(tmp_path, cls, epochs=800, rows=45, lr=3e-3, **kw)
    mmd, side, targets = dm.tensors(dm.train_frame)
    assert len(mmd) == 32
    with torch.no_grad():
        mse = torch.mean((model(mmd, side) - model.target_scaler(targets)) ** 2).item()
    assert mse < 0.01


@pytest.mark.slow
@pytest.mark.parametrize(
    "cls,kw", [(MLP, {"widths": [64, 64]}), (CNN, {"channels": [4, 4], "head_widths": [32]})]
)
def test_lbfgs_full_batch_steps_fit_32_rows_where_adam_does_not(tmp_path, cls, kw):
    def train_mse(model, dm):
        mmd, side, targets = dm.tensors(dm.train_frame)
        with torch.no_grad():
            return torch.mean((model(mmd, side) - model.target_scaler(targets)) ** 2).item()

    model, dm = overfit_model(tmp_path, cls, epochs=30, rows=45, lr=1.0, optimizer="lbfgs", **kw)
    assert isinstance(model.trainer.optimizers[0], torch.optim.LBFGS)
    # measured over 1/2/4 threads and AVX-512/AVX2 kernels (benchmarks/threads.py, docs/benchmark.md): L-BFGS
    # 0.0010-0.0014 (MLP) and 0.0012-0.011 (CNN: rounding moves it tenfold), Adam 0.31 / 0.40 every time
    lbfgs = train_mse(model, dm)
    adam, dm = overfit_model(tmp_path, cls, epochs=30, rows=45, lr=3e-3, **kw)
    assert lbfgs < 0.05 and train_mse(adam, dm) > 0.15
    with pytest.raises(PolyinvError, match=r"model.dropout \[0.0, 0.1\]: lbfgs needs a fixed objective"):
        cls(
            optimizer="lbfgs",
            dropout=[0.0, 0.1],
            **({"widths": [8, 8]} if cls is MLP else {"head_widths": [8, 8]}),
        )


def test_unknown_choices_are_refused_naming_the_setting():
    with pytest.raises(PolyinvError, match="model.time_model 'stop_rule' unknown"):
        MLP(time_model="stop_rule")
    with pytest.raises(PolyinvError, match="model.optimizer 'adamw' unknown"):
        MLP(optimizer="adamw")
    with pytest.raises(PolyinvError, match="model.activation 'elu' unknown"):
        MLP(activation="elu")
    with pytest.raises(PolyinvError, match="feature_width"):
        CNN(feature_width=0)


def test_censored_loss_bounds_full_runs_from_below_only():
    """A run that went to t_max only says its time is at least t_max: outputs above cost nothing, below cost
    as in plain regression; stopped-early runs are regressed as usual."""
    loss = CensoredMSE(column=3)
    targets = torch.tensor([[1.0, 0.01, 70.0, 3600.0], [1.0, 0.01, 70.0, 2000.0]])
    bound = torch.tensor(3600.0, dtype=torch.float64)
    above = torch.tensor([[1.0, 0.01, 70.0, 5000.0], [1.0, 0.01, 70.0, 2000.0]])
    assert float(loss(above, targets, targets, bound)) == 0.0
    below = torch.tensor([[1.0, 0.01, 70.0, 3500.0], [1.0, 0.01, 70.0, 2000.0]])
    assert float(loss(below, targets, targets, bound)) == pytest.approx(100.0**2 / 8)
    early_off = torch.tensor([[1.0, 0.01, 70.0, 3600.0], [1.0, 0.01, 70.0, 2100.0]])
    assert float(loss(early_off, targets, targets, bound)) == pytest.approx(100.0**2 / 8)
    assert float(CensoredMSE(column=-1)(above, targets, targets, bound)) == pytest.approx(1400.0**2 / 8)


def test_censored_time_holds_low_conversion_runs_at_t_max(frame):
    """time_model censored: only runs near the conversion limit may stop early; time never exceeds t_max."""
    model = MLP(time_model="censored")
    train = frame.iloc[:4].copy()
    train["time"] = [3600.0, 3600.0, 2000.0, 2500.0]
    train["cBA_0"] = [1.0, 2.0, 1.0, 2.0]
    train["cBA_time"] = [0.5, 1.2, 0.1, 0.2]  # conversions 0.5, 0.4, 0.9, 0.9
    from polyinv.nn import ColumnScaler

    scalers = {
        name: ColumnScaler(cols).fit(train[list(cols)].to_numpy())
        for name, cols in (
            ("mmd", model.mmd_names),
            ("side", model.side_names),
            ("targets", model.target_names),
        )
    }
    model.fit_statistics(scalers, train)
    # the gate tolerates a 10 % error of the predicted cBA_0: 1 − 0.1·1.1 = 0.89
    assert float(model.t_max) == 3600.0 and float(model.stop_conversion) == pytest.approx(0.89)
    identity_targets(model)
    out = torch.tensor(
        [[1.0, 0.01, 70.0, 1500.0], [1.0, 0.01, 70.0, 1500.0], [1.0, 0.01, 70.0, 4000.0]], dtype=torch.float64
    )
    side = torch.tensor([[0.6, 1e4, 2e4], [0.1, 1e4, 2e4], [0.1, 1e4, 2e4]], dtype=torch.float64)
    physical = model.to_physical(out, side)
    assert physical[:, 3].tolist() == [3600.0, 1500.0, 3600.0]  # 40 % conversion → a full run; cap at t_max
    assert torch.equal(physical[:, :3], out[:, :3])


def test_clip_outputs_bounds_predictions_to_the_training_range():
    model = MLP(clip_outputs=True, time_model="plain")
    model.target_low.copy_(torch.tensor([0.5, 0.0025, 60.0, 100.0], dtype=torch.float64))
    model.target_high.copy_(torch.tensor([3.0, 0.02, 80.0, 3600.0], dtype=torch.float64))
    identity_targets(model)
    out = torch.tensor([[9.0, -3.0, 0.5, 1.0]])
    assert model.to_physical(out, torch.ones(1, 3)).tolist() == [[3.0, 0.0025, 60.0, 100.0]]


def test_pca_scores_are_standardised_and_fitted_on_training_rows(tmp_path):
    model, dm = overfit_model(tmp_path, MLP, epochs=1, mmd_pcs=3, widths=[8])
    mmd = dm.tensors(dm.train_frame)[0]
    scores = model.pc_scores(mmd.double())
    torch.testing.assert_close(scores.std(dim=0, correction=0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(scores.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    assert model.network.body[0].in_features == 3 + 3


def test_cnn_joins_pc_scores_to_the_head_and_depends_on_them(tmp_path):
    model, dm = overfit_model(tmp_path, CNN, epochs=1, mmd_pcs=3, channels=[4], head_widths=[8])
    mmd, side, _ = dm.tensors(dm.train_frame)
    grid, scalars = model.encode_inputs(mmd, side)
    assert grid.shape == (len(mmd), 1, 100) and scalars.shape == (len(mmd), 3 + 3)
    assert model.network.head_body[0].in_features == model.hparams.feature_width + 3 + 3
    before = model(mmd, side)
    model.pca_components.copy_(model.pca_components.flip(0))  # other PC scores, same grid and side inputs
    assert not torch.allclose(model(mmd, side), before)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [MLP, CNN])
def test_clip_inputs_holds_the_network_inputs_inside_the_training_range(tmp_path, cls):
    """A row beyond the training rows' range gets the prediction of its clipped inputs; no training row moves;
    the bounds travel in the checkpoint."""
    kw = {"widths": [32, 32], "mmd_pcs": 4} if cls is MLP else {"channels": [4, 4], "head_widths": [16]}
    model, dm = overfit_model(tmp_path, cls, epochs=3, clip_inputs=True, **kw)
    train = dm.train_frame
    mmd, side = train[list(model.mmd_names)].to_numpy(), train[list(model.side_names)].to_numpy()
    model.clip_inputs = False
    unclipped = model.predict_arrays(mmd, side)
    model.clip_inputs = True
    np.testing.assert_allclose(model.predict_arrays(mmd, side), unclipped)  # no training row is clipped
    far = side.copy()
    far[:, 1] *= 50.0  # Mn fifty times the training rows' (log-scaled: far beyond their range)
    clipped = model.predict_arrays(mmd, far)
    _, scalars = model.network_inputs(*model.input_tensors(mmd, far))
    assert torch.all(scalars[:, 1] == model.input_high_side[1])
    model.clip_inputs = False
    assert not np.allclose(model.predict_arrays(mmd, far), clipped)
    model.clip_inputs = True
    save_without_trainer(model, tmp_path / "c.ckpt")
    np.testing.assert_allclose(load_model(tmp_path / "c.ckpt").predict_arrays(mmd, far), clipped)


def test_checkpoint_is_self_contained_and_refuses_another_layout(tmp_path):
    model, _ = overfit_model(tmp_path, CNN, epochs=1, save=tmp_path / "c.ckpt", channels=[4, 8])
    ckpt = torch.load(tmp_path / "c.ckpt", map_location="cpu", weights_only=True)  # no pickled objects
    assert ckpt["polyinv_kind"] == "cnn"
    loaded = load_model(tmp_path / "c.ckpt")
    assert isinstance(loaded, CNN) and list(loaded.hparams.channels) == [4, 8]
    assert loaded.side_names == list(SIDE_INPUTS) and loaded.target_names == list(TARGETS)
    for name in ("mean", "std", "log_mask"):
        assert torch.equal(getattr(loaded.target_scaler, name), getattr(model.target_scaler, name))
    ckpt["state_dict"]["stray_buffer"] = torch.zeros(1)  # e.g. a checkpoint of another polyinv version
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(PolyinvError, match="does not match a cnn model"):
        load_model(tmp_path / "other.ckpt")


def test_lbfgs_fits_run_cudnn_in_full_float32_on_one_thread(monkeypatch, synthetic_csv, tmp_path):
    """The shipped networks' L-BFGS fits turn cuDNN's TF32 off and use one CPU thread while they train
    (docs/benchmark.md: On a GPU; thread counts) and restore both."""
    import lightning as L

    from polyinv.cli import fit
    from polyinv.train import lbfgs_numerics

    from tests.synthetic import REPO, fast_overrides

    seen, original = [], L.Trainer.fit

    def recording_fit(self, *args, **kwargs):
        seen.append((torch.backends.cudnn.allow_tf32, torch.get_num_threads()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "fit", recording_fit)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert (
            fit.main(
                [
                    "--config",
                    str(REPO / "configs" / "mlp.yaml"),
                    *fast_overrides(synthetic_csv, tmp_path, epochs=1),
                ]
            )
            == 0
        )
        assert seen == [(False, 1)] and torch.backends.cudnn.allow_tf32 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    with lbfgs_numerics(False):
        assert torch.backends.cudnn.allow_tf32
