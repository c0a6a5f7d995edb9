"""Recipes from a calibration of lab samples: ``predict --calibration`` and :mod:`polyinv.invert`."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from polyinv.cli import predict, simulate
from polyinv.invert import invert_frame
from polyinv.sim.calibration_file import read_yaml
from tests.cli.helpers import fails

TRUTH = {"cMMA_0": 3.0, "cAIBN_0": 0.015, "temp": 72.0}
TIMES = [600.0, 1800.0, 3600.0, 7200.0, 14400.0]


def lab_calibration(folder) -> str:
    """A calibration of MMA lab samples at the literature values (30-point axis, training box, sigmas)."""
    path = folder / "cal.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "polyinv_calibration": 1,
                "system": "MMA/AIBN in toluene",
                "system_key": "mma",
                "axis": {"log10m_min": 2.0005, "log10m_max": 6.699, "n_points": 30, "normalisation": "density"},
                "protocol": {"kind": "sampled", "t_max_s": 14400.0, "x_stop": 1.0},
                "parameters": {},
                "weights_sigma": {"mmd": 0.01, "Mn": 0.03, "Mw": 0.03, "cBA_time": 0.02, "conversion": 0.01},
                "training_box": {"cMMA_0": [1.5, 5.0], "cAIBN_0": [0.005, 0.04], "temp": [55.0, 85.0]},
            }
        )
    )
    return str(path)


@pytest.fixture
def lab_rows(tmp_path):
    """Five samples of one MMA reaction simulated with that calibration, in the lab's names, with a label."""
    cal = lab_calibration(tmp_path)
    recipes = tmp_path / "recipes.csv"
    pd.DataFrame([{**TRUTH, "time": t, "reaction": "A"} for t in TIMES]).to_csv(recipes, index=False)
    out = tmp_path / "samples.csv"
    assert simulate.main(["--recipes", str(recipes), "--calibration", cal, "--out", str(out), "--quiet"]) == 0
    return cal, pd.read_csv(out)


def test_one_reactions_samples_give_back_its_recipe_inside_the_interval(lab_rows, tmp_path):
    cal, samples = lab_rows
    assert list(samples["reaction"]) == ["A"] * 5 and "conversion" in samples.columns
    unknown = tmp_path / "unknown.csv"
    samples.drop(columns=["cMMA_0", "cAIBN_0", "temp", "cMMA_time"]).to_csv(unknown, index=False)
    out = tmp_path / "inv.csv"
    argv = ["--calibration", cal, "--input", str(unknown), "--group", "reaction", "--output", str(out), "--quiet"]
    assert predict.main(argv) == 0
    answer = pd.read_csv(out).iloc[0]
    assert answer["reaction"] == "A" and answer["samples"] == 5
    assert answer["temp"] == pytest.approx(TRUTH["temp"], abs=0.5)
    assert answer["cMMA_0"] == pytest.approx(TRUTH["cMMA_0"], rel=0.03)
    assert answer["cAIBN_0"] == pytest.approx(TRUTH["cAIBN_0"], rel=0.05)
    for name, value in TRUTH.items():
        assert answer[f"{name}_lo"] <= value <= answer[f"{name}_hi"]
    assert fails_again(argv)


def fails_again(argv) -> bool:
    """The same output again without --overwrite is refused (nothing replaced)."""
    return predict.main(argv) == 2


def test_each_row_alone_without_a_group(lab_rows):
    cal, samples = lab_rows
    forward = read_yaml(cal)
    rows = samples.rename(columns={"cMMA_0": "cBA_0", "cMMA_time": "cBA_time"}).drop(columns=["reaction"])
    table = invert_frame(forward, rows.iloc[[2, 4]].reset_index(drop=True), None)
    assert len(table) == 2 and list(table["samples"]) == [1, 1]


def test_bad_use_is_one_line(lab_rows, tmp_path, capsys):
    cal, samples = lab_rows
    unknown = tmp_path / "unknown.csv"
    samples.to_csv(unknown, index=False)
    line = fails(capsys, predict, ["--calibration", cal, "--input", str(unknown), "--group", "batch", "--quiet"])
    assert "missing column 'batch'" in line
    line = fails(capsys, predict, ["--calibration", cal, "--input", str(unknown), "--candidates", "3", "--quiet"])
    assert "--candidates is not available with --calibration" in line
    samples.drop(columns=["MMD30"]).to_csv(unknown, index=False)
    line = fails(capsys, predict, ["--calibration", cal, "--input", str(unknown), "--quiet"])
    assert "the MMD has 29 points; the calibration's axis has 30" in line
