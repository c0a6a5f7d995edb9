"""The schema object: the default system's names, the one conversion formula, and the system in calibrations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from polyinv.schema import (
    BA_AIBN,
    COMPOSITE_COLUMNS,
    SIDE_INPUTS,
    SYSTEM,
    TARGETS,
    conversion,
    frame_conversion,
)
from polyinv.sim.calibration_file import read_yaml


def test_the_default_system_is_the_studys_columns_in_the_studys_order():
    assert SYSTEM is BA_AIBN
    assert TARGETS == ("cBA_0", "cAIBN_0", "temp", "time") and SIDE_INPUTS == ("cBA_time", "Mn", "Mw")
    assert COMPOSITE_COLUMNS[:7] == TARGETS + SIDE_INPUTS and COMPOSITE_COLUMNS[7:] == tuple(
        f"MMD{i}" for i in range(1, 101)
    )
    assert set(SYSTEM.ranges) == set(TARGETS) and set(SYSTEM.units) == set(TARGETS + SIDE_INPUTS)
    assert SYSTEM.to_dict()["monomer_molar_mass"] == 128.17


def test_conversion_is_one_minus_monomer_left_over_initial_monomer():
    frame = pd.DataFrame({"cBA_0": [2.0, 1.0], "cBA_time": [0.5, 1.0]})
    assert np.allclose(frame_conversion(frame), [0.75, 0.0])
    assert np.allclose(conversion(np.array([0.5]), np.array([2.0])), [0.75])


def test_a_calibration_of_an_unknown_system_is_refused(tmp_path):
    path = tmp_path / "pvc.yaml"
    path.write_text(yaml.safe_dump({"polyinv_calibration": 1, "system": "VCM/peroxide in water"}))
    with pytest.raises(
        ValueError, match="a calibration of system 'VCM/peroxide in water'; polyinv knows ba, mma"
    ):
        read_yaml(path)


def test_notes_name_the_systems_columns():
    from polyinv.schema import MMA_AIBN

    note = "cBA_0 outside training range; predicted recipe does not reproduce the input (cBA_time 2.0x threshold)"
    assert MMA_AIBN.name_text(note) == note.replace("cBA_0", "cMMA_0").replace("cBA_time", "cMMA_time")
    assert (
        MMA_AIBN.name_text("model_cBA_0") == "model_cBA_0"
    )  # a column name is from_internal's, not a note's
