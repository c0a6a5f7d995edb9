"""Scaling honesty: train-split-only statistics, scaled training space, physical predictions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from polyinv.data.module import PolyDataModule
from polyinv.models import MLP
from polyinv.nn.scaling import ColumnScaler
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

TRANSFORMS = {"Mn": "log", "Mw": "log", "cAIBN_0": "log"}


def _dm(path, **kw) -> PolyDataModule:
    dm = PolyDataModule(path, transforms=TRANSFORMS, **kw)
    dm.setup()
    return dm


def test_scalers_fitted_on_training_split_only(tmp_path, frame):
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    dm = _dm(path)
    before = {k: {n: b.clone() for n, b in s.state_dict().items()} for k, s in dm.scalers().items()}
    # change every test-split and validation-split value drastically
    changed = frame.copy()
    rows = np.concatenate([dm.test_idx, dm.val_idx])
    for col in TARGETS + SIDE_INPUTS + MMD_COLUMNS[:10]:
        changed.loc[rows, col] = changed.loc[rows, col] * 7.0 + 3.0
    path2 = tmp_path / "b.csv"
    changed.to_csv(path2, index=False)
    dm2 = _dm(path2)
    assert np.array_equal(dm.test_idx, dm2.test_idx)
    for key, scaler in dm2.scalers().items():
        for name, buf in scaler.state_dict().items():
            assert torch.equal(buf, before[key][name]), (key, name)
    # and a changed training value does move them (the test can fail)
    changed.loc[dm.train_idx[:5], ["Mn", "Mw"]] *= 50  # both: Mw below Mn is refused as impossible
    changed.to_csv(path2, index=False)
    assert not torch.equal(_dm(path2).scalers()["side"].mean, before["side"]["mean"])


def test_split_is_the_studys_and_seeded(tmp_path, frame):
    from sklearn.model_selection import train_test_split

    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    dm = _dm(path, seed=42)
    _, study_test = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=42)
    assert np.array_equal(np.sort(dm.test_idx), np.sort(study_test))
    assert len(set(dm.train_idx) | set(dm.val_idx) | set(dm.test_idx)) == len(frame)
    assert not set(dm.train_idx) & set(dm.test_idx) and not set(dm.val_idx) & set(dm.test_idx)
    assert not np.array_equal(_dm(path, seed=0).test_idx, dm.test_idx)
    assert np.array_equal(_dm(path, seed=0).test_idx, _dm(path, seed=0).test_idx)


def test_kfold_partitions_rows(tmp_path, frame):
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    tests = [set(_dm(path, folds=5, fold=k).test_idx) for k in range(5)]
    assert sum(len(t) for t in tests) == len(frame)
    assert set().union(*tests) == set(range(len(frame)))


def test_tensor_shapes(tmp_path, frame):
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    mmd, side, targets = next(iter(_dm(path, batch_size=8).train_dataloader()))
    assert mmd.shape == (8, 1, 100) and side.shape == (8, 3) and targets.shape == (8, 4)
    mmd, side, targets = next(iter(_dm(path, batch_size=8, feature_set="mmd").train_dataloader()))
    assert mmd.shape == (8, 1, 100) and side.shape == (8, 0)


def test_batch_size_0_is_the_whole_split_in_one_batch(tmp_path, frame):
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    dm = _dm(path, batch_size=0, val_fraction=0.1)
    for loader, rows in (
        (dm.train_dataloader(), dm.train_idx),
        (dm.val_dataloader(), dm.val_idx),
        (dm.test_dataloader(), dm.test_idx),
    ):
        batches = list(loader)
        assert len(batches) == 1 and len(batches[0][0]) == len(rows) > 0


def test_constant_columns_do_not_divide_by_zero():
    scaler = ColumnScaler(["a", "b"]).fit(np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]))
    out = scaler(torch.tensor([[2.0, 5.0]], dtype=torch.float64))
    assert torch.isfinite(out).all()
    assert torch.allclose(scaler.inverse(out), torch.tensor([[2.0, 5.0]], dtype=torch.float64))


def test_log_transform_round_trip():
    x = np.array([[1e-3, 2.0], [2e-2, 3.0], [5e-3, 9.0]])
    scaler = ColumnScaler(["cAIBN_0", "temp"], {"cAIBN_0": "log"}).fit(x)
    z = scaler(torch.tensor(x))
    assert z.mean(dim=0).abs().max() < 1e-9 and torch.allclose(
        z.std(dim=0, unbiased=False), torch.ones(2, dtype=torch.float64)
    )
    assert torch.allclose(scaler.inverse(z), torch.tensor(x), rtol=1e-10)


@pytest.mark.slow
def test_train_outputs_scaled_predict_outputs_physical(tmp_path):
    """forward() lives in scaled space; predict_step returns physical units (mean and spread of raw targets)."""
    from tests.synthetic import overfit_model

    model, dm = overfit_model(tmp_path, MLP, epochs=150)
    mmd, side, targets = dm.tensors(dm.train_frame)
    model.train()
    scaled = model(mmd, side).detach()
    assert scaled.mean(dim=0).abs().max() < 0.5 and (scaled.std(dim=0) - 1).abs().max() < 0.5
    physical = model.predict_step((mmd, side), 0).detach().numpy()
    raw = targets.numpy()
    assert np.allclose(physical.mean(axis=0), raw.mean(axis=0), rtol=0.1)
    assert np.allclose(physical.std(axis=0), raw.std(axis=0), rtol=0.25)


@pytest.mark.slow
def test_checkpoint_predicts_the_same_in_a_fresh_process(tmp_path):
    from tests.synthetic import overfit_model

    model, dm = overfit_model(tmp_path, MLP, epochs=5, save=tmp_path / "m.ckpt")
    test = dm.test_frame
    expected = model.predict_arrays(test[list(MMD_COLUMNS)].to_numpy(), test[list(SIDE_INPUTS)].to_numpy())
    data = tmp_path / "test_rows.csv"
    test.to_csv(data, index=False)
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from polyinv.models import load_model\n"
        "from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS\n"
        f"m = load_model({str(tmp_path / 'm.ckpt')!r}); f = pd.read_csv({str(data)!r})\n"
        "np.save(sys.argv[1], m.predict_arrays(f[list(MMD_COLUMNS)].to_numpy(), f[list(SIDE_INPUTS)].to_numpy()))\n"
    )
    out = tmp_path / "fresh.npy"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
    fresh = np.load(out)
    assert fresh.shape == expected.shape
    assert np.allclose(fresh, expected, rtol=1e-5, atol=0)
    assert not np.allclose(expected, expected.mean(axis=0))  # non-trivial predictions


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
