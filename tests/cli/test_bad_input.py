"""Bad input to the fit and predict CLIs (issue 3, acceptance 8).

Each case must exit non-zero with exactly one ``error: ...`` line on stderr that names the problem
(file, sheet, column, row, value, key), and must leave nothing behind: no ``version_*`` run folder
under the output root, no predictions file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from polyinv.cli import fit, predict
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

from tests.synthetic import REPO, fast_overrides, synthetic_frame, write_synthetic

MLP_CONFIG = str(REPO / "configs" / "mlp.yaml")
N_ROWS = 40


def one_error_line(err: str) -> str:
    """The single stderr line of a failed command: starts with 'error:' and is not a traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


def assert_no_run(root: Path, strict: bool = True) -> None:
    """Nothing left of the failed run: ``strict`` means the output root was never even created."""
    if strict:
        assert not root.exists(), f"{root} was created: {sorted(map(str, root.rglob('*')))}"
    else:
        assert not list(root.rglob("version_*")), sorted(map(str, root.rglob("*")))


def fit_fails(capsys, args: list[str]) -> str:
    rc = fit.main(args)
    out, err = capsys.readouterr()
    assert rc != 0, out
    assert "run:" not in out
    return one_error_line(err)


def fit_args(data: Path, root: Path, *extra: str, config: str = MLP_CONFIG) -> list[str]:
    return ["--config", config, *fast_overrides(data, root, epochs=1), *extra]


@pytest.fixture()
def good() -> pd.DataFrame:
    return synthetic_frame(N_ROWS, seed=5)


# ---------------------------------------------------------------------------------------------- fit: data files
def test_missing_data_file(tmp_path, capsys):
    missing = tmp_path / "no_such_file.xlsx"
    line = fit_fails(capsys, fit_args(missing, tmp_path / "out"))
    assert "no_such_file.xlsx" in line and "not found" in line
    assert_no_run(tmp_path / "out")


def test_wrong_sheet_names_sheet_and_lists_available(tmp_path, capsys, good):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        good.to_excel(writer, sheet_name="compuesta", index=False)
        good[list(TARGETS + MMD_COLUMNS)].to_excel(writer, sheet_name="mmd_raw_data", index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out", "--data.sheet", "datos"))
    assert "book.xlsx" in line and "'datos'" in line
    assert "'compuesta'" in line and "'mmd_raw_data'" in line
    assert_no_run(tmp_path / "out")


def test_missing_column(tmp_path, capsys, good):
    path = tmp_path / "no_mn.csv"
    good.drop(columns=["Mn"]).to_csv(path, index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert "no_mn.csv" in line and "missing column" in line and "Mn" in line
    assert_no_run(tmp_path / "out")


def test_empty_numeric_cell(tmp_path, capsys, good):
    path = tmp_path / "hole.csv"
    good.loc[3, "cBA_time"] = None  # data row 3 = file row 5 (header is row 1)
    good.to_csv(path, index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert (
        "hole.csv" in line
        and "'cBA_time'" in line
        and "data row 3 (line 5 of the file)" in line
        and "empty" in line
    )
    assert_no_run(tmp_path / "out")


def test_empty_cell_in_xlsx(tmp_path, capsys, good):
    path = tmp_path / "hole.xlsx"
    good.loc[0, "MMD42"] = None
    write_frame_xlsx(path, good)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert (
        "hole.xlsx" in line
        and "sheet compuesta" in line
        and "'MMD42'" in line
        and "data row 0 (line 2 of the file)" in line
    )
    assert_no_run(tmp_path / "out")


def test_text_in_numeric_cell(tmp_path, capsys, good):
    path = tmp_path / "text.csv"
    good = good.astype(object)
    good.loc[5, "temp"] = "70 C"  # data row 5 = file row 7
    good.to_csv(path, index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert (
        "text.csv" in line
        and "'temp'" in line
        and "data row 5 (line 7 of the file)" in line
        and "'70 C'" in line
    )
    assert_no_run(tmp_path / "out")


def test_mmd_with_99_columns(tmp_path, capsys, good):
    path = tmp_path / "mmd99.parquet"
    good.drop(columns=["MMD100"]).to_parquet(path, index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert "mmd99.parquet" in line and "99 columns" in line and "MMD100" in line
    assert_no_run(tmp_path / "out")


def test_too_few_rows_for_the_split(tmp_path, capsys, good):
    path = tmp_path / "tiny.csv"
    good.head(5).to_csv(path, index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert "tiny.csv" in line and "5 rows" in line and "split" in line
    assert_no_run(tmp_path / "out")


def test_header_only_file(tmp_path, capsys, good):
    path = tmp_path / "header.csv"
    good.head(0).to_csv(path, index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert "header.csv" in line and "no data rows" in line
    assert_no_run(tmp_path / "out")


# ---------------------------------------------------------------------------------------------- fit: config
@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bad_input") / "ok.csv"
    write_synthetic(path, n=N_ROWS, seed=6)
    return path


def test_unknown_key_on_command_line(tmp_path, capsys, data_csv):
    line = fit_fails(capsys, fit_args(data_csv, tmp_path / "out", "--trainer.max_epoch", "5"))
    assert "unknown config key" in line and "'trainer.max_epoch'" in line  # not taken as --trainer.max_epochs
    assert_no_run(tmp_path / "out")


def test_unknown_key_in_yaml(tmp_path, capsys, data_csv):
    config = tmp_path / "typo.yaml"
    config.write_text(
        re.sub(r"(?m)^  max_epochs:", "  max_epoch:", (REPO / "configs" / "mlp.yaml").read_text())
    )
    assert "max_epoch:" in config.read_text()
    line = fit_fails(capsys, fit_args(data_csv, tmp_path / "out", config=str(config)))
    assert "typo.yaml" in line and "unknown config key" in line and "'trainer.max_epoch'" in line
    assert_no_run(tmp_path / "out")


def test_unknown_top_level_key_in_yaml(tmp_path, capsys, data_csv):
    config = tmp_path / "extra.yaml"
    config.write_text((REPO / "configs" / "mlp.yaml").read_text() + "optimiser: {lr: 0.1}\n")
    line = fit_fails(capsys, fit_args(data_csv, tmp_path / "out", config=str(config)))
    assert "extra.yaml" in line and "'optimiser.lr'" in line
    assert_no_run(tmp_path / "out")


def test_missing_config_file(tmp_path, capsys, data_csv):
    line = fit_fails(capsys, fit_args(data_csv, tmp_path / "out", config=str(tmp_path / "nope.yaml")))
    assert "nope.yaml" in line and "not found" in line
    assert_no_run(tmp_path / "out")


@pytest.mark.parametrize(
    ("override", "words"),
    [
        (["--model.kind", "transformer"], ["model.kind", "'transformer'", "mlp", "cnn", "random_forest"]),
        (["--model.activation", "sigmoidal"], ["model.activation", "'sigmoidal'", "relu"]),
        (["--model.lr", "fast"], ["model.lr", "float", "'fast'"]),
        (["--trainer.max_epochs", "many"], ["trainer.max_epochs", "int", "'many'"]),
        (["--trainer.max_epochs", "0"], ["trainer.max_epochs", "at least 1"]),
        (["--data.batch_size", "big"], ["data.batch_size", "int", "'big'"]),
        (["--data.feature_set", "all"], ["data.feature_set", "'all'", "composite"]),
        (["--data.transforms", "{Mn: sqrt}"], ["data.transforms", "'sqrt'", "log"]),
        (["--checkpoint.monitor", "val/acc"], ["checkpoint.monitor", "'val/acc'", "val/loss"]),
        (["--early_stopping.mode", "sideways"], ["early_stopping.mode", "'sideways'"]),
        (["--checkpoint.every_n_epochs", "0"], ["checkpoint.every_n_epochs", ">= 1"]),
        (
            ["--data.val_fraction", "0", "--checkpoint.monitor", "val/loss"],
            ["data.val_fraction", "validation"],
        ),
        (["--data.batch_size", "-1"], ["data.batch_size", ">= 0", "-1"]),
        (
            ["--model.optimizer", "lbfgs", "--data.batch_size", "4"],
            ["model.optimizer lbfgs", "data.batch_size 4", "training rows", "0, full batch"],
        ),
        (
            ["--model.optimizer", "lbfgs", "--model.dropout", "0.1"],
            ["model.dropout 0.1", "lbfgs", "set it to 0"],
        ),
        (["--model.weight_decay", "0.01"], ["unknown config key 'model.weight_decay'"]),
        (["--seed", "lucky"], ["seed", "'lucky'"]),
        (["--model", "mlp"], ["model", "'mlp'"]),
        (["stray"], ["unrecognized arguments: stray"]),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_bad_value(tmp_path, capsys, data_csv, override, words):
    line = fit_fails(capsys, fit_args(data_csv, tmp_path / "out", *override))
    for word in words:
        assert word in line, (word, line)
    assert_no_run(tmp_path / "out")


def test_bad_trainer_value_found_by_lightning_leaves_no_run(tmp_path, capsys, data_csv):
    """Lightning rejects the accelerator only when the Trainer is built: the fresh run folder is removed."""
    line = fit_fails(capsys, fit_args(data_csv, tmp_path / "out", "--trainer.accelerator", "quantum"))
    assert "accelerator" in line and "quantum" in line
    assert_no_run(tmp_path / "out", strict=False)


def test_log_transform_of_zero_leaves_no_run(tmp_path, capsys, good):
    path = tmp_path / "zeros.csv"
    good["cBA_time"] = 0.0
    good.to_csv(path, index=False)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out", "--data.transforms", "{cBA_time: log}"))
    assert "zeros.csv" in line and "'cBA_time'" in line and "log" in line
    assert_no_run(tmp_path / "out", strict=False)


@pytest.mark.slow
def test_cli_subprocess_prints_exactly_one_line(tmp_path, data_csv):
    """The real ``python -m polyinv.fit`` (the documented entry): one ``error:`` line, no traceback or warning, exit status 2.

    The accelerator is rejected late (by Lightning, after the data were read, scaled and the run
    folder made), so this also checks that nothing printed on the way pollutes stderr and that
    the fresh run folder is removed.
    """
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyinv.fit",
            *fit_args(data_csv, tmp_path / "out", "--trainer.accelerator", "quantum"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert "accelerator" in line and "quantum" in line
    assert "run:" not in proc.stdout
    assert_no_run(tmp_path / "out", strict=False)


# ---------------------------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def composite_run(tmp_path_factory, data_csv) -> Path:
    """A composite MLP run (1 epoch) to feed bad inference inputs to."""
    root = tmp_path_factory.mktemp("bad_input_runs")
    assert fit.main(fit_args(data_csv, root)) == 0
    (run_dir,) = root.glob("*/version_*")
    return run_dir


def predict_fails(capsys, tmp_path: Path, ckpt, data: Path, *extra: str) -> str:
    output = tmp_path / "preds" / "out.csv"
    before = set(tmp_path.rglob("*"))
    rc = predict.main(["--ckpt", str(ckpt), "--input", str(data), "--output", str(output), *extra])
    out, err = capsys.readouterr()
    assert rc != 0, out
    assert not output.exists()
    assert not set(tmp_path.rglob("*")) - before - {output.parent}, "predict left files behind"
    return one_error_line(err)


def test_predict_composite_checkpoint_with_mmd_only_file(tmp_path, capsys, composite_run, good):
    path = tmp_path / "mmd_only.csv"
    good[list(MMD_COLUMNS)].to_csv(path, index=False)
    line = predict_fails(capsys, tmp_path, composite_run / "best.ckpt", path)
    assert "mmd_only.csv" in line and "missing column" in line
    for column in SIDE_INPUTS:
        assert column in line
    assert "the checkpoint expects" in line


def test_predict_mmd_raw_sheet_with_composite_checkpoint(tmp_path, capsys, composite_run, good):
    """The study's mmd_raw_data sheet has no cBA_time/Mn/Mw: a composite model cannot use it."""
    path = tmp_path / "study.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        good.to_excel(writer, sheet_name="compuesta", index=False)
        good[list(TARGETS + MMD_COLUMNS)].to_excel(writer, sheet_name="mmd_raw_data", index=False)
    line = predict_fails(capsys, tmp_path, composite_run, path, "--sheet", "mmd_raw_data")
    assert "study.xlsx" in line and "mmd_raw_data" in line and "cBA_time" in line


def test_predict_99_mmd_columns(tmp_path, capsys, composite_run, good):
    path = tmp_path / "mmd99.csv"
    good.drop(columns=["MMD100"]).to_csv(path, index=False)
    line = predict_fails(capsys, tmp_path, composite_run, path)
    assert "mmd99.csv" in line and "99 columns" in line and "MMD100" in line


def test_predict_text_in_input(tmp_path, capsys, composite_run, good):
    path = tmp_path / "text.csv"
    good = good.astype(object)
    good.loc[2, "MMD7"] = "?"
    good.to_csv(path, index=False)
    line = predict_fails(capsys, tmp_path, composite_run, path)
    assert "'MMD7'" in line and "data row 2 (line 4 of the file)" in line and "'?'" in line


def test_predict_wrong_sheet(tmp_path, capsys, composite_run, good):
    path = tmp_path / "book.xlsx"
    write_frame_xlsx(path, good)
    line = predict_fails(capsys, tmp_path, composite_run, path, "--sheet", "Hoja1")
    assert "'Hoja1'" in line and "'compuesta'" in line


def test_predict_missing_checkpoint(tmp_path, capsys, data_csv):
    line = predict_fails(capsys, tmp_path, tmp_path / "gone" / "best.ckpt", data_csv)
    assert "best.ckpt" in line and "not found" in line


def test_predict_folder_without_checkpoint(tmp_path, capsys, data_csv):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    line = predict_fails(capsys, tmp_path, empty, data_csv)
    assert "empty_run" in line and "best.ckpt" in line


def test_predict_not_a_checkpoint(tmp_path, capsys, data_csv):
    fake = tmp_path / "fake.ckpt"
    fake.write_text("not a checkpoint")
    line = predict_fails(capsys, tmp_path, fake, data_csv)
    assert "fake.ckpt" in line


def test_predict_missing_input(tmp_path, capsys, composite_run):
    line = predict_fails(capsys, tmp_path, composite_run, tmp_path / "absent.csv")
    assert "absent.csv" in line and "not found" in line


def test_predict_missing_argument(capsys):
    rc = predict.main(["--input", "x.csv"])
    assert rc != 0
    line = one_error_line(capsys.readouterr().err)
    assert "--ckpt" in line


def write_frame_xlsx(path: Path, frame: pd.DataFrame, sheet: str = "compuesta") -> None:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name=sheet, index=False)


def test_semicolon_csv_gets_a_delimiter_hint(tmp_path, capsys, good):
    path = tmp_path / "semicolons.csv"
    good.to_csv(path, index=False, sep=";")
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert "semicolons.csv" in line and "separated by ';'" in line
    assert_no_run(tmp_path / "out")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_duplicated_header_is_refused_naming_the_column(tmp_path, capsys, good, suffix):
    """A ×10 copy of Mn ahead of the real one would be read silently by pandas (first one wins)."""
    doubled = pd.concat([good[["Mn"]] * 10, good], axis=1)
    path = tmp_path / f"doubled{suffix}"
    if suffix == ".csv":
        doubled.to_csv(path, index=False)
    else:
        write_frame_xlsx(path, doubled)
    line = fit_fails(capsys, fit_args(path, tmp_path / "out"))
    assert f"doubled{suffix}" in line and "'Mn' appears more than once" in line
    assert_no_run(tmp_path / "out")
