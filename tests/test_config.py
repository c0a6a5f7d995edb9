"""Config reading: exponent-only numbers (``1e-3``) are numbers in YAML files and on the command line."""

from __future__ import annotations

import pytest

from polyinv.config import parse_overrides, parse_value, parse_yaml, resolve


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("1E+3", 1000.0), ("-2.5e-3", -2.5e-3), ("1.0e-5", 1e-5), ("3", 3), ("0.5", 0.5),
     ("1e", "1e"), ("e5", "e5"), ("[1e-3, 2]", [1e-3, 2])],
)
def test_exponent_floats_are_numbers(text, value):
    parsed = parse_yaml(text)
    assert parsed == value and type(parsed) is type(value)


def test_config_file_and_override_with_exponents(tmp_path, synthetic_csv):
    path = tmp_path / "run.yaml"
    path.write_text(f"data:\n  path: {synthetic_csv}\nmodel:\n  kind: mlp\n  lr: 1e-3\n")
    config = resolve(path, parse_overrides(["--model.weight_decay", "1e-4"]))  # validated: numbers, not text
    assert config["model"]["lr"] == pytest.approx(1e-3)
    assert config["model"]["weight_decay"] == pytest.approx(1e-4)


def test_text_keys_keep_the_typed_text():
    assert parse_overrides(["--data.sheet", "1e5", "--name", "2024"]) == {"data.sheet": "1e5", "name": "2024"}


def test_parse_value_is_the_one_value_parser_of_overrides_and_benchmark_set():
    assert parse_value("model.lr", "1e-3") == pytest.approx(1e-3)
    assert parse_value("data.sheet", "1e5") == "1e5" and parse_value("data.sheet", "null") is None
    assert parse_value("model.widths", "[1,") == "[1,"  # not YAML: stays text (then refused by validation)


def test_noisy_gp_config_is_the_gp_config_with_its_five_noise_settings():
    """configs/gp_noisy.yaml's benchmark ran as configs/gp.yaml with --set model.time_model=plain
    model.nu=1.5 model.mmd_transform=sqrt model.log_dispersity=true model.clip_outputs=true."""
    from conftest import REPO

    gp = resolve(REPO / "configs" / "gp.yaml", {})
    noisy = resolve(REPO / "configs" / "gp_noisy.yaml", {})
    as_gp = resolve(REPO / "configs" / "gp_noisy.yaml", {"name": "gp", "model.time_model": "censored", "model.nu": 2.5})
    for key in ("mmd_transform", "log_dispersity", "clip_outputs"):  # configs/gp.yaml leaves them at the model's defaults
        del as_gp["model"][key]
        assert key not in gp["model"]
    assert gp == as_gp
    model = noisy["model"]
    assert (noisy["name"], model["time_model"], model["nu"], model["mmd_transform"], model["log_dispersity"],
            model["clip_outputs"]) == ("gp_noisy", "plain", 1.5, "sqrt", True, True)


def test_design_gp_config_is_the_noisy_gp_config_answering_on_the_designs_levels():
    """configs/gp_design.yaml = configs/gp_noisy.yaml + model.design_prior: true, nothing else."""
    from conftest import REPO

    noisy = resolve(REPO / "configs" / "gp_noisy.yaml", {})
    design = resolve(REPO / "configs" / "gp_design.yaml", {})
    assert design["name"] == "gp_design" and design["model"].pop("design_prior") is True
    assert "design_prior" not in noisy["model"]
    assert {**design, "name": "gp_noisy"} == noisy
