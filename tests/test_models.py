"""Networks: shapes, overfitting 32 rows, hyper-parameters that survive a checkpoint."""

from __future__ import annotations

import pytest
import torch

from polyinv.models import CNN1D, MLP, load_model
from polyinv.schema import SIDE_INPUTS


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
