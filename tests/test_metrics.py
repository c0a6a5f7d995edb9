"""The one harness: matches scikit-learn and is the same for every model kind."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from polyinv.metrics import evaluate, format_table
from polyinv.schema import NOMINAL_RANGES, TARGETS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harness_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.01, 10.0, 1000.0])
    y_true = rng.normal(size=(57, 4)) * scale + 5 * scale
    y_pred = y_true + rng.normal(size=(57, 4)) * scale * 0.5
    m = evaluate(y_true, y_pred)
    for j, t in enumerate(TARGETS):
        width = NOMINAL_RANGES[t][1] - NOMINAL_RANGES[t][0]
        assert m["targets"][t]["r2"] == pytest.approx(r2_score(y_true[:, j], y_pred[:, j]), abs=1e-6)
        assert m["targets"][t]["mae"] == pytest.approx(
            mean_absolute_error(y_true[:, j], y_pred[:, j]), rel=1e-6
        )
        assert m["targets"][t]["rel_mae_pct"] == pytest.approx(
            100 * mean_absolute_error(y_true[:, j], y_pred[:, j]) / width, rel=1e-6
        )
    assert m["global"]["mse"] == pytest.approx(mean_squared_error(y_true, y_pred), rel=1e-6)
    # global R² = scikit-learn's uniform average of the per-target R², not a pooled R²
    assert m["global"]["r2"] == pytest.approx(
        r2_score(y_true, y_pred, multioutput="uniform_average"), abs=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("config", ["configs/rf.yaml", "configs/mlp.yaml", "configs/cnn.yaml"])
def test_every_model_kind_is_scored_by_the_harness(config, synthetic_csv, tmp_path):
    """metrics.json of every kind is exactly the harness applied to the saved test predictions,
    so identical predictions give identical metrics whatever model produced them."""
    import json

    import pandas as pd

    from polyinv.cli.fit import main

    from tests.synthetic import fast_overrides

    extra = ["--model.search", "false", "--model.n_estimators", "20"] if "rf" in config else []
    assert main(["--config", config, *fast_overrides(synthetic_csv, tmp_path, epochs=2), *extra]) == 0
    run_dir = next(tmp_path.glob("*/version_0"))
    saved = json.loads((run_dir / "metrics.json").read_text())
    preds = pd.read_csv(run_dir / "predictions_test.csv")
    y_true = preds[[f"{t}_true" for t in TARGETS]].to_numpy()
    y_pred = preds[[f"{t}_pred" for t in TARGETS]].to_numpy()
    again = evaluate(y_true, y_pred)
    for t in TARGETS:
        for key in ("mae", "rel_mae_pct", "r2"):
            assert again["targets"][t][key] == pytest.approx(saved["targets"][t][key], rel=1e-9, abs=1e-9)
    assert again["global"] == pytest.approx(saved["global"], rel=1e-9)


def test_table_names_targets():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(10, 4))
    text = format_table(evaluate(y, y + 0.1))
    for t in TARGETS:
        assert t in text
    assert "global" in text


def test_r2_is_exact_for_small_unit_targets():
    """cAIBN_0 lives near 0.01 mol/L: RSS < 1e-4 must not be read as a perfect fit (torchmetrics does)."""
    rng = np.random.default_rng(3)
    true = rng.uniform(0.0025, 0.02, size=(87, 4))
    pred = true + rng.normal(0, 1e-3, size=true.shape)  # R² about 0.97, RSS about 9e-5
    m = evaluate(true, pred, TARGETS)
    for j, t in enumerate(TARGETS):
        assert m["targets"][t]["r2"] == pytest.approx(r2_score(true[:, j], pred[:, j]), abs=1e-12)
        assert m["targets"][t]["r2"] < 0.99


def test_streaming_validation_r2_matches_sklearn():
    import torch

    from polyinv.metrics import ExactR2

    rng = np.random.default_rng(4)
    true = rng.uniform(0.0025, 0.02, size=50)
    pred = true + rng.normal(0, 1e-3, size=50)
    metric = ExactR2()
    metric.update(torch.as_tensor(pred[:20]), torch.as_tensor(true[:20]))
    metric.update(torch.as_tensor(pred[20:]), torch.as_tensor(true[20:]))
    assert float(metric.compute()) == pytest.approx(r2_score(true, pred), abs=1e-10)
