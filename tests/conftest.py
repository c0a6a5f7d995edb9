"""Shared fixtures: small synthetic data files the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import synthetic_frame, write_synthetic


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


def pytest_collection_modifyitems(items):
    """Slow tests first (a stable sort): under pytest-xdist the long calibrations start at once rather than
    last, so the run ends when the work does."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
