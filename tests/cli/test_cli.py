"""Happy paths of ``polyinv fit`` and ``polyinv predict`` (called in-process).

One tiny MLP run (2 epochs) and one random-forest run are shared by the tests of this module.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import mean_absolute_error, r2_score

from polyinv.cli import fit, predict
from polyinv.schema import MMD_COLUMNS, TARGETS

from tests.synthetic import REPO, fast_overrides, synthetic_frame

MLP_CONFIG = str(REPO / "configs" / "mlp.yaml")
RF_CONFIG = str(REPO / "configs" / "rf.yaml")
RF_FAST = ["--model.search", "false", "--model.n_estimators", "20", "--model.n_jobs", "1"]


def run_fit(capsys, args: list[str]) -> tuple[Path, str]:
    """Run the fit CLI; return the run folder named on the last stdout line, and stdout."""
    rc = fit.main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("run: "), out
    run_dir = Path(last[len("run: ") :])
    assert run_dir.is_dir()
    return run_dir, out


def fit_quietly(args: list[str]) -> tuple[Path, str]:
    """run_fit for module-scoped fixtures (no capsys there): stdout captured by hand."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = fit.main(args)
    assert rc == 0
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("run: "), out.getvalue()
    return Path(last[len("run: ") :]), out.getvalue()


def run_predict(capsys, args: list[str]) -> str:
    rc = predict.main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, synthetic_csv) -> tuple[Path, str]:
    """(run folder, stdout) of a 2-epoch MLP run on the synthetic CSV."""
    root = tmp_path_factory.mktemp("cli_runs")
    return fit_quietly(["--config", MLP_CONFIG, *fast_overrides(synthetic_csv, root, epochs=2)])


@pytest.fixture(scope="module")
def rf_run(tmp_path_factory, synthetic_csv) -> Path:
    root = tmp_path_factory.mktemp("cli_rf")
    return fit_quietly(["--config", RF_CONFIG, *fast_overrides(synthetic_csv, root), *RF_FAST])[0]


# ---------------------------------------------------------------------------------------------- fit
def test_fit_prints_table_and_run_folder_last(mlp_run):
    run_dir, out = mlp_run
    assert run_dir.name == "version_0" and run_dir.parent.name == "mlp"
    lines = out.strip().splitlines()
    assert lines[-1] == f"run: {run_dir}"
    table = "\n".join(lines[:-1])
    for word in (*TARGETS, "MAE", "rel. MAE %", "R²", "global", "MSE"):
        assert word in table, word


def test_run_folder_contents(mlp_run):
    run_dir, _ = mlp_run
    for name in ("config.yaml", "best.ckpt", "last.ckpt", "metrics.json", "predictions_test.csv"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.rglob("events.out.tfevents.*")), "no TensorBoard event files"
    # best.ckpt is the model file (weights, no optimizer state: L-BFGS's would be ~100× the weights);
    # last.ckpt keeps the optimizer state for --resume
    best = torch.load(run_dir / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert "optimizer_states" not in best and "lr_schedulers" not in best and "state_dict" in best
    assert isinstance(last["optimizer_states"][0]["state"], dict) and last["optimizer_states"][0]["state"]


def test_metrics_json_structure_and_values(mlp_run):
    run_dir, _ = mlp_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"targets", "global"}
    assert list(metrics["targets"]) == list(TARGETS)
    for target, values in metrics["targets"].items():
        assert set(values) == {"mae", "rel_mae_pct", "r2"}, target
        assert all(isinstance(v, float) and math.isfinite(v) for v in values.values()), target
    assert set(metrics["global"]) == {"mse", "r2"}
    # the numbers are those of the saved test predictions, in physical units
    preds = pd.read_csv(run_dir / "predictions_test.csv")
    assert list(preds.columns) == ["row"] + [f"{t}_{k}" for t in TARGETS for k in ("true", "pred")]
    r2s = []
    for t in TARGETS:
        r2 = r2_score(preds[f"{t}_true"], preds[f"{t}_pred"])
        r2s.append(r2)
        assert metrics["targets"][t]["r2"] == pytest.approx(r2, abs=1e-6)
        assert metrics["targets"][t]["mae"] == pytest.approx(
            mean_absolute_error(preds[f"{t}_true"], preds[f"{t}_pred"]), rel=1e-6
        )
    assert metrics["global"]["r2"] == pytest.approx(np.mean(r2s), abs=1e-6)


def test_predictions_test_are_the_test_rows_of_the_file(mlp_run, synthetic_csv):
    run_dir, _ = mlp_run
    preds = pd.read_csv(run_dir / "predictions_test.csv")
    data = pd.read_csv(synthetic_csv)
    assert len(preds) == round(0.2 * len(data))
    for t in TARGETS:
        np.testing.assert_allclose(preds[f"{t}_true"], data.loc[preds["row"], t], rtol=1e-12)


def test_second_run_gets_new_version_and_seed_override(mlp_run, synthetic_csv, capsys):
    run_dir, _ = mlp_run
    root = run_dir.parent.parent
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    second, _ = run_fit(
        capsys, ["--config", MLP_CONFIG, *fast_overrides(synthetic_csv, root, epochs=1), "--seed", "1"]
    )
    assert second == run_dir.parent / "version_1"
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before, (
        "version_0 was touched"
    )
    saved = yaml.safe_load((second / "config.yaml").read_text())
    assert saved["seed"] == 1
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 42
    assert saved["trainer"]["max_epochs"] == 1 and saved["data"]["path"] == str(synthetic_csv)
    assert saved["name"] == "mlp" and saved["model"]["kind"] == "mlp"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["xlsx-default-sheet", "xlsx-mmd_raw_data", "parquet"])
def test_fit_reads_xlsx_and_parquet(tmp_path, capsys, fmt):
    """.xlsx (default sheet compuesta, or a named sheet) and .parquet train; the right rows are read.

    (.csv is the format of the shared ``mlp_run``.)
    """
    compuesta, other = synthetic_frame(40, seed=11), synthetic_frame(40, seed=12)
    extra: list[str] = []
    if fmt == "parquet":
        path, expected = tmp_path / "data.parquet", compuesta
        compuesta.to_parquet(path, index=False)
    else:
        path = tmp_path / "study.xlsx"
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            compuesta.to_excel(writer, sheet_name="compuesta", index=False)
            other[list(TARGETS + MMD_COLUMNS)].to_excel(writer, sheet_name="mmd_raw_data", index=False)
        expected = compuesta
        if fmt == "xlsx-mmd_raw_data":  # the study's second sheet: MMD-only features
            extra, expected = ["--data.sheet", "mmd_raw_data", "--data.feature_set", "mmd"], other
    args = ["--config", MLP_CONFIG, *fast_overrides(path, tmp_path / "out", epochs=1), *extra]
    assert fit.main(args) == 0
    out, err = capsys.readouterr()
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("run: "))
    assert "R²" in out and (run_dir / "best.ckpt").is_file()
    preds = pd.read_csv(run_dir / "predictions_test.csv")
    for t in TARGETS:
        np.testing.assert_allclose(preds[f"{t}_true"], expected.loc[preds["row"], t], rtol=1e-12)
    if fmt == "xlsx-mmd_raw_data":  # an MMD-only model needs nothing but MMD1..MMD100 at inference
        bare = tmp_path / "bare.csv"
        synthetic_frame(5, seed=14)[list(MMD_COLUMNS)].to_csv(bare, index=False)
        # the sheet has no Mn/Mw and the file states no MMD axis: the forward checks are off, and the run says so
        assert "warning: forward checks off" in err and "lacks Mn/Mw" in err
        run_predict(
            capsys, ["--ckpt", str(run_dir), "--input", str(bare), "--output", str(tmp_path / "p.csv")]
        )
        check_prediction_file(tmp_path / "p.csv", 5, consistency=False)


# ---------------------------------------------------------------------------------------------- predict
def check_prediction_file(path: Path, n_rows: int, consistency: bool = True) -> pd.DataFrame:
    table = pd.read_csv(path)
    trust = [
        "in_domain",
        "domain_score",
        *(["consistency_score"] if consistency else []),
        "domain_note",
    ]  # polyinv.trust
    assert list(table.columns) == ["row", *TARGETS, *trust]
    assert table["row"].tolist() == list(range(n_rows))
    assert np.isfinite(table[list(TARGETS)].to_numpy()).all()
    return table


def assert_matches_test_predictions(table: pd.DataFrame, run_dir: Path, rtol: float) -> None:
    """Inference on the training file reproduces the run's own test-split predictions."""
    test = pd.read_csv(run_dir / "predictions_test.csv")
    for t in TARGETS:
        np.testing.assert_allclose(table.loc[test["row"], t], test[f"{t}_pred"], rtol=rtol)


@pytest.mark.parametrize("which", ["run-folder", "best.ckpt"])
def test_predict_from_mlp_run(tmp_path, capsys, mlp_run, synthetic_csv, which):
    run_dir, _ = mlp_run
    ckpt = run_dir if which == "run-folder" else run_dir / "best.ckpt"
    output = tmp_path / "preds.csv"
    out = run_predict(capsys, ["--ckpt", str(ckpt), "--input", str(synthetic_csv), "--output", str(output)])
    n = len(pd.read_csv(synthetic_csv))
    table = check_prediction_file(output, n)
    assert f"{n} rows predicted" in out and "best.ckpt" in out and "(mlp)" in out
    assert all(t in out for t in TARGETS)
    assert out.strip().splitlines()[-1] == f"wrote {output}"
    assert_matches_test_predictions(table, run_dir, rtol=1e-4)


def test_predict_default_output_and_xlsx_sheet(tmp_path, capsys, monkeypatch, mlp_run):
    """Without --output the CSV lands in the working folder as <input stem>_predictions.csv."""
    run_dir, _ = mlp_run
    frame = synthetic_frame(7, seed=13)
    path = tmp_path / "new_mmds.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.head(2).to_excel(writer, sheet_name="compuesta", index=False)
        frame.to_excel(writer, sheet_name="lab", index=False)
    monkeypatch.chdir(tmp_path)
    run_predict(capsys, ["--ckpt", str(run_dir / "last.ckpt"), "--input", str(path), "--sheet", "lab"])
    check_prediction_file(tmp_path / "new_mmds_predictions.csv", 7)


def test_rf_run_and_predict_through_same_command(tmp_path, capsys, rf_run, synthetic_csv):
    run_dir = rf_run
    assert run_dir.parent.name == "rf"
    assert (run_dir / "model.skops").is_file() and not (run_dir / "best.ckpt").exists()
    for name in ("config.yaml", "metrics.json", "predictions_test.csv"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"targets", "global"} and list(metrics["targets"]) == list(TARGETS)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["kind"] == "random_forest" and saved["model"]["n_estimators"] == 20
    n = len(pd.read_csv(synthetic_csv))
    for ckpt in (run_dir, run_dir / "model.skops"):
        output = tmp_path / f"{Path(ckpt).name}.csv"
        out = run_predict(
            capsys, ["--ckpt", str(ckpt), "--input", str(synthetic_csv), "--output", str(output)]
        )
        assert "model.skops" in out and "(random_forest)" in out
        table = check_prediction_file(output, n)
        assert_matches_test_predictions(table, run_dir, rtol=1e-9)
