"""The deep-ensemble CLI end to end: train members, save one folder, load it, predict with intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from polyinv.cli import ensemble, predict
from polyinv.models import load_model
from polyinv.models.ensemble import EnsembleModel
from polyinv.schema import TARGETS

from tests.synthetic import REPO, fast_overrides

MLP_CONFIG = str(REPO / "configs" / "mlp.yaml")


@pytest.mark.slow
def test_ensemble_cli_trains_saves_loads_and_predicts_intervals(synthetic_csv, tmp_path, capsys):
    rc = ensemble.main(
        [
            "--config",
            MLP_CONFIG,
            "--members",
            "2",
            "--data.val_fraction",
            "0.1",
            *fast_overrides(synthetic_csv, tmp_path, epochs=3),
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    folder = Path(out.strip().splitlines()[-1].removeprefix("run: "))
    assert sorted(p.name for p in folder.iterdir()) == [
        "ensemble.json",
        "member_00.ckpt",
        "member_01.ckpt",
        "metrics.json",
    ]

    model = load_model(folder)
    assert isinstance(model, EnsembleModel) and len(model.members) == 2
    manifest = json.loads((folder / "ensemble.json").read_text())
    n_val = len(manifest["calibration"]["cBA_0"])
    assert set(manifest["calibration"]) == set(TARGETS) and 0 < n_val < 160 * 0.2  # validation rows only
    assert manifest["domain"]["consistency"] is not None  # the ensemble's own forward-consistency thresholds
    row = pd.read_csv(synthetic_csv).iloc[:1]  # a data row: far-off inputs would hit the same output clip
    members = [
        m.predict_arrays(row[list(m.mmd_names)].to_numpy(), row[list(m.side_names)].to_numpy())
        for m in model.members
    ]
    assert not np.allclose(members[0], members[1])  # members differ in their initialisation
    coverage = json.loads((folder / "metrics.json").read_text())["interval"]["coverage"]
    test_rows = pd.read_csv(synthetic_csv).iloc[
        train_test_split(np.arange(160), test_size=0.2, random_state=42)[1]
    ]
    _, low, high = model.predict_interval(
        test_rows[list(model.mmd_names)].to_numpy(), test_rows[list(model.side_names)].to_numpy(), 0.9
    )
    y = test_rows[list(TARGETS)].to_numpy()
    assert coverage == dict(zip(TARGETS, ((y >= low) & (y <= high)).mean(axis=0).tolist(), strict=True))

    output = tmp_path / "preds.csv"
    rc = predict.main(
        ["--ckpt", str(folder), "--input", str(synthetic_csv), "--interval", "0.9", "--output", str(output)]
    )
    _, err = capsys.readouterr()
    assert rc == 0, err
    table = pd.read_csv(output)
    assert len(table) == 160 and {"in_domain", "consistency_score"} <= set(table.columns)
    for t in TARGETS:
        low, mid, high = table[f"{t}_lo"], table[t], table[f"{t}_hi"]
        assert np.all(low <= mid + 1e-9 * np.abs(mid)) and np.all(mid <= high + 1e-9 * np.abs(mid))
    # the members disagree, so intervals have width (zero only where both members sit at the same output clip)
    assert (table["cBA_0_hi"] > table["cBA_0_lo"]).mean() > 0.5


def test_ensemble_cli_bad_input_is_one_line(synthetic_csv, tmp_path, capsys):
    for extra, message in (
        (["--members", "1"], "--members must be at least 2"),
        (["--members", "2", "--data.val_fraction", "0.0"], "validation split"),
    ):
        rc = ensemble.main(
            ["--config", MLP_CONFIG, *extra, *fast_overrides(synthetic_csv, tmp_path, epochs=1)]
        )
        _, err = capsys.readouterr()
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "mlp_ensemble").exists() or not any((tmp_path / "mlp_ensemble").iterdir())
