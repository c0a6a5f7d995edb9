"""Shared fixtures: small synthetic data files the tests make themselves, and a fast training config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_frame, write_synthetic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.csv"
    write_synthetic(path, n=160, seed=0)
    return path


@pytest.fixture(scope="session")
def synthetic_xlsx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.xlsx"
    write_synthetic(path, n=80, seed=1)
    return path


@pytest.fixture()
def frame():
    return synthetic_frame(120, seed=2)


def fast_overrides(data_path: Path, root: Path, epochs: int = 2) -> list[str]:
    """Command-line overrides for a tiny, quiet CPU run."""
    return [
        "--data.path", str(data_path), "--data.sheet", "null", "--output.root", str(root),
        "--trainer.max_epochs", str(epochs), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]
