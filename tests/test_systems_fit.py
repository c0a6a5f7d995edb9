"""``fit`` and ``predict --ckpt`` on another chemistry's files and on sampled lab rows (issue 34): the file's own
column names in and out, the MMD of the file's length, time an input under the sampled protocol."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from polyinv.cli import explain, fit, predict, simulate
from polyinv.data.module import PolyDataModule
from polyinv.errors import PolyinvError
from polyinv.models import load_model
from polyinv.sim.grid import MMDAxis, rebin

from tests.cli.helpers import fails
from tests.test_invert import lab_calibration

FOREST = ["--model.kind", "random_forest", "--model.search", "false", "--model.n_estimators", "50"]


def fit_argv(data, root, *extra) -> list[str]:
    return [
        "--config",
        "rf.yaml",
        "--data.path",
        str(data),
        "--output.root",
        str(root),
        "--name",
        "run",
        *FOREST,
        "--trust.forward",
        "none",
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]


def answers(run, unknown: pd.DataFrame, folder) -> pd.DataFrame:
    """``predict --ckpt run`` on these rows (written to a CSV): its table."""
    unknown.to_csv(folder / "unknown.csv", index=False)
    out = folder / "pred.csv"
    assert (
        predict.main(["--ckpt", str(run), "--input", str(folder / "unknown.csv"), "--output", str(out), "-q"])
        == 0
    )
    return pd.read_csv(out)


@pytest.fixture(scope="module")
def mma_rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mma")
    out = folder / "mma.csv"
    argv = ["--design", "lhs", "--n", "80", "--system", "mma", "--seed", "1", "--out", str(out), "--quiet"]
    assert simulate.main(argv) == 0
    return out


def test_an_mma_file_trains_and_answers_in_mma_names(mma_rows, tmp_path, capsys):
    assert fit.main(fit_argv(mma_rows, tmp_path, "--data.system", "mma")) == 0
    run = tmp_path / "run" / "version_0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["targets"]) == {"cMMA_0", "cAIBN_0", "temp", "time"}
    # relative errors on MMA's nominal ranges (1-6 mol/L), not BA's (0.5-3)
    m = metrics["targets"]["cMMA_0"]
    assert m["rel_mae_pct"] == pytest.approx(100 * m["mae"] / 5.0)
    assert "cMMA_0_true" in pd.read_csv(run / "predictions_test.csv").columns
    info = json.loads((run / "run.json").read_text())
    assert info["system"] == "MMA/AIBN in toluene" and info["protocol"] == "stop"
    model = load_model(run / "model.skops")
    assert model.system == "mma" and "cBA_time" in model.side_names  # internal role names inside

    rows = pd.read_csv(mma_rows).head(5)
    pred = answers(run, rows.drop(columns=["cMMA_0", "cAIBN_0", "temp", "time"]), tmp_path)
    assert {"cMMA_0", "cAIBN_0", "temp", "time"} <= set(pred.columns) and "cBA_0" not in pred.columns
    assert np.all(np.abs(pred["cMMA_0"] - rows["cMMA_0"]) < 2.5)

    # explain reads the true recipe in MMA names and reports in them
    argv = [
        "--ckpt",
        str(run),
        "--input",
        str(mma_rows),
        "--out",
        str(tmp_path / "explain"),
        "--n-repeats",
        "1",
    ]
    assert explain.main(argv) == 0
    table = pd.read_csv(tmp_path / "explain" / "importance.csv")
    assert "cMMA_0" in set(table["target"]) and "cMMA_time" in set(table["group"])

    # a file in BA's names is not this model's: one line naming the missing MMA column
    ba = tmp_path / "ba.csv"
    rows.rename(columns={"cMMA_time": "cBA_time"}).drop(columns=["conversion"]).to_csv(ba, index=False)
    capsys.readouterr()
    line = fails(
        capsys, predict, ["--ckpt", str(run), "--input", str(ba), "--output", str(tmp_path / "x.csv")]
    )
    assert "cMMA_time" in line and "MMA/AIBN" in line
    assert not (tmp_path / "x.csv").exists()


@pytest.fixture(scope="module")
def lab_sim(tmp_path_factory):
    """60 MMA samples (12 recipes x 5 times) on a 30-point lab axis, simulated with a sampled calibration."""
    folder = tmp_path_factory.mktemp("lab")
    cal = lab_calibration(folder)
    rng = np.random.default_rng(0)
    recipes = pd.DataFrame(
        {
            "cMMA_0": rng.uniform(1.5, 5.0, 12).repeat(5),
            "cAIBN_0": np.exp(rng.uniform(np.log(0.005), np.log(0.04), 12)).repeat(5),
            "temp": rng.uniform(55.0, 85.0, 12).repeat(5),
            "time": np.tile([600.0, 1800.0, 3600.0, 7200.0, 14400.0], 12),
        }
    )
    recipes.to_csv(folder / "recipes.csv", index=False)
    out = folder / "samples.csv"
    assert (
        simulate.main(
            ["--recipes", str(folder / "recipes.csv"), "--calibration", cal, "--out", str(out), "-q"]
        )
        == 0
    )
    return out


def test_sampled_rows_train_on_time_and_conversion_and_predict_the_recipe(lab_sim, tmp_path, capsys):
    argv = fit_argv(lab_sim, tmp_path, "--data.system", "mma", "--data.protocol", "sampled")
    assert fit.main(argv) == 0
    run = tmp_path / "run" / "version_0"
    model = load_model(run / "model.skops")
    # time is when the sample was taken (an input); the conversion as measured, not the monomer left
    assert model.target_names == ["cBA_0", "cAIBN_0", "temp"]
    assert model.side_names[:2] == ["time", "conversion"] and len(model.mmd_names) == 30
    assert set(json.loads((run / "metrics.json").read_text())["targets"]) == {"cMMA_0", "cAIBN_0", "temp"}
    forward = json.loads((run / "run.json").read_text())
    assert forward["protocol"] == "sampled"

    samples = pd.read_csv(lab_sim).head(5)
    pred = answers(run, samples.drop(columns=["cMMA_0", "cAIBN_0", "temp", "cMMA_time"]), tmp_path)
    out = tmp_path / "pred.csv"
    assert list(pred.columns[:4]) == ["row", "cMMA_0", "cAIBN_0", "temp"] and "time" not in pred.columns[:4]

    # the model knows its training axis (the simulated file's metadata): a 45-point GPC trace is re-binned onto it
    assert model.axis == {
        "log10m_min": 2.0005,
        "log10m_max": 6.699,
        "n_points": 30,
        "normalisation": "density",
    }
    names = [f"MMD{i}" for i in range(1, 31)]
    gpc, _ = rebin(samples[names].to_numpy(), MMDAxis(**model.axis), MMDAxis(1.5, 7.2, 45, "max"))
    wide = pd.concat(
        [samples.drop(columns=names), pd.DataFrame(gpc, columns=[f"MMD{i}" for i in range(1, 46)])], axis=1
    )
    wide.drop(columns=["cMMA_0", "cAIBN_0", "temp", "cMMA_time"]).to_csv(tmp_path / "gpc.csv", index=False)
    argv = [
        "--ckpt",
        str(run),
        "--input",
        str(tmp_path / "gpc.csv"),
        "--output",
        str(tmp_path / "gpc_pred.csv"),
    ]
    assert predict.main([*argv, "--axis", "1.5", "7.2", "max", "-q"]) == 0
    rebinned = pd.read_csv(tmp_path / "gpc_pred.csv")
    assert np.allclose(rebinned["temp"], pred["temp"], atol=3.0)

    # --verify simulates whole runs: a sampled model's line says so in MMA names
    capsys.readouterr()
    argv = [
        "--ckpt",
        str(run),
        "--input",
        str(tmp_path / "unknown.csv"),
        "--verify",
        "--output",
        str(tmp_path / "v.csv"),
    ]
    line = fails(capsys, predict, argv)
    assert "cMMA_0" in line and "predict --calibration" in line and "cBA_0" not in line

    # a 20-point trace is not the model's 30: one line
    short = samples.drop(columns=[f"MMD{i}" for i in range(21, 31)])
    short.to_csv(tmp_path / "short.csv", index=False)
    capsys.readouterr()
    argv = ["--ckpt", str(run), "--input", str(tmp_path / "short.csv"), "--output", str(out), "--overwrite"]
    line = fails(capsys, predict, argv)
    assert "20 points" in line and "MMD1..MMD30" in line


def test_data_module_refuses_an_unknown_system_and_a_second_file_of_another_length(lab_sim, tmp_path):
    with pytest.raises(PolyinvError, match="data.system"):
        PolyDataModule(str(lab_sim), system="pvac")
    with pytest.raises(PolyinvError, match="the file has cMMA_0: set data.system mma"):
        PolyDataModule(str(lab_sim)).setup()  # an MMA file read as the study's BA
    short = pd.read_csv(lab_sim).drop(columns=[f"MMD{i}" for i in range(21, 31)])
    short.to_csv(tmp_path / "short.csv", index=False)
    dm = PolyDataModule(str(lab_sim), system="mma", protocol="sampled", test_path=str(tmp_path / "short.csv"))
    with pytest.raises(PolyinvError, match="the MMD has 20 points"):
        dm.setup()
    # the training file decides the input: no conversion there, the monomer left, whatever a test file holds
    samples = pd.read_csv(lab_sim)
    samples.drop(columns=["conversion"]).to_csv(tmp_path / "left.csv", index=False)
    dm = PolyDataModule(str(tmp_path / "left.csv"), system="mma", protocol="sampled", test_path=str(lab_sim))
    dm.setup()
    assert (
        "cBA_time" in dm.side_columns
        and "conversion" not in dm.side_columns
        and len(dm.test_idx) == len(samples)
    )
    # transforms may name the system's own columns
    dm = PolyDataModule(
        str(lab_sim), system="mma", protocol="sampled", transforms={"cMMA_0": "log", "Mn": "log"}
    )
    dm.setup()
    assert dm.transforms == {"cBA_0": "log", "Mn": "log"}
    assert yaml.safe_load(yaml.safe_dump(dm.system.to_dict()))["key"] == "mma"


def test_a_40_point_mma_file_is_verified_on_its_calibrations_axis(tmp_path):
    """A stop-protocol MMA file on a 40-point axis: the trust checks and --verify use the calibration's axis."""
    cal = tmp_path / "cal.yaml"
    cal.write_text(
        yaml.safe_dump(
            {
                "polyinv_calibration": 1,
                "system": "MMA/AIBN in toluene",
                "system_key": "mma",
                "axis": {"log10m_min": 2.0, "log10m_max": 6.7, "n_points": 40, "normalisation": "density"},
                "protocol": {"kind": "stop", "t_max_s": 7200.0, "x_stop": 0.9},
                "parameters": {},
            }
        )
    )
    rows, new = tmp_path / "rows.csv", tmp_path / "new.csv"
    for out, n, seed in ((rows, 80, "4"), (new, 4, "9")):
        argv = [
            "--calibration",
            str(cal),
            "--design",
            "lhs",
            "--n",
            str(n),
            "--seed",
            seed,
            "--out",
            str(out),
            "-q",
        ]
        assert simulate.main(argv) == 0
    argv = fit_argv(
        rows, tmp_path, "--data.system", "mma", "--trust.calibration", str(cal), "--trust.refine", "none"
    )
    argv.remove("--trust.forward"), argv.remove("none")
    assert fit.main(argv) == 0
    run = tmp_path / "run" / "version_0"
    assert json.loads((run / "run.json").read_text())["forward_model"]
    out = tmp_path / "pred.csv"
    assert (
        predict.main(["--ckpt", str(run), "--input", str(new), "--verify", "--output", str(out), "-q"]) == 0
    )
    pred = pd.read_csv(out)
    assert pred["verify_hellinger"].notna().all() and "verify_rel_err_cMMA_time" in pred.columns
