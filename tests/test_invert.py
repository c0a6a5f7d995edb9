"""Recipes from a calibration of lab samples: ``predict --calibration`` and :mod:`polyinv.invert`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from polyinv.cli import predict, simulate
from polyinv.invert import invert_frame
from polyinv.sim.calibration_file import read_yaml
from polyinv.sim.grid import MMDAxis, rebin

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
                "axis": {
                    "log10m_min": 2.0005,
                    "log10m_max": 6.699,
                    "n_points": 30,
                    "normalisation": "density",
                },
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
    argv = [
        "--calibration",
        cal,
        "--input",
        str(unknown),
        "--group",
        "reaction",
        "--output",
        str(out),
        "--quiet",
    ]
    assert predict.main(argv) == 0
    answer = pd.read_csv(out).iloc[0]
    assert answer["reaction"] == "A" and answer["samples"] == 5
    assert answer["temp"] == pytest.approx(TRUTH["temp"], abs=0.5)
    assert answer["cMMA_0"] == pytest.approx(TRUTH["cMMA_0"], rel=0.03)
    assert answer["cAIBN_0"] == pytest.approx(TRUTH["cAIBN_0"], rel=0.05)
    for name, value in TRUTH.items():
        assert answer[f"{name}_lo"] <= value <= answer[f"{name}_hi"]
    assert fails_again(argv)


def test_a_trace_on_another_axis_is_rebinned_onto_the_calibrations(lab_rows, tmp_path, capsys):
    """The same samples as a 45-point GPC trace on a wider axis, peak-normalised: --axis re-bins it onto the
    calibration's 30 points and the answer is the one of the calibration's own axis."""
    cal, samples = lab_rows
    own, gpc = MMDAxis(2.0005, 6.699, 30, "density"), MMDAxis(1.5, 7.2, 45, "max")
    names = [f"MMD{i}" for i in range(1, 31)]
    trace, _ = rebin(samples[names].to_numpy(), own, gpc)
    back, outside = rebin(trace, gpc, own)
    assert (
        outside.max() < 1e-4
        and np.abs(back - samples[names].to_numpy()).max() < 0.05 * samples[names].max().max()
    )
    unknown = samples.drop(columns=["cMMA_0", "cAIBN_0", "temp", "cMMA_time", *names])
    unknown = pd.concat([unknown, pd.DataFrame(trace, columns=[f"MMD{i}" for i in range(1, 46)])], axis=1)
    unknown.to_csv(tmp_path / "gpc.csv", index=False)
    out = tmp_path / "inv.csv"
    argv = [
        "--calibration",
        cal,
        "--input",
        str(tmp_path / "gpc.csv"),
        "--group",
        "reaction",
        "--output",
        str(out),
    ]
    line = fails(capsys, predict, [*argv, "--quiet"])
    assert "the MMD has 45 points" in line and "--axis" in line
    assert predict.main([*argv, "--axis", "1.5", "7.2", "max"]) == 0
    assert "re-binned from 45 points" in capsys.readouterr().out
    answer = pd.read_csv(out).iloc[0]
    assert answer["temp"] == pytest.approx(TRUTH["temp"], abs=1.0)
    assert answer["cMMA_0"] == pytest.approx(TRUTH["cMMA_0"], rel=0.05)
    line = fails(capsys, predict, [*argv, "--overwrite", "--axis", "7.2", "1.5", "max"])
    assert "--axis 7.2 1.5 max" in line and "not increasing" in line
    # an axis that puts the traces beyond the calibration's: refused, the rows named
    line = fails(capsys, predict, [*argv, "--overwrite", "--axis", "7.0", "9.0", "max"])
    assert (
        "data row(s) 0, 1, 2, 3, 4" in line and "outside the calibration's axis" in line and "--axis" in line
    )


def fails_again(argv) -> bool:
    """The same output again without --overwrite is refused (nothing replaced)."""
    return predict.main(argv) == 2


def test_each_row_alone_without_a_group(lab_rows):
    cal, samples = lab_rows
    forward = read_yaml(cal)
    rows = samples.rename(columns={"cMMA_0": "cBA_0", "cMMA_time": "cBA_time"}).drop(columns=["reaction"])
    table = invert_frame(forward, rows.iloc[[2, 4]].reset_index(drop=True), None)
    assert len(table) == 2 and list(table["samples"]) == [1, 1]


def test_candidates_are_the_answer_first_then_distinct_recipes_the_samples_cannot_tell_apart(
    lab_rows, tmp_path
):
    cal, samples = lab_rows
    unknown = tmp_path / "unknown.csv"
    samples.drop(columns=["cMMA_0", "cAIBN_0", "temp", "cMMA_time"]).iloc[[0, 4]].to_csv(unknown, index=False)
    out = tmp_path / "inv.csv"
    argv = ["--calibration", cal, "--input", str(unknown), "--output", str(out), "--candidates", "3", "-q"]
    assert predict.main(argv) == 0
    table = pd.read_csv(out)
    names = ["cMMA_0", "cAIBN_0", "temp"]
    assert {f"candidate{j}_{v}" for j in (1, 2, 3) for v in [*names, "fit_rms"]} <= set(table.columns)
    for name in names:
        assert np.allclose(table[f"candidate1_{name}"], table[name])
    for _, row in table.iterrows():  # every other candidate lies away from the answer, fitting about as well
        for j in (2, 3):
            if np.isfinite(row[f"candidate{j}_temp"]):
                assert any(abs(row[f"candidate{j}_{v}"] / row[v] - 1) > 1e-3 for v in names)
                assert row[f"candidate{j}_fit_rms"] < 3 * row["fit_rms"] + 1


def test_bad_use_is_one_line(lab_rows, tmp_path, capsys):
    cal, samples = lab_rows
    unknown = tmp_path / "unknown.csv"
    samples.to_csv(unknown, index=False)
    line = fails(
        capsys, predict, ["--calibration", cal, "--input", str(unknown), "--group", "batch", "--quiet"]
    )
    assert "missing column 'batch'" in line
    line = fails(
        capsys, predict, ["--calibration", cal, "--input", str(unknown), "--candidates", "11", "--quiet"]
    )
    assert "--candidates must lie between 1 and 10" in line
    samples.drop(columns=["MMD30"]).to_csv(unknown, index=False)
    line = fails(capsys, predict, ["--calibration", cal, "--input", str(unknown), "--quiet"])
    assert "the MMD has 29 points; the calibration's axis has 30" in line


@pytest.mark.slow
def test_calibrate_lab_samples_of_mma_recovers_kt_and_measures_interval_widths(tmp_path):
    from polyinv.cli import calibrate

    moved = tmp_path / "moved.yaml"
    moved.write_text(
        lab_calibration(tmp_path)
        and (tmp_path / "cal.yaml").read_text().replace("parameters: {}", "parameters: {kt: {value: 0.7}}")
    )
    rows = [
        {"cMMA_0": m, "cAIBN_0": i, "temp": t, "time": s, "reaction": f"R{k}"}
        for k, (m, i, t) in enumerate(
            [(2.0, 0.01, 65.0), (4.0, 0.02, 75.0), (3.0, 0.03, 60.0), (5.0, 0.008, 80.0)]
        )
        for s in (900.0, 3600.0, 10800.0)
    ]
    recipes, data = tmp_path / "recipes.csv", tmp_path / "lab.csv"
    pd.DataFrame(rows).to_csv(recipes, index=False)
    assert (
        simulate.main(["--recipes", str(recipes), "--calibration", str(moved), "--out", str(data), "-q"]) == 0
    )
    (tmp_path / "lab.csv.metadata.json").unlink()  # a lab's file states no axis: --axis gives it
    out = tmp_path / "fitted.yaml"
    argv = ["--system", "mma", "--protocol", "sampled", "--axis", "2.0005", "6.699", "density"]
    argv += ["--data", str(data), "--out", str(out), "--parameters", "kt", "gel", "-q"]
    assert calibrate.main(argv) == 0
    stored = yaml.safe_load(out.read_text())
    assert stored["system_key"] == "mma" and stored["protocol"]["kind"] == "sampled"
    assert stored["parameters"]["kt"]["value"] == pytest.approx(0.7, rel=0.02)
    assert set(stored["training_box"]) == {"cMMA_0", "cAIBN_0", "temp"}
    assert stored["inversion"]["reactions"] == 4 and set(stored["inversion"]["factors"]) == {
        "cBA_0",
        "cAIBN_0",
        "temp",
    }
    assert read_yaml(out).protocol == "sampled"


@pytest.mark.slow
def test_design_with_a_calibration_of_mma_answers_in_mma_names_inside_its_training_box(
    lab_rows, tmp_path, capsys
):
    from polyinv.cli import design

    cal, samples = lab_rows
    hit = samples[samples["time"] == 3600.0].iloc[0]  # a recipe the calibrated model reaches: the targets
    out = tmp_path / "design.csv"
    argv = ["--calibration", cal, "--Mn", str(hit["Mn"]), "--Mw", str(hit["Mw"]), "--starts", "8"]
    assert design.main([*argv, "--bounds", "cMMA_0=2:4", "--out", str(out), "-q"]) == 0
    table = pd.read_csv(out)
    assert {"cMMA_0", "cAIBN_0", "temp", "time"} <= set(table.columns) and "cBA_0" not in table.columns
    assert table["meets"].all() and table["cMMA_0"].between(2.0, 4.0).all()
    assert table["cAIBN_0"].between(0.005, 0.04).all() and table["temp"].between(55.0, 85.0).all()
    capsys.readouterr()
    line = fails(capsys, design, [*argv, "--bounds", "cBA_0=1:2", "--out", str(tmp_path / "x.csv")])
    assert "FIELD one of cMMA_0, cAIBN_0, temp" in line
