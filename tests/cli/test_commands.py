"""The ``polyinv`` command: subcommands, every shipped config on a CSV, intervals and verification via predict."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from polyinv.cli import fit, main, predict
from polyinv.config import CONFIG_DIR
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS
from polyinv.trust.verify import verify

from tests.synthetic import REPO, fast_overrides, synthetic_frame

QUICK = {  # each shipped config, made quick: what is tested is that the config trains on a .csv unchanged
    "mlp": ["--trainer.max_epochs", "1"],
    "cnn": ["--trainer.max_epochs", "1"],
    "study_mlp": ["--trainer.max_epochs", "2"],
    "gp": ["--model.n_restarts", "0"],
    "gp_noisy": ["--model.n_restarts", "0"],
    "gp_design": ["--model.n_restarts", "0"],
    "rf": ["--model.search", "false", "--model.n_estimators", "10"],
    "rf_mmd": ["--model.search", "false", "--model.n_estimators", "10"],
    "auto": ["--model.candidates", '["gp.yaml"]'],  # tests/test_select.py scores networks too
}


def run(capsys, command, args) -> str:
    rc = command.main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


@pytest.mark.slow
def test_polyinv_lists_its_commands_and_python_m_polyinv_runs_them(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("fit", "predict", "simulate", "explain", "ensemble"):
        assert f"  {command} " in text
    assert main(["train"]) == 2 and "unknown command 'train'" in capsys.readouterr().err
    proc = subprocess.run(
        [sys.executable, "-m", "polyinv", "fit", "--config", "gp.yaml", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO / "tests",
    )
    assert proc.returncode == 0 and "--model.mmd_pcs" in proc.stdout and "--data.path" in proc.stdout


def test_every_shipped_config_is_quick_listed():
    assert sorted(QUICK) == sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(QUICK))
def test_every_shipped_config_trains_and_predicts_on_a_csv(name, tmp_path, capsys):
    """A .csv trains with every shipped config unchanged (no sheet), and its run predicts the file back."""
    path = tmp_path / "mine.csv"
    synthetic_frame(80, seed=7, levels=name == "gp_design").to_csv(
        path, index=False
    )  # gp_design needs a grid
    out = run(
        capsys, fit, ["--config", f"{name}.yaml", *fast_overrides(path, tmp_path / "runs"), *QUICK[name]]
    )
    run_dir = out.strip().splitlines()[-1].removeprefix("run: ")
    run(capsys, predict, ["--ckpt", run_dir, "--input", str(path), "--output", str(tmp_path / "p.csv")])
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 80 and list(table.columns[:5]) == ["row", *TARGETS]
    assert np.isfinite(table[list(TARGETS)].to_numpy()).all()


@pytest.fixture(scope="module")
def gp_run(tmp_path_factory):
    """A GP on 150 rows of the shipped grid (the simulator's own axis, so verification is meaningful)."""
    tmp = tmp_path_factory.mktemp("gp")
    data = pd.read_excel(REPO / "data" / "ba_aibn_grid432.xlsx", sheet_name="compuesta")
    data.sample(150, random_state=0).to_csv(tmp / "grid150.csv", index=False)
    rc = fit.main(
        ["--config", "gp.yaml", *fast_overrides(tmp / "grid150.csv", tmp / "runs"), "--model.n_restarts", "0"]
    )
    assert rc == 0
    (run_dir,) = (tmp / "runs").glob("gp/version_*")
    data.drop(data.sample(150, random_state=0).index).head(12).to_csv(tmp / "new.csv", index=False)
    return run_dir, tmp / "new.csv"


@pytest.mark.slow
def test_gp_interval_through_predict(gp_run, tmp_path, capsys):
    run_dir, new = gp_run
    run(
        capsys,
        predict,
        [
            "--ckpt",
            str(run_dir),
            "--input",
            str(new),
            "--interval",
            "0.9",
            "--output",
            str(tmp_path / "p.csv"),
        ],
    )
    table, truth = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(new)
    for t in TARGETS:
        assert (table[f"{t}_lo"] <= table[t]).all() and (table[t] <= table[f"{t}_hi"]).all()
    inside = np.mean(
        [((truth[t] >= table[f"{t}_lo"]) & (truth[t] <= table[f"{t}_hi"])).mean() for t in TARGETS[:3]]
    )
    assert inside >= 0.75  # 12 unseen grid rows, 90 % intervals on three continuous targets
    run(
        capsys,
        predict,
        [
            "--ckpt",
            str(run_dir),
            "--input",
            str(new),
            "--interval",
            "0.5",
            "--output",
            str(tmp_path / "q.csv"),
        ],
    )
    narrow = pd.read_csv(tmp_path / "q.csv")
    assert (narrow["cBA_0_hi"] - narrow["cBA_0_lo"] <= table["cBA_0_hi"] - table["cBA_0_lo"] + 1e-12).all()


def test_predict_verify_and_plot_dir(gp_run, tmp_path, capsys):
    """--verify re-simulates each predicted recipe: the columns are those of the library's verify() for the
    predicted recipes, small for a good model on the simulator's own data; --plot-dir draws one PNG per row."""
    run_dir, new = gp_run
    out = run(
        capsys,
        predict,
        [
            "--ckpt",
            str(run_dir),
            "--input",
            str(new),
            "--verify",
            "--plot-dir",
            str(tmp_path / "plots"),
            "--output",
            str(tmp_path / "p.csv"),
        ],
    )
    table, inputs = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(new)
    from polyinv.models import load_model
    from polyinv.trust.domain import model_forward

    forward, _ = model_forward(load_model(run_dir))  # the CSV states no axis: inferred from Mn/Mw at fit time
    assert abs(forward.axis.log10m_min - 1.85) < 0.002 and abs(forward.axis.log10m_max - 6.6) < 0.002
    expected, _ = verify(
        inputs[list(MMD_COLUMNS)].to_numpy(), table[list(TARGETS)], inputs[list(SIDE_INPUTS)], forward
    )
    np.testing.assert_allclose(table["verify_hellinger"], expected["verify_hellinger"], rtol=1e-9)
    assert table["verify_hellinger"].median() < 0.05 and "median Hellinger distance" in out
    assert table["verify_rel_err_Mn"].abs().median() < 0.15
    plots = sorted((tmp_path / "plots").glob("verify_row*.png"))
    assert len(plots) == len(table) and all(p.read_bytes()[:4] == b"\x89PNG" for p in plots)


def test_interval_of_a_model_without_intervals_is_one_line(tmp_path, capsys):
    path = tmp_path / "d.csv"
    synthetic_frame(60, seed=1).to_csv(path, index=False)
    run(capsys, fit, ["--config", "rf.yaml", *fast_overrides(path, tmp_path / "r"), *QUICK["rf"]])
    rc = predict.main(
        [
            "--ckpt",
            str(tmp_path / "r" / "rf" / "version_0"),
            "--input",
            str(path),
            "--interval",
            "0.9",
            "--output",
            str(tmp_path / "p.csv"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "gives no intervals" in err[0] and not (tmp_path / "p.csv").exists()


def test_output_is_refused_before_any_work_when_it_is_the_input_or_exists(gp_run, tmp_path, capsys):
    run_dir, new = gp_run
    before = new.read_bytes()
    for output, message in ((new, "is the input file"), (tmp_path / "p.xlsx", "ending in .csv")):
        rc = predict.main(["--ckpt", str(run_dir), "--input", str(new), "--output", str(output)])
        assert rc == 2 and message in capsys.readouterr().err
    assert new.read_bytes() == before
    (tmp_path / "exists.csv").write_text("keep me")
    rc = predict.main(["--ckpt", str(run_dir), "--input", str(new), "--output", str(tmp_path / "exists.csv")])
    assert (
        rc == 2
        and "--overwrite" in capsys.readouterr().err
        and (tmp_path / "exists.csv").read_text() == "keep me"
    )


def test_a_network_that_did_not_fit_its_training_rows_says_so(tmp_path, capsys):
    """The networks' cheap self-check: R² per target on their own training rows in run.json, a warning line for
    each target below 0.9 (one L-BFGS step fits nothing yet)."""
    import json

    path = tmp_path / "mine.csv"
    synthetic_frame(80, seed=7).to_csv(path, index=False)
    assert fit.main(["--config", "mlp.yaml", *fast_overrides(path, tmp_path / "runs", epochs=1)]) == 0
    out, err = capsys.readouterr()
    run_dir = out.strip().splitlines()[-1].removeprefix("run: ")
    checks = json.loads((tmp_path / "runs" / "mlp" / "version_0" / "run.json").read_text())["fit_checks"]
    assert run_dir.endswith("version_0") and set(checks["train_r2"]) == set(TARGETS)
    low = [t for t, r2 in checks["train_r2"].items() if r2 < 0.9]
    assert low and len(checks["warnings"]) == len(low)
    for t in low:
        assert f"warning: training-fit check: {t} R² on the training rows" in err
