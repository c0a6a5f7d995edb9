"""The simulator renders its distribution on any evenly spaced log M axis, in any of three normalisations."""

from __future__ import annotations

import numpy as np
import pytest

from polyinv.schema import MMD_COLUMNS
from polyinv.sim import DEFAULT_AXIS, MMDAxis, grid_design, moments_from_mmd, simulate, simulate_many


@pytest.mark.parametrize("normalisation", ["density", "sum", "max"])
def test_another_axis_holds_the_same_distribution(normalisation):
    axis = MMDAxis(2.0, 7.0, normalisation=normalisation)
    recipes = grid_design().iloc[::97]
    own = simulate_many(recipes, progress=False)
    other = simulate_many(recipes, progress=False, axis=axis)
    mmd = other[list(MMD_COLUMNS)].to_numpy()
    expected = {"density": mmd.sum(axis=1) * axis.delta, "sum": mmd.sum(axis=1), "max": mmd.max(axis=1)}[
        normalisation
    ]
    np.testing.assert_allclose(expected, 1.0, rtol=1e-12)
    # the scalars do not depend on the axis; the moments of the new axis' points agree with them
    np.testing.assert_allclose(
        other[["time", "cBA_time", "Mn", "Mw"]], own[["time", "cBA_time", "Mn", "Mw"]], rtol=1e-12
    )
    mn, mw = moments_from_mmd(mmd, axis)
    np.testing.assert_allclose(mn, other["Mn"], rtol=0.05)
    np.testing.assert_allclose(mw, other["Mw"], rtol=0.05)
    # rendered from the full distribution, not interpolated: the value at a point shared by both axes is the same
    shared = DEFAULT_AXIS.points()[np.argmin(np.abs(DEFAULT_AXIS.points() - 4.0))]
    density = simulate(recipes.iloc[0].to_dict(), axis=MMDAxis(shared - 1.0, shared + 1.0, n_points=101))
    own_density = simulate(recipes.iloc[0].to_dict())
    i_own = int(np.argmin(np.abs(own_density.log10m - shared)))
    assert density.mmd[50] * density.mmd_coverage == pytest.approx(
        own_density.mmd[i_own] * own_density.mmd_coverage, rel=1e-9
    )


def test_sampled_chains_fill_another_axis_and_bad_axes_are_refused():
    axis = MMDAxis(2.5, 6.5, normalisation="sum")
    noisy = simulate_many(grid_design().iloc[:3], progress=False, axis=axis, noise_chains=3000, seed=1)
    np.testing.assert_allclose(noisy[list(MMD_COLUMNS)].sum(axis=1), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="not increasing"):
        MMDAxis(5.0, 2.0)
    with pytest.raises(ValueError, match="normalisation 'area' unknown"):
        MMDAxis(normalisation="area")
    # a lab trace's own point count: the simulator renders MMD1..MMD50 on it, the same distribution
    coarse = simulate_many(grid_design().iloc[:2], progress=False, axis=MMDAxis(n_points=50))
    assert [c for c in coarse.columns if c.startswith("MMD")] == [f"MMD{i}" for i in range(1, 51)]
    fine = simulate_many(grid_design().iloc[:2], progress=False)
    # the same density at the shared end points (normalised over each axis' own points: 1 % apart)
    np.testing.assert_allclose(coarse["MMD50"], fine["MMD100"], rtol=1e-2)
    np.testing.assert_allclose(coarse["MMD1"], fine["MMD1"], rtol=1e-2)
