"""Explanations: permutation importance through the harness, per MMD region and side input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from polyinv.cli import explain, fit
from polyinv.inference import predict_frame
from polyinv.metrics import evaluate
from polyinv.models import load_model
from polyinv.schema import TARGETS

from tests.synthetic import fast_overrides


def test_explain_cli_on_a_random_forest(tmp_path, synthetic_csv, capsys):
    assert (
        fit.main(
            [
                "--config",
                "configs/rf.yaml",
                *fast_overrides(synthetic_csv, tmp_path / "runs"),
                "--model.search",
                "false",
                "--model.n_estimators",
                "30",
            ]
        )
        == 0
    )
    run_dir = next((tmp_path / "runs").glob("rf/version_0"))
    out = tmp_path / "explain"
    assert (
        explain.main(
            ["--ckpt", str(run_dir), "--input", str(synthetic_csv), "--out", str(out), "--n-repeats", "2"]
        )
        == 0
    )
    table = pd.read_csv(out / "importance.csv")
    assert (out / "importance.png").stat().st_size > 0 and (out / "impurity.csv").exists()
    groups = set(table["group"])
    assert {"cBA_time", "Mn", "Mw"} <= groups
    assert sum(g.startswith("MMD") for g in groups) == 10  # ten regions of ten grid points
    assert set(table["target"]) == set(TARGETS)
    # the baseline is the harness's R² of the model on the same rows
    model = load_model(run_dir)
    frame = pd.read_csv(synthetic_csv)
    baseline = evaluate(frame[list(TARGETS)].to_numpy(), predict_frame(model, frame))["targets"]
    for t in TARGETS:
        assert np.allclose(table[table.target == t]["baseline_r2"], baseline[t]["r2"], atol=1e-9)
    # permuting inputs can only hurt a forest that uses them: some group matters for every target
    for t in TARGETS:
        assert table[table.target == t]["r2_drop"].max() > 0.01
