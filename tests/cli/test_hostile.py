"""A hostile round against fit and predict: malicious and broken model files, signals, runs and inputs that
must never be destroyed, values that would train NaN models. Every case: a non-zero exit, one line on
stderr, no traceback, files untouched."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polyinv.cli import fit, predict
from polyinv.metrics import write_json

from tests.cli.helpers import fails, snapshot
from tests.synthetic import fast_overrides, synthetic_frame


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "ok.csv"
    synthetic_frame(60, seed=9).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data):
    """(MLP run folder, random-forest run folder)."""
    root = tmp_path_factory.mktemp("hostile_runs")
    assert fit.main(["--config", "mlp.yaml", *fast_overrides(data, root, epochs=2)]) == 0
    assert (
        fit.main(
            [
                "--config",
                "rf.yaml",
                *fast_overrides(data, root),
                "--model.search",
                "false",
                "--model.n_estimators",
                "5",
            ]
        )
        == 0
    )
    return root / "mlp" / "version_0", root / "rf" / "version_0"


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.slow
def test_1_model_files_never_run_code(tmp_path, capsys, data, monkeypatch, runs):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "model.joblib").write_bytes(pickle.dumps(Evil()))
    line = fails(capsys, predict, ["--ckpt", "evil/model.joblib", "--input", str(data)])
    assert "joblib" in line and not (tmp_path / "PWNED").exists()
    (tmp_path / "evil" / "best.ckpt").write_bytes(pickle.dumps(Evil()))  # a pickle under a checkpoint's name
    fails(capsys, predict, ["--ckpt", "evil/best.ckpt", "--input", str(data)])
    assert not (tmp_path / "PWNED").exists()
    ensemble = tmp_path / "ens"
    ensemble.mkdir()
    (ensemble / "ensemble.json").write_text(
        json.dumps({"polyinv_kind": "ensemble", "members": ["../outside.ckpt"]})
    )
    line = fails(capsys, predict, ["--ckpt", str(ensemble), "--input", str(data)])
    assert "lies outside the ensemble folder" in line


@pytest.mark.slow
def test_2_a_sigtermed_run_exits_143_and_keeps_last_ckpt(tmp_path, data):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyinv",
            "fit",
            "--config",
            "mlp.yaml",
            *fast_overrides(data, tmp_path, epochs=100000),
            "--checkpoint.every_n_epochs",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = tmp_path / "mlp" / "version_0" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    assert last.exists() and "run:" not in out


def test_3_output_that_is_the_input_is_refused(tmp_path, capsys, data, runs):
    before = data.read_bytes()
    line = fails(capsys, predict, ["--ckpt", str(runs[0]), "--input", str(data), "--output", str(data)])
    assert "is the input file" in line and data.read_bytes() == before


def test_4_resume_of_a_forest_run_is_refused_untouched(capsys, runs):
    before = snapshot(runs[1])
    line = fails(capsys, fit, ["--resume", str(runs[1])])
    assert "only network runs resume" in line and snapshot(runs[1]) == before


def test_5_a_huge_finite_value_is_refused_and_metrics_are_valid_json(tmp_path, capsys):
    frame = synthetic_frame(60, seed=9)
    frame.loc[4, "MMD50"] = 1e308
    frame.to_csv(tmp_path / "huge.csv", index=False)
    line = fails(
        capsys, fit, ["--config", "rf.yaml", *fast_overrides(tmp_path / "huge.csv", tmp_path / "out")]
    )
    assert "'MMD50'" in line and "data row 4 (line 6 of the file)" in line and "overflows" in line
    assert not (tmp_path / "out").exists()
    write_json({"r2": float("nan"), "mse": [float("inf"), 1.0]}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"r2": None, "mse": [None, 1.0]}


@pytest.mark.parametrize("name", ["../escaped", "/tmp/absolute", "a/b"])
def test_6_a_run_name_is_a_plain_folder_name(tmp_path, capsys, data, name):
    line = fails(
        capsys, fit, ["--config", "mlp.yaml", *fast_overrides(data, tmp_path / "out"), "--name", name]
    )
    assert "plain folder name" in line and not (tmp_path / "out").exists()


def test_8_a_failed_resume_leaves_the_run_as_it_was(capsys, runs):
    before = snapshot(runs[0])
    line = fails(capsys, fit, ["--resume", str(runs[0]), "--trainer.max_epochs", "1"])
    assert "has trained 2 epochs" in line and snapshot(runs[0]) == before


def test_9_broken_files_are_one_line_errors(tmp_path, capsys, data, runs):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    fails(capsys, predict, ["--ckpt", str(tmp_path / "empty.ckpt"), "--input", str(data)])
    assert "is a folder" in fails(capsys, fit, ["--config", str(tmp_path)])
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    assert "binary.yaml" in fails(capsys, fit, ["--config", str(tmp_path / "binary.yaml")])
    (tmp_path / "outdir").mkdir()
    assert "is a folder" in fails(
        capsys, predict, ["--ckpt", str(runs[0]), "--input", str(data), "--output", str(tmp_path / "outdir")]
    )
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root ignores permissions: nothing to test then
            assert "not writable" in fails(
                capsys,
                predict,
                ["--ckpt", str(runs[0]), "--input", str(data), "--output", str(locked / "p.csv")],
            )
    finally:
        locked.chmod(0o700)
    import torch

    checkpoint = torch.load(runs[0] / "best.ckpt", weights_only=True)
    checkpoint["polyinv_kind"] = "cnn"  # an MLP's weights under the CNN's tag
    torch.save(checkpoint, tmp_path / "mislabelled.ckpt")
    assert "does not match a cnn model" in fails(
        capsys, predict, ["--ckpt", str(tmp_path / "mislabelled.ckpt"), "--input", str(data)]
    )
    copy = tmp_path / "truncated_run"
    copy.mkdir()
    (copy / "config.yaml").write_bytes((runs[0] / "config.yaml").read_bytes())
    (copy / "last.ckpt").write_bytes((runs[0] / "last.ckpt").read_bytes()[:1000])
    before = snapshot(copy)
    assert "cannot resume from it" in fails(capsys, fit, ["--resume", str(copy), "--trainer.max_epochs", "5"])
    assert snapshot(copy) == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"time": -5.0}, ["'time'", "negative value"]),
        ({"Mn": 1e9}, ["Mw", "below Mn"]),
        ({"cBA_0": -1.0}, ["'cBA_0'", "negative value"]),
    ],
)
def test_10_impossible_rows_are_refused_naming_the_row(tmp_path, capsys, change, words):
    frame = synthetic_frame(60, seed=9)
    for column, value in change.items():
        frame.loc[7, column] = value
    frame.to_csv(tmp_path / "bad.csv", index=False)
    line = fails(
        capsys, fit, ["--config", "mlp.yaml", *fast_overrides(tmp_path / "bad.csv", tmp_path / "out")]
    )
    assert all(w in line for w in words) and "data row 7 (line 9 of the file)" in line


def test_10_untrainable_settings_and_outputs_are_refused(tmp_path, capsys, data, runs):
    for epochs in ("0", "-1"):
        line = fails(
            capsys,
            fit,
            ["--config", "mlp.yaml", *fast_overrides(data, tmp_path / "out"), "--trainer.max_epochs", epochs],
        )
        assert "trainer.max_epochs must be at least 1" in line
    assert "ending in .csv" in fails(
        capsys, predict, ["--ckpt", str(runs[0]), "--input", str(data), "--output", str(tmp_path / "p.xlsx")]
    )
    frame = synthetic_frame(60, seed=9)
    frame["temp"] = frame["temp"] > 70  # a bool column read as numbers would train on 0/1
    frame.to_parquet(tmp_path / "bool.parquet", index=False)
    assert "true/false" in fails(
        capsys, fit, ["--config", "mlp.yaml", *fast_overrides(tmp_path / "bool.parquet", tmp_path / "out")]
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.xlsx").exists()


def test_negative_mmd_values_are_used_with_a_warning_naming_the_rows(tmp_path):
    from polyinv.data.io import read_table
    from polyinv.errors import PolyinvWarning, _format_warning
    from polyinv.schema import COMPOSITE_COLUMNS

    frame = synthetic_frame(60, seed=9)
    frame.loc[[3, 11], "MMD2"] = -1e-6  # e.g. a baseline-corrected lab trace
    frame.to_csv(tmp_path / "neg.csv", index=False)
    with pytest.warns(PolyinvWarning) as caught:
        table = read_table(tmp_path / "neg.csv", COMPOSITE_COLUMNS)
    assert table.loc[3, "MMD2"] == -1e-6  # used as given
    message = str(caught[0].message)
    assert "negative MMD values in 2 data row(s) (3, 11); they are used as given" in message
    assert (
        _format_warning(message, PolyinvWarning, "x.py", 1) == f"warning: {message}\n"
    )  # what the CLI prints
