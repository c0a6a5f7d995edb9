"""Grid-wide checks: moments from the 100 points, calibration targets, physics (acceptance 3-5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polyinv.schema import COMPOSITE_COLUMNS, MMD_COLUMNS
from polyinv.sim import (
    DELTA_LOG10M,
    EXTRA_COLUMNS,
    grid_design,
    lhs_design,
    moments_from_mmd,
    simulate,
    simulate_many,
)
from polyinv.sim.designs import GRID_CAIBN


@pytest.fixture(scope="module")
def grid_run() -> pd.DataFrame:
    return simulate_many(grid_design(), extra_columns=True, progress=False)


def test_columns_are_compuesta_order(grid_run):
    assert list(grid_run.columns) == list(COMPOSITE_COLUMNS) + list(EXTRA_COLUMNS)
    plain = simulate_many(grid_design().head(3), progress=False)
    assert list(plain.columns) == list(COMPOSITE_COLUMNS)


def test_mmd_nonnegative_normalised_and_moments_match(grid_run):
    mmd = grid_run[list(MMD_COLUMNS)].to_numpy()
    assert np.all(mmd >= 0)
    np.testing.assert_allclose(mmd.sum(axis=1) * DELTA_LOG10M, 1.0, rtol=1e-12)
    assert grid_run["mmd_coverage"].min() > 0.995  # the grid holds the whole distribution
    mn, mw = moments_from_mmd(mmd)
    np.testing.assert_allclose(mn, grid_run["Mn"], rtol=0.05)
    np.testing.assert_allclose(mw, grid_run["Mw"], rtol=0.05)
    # the tails are empty at both ends of the grid (margin)
    assert mmd[:, -5:].max() < 1e-6 * mmd.max()


def test_mcr_fraction_at_70C_matches_willemse():
    cba = np.linspace(0.5, 2.5, 9)
    rows = [(c, a, 70.0) for c in cba for a in GRID_CAIBN]
    res = simulate_many(
        pd.DataFrame(rows, columns=["cBA_0", "cAIBN_0", "temp"]),
        extra_columns=True,
        progress=False,
        t_max=10.0,
    )
    assert res["mcr_fraction"].between(0.70, 0.90).all(), res["mcr_fraction"].describe()


def test_fraction_reaching_90_percent(grid_run):
    reached = grid_run["reached_x_stop"]
    assert 0.15 <= reached.mean() <= 0.25
    assert (grid_run.loc[reached, "time"] < 3600).all()
    np.testing.assert_allclose(grid_run.loc[reached, "conversion"], 0.9, atol=1e-9)
    assert (grid_run.loc[~reached, "time"] == 3600).all()
    assert (grid_run.loc[~reached, "conversion"] < 0.9).all()


def test_dispersity_range(grid_run):
    pdi = grid_run["Mw"] / grid_run["Mn"]
    assert pdi.between(1.5, 4.0).all()


def test_lhs_inside_domain_fits_grid():
    run = simulate_many(lhs_design(300, seed=7), extra_columns=True, progress=False)
    mn, mw = moments_from_mmd(run[list(MMD_COLUMNS)].to_numpy())
    np.testing.assert_allclose(mn, run["Mn"], rtol=0.05)
    np.testing.assert_allclose(mw, run["Mw"], rtol=0.05)
    assert (run["Mw"] / run["Mn"]).between(1.5, 4.0).all()


@pytest.fixture(scope="module")
def fixed_time_run() -> pd.DataFrame:
    """The grid run for a fixed 1800 s (no early stop), to compare speeds at equal time."""
    return simulate_many(grid_design(), t_max=1800.0, x_stop=0.999, extra_columns=True, progress=False)


def _along(frame: pd.DataFrame, axis: str, column: str) -> np.ndarray:
    others = [c for c in ("cBA_0", "cAIBN_0", "temp") if c != axis]
    table = frame.sort_values(others + [axis])
    return table[column].to_numpy().reshape(-1, frame[axis].nunique())


def test_more_initiator_faster_and_shorter(fixed_time_run):
    assert np.all(np.diff(_along(fixed_time_run, "cAIBN_0", "conversion"), axis=1) > 0)
    assert np.all(np.diff(_along(fixed_time_run, "cAIBN_0", "Mn"), axis=1) < 0)


def test_higher_temperature_faster(fixed_time_run):
    assert np.all(np.diff(_along(fixed_time_run, "temp", "conversion"), axis=1) > 0)


def test_more_monomer_longer_chains(fixed_time_run, grid_run):
    assert np.all(np.diff(_along(fixed_time_run, "cBA_0", "Mn"), axis=1) > 0)
    assert np.all(np.diff(_along(grid_run, "cBA_0", "Mn"), axis=1) > 0)


def test_noise_chains_seeded_and_unbiased():
    recipe = {"cBA_0": 1.0, "cAIBN_0": 0.01, "temp": 75.0}
    exact = simulate(recipe)
    a = simulate(recipe, noise_chains=50_000, seed=1)
    b = simulate(recipe, noise_chains=50_000, seed=1)
    c = simulate(recipe, noise_chains=50_000, seed=2)
    assert a.Mn == b.Mn and np.array_equal(a.mmd, b.mmd)
    assert a.Mn != c.Mn
    assert a.Mn == pytest.approx(exact.Mn, rel=0.03) and a.Mw == pytest.approx(exact.Mw, rel=0.05)
    assert a.Mn_exact == exact.Mn
    assert np.all(a.mmd >= 0) and a.mmd.sum() * DELTA_LOG10M == pytest.approx(1.0)
    assert np.abs(a.mmd - exact.mmd).max() < 0.1 * exact.mmd.max()
    # the noise shrinks with more chains
    big = simulate(recipe, noise_chains=400_000, seed=1)
    assert np.abs(big.mmd - exact.mmd).sum() < np.abs(a.mmd - exact.mmd).sum()


def test_noise_does_not_depend_on_chunking():
    design = lhs_design(6, seed=3)
    one = simulate_many(design, noise_chains=2000, seed=5, chunk_size=6, progress=False)
    split = simulate_many(design, noise_chains=2000, seed=5, chunk_size=2, progress=False)
    pd.testing.assert_frame_equal(one, split)
