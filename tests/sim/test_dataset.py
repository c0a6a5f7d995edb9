"""Designs, writers, the shipped data set, input validation and the CLI (acceptance 6 and 8)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyinv.cli.simulate import main
from polyinv.schema import COMPOSITE_COLUMNS, MMD_RAW_COLUMNS, NOMINAL_RANGES, SHEET_COMPOSITE, SHEET_MMD_RAW
from polyinv.sim import grid_design, lhs_design, simulate, simulate_many
from polyinv.sim.io import read_metadata

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "data" / "ba_aibn_grid432.xlsx"
DOCUMENTED_COMMAND = "polyinv simulate --design grid --seed 0 --out ba_aibn_grid432.xlsx"


def test_grid_design_order_and_levels():
    grid = grid_design()
    assert len(grid) == 432 and len(grid.drop_duplicates()) == 432
    assert grid.iloc[0].tolist() == [0.5, 0.0025, 60.0]
    assert grid.iloc[1].tolist() == [0.5, 0.0025, 62.5]  # temp varies fastest
    assert grid.iloc[9].tolist() == [0.5, 0.005, 60.0]
    assert grid.iloc[-1].tolist() == [3.0, 0.02, 80.0]
    assert sorted(grid["cAIBN_0"].unique()) == pytest.approx([0.0025 * i for i in range(1, 9)])


def test_lhs_design_seeded_inside_domain_and_stratified():
    a, b, c = lhs_design(50, seed=1), lhs_design(50, seed=1), lhs_design(50, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    for col in a.columns:
        lo, hi = NOMINAL_RANGES[col]
        assert a[col].between(lo, hi).all()
        strata = np.floor((a[col] - lo) / (hi - lo) * 50).astype(int)
        assert sorted(strata) == list(range(50))  # one sample per stratum: a Latin hypercube
    with pytest.raises(ValueError, match="n must be"):
        lhs_design(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cBA_0", 0.0),
        ("cBA_0", -1.0),
        ("cAIBN_0", 0.0),
        ("cAIBN_0", -0.01),
        ("temp", 250.0),
        ("temp", -5.0),
        ("cBA_0", "abc"),
        ("cAIBN_0", float("nan")),
        ("temp", float("inf")),
        ("cBA_0", None),
        ("temp", True),
        ("cBA_0", 8.0),  # more than pure butyl acrylate
    ],
)
def test_bad_recipe_raises_naming_field(field, value):
    recipe = {"cBA_0": 1.0, "cAIBN_0": 0.01, "temp": 70.0, field: value}
    with pytest.raises(ValueError, match=field):
        simulate(recipe)


def test_bad_recipe_in_table_names_field_and_row():
    table = grid_design().head(5).copy()
    table.loc[3, "temp"] = 300.0
    with pytest.raises(ValueError, match=r"temp.*300.*row 3"):
        simulate_many(table, progress=False)
    with pytest.raises(ValueError, match="cAIBN_0"):
        simulate_many(table.drop(columns="cAIBN_0"), progress=False)
    with pytest.raises(ValueError, match="x_stop"):
        simulate({"cBA_0": 1.0, "cAIBN_0": 0.01, "temp": 70.0}, x_stop=1.5)


def test_shipped_file_format():
    table = pd.read_excel(SHIPPED, sheet_name=SHEET_COMPOSITE)
    assert list(table.columns) == list(COMPOSITE_COLUMNS)
    assert len(table) == 432
    raw = pd.read_excel(SHIPPED, sheet_name=SHEET_MMD_RAW)
    assert list(raw.columns) == list(MMD_RAW_COLUMNS)
    pd.testing.assert_frame_equal(raw, table[list(MMD_RAW_COLUMNS)])
    meta = read_metadata(SHIPPED)
    assert meta["command"] == DOCUMENTED_COMMAND
    assert float(meta["mmd_log10M_min"]) < float(meta["mmd_log10M_max"]) and meta["mmd_n_points"] == "100"
    assert (
        DOCUMENTED_COMMAND.replace("--out ba_", "--out data/ba_") in (ROOT / "data" / "README.md").read_text()
    )


@pytest.mark.slow
def test_regenerating_shipped_file_gives_identical_numbers(tmp_path):
    """The same numbers to floating-point precision, not bit for bit: on a fresh install of 2026-11-29 (numpy
    2.4.6, scipy 1.17.1) the last bits had moved (largest relative change 2e-13; 1e-15 absolute on the MMD)
    and the exact comparison failed, the file's science unchanged."""
    out = tmp_path / "ba_aibn_grid432.xlsx"
    assert main(["--design", "grid", "--seed", "0", "--out", str(out), "--quiet"]) == 0
    for sheet in (SHEET_COMPOSITE, SHEET_MMD_RAW):
        pd.testing.assert_frame_equal(
            pd.read_excel(out, sheet_name=sheet),
            pd.read_excel(SHIPPED, sheet_name=sheet),
            check_exact=False,
            rtol=1e-11,
            atol=1e-14,
        )
    assert read_metadata(out) == read_metadata(SHIPPED)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_writers_round_trip(tmp_path, suffix):
    out = tmp_path / f"lhs{suffix}"
    assert main(["--design", "lhs", "--n", "12", "--seed", "4", "--out", str(out), "--quiet"]) == 0
    expected = simulate_many(lhs_design(12, seed=4), progress=False)
    if suffix == ".csv":
        back = pd.read_csv(out)
    elif suffix == ".parquet":
        back = pd.read_parquet(out)
    else:
        back = pd.read_excel(out, sheet_name=SHEET_COMPOSITE)
    assert list(back.columns) == list(COMPOSITE_COLUMNS)
    # csv and parquet keep every bit; the xlsx writer rounds the last digit of some floats
    # (and Excel gives back an all-3600 time column as int64)
    pd.testing.assert_frame_equal(
        back, expected, check_exact=suffix != ".xlsx", rtol=1e-14, check_dtype=suffix != ".xlsx"
    )
    meta = read_metadata(out)
    assert meta["design"] == "lhs" and meta["seed"] == "4" and meta["n_recipes"] == "12"
    assert "kt_ss.A" in meta and "kbb.source" in meta
    if suffix == ".csv":
        assert json.loads((tmp_path / "lhs.csv.metadata.json").read_text())["version"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--design", "lhs", "--out", "x.csv"],  # --n missing
        ["--design", "lhs", "--n", "-3", "--out", "x.csv"],
        ["--design", "cube", "--out", "x.csv"],
        ["--design", "grid", "--out", "x.txt"],
        ["--design", "grid", "--n", "10", "--out", "x.csv"],
        ["--design", "lhs", "--n", "five", "--out", "x.csv"],
        ["--design", "lhs", "--n", "5", "--noise-chains", "0", "--out", "x.csv"],
        ["--design", "lhs", "--n", "5", "--x-stop", "2", "--out", "x.csv"],
    ],
)
def test_cli_bad_arguments_one_line_no_file(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_failure_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch):
    def broken(self, *args, **kwargs):
        Path(args[0]).write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    assert main(["--design", "lhs", "--n", "3", "--out", str(tmp_path / "x.csv"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'x.csv'}: cannot write (disk full)"
    assert list(tmp_path.iterdir()) == []


def test_stop_time_never_exceeds_limit():
    run = simulate_many(lhs_design(40, seed=11), t_max=1200.0, x_stop=0.5, extra_columns=True, progress=False)
    assert (run["time"] <= 1200.0).all()
    assert all(math.isclose(x, 0.5, abs_tol=1e-9) for x in run.loc[run["reached_x_stop"], "conversion"])


def test_per_recipe_reaction_times_match_separate_runs():
    recipes = lhs_design(24, seed=5)
    t_max = np.tile([300.0, 1500.0, 3600.0], 8)
    batch = simulate_many(recipes, t_max=t_max, progress=False)
    for t in (300.0, 1500.0, 3600.0):
        rows = np.nonzero(t_max == t)[0]
        alone = simulate_many(recipes.iloc[rows], t_max=t, progress=False)
        np.testing.assert_allclose(batch.iloc[rows].to_numpy(), alone.to_numpy(), rtol=1e-9, atol=1e-12)
    assert (batch["time"] <= t_max).all()
    assert batch["time"].nunique() > 3  # not one clock for the batch


@pytest.mark.parametrize(
    "t_max, message",
    [
        ([3600.0, 3600.0], "one number or one per recipe (3)"),
        ([3600.0, -1.0, 3600.0], "positive number of seconds, got -1 (recipe 1)"),
        ([3600.0, float("nan"), 3600.0], "positive number of seconds, got nan (recipe 1)"),
        (0.0, "positive number of seconds, got 0.0"),
    ],
)
def test_bad_per_recipe_reaction_time_is_named(t_max, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        simulate_many(lhs_design(3, seed=0), t_max=t_max, progress=False)
