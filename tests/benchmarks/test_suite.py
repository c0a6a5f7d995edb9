"""The foreign-data suite's generator (benchmarks/suite.py): moved kinetics, other designs and axes, no metadata."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from polyinv.data.io import read_table
from polyinv.schema import COMPOSITE_COLUMNS, MMD_COLUMNS, NOMINAL_RANGES
from polyinv.sim import DEFAULT_PARAMETERS, grid_design, moments_from_mmd, simulate_many

from benchmarks.suite import AXES, KINETICS, SETS, design, make_set, moved_parameters


def test_moved_kinetics_shift_the_outcomes_and_keep_sources():
    moved = moved_parameters(KINETICS["C"])
    assert moved.kt_ss.A == DEFAULT_PARAMETERS.kt_ss.A * KINETICS["C"]["kt"] and "(x1)" in moved.kt_ss.source
    assert moved.kpt.A == DEFAULT_PARAMETERS.kpt.A * 2.0 and moved.C_S_mcr == DEFAULT_PARAMETERS.C_S_mcr * 2.0
    assert moved.f_values == tuple(v - 0.15 for v in DEFAULT_PARAMETERS.f_values)
    recipes = grid_design().iloc[::48]
    own, other = simulate_many(recipes, progress=False), simulate_many(recipes, moved, progress=False)
    assert np.median(other.Mn / own.Mn) < 0.8  # more transfer: shorter chains


def test_designs_stay_in_the_box_and_differ():
    for kind in ("lhs", "clustered", "onesided"):
        recipes = design(kind, 300, seed=3)
        assert len(recipes) == 300
        for column, (lo, hi) in NOMINAL_RANGES.items():
            if column in recipes:
                assert recipes[column].between(lo, hi).all()
    one = design("onesided", 2000, seed=1)
    assert one.cBA_0.median() < 1.4 and one.temp.median() > 72 and one.cAIBN_0.median() > 0.014
    assert design("clustered", 300, seed=1).round(6).duplicated().sum() == 0


def test_a_set_is_written_without_metadata_on_its_own_axis(tmp_path):
    spec = dataclasses.replace(
        next(s for s in SETS if s.name == "lhs432_C_noise20000"), n=12, noise_chains=2000
    )
    path = make_set(spec, tmp_path)
    assert path.suffix == ".csv" and not list(tmp_path.glob("*.json"))
    frame = pd.read_csv(path)
    assert list(frame.columns) == list(COMPOSITE_COLUMNS) and len(frame) == 12
    np.testing.assert_allclose(frame[list(MMD_COLUMNS)].max(axis=1), 1.0)  # axis C: peak-normalised
    mn, _ = moments_from_mmd(frame[list(MMD_COLUMNS)].to_numpy(), AXES["C"])
    assert np.median(np.abs(mn / frame.Mn - 1)) < 0.1
    read_table(path, tuple(COMPOSITE_COLUMNS), mmd_columns=MMD_COLUMNS)  # loads as a user's file
