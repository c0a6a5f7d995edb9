"""The design-aware posterior bound (benchmarks/ceiling.py, python -m benchmarks ceiling) on small grids."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from polyinv.errors import PolyinvError
from polyinv.schema import TARGETS
from polyinv.sim import lhs_design, simulate_many
from polyinv.sim.designs import RECIPE_FIELDS
from polyinv.sim.io import write_dataset

from benchmarks import ceiling as ce

LEVELS = ([0.5, 1.75, 3.0], [0.0025, 0.01, 0.02], [60.0, 70.0, 80.0])


def _grid(noise_chains=None):
    recipes = pd.DataFrame(list(itertools.product(*LEVELS)), columns=list(RECIPE_FIELDS))
    return simulate_many(recipes, noise_chains=noise_chains, seed=4, progress=False)


@pytest.fixture(scope="module")
def small_grid():
    return _grid()


def test_noise_free_rows_calibrate_to_the_floor(small_grid):
    scales = ce.calibrate(small_grid)
    assert scales.cba_time_rel == scales.log_mn == scales.log_mw == ce.FLOOR
    assert np.all(scales.sqrt_mmd == ce.FLOOR)


def test_noise_widths_grow_with_fewer_chains():
    few, many = ce.calibrate(_grid(noise_chains=300)), ce.calibrate(_grid(noise_chains=30_000))
    assert few.log_mn > 3 * many.log_mn > 3 * ce.FLOOR
    assert np.median(few.sqrt_mmd) > 3 * np.median(many.sqrt_mmd)


def test_level_posterior_finds_held_out_grid_recipes(small_grid):
    test_rows = [4, 13, 22]
    train = small_grid.drop(index=test_rows)
    candidates = ce.level_candidates(train)
    assert len(candidates) == 27  # the held-out recipes are combinations of levels the training rows hold
    pred, ess = ce.posterior_mean(
        small_grid.iloc[test_rows], simulate_many(candidates, progress=False), ce.calibrate(train)
    )
    np.testing.assert_allclose(pred, small_grid.iloc[test_rows][list(TARGETS)].to_numpy(), rtol=1e-6)
    assert np.allclose(ess, 1.0)
    assert (
        ce.level_candidates(lhs_design(40, seed=0)) is None
    )  # 40^3 combinations: a continuous design, no grid


def test_ceiling_command_writes_its_table(tmp_path):
    path = write_dataset(_grid(noise_chains=2000), tmp_path / "grid27.xlsx", metadata=[("design", "grid27")])
    frame = ce.bound_table(path, [0, 1], tmp_path / "out", progress=lambda _: None)
    assert list(frame.seed) == [0, 1] and (frame.global_r2 > 0.5).all()
    text = (tmp_path / "out" / "ceiling.md").read_text()
    assert "knows the grid" in text and "27 candidate recipes" in text and "| 2 |" in text
    lhs = write_dataset(
        simulate_many(lhs_design(40, seed=2), progress=False), tmp_path / "lhs.xlsx", metadata=[]
    )
    with pytest.raises(PolyinvError, match="needs a grid design"):
        ce.bound_table(lhs, [0], tmp_path / "out2", progress=lambda _: None)
    assert not (tmp_path / "out2" / "ceiling.md").exists()


def test_box_posterior_needs_no_design(tmp_path):
    """--box: candidates spread over the training rows' box (not the design's levels), noise widths tempered."""
    noisy = simulate_many(lhs_design(40, seed=2), noise_chains=2000, seed=1, progress=False)
    box = ce.box_candidates(noisy, 256)
    for field in ("cBA_0", "cAIBN_0", "temp"):
        assert noisy[field].min() <= box[field].min() and box[field].max() <= noisy[field].max()
        assert box[field].max() - box[field].min() > 0.8 * (noisy[field].max() - noisy[field].min())
    path = write_dataset(noisy, tmp_path / "lhs.xlsx", metadata=[])
    frame = ce.bound_table(path, [0], tmp_path / "out", progress=lambda _: None, box=True, box_size=1024)
    text = (tmp_path / "out" / "ceiling_box.md").read_text()
    assert (
        "without the design" in text
        and "1,024 simulated recipes" in text
        and "1024 candidate recipes" in text
    )
    assert frame.loc[0, "r2_cBA_0"] > 0.8
    assert not (tmp_path / "out" / "ceiling.md").exists()
