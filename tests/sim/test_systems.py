"""Chemistries as data: the MMA and styrene parameter sets, the gel effect, the sampled protocol, column names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polyinv.schema import MMA_AIBN, SYSTEMS, TIME, system_of
from polyinv.sim.forward import ForwardModel, candidates_for
from polyinv.sim.grid import MMDAxis
from polyinv.sim.parameters import PARAMETER_SETS, parameters_of
from polyinv.sim.simulate import simulate_many

RECIPES = pd.DataFrame({"cBA_0": [2.0, 4.0], "cAIBN_0": [0.01, 0.03], "temp": [60.0, 80.0]})


def test_every_system_has_sourced_kinetics_and_the_same_keys():
    assert set(SYSTEMS) == set(PARAMETER_SETS) == {"ba", "mma", "sty"}
    for key in SYSTEMS:
        p = parameters_of(key)
        assert p.monomer_molar_mass == SYSTEMS[key].monomer_molar_mass
        for name in ("kd", "kp", "kt_ss"):
            assert getattr(p, name).source  # every coefficient carries its source
    assert not parameters_of("mma").backbiting and parameters_of("ba").backbiting
    with pytest.raises(ValueError, match="unknown system 'pvc'"):
        system_of("pvc")


def test_calibration_candidates_follow_the_scheme():
    assert "gel" not in candidates_for("ba") and "kbb" in candidates_for("ba")
    assert "gel" in candidates_for("mma") and "kbb" not in candidates_for("mma")


def test_the_gel_effect_speeds_up_the_run_and_raises_mw_late_only():
    mma = parameters_of("mma")
    off = mma.replace(gel_A=0.0)
    axis = MMDAxis(2.0, 6.7, 30)
    early = [
        simulate_many(RECIPES, p, t_max=300.0, x_stop=0.999, axis=axis, progress=False) for p in (mma, off)
    ]
    late = [
        simulate_many(RECIPES, p, t_max=14400.0, x_stop=0.999, axis=axis, progress=False) for p in (mma, off)
    ]
    # at a few % conversion the polymer is too dilute to matter
    np.testing.assert_allclose(early[0]["Mw"], early[1]["Mw"], rtol=3e-2)
    # at high conversion kt falls: faster, longer chains
    assert (late[0]["cBA_time"] < late[1]["cBA_time"]).all()
    assert (late[0]["Mw"] > late[1]["Mw"]).all() and late[0]["Mw"].iloc[1] > 1.1 * late[1]["Mw"].iloc[1]


def test_the_sampled_protocol_runs_each_row_to_its_own_time():
    forward = ForwardModel(axis=MMDAxis(2.0, 6.7, 30), system="mma", protocol="sampled")
    rows = pd.concat([RECIPES.iloc[[0]]] * 3, ignore_index=True).assign(time=[600.0, 3600.0, 7200.0])
    out = forward.simulate(rows)
    assert list(out[TIME]) == [600.0, 3600.0, 7200.0]
    assert out["cBA_time"].is_monotonic_decreasing  # later samples of one reaction: more converted
    alone = forward.simulate(rows.iloc[[2]])
    np.testing.assert_allclose(alone["Mn"].iloc[0], out["Mn"].iloc[2], rtol=1e-12)  # rows do not interact
    again = ForwardModel.from_dict(forward.to_dict())
    assert (again.system, again.protocol, again.axis.n_points) == ("mma", "sampled", 30)
    with pytest.raises(ValueError, match="'time' column"):
        forward.simulate(RECIPES)
    with pytest.raises(ValueError, match="unknown run protocol"):
        ForwardModel(protocol="batch")


def test_a_files_names_map_to_the_internal_roles_and_back():
    lab = pd.DataFrame(
        {"cMMA_0": [2.0], "cAIBN_0": [0.01], "temp": [70.0], "time": [600.0], "conversion": [0.25]}
    )
    internal = MMA_AIBN.to_internal(lab)
    assert internal["cBA_time"].iloc[0] == pytest.approx(1.5)  # [M]0 (1 - x)
    back = MMA_AIBN.from_internal(internal)
    assert {"cMMA_0", "cMMA_time", "conversion"} <= set(back.columns)
