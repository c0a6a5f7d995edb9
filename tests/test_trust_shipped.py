"""Trust checks on the shipped 432-recipe data: applicability domain, GP interval coverage, forward verification.

One Gaussian process (150 training rows of the study's split, no optimiser restarts: cheap) is shared by
the module; the applicability domain is fitted on all training rows of the split, as ``train.run`` does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polyinv.data.module import PolyDataModule
from polyinv.models import GPModel
from polyinv.schema import MMD_COLUMNS
from polyinv.sim import lhs_design, simulate_many
from polyinv.trust.domain import ApplicabilityDomain, fit_domain
from polyinv.trust.verify import hellinger, verify

from conftest import REPO

DATA = REPO / "data" / "ba_aibn_grid432.xlsx"
TRANSFORMS = {"Mn": "log", "Mw": "log", "cBA_time": "log", "cAIBN_0": "log"}


@pytest.fixture(scope="module")
def shipped():
    dm = PolyDataModule(DATA, sheet="compuesta", transforms=TRANSFORMS, test_fraction=0.2, val_fraction=0.0, seed=42)
    dm.setup()
    train = dm.train_frame.sample(150, random_state=0)
    cols = lambda f, c: f[list(c)].to_numpy(np.float64)  # noqa: E731
    gp = GPModel(transforms=TRANSFORMS, n_restarts=0, n_jobs=1, random_state=0)
    gp.fit(cols(train, dm.mmd_columns), cols(train, dm.side_columns), cols(train, dm.target_columns))
    return dm, gp, fit_domain(dm)


def _arrays(model, frame):
    return frame[list(model.mmd_names)].to_numpy(np.float64), frame[list(model.side_names)].to_numpy(np.float64)


def test_domain_roundtrip_is_plain_data(shipped):
    _, _, domain = shipped
    data = domain.to_dict()
    assert all(isinstance(v, (list, str, int, float)) for v in data.values())
    again = ApplicabilityDomain.from_dict(data)
    frame = shipped[0].test_frame
    np.testing.assert_allclose(again.score(frame), domain.score(frame))


def test_test_split_rows_are_in_domain(shipped):
    dm, gp, domain = shipped
    test = dm.test_frame
    result = domain.check(test, gp.predict_arrays(*_arrays(gp, test)))
    assert result.in_domain.mean() >= 0.95


@pytest.fixture(scope="module")
def outside():
    """MMDs simulated from recipes outside the design: 90-100 °C, 4-5 mol/L monomer, 0.05 mol/L AIBN."""
    rng = np.random.default_rng(7)
    base = lhs_design(45, seed=3)
    base.loc[0:14, "temp"] = rng.uniform(90, 100, 15)
    base.loc[15:29, "cBA_0"] = rng.uniform(4, 5, 15)
    base.loc[30:44, "cAIBN_0"] = 0.05
    return simulate_many(base, progress=False)


def _flagged(shipped, outside):
    _, gp, domain = shipped
    return ~domain.check(outside, gp.predict_arrays(*_arrays(gp, outside))).in_domain


def test_hot_and_concentrated_recipes_are_flagged(shipped, outside):
    flagged = _flagged(shipped, outside)
    assert flagged[0:15].mean() >= 0.9  # 90-100 °C: the GP extrapolates temp beyond the training range
    assert flagged[15:30].mean() >= 0.9  # 4-5 mol/L: far from the training inputs


@pytest.mark.xfail(reason="0.05 mol/L AIBN gives MMDs inside the training inputs and this cheap GP "
                          "predicts cAIBN_0 inside its range: only ~20 % of that group is flagged", strict=True)
def test_all_outside_recipes_are_flagged(shipped, outside):
    assert _flagged(shipped, outside).mean() >= 0.90


@pytest.mark.xfail(reason="measured raw GP coverage (150 rows) 0.92/0.90/0.82/1.00: temp under-covers and the "
                          "censored time interval over-covers; no calibration factor yet", strict=True)
def test_gp_90_percent_interval_coverage_on_test_split(shipped):
    dm, gp, _ = shipped
    test = dm.test_frame
    _, low, high = gp.predict_interval(*_arrays(gp, test), level=0.9)
    y = test[list(gp.target_names)].to_numpy()
    coverage = ((y >= low) & (y <= high)).mean(axis=0)
    print("coverage", dict(zip(gp.target_names, coverage.round(3), strict=True)))
    assert np.all((coverage >= 0.85) & (coverage <= 0.95)), coverage


def test_true_recipes_reproduce_their_mmd_and_perturbed_ones_do_not(shipped):
    dm, _, _ = shipped
    rows = dm.frame.iloc[[0, 100, 250, 431]].reset_index(drop=True)
    mmd = rows[list(MMD_COLUMNS)].to_numpy()
    table, _ = verify(mmd, rows, rows)
    assert table["verify_hellinger"].max() < 5e-3
    assert table[["verify_rel_err_Mn", "verify_rel_err_Mw", "verify_rel_err_cBA_time"]].abs().to_numpy().max() < 1e-2
    perturbed = rows.copy()
    perturbed["temp"] += 5.0
    perturbed["cAIBN_0"] *= 1.5
    worse, _ = verify(mmd, perturbed, rows)
    assert np.all(worse["verify_hellinger"].to_numpy() > 10 * table["verify_hellinger"].to_numpy() + 0.01)


def test_hellinger_limits():
    p = np.array([[0.0, 1.0, 2.0, 1.0, 0.0]])
    assert hellinger(p, 3 * p)[0] == pytest.approx(0.0, abs=1e-12)
    assert hellinger(p, np.array([[1.0, 0, 0, 0, 1.0]]))[0] == pytest.approx(1.0)


def test_median_verification_distance_of_gp_on_test_split(shipped):
    dm, gp, _ = shipped
    test = dm.test_frame.reset_index(drop=True)
    pred = pd.DataFrame(gp.predict_arrays(*_arrays(gp, test)), columns=gp.target_names)
    table, _ = verify(test[list(MMD_COLUMNS)].to_numpy(), pred, test)
    median = float(table["verify_hellinger"].median())
    print(f"median Hellinger distance, GP (150 rows), test split: {median:.4f}")
    assert median < 0.05
