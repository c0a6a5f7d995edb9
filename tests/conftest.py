"""Shared fixtures: small synthetic data files the tests make themselves."""

from __future__ import annotations

import os
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


#: tests of several minutes each (a calibration over every candidate parameter): run first of all
LONGEST = ("test_calibration_recovers_parameters_where_the_model_is_exact",)


def pytest_collection_modifyitems(items):
    """The longest tests, then the other slow ones, then the rest (a stable sort): under pytest-xdist's
    worksteal the first process starts the longest test at once while the other works through the rest, so the
    run ends when its work does."""
    items.sort(key=lambda item: (item.name not in LONGEST, item.get_closest_marker("slow") is None))


def pytest_configure(config):
    """Each pytest-xdist worker computes on one BLAS/OpenMP and one torch thread: two workers on two cores with
    two threads each would oversubscribe the cores (a test that needs more sets them itself)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        torch.set_num_threads(1)
