"""Hostile round 2 (issue 30): every command that writes follows one output policy (polyinv.atomic), calibration
files with absurd kinetics are refused, and bad input is one line naming file, row and value. Each case: exit 2,
one ``error:`` line, no traceback, nothing written or replaced."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from polyinv.cli import calibrate, design, explain, fit, predict, simulate

from tests.cli.helpers import fails, snapshot
from tests.synthetic import fast_overrides, synthetic_frame


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hardening") / "ok.csv"
    synthetic_frame(60, seed=9).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, data) -> Path:
    root = tmp_path_factory.mktemp("hardening_runs")
    assert fit.main(["--config", "mlp.yaml", *fast_overrides(data, root, epochs=2)]) == 0
    return root / "mlp" / "version_0"


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipes") / "recipes.csv"
    pd.DataFrame({"cBA_0": [1.5, 3.0], "cAIBN_0": [0.005, 0.02], "temp": [60.0, 80.0]}).to_csv(
        path, index=False
    )
    return path


def calibration_file(folder: Path, parameters: dict, n_points: int = 100) -> Path:
    path = folder / "cal.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "polyinv_calibration": 1,
                "axis": {
                    "log10m_min": 1.85,
                    "log10m_max": 6.6,
                    "n_points": n_points,
                    "normalisation": "density",
                },
                "protocol": {"t_max_s": 3600.0, "x_stop": 0.9},
                "parameters": {name: {"value": value} for name, value in parameters.items()},
            }
        )
    )
    return path


# ---------------------------------------------------------------- 1: simulate never destroys a file
def test_1_simulate_refuses_its_input_and_an_existing_out(tmp_path, capsys, recipes):
    before = recipes.read_bytes()
    for extra in ([], ["--overwrite"]):
        line = fails(capsys, simulate, ["--recipes", str(recipes), "--out", str(recipes), "--quiet", *extra])
        assert "is the input file" in line and recipes.read_bytes() == before
    out = tmp_path / "sim.csv"
    assert simulate.main(["--recipes", str(recipes), "--out", str(out), "--quiet"]) == 0
    first = out.read_bytes()
    line = fails(capsys, simulate, ["--recipes", str(recipes), "--out", str(out), "--quiet", "--seed", "3"])
    assert "exists; pass --overwrite" in line and out.read_bytes() == first
    assert simulate.main(["--design", "lhs", "--n", "3", "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert len(pd.read_csv(out)) == 3
    cal = calibration_file(tmp_path, {})
    line = fails(
        capsys, simulate, ["--recipes", str(recipes), "--calibration", str(cal), "--out", str(cal), "--quiet"]
    )
    assert "give a name ending in" in line or "is the input file" in line


# ---------------------------------------------------------------- 2: absurd kinetics are refused
@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"kt": 1e300}, "kt 1e+300 lies outside the plausible factor range"),
        ({"Ea_kt": 1e6}, "Ea_kt 1e+06 kJ/mol lies outside the plausible shift range"),
        ({"alpha_t": 2.0}, "alpha_t 2 lies outside its plausible range 0 to 0.8"),
        ({"comb": 40.0}, "comb 40 lies outside its plausible range -5 to 5"),
    ],
)
def test_2_a_calibration_with_absurd_kinetics_is_refused_everywhere(
    tmp_path, capsys, recipes, data, parameters, words
):
    cal = calibration_file(tmp_path, parameters)
    line = fails(
        capsys,
        simulate,
        ["--recipes", str(recipes), "--calibration", str(cal), "--out", str(tmp_path / "s.csv")],
    )
    assert str(cal) in line and words in line
    line = fails(
        capsys, design, ["--Mn", "20000", "--calibration", str(cal), "--out", str(tmp_path / "d.csv")]
    )
    assert str(cal) in line and words in line
    line = fails(
        capsys,
        fit,
        [
            "--config",
            "mlp.yaml",
            *fast_overrides(data, tmp_path / "runs", epochs=1),
            "--trust.calibration",
            str(cal),
        ],
    )
    assert words in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.yaml"]


def test_2_a_calibration_whose_axis_has_99_points_simulates_99_and_refuses_a_100_point_file(
    tmp_path, recipes
):
    import pandas as pd

    from polyinv.sim.calibration_file import forward_for_training

    cal = calibration_file(tmp_path, {}, n_points=99)
    out = tmp_path / "s.csv"
    assert (
        simulate.main(["--recipes", str(recipes), "--calibration", str(cal), "--out", str(out), "--quiet"])
        == 0
    )
    written = pd.read_csv(out)
    assert "MMD99" in written.columns and "MMD100" not in written.columns  # a lab axis' own point count
    with pytest.raises(
        ValueError, match=rf"{cal.name}.*99 MMD points; the training file is ba, stop, 100 points"
    ):
        forward_for_training("auto", str(cal), out, pd.read_csv(out).assign(MMD100=0.0))


def test_2_non_finite_simulations_are_an_error_naming_the_recipe(tmp_path, monkeypatch, recipes):
    import numpy as np

    from polyinv.sim import dataset
    from polyinv.sim.simulate import simulate_many

    def broken(recipes_, *args, **kwargs):
        out = simulate_many(recipes_, *args, **kwargs)
        out.loc[1, "Mn"] = np.nan
        return out

    monkeypatch.setattr(dataset, "simulate_many", broken)
    with pytest.raises(
        ValueError, match=r"recipes.csv: data row 1 \(line 3 of the file\).*non-finite outcomes"
    ):
        dataset.generate(
            "recipes",
            str(tmp_path / "s.csv"),
            recipes=pd.read_csv(recipes),
            progress=False,
            source=str(recipes),
        )
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- 4: no output replaced without --overwrite
def test_4_explain_twice_is_refused_without_overwrite(tmp_path, capsys, mlp_run, data):
    out = tmp_path / "E"
    args = ["--ckpt", str(mlp_run), "--input", str(data), "--out", str(out), "--n-repeats", "1"]
    assert explain.main(args) == 0
    before = snapshot(out)
    line = fails(capsys, explain, args)
    assert "importance.csv exists; pass --overwrite" in line and snapshot(out) == before
    assert explain.main([*args, "--overwrite"]) == 0


def test_4_predict_plot_dir_is_not_replaced_without_overwrite(tmp_path, capsys, mlp_run, data):
    few = tmp_path / "few.csv"
    pd.read_csv(data).head(2).to_csv(few, index=False)
    plots = tmp_path / "P"
    assert (
        predict.main(
            [
                "--ckpt",
                str(mlp_run),
                "--input",
                str(few),
                "--plot-dir",
                str(plots),
                "--output",
                str(tmp_path / "a.csv"),
            ]
        )
        == 0
    )
    before = snapshot(plots)
    assert sorted(p.name for p in plots.iterdir()) == ["verify_row0000.png", "verify_row0001.png"]
    line = fails(
        capsys,
        predict,
        [
            "--ckpt",
            str(mlp_run),
            "--input",
            str(few),
            "--plot-dir",
            str(plots),
            "--output",
            str(tmp_path / "b.csv"),
        ],
    )
    assert "verify_row0000.png exists; pass --overwrite" in line and snapshot(plots) == before
    assert not (tmp_path / "b.csv").exists()


def test_4_design_refuses_its_own_input_even_with_overwrite(tmp_path, capsys, data):
    target = tmp_path / "wanted.csv"
    pd.read_csv(data).head(1).to_csv(target, index=False)
    before = target.read_bytes()
    line = fails(capsys, design, ["--mmd", str(target), "--out", str(target), "--overwrite"])
    assert "is the input file" in line and target.read_bytes() == before


# ---------------------------------------------------------------- 5: an output that appeared meanwhile
def test_5_a_concurrent_output_is_not_replaced(tmp_path, capsys, monkeypatch, mlp_run, data):
    output = tmp_path / "preds.csv"
    real = predict.predict_table

    def slow_twin(*args, **kwargs):  # another process writes the same output while this one works
        output.write_text("the other process's result\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "predict_table", slow_twin)
    line = fails(capsys, predict, ["--ckpt", str(mlp_run), "--input", str(data), "--output", str(output)])
    assert "appeared while this command ran" in line
    assert output.read_text() == "the other process's result\n"
    assert [p.name for p in tmp_path.iterdir()] == ["preds.csv"]  # no temporary file left


# ---------------------------------------------------------------- 6: places that cannot be written
def test_6_a_file_where_a_folder_is_wanted(tmp_path, capsys, mlp_run, data):
    existing = tmp_path / "file.txt"
    existing.write_text("keep me\n")
    line = fails(
        capsys,
        predict,
        [
            "--ckpt",
            str(mlp_run),
            "--input",
            str(data),
            "--plot-dir",
            str(existing),
            "--output",
            str(tmp_path / "p.csv"),
        ],
    )
    assert "--plot-dir" in line and "is a file; give a folder" in line
    line = fails(capsys, explain, ["--ckpt", str(mlp_run), "--input", str(data), "--out", str(existing)])
    assert "--out" in line and "is a file; give a folder" in line
    assert existing.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_6_an_unwritable_working_folder_is_one_line_before_work(tmp_path, capsys, monkeypatch, mlp_run, data):
    import tempfile

    from polyinv import atomic

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    try:
        line = fails(capsys, predict, ["--ckpt", str(mlp_run), "--input", str(data)])
        assert "cannot write in" in line and "Permission denied" in line
        line = fails(capsys, explain, ["--ckpt", str(mlp_run), "--input", str(data)])
        assert "cannot write in" in line
        line = fails(capsys, calibrate, ["--data", str(data), "--out", "cal.yaml"])
        assert "cannot write in" in line
    finally:
        monkeypatch.setattr(atomic.tempfile, "mkstemp", tempfile.mkstemp)
    assert not list(tmp_path.iterdir())


def test_6_a_name_longer_than_the_file_system_allows(tmp_path, capsys, mlp_run, data):
    long = tmp_path / ("p" * 300 + ".csv")
    line = fails(capsys, predict, ["--ckpt", str(mlp_run), "--input", str(data), "--output", str(long)])
    assert "longer than the file system allows" in line
    line = fails(capsys, simulate, ["--design", "lhs", "--n", "2", "--out", str(long)])
    assert "longer than the file system allows" in line


def test_6_a_name_just_below_the_limit_is_written(tmp_path, mlp_run, data):
    name = "p" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 4) + ".csv"  # the temporary name must still fit
    assert predict.main(["--ckpt", str(mlp_run), "--input", str(data), "--output", str(tmp_path / name)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [name]


# ---------------------------------------------------------------- 7: messages
def test_7_show_must_not_be_negative(tmp_path, capsys, mlp_run, data):
    line = fails(
        capsys,
        predict,
        ["--ckpt", str(mlp_run), "--input", str(data), "--show", "-1", "--output", str(tmp_path / "p.csv")],
    )
    assert "--show" in line and not (tmp_path / "p.csv").exists()


def test_7_a_recipe_out_of_range_names_file_and_row(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"cBA_0": [1.5, 2.0], "cAIBN_0": [0.005, 0.01], "temp": [60.0, 500.0]}).to_csv(
        bad, index=False
    )
    line = fails(capsys, simulate, ["--recipes", str(bad), "--out", str(tmp_path / "s.csv")])
    assert str(bad) in line and "data row 1 (line 3 of the file)" in line and "got 500" in line


def test_7_explain_on_one_row_names_the_file(tmp_path, capsys, mlp_run, data):
    one = tmp_path / "one.csv"
    pd.read_csv(data).head(1).to_csv(one, index=False)
    line = fails(capsys, explain, ["--ckpt", str(mlp_run), "--input", str(one), "--out", str(tmp_path / "E")])
    assert str(one) in line and "at least 2 rows" in line


def test_7_values_are_printed_as_numbers(tmp_path, capsys, mlp_run, data):
    frame = pd.read_csv(data).head(3)
    frame.loc[1, "Mn"] = float("inf")
    bad = tmp_path / "inf.csv"
    frame.to_csv(bad, index=False)
    line = fails(
        capsys, predict, ["--ckpt", str(mlp_run), "--input", str(bad), "--output", str(tmp_path / "p.csv")]
    )
    assert "np.float64" not in line and "inf" in line


def test_7_a_csv_given_as_ckpt_is_one_plain_line(tmp_path, capsys, data):
    line = fails(
        capsys, predict, ["--ckpt", str(data), "--input", str(data), "--output", str(tmp_path / "p.csv")]
    )
    assert "not a polyinv model file" in line and "\x1b[" not in line


def test_6_a_path_past_the_limit_and_a_dangling_link_are_one_line_before_work(tmp_path, capsys):
    line = fails(
        capsys, simulate, ["--design", "lhs", "--n", "3", "--out", str(tmp_path / ("a" * 300) / "x.csv")]
    )
    assert "longer than the file system allows" in line
    deep = tmp_path.joinpath(*["d" * 200] * 22) / "x.csv"  # every part short, the whole over 4096 bytes
    line = fails(capsys, simulate, ["--design", "lhs", "--n", "3", "--out", str(deep)])
    assert "longer than the file system allows" in line
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere.csv")
    line = fails(capsys, simulate, ["--design", "lhs", "--n", "3", "--out", str(dangling), "--quiet"])
    assert (
        "exists; pass --overwrite" in line
        and dangling.is_symlink()
        and not (tmp_path / "nowhere.csv").exists()
    )


def test_2_a_calibration_at_the_end_of_a_range_reads_back(tmp_path):
    """A value fitted to the end of its plausible range (f at 1/0.72) is written so that it reads back inside."""
    from polyinv.sim.calibration_file import _round, read_yaml
    from polyinv.sim.forward import BY_NAME

    for name, end in (("f", BY_NAME["f"].high), ("kp", BY_NAME["kp"].low)):
        cal = calibration_file(tmp_path, {name: _round(end * (1 + 1e-12), 12)})
        assert read_yaml(cal).values[name] == pytest.approx(end)
