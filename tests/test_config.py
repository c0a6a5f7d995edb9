"""Configuration on jsonargparse: shipped configs, overrides, one-line errors, help and print_config."""

from __future__ import annotations

import pytest

from polyinv.config import CONFIG_DIR, parse
from polyinv.errors import PolyinvError

SHIPPED = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_resolves_by_its_bare_name_from_any_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: --config mlp.yaml finds the shipped one
    config, _ = parse(["--config", name])
    assert config["name"] == name.removesuffix(".yaml")
    assert config["data"]["sheet"] is None  # an .xlsx reads compuesta; a .csv or .parquet trains unchanged
    assert set(config) == {
        "name",
        "seed",
        "model_seed",
        "data",
        "model",
        "trainer",
        "early_stopping",
        "checkpoint",
        "output",
        "trust",
        "tune",
    }
    assert config["trust"] == {"forward": "auto", "calibration": None, "refine": "auto", "refine_rows": 60}


def test_exponent_numbers_and_dotted_overrides(tmp_path, synthetic_csv):
    path = tmp_path / "run.yaml"
    path.write_text(f"data:\n  path: {synthetic_csv}\nmodel:\n  kind: mlp\n  lr: 1e-3\n")
    config, _ = parse(
        [
            "--config",
            str(path),
            "--trainer.max_epochs",
            "7",
            "--model.widths",
            "[8, 4]",
            "--data.sheet",
            "2024",
        ]
    )
    assert config["model"]["lr"] == pytest.approx(1e-3) and isinstance(config["model"]["lr"], float)
    assert config["trainer"]["max_epochs"] == 7 and list(config["model"]["widths"]) == [8, 4]
    assert config["data"]["sheet"] == "2024"  # a sheet named like a number keeps its text
    assert config["name"] == "run"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.nonsense", "1"], "model.nonsense"),
        (["--model.widths", "wide"], "model.widths"),
        (["--model.time_model", "stop_rule"], "model.time_model"),
        (["--data.feature_set", "all"], "data.feature_set"),
        (["--trainer.max_epochs", "many"], "trainer.max_epochs"),
        (["--checkpoint.monitor", "val/accuracy"], "checkpoint.monitor"),
        (["--model.kind", "svm"], "model.kind 'svm' unknown"),
        (["--name", "../escaped"], "a run name is a plain folder name"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_key(args, message):
    with pytest.raises(PolyinvError) as info:
        parse(["--config", "mlp.yaml", *args])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_key_in_a_config_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  kind: gaussian_process\n  widths: [8]\n")  # a network setting for a GP
    with pytest.raises(PolyinvError, match="widths"):
        parse(["--config", str(path)])
    with pytest.raises(PolyinvError, match="config file not found"):
        parse(["--config", "nothere.yaml"])


def test_model_settings_follow_the_configs_model_kind(capsys):
    with pytest.raises(SystemExit):
        parse(["--config", "gp.yaml", "--help"])
    text = capsys.readouterr().out
    assert "--model.nu" in text and "--model.widths" not in text and "type: float" in text
    with pytest.raises(SystemExit):
        parse(["--config", "mlp.yaml", "--help"])
    text = capsys.readouterr().out
    assert "--model.widths" in text and "--data.path" in text and "--trainer.max_epochs" in text


def test_print_config_prints_the_resolved_config(capsys):
    with pytest.raises(SystemExit):
        parse(["--config", "cnn.yaml", "--seed", "3", "--print_config"])
    text = capsys.readouterr().out
    assert "seed: 3" in text and "kind: cnn" in text and "feature_width: 8" in text


def test_noisy_gp_config_is_the_gp_config_with_its_noise_settings():
    """configs/gp_noisy.yaml = configs/gp.yaml with time plain, nu 1.5, sqrt MMD, log(Mw/Mn), clipped outputs;
    configs/gp_design.yaml = gp_noisy + design_prior."""
    gp, _ = parse(["--config", "gp.yaml"])
    noisy, _ = parse(["--config", "gp_noisy.yaml"])
    design, _ = parse(["--config", "gp_design.yaml"])
    as_gp, _ = parse(
        [
            "--config",
            "gp_noisy.yaml",
            "--name",
            "gp",
            "--model.time_model",
            "censored",
            "--model.nu",
            "2.5",
            "--model.mmd_transform",
            "none",
            "--model.log_dispersity",
            "false",
            "--model.clip_outputs",
            "false",
        ]
    )
    assert {**as_gp, "tune": gp["tune"]} == gp  # gp.yaml also ships a search space
    assert {**design, "name": "gp_noisy", "model": {**design["model"], "design_prior": False}} == noisy
    assert design["model"]["design_prior"] is True
