"""The column schema of the study's data files: the one place that knows column names and ranges.

Every reader, writer, model and metric refers to the names here, never to literals of its own.
"""

from __future__ import annotations

import numpy as np

N_MMD = 100

#: Recipe columns: what the inverse model predicts (and what the simulator takes).
TARGETS: tuple[str, ...] = ("cBA_0", "cAIBN_0", "temp", "time")
#: Scalar outcome columns added to the MMD in the "composite" feature set.
SIDE_INPUTS: tuple[str, ...] = ("cBA_time", "Mn", "Mw")
#: The MMD vector, w(log10 M) on the fixed grid, MMD1..MMD100.
MMD_COLUMNS: tuple[str, ...] = tuple(f"MMD{i}" for i in range(1, N_MMD + 1))

#: Sheet names and column orders of the study's .xlsx (docs/data-format.md).
SHEET_COMPOSITE = "compuesta"
SHEET_MMD_RAW = "mmd_raw_data"
SHEET_METADATA = "metadata"
COMPOSITE_COLUMNS: tuple[str, ...] = TARGETS + SIDE_INPUTS + MMD_COLUMNS
MMD_RAW_COLUMNS: tuple[str, ...] = TARGETS + MMD_COLUMNS

#: Feature sets: which scalar side inputs accompany the MMD vector.
FEATURE_SETS: dict[str, tuple[str, ...]] = {"mmd": (), "composite": SIDE_INPUTS}

#: Nominal recipe ranges of the design (docs/data-format.md); relative MAE divides by their width.
NOMINAL_RANGES: dict[str, tuple[float, float]] = {
    "cBA_0": (0.5, 3.0),
    "cAIBN_0": (0.0025, 0.02),
    "temp": (60.0, 80.0),
    "time": (0.0, 3600.0),
}

UNITS: dict[str, str] = {
    "cBA_0": "mol/L",
    "cAIBN_0": "mol/L",
    "temp": "°C",
    "time": "s",
    "cBA_time": "mol/L",
    "Mn": "g/mol",
    "Mw": "g/mol",
}

#: Molar mass of n-butyl acrylate, g/mol.
M_BA = 128.17


class ColumnCounts:
    """Counts of a model's columns; the model sets ``target_names``, ``side_names`` and ``mmd_names``."""

    target_names: list[str]
    side_names: list[str]

    @property
    def n_side(self) -> int:
        return len(self.side_names)

    @property
    def n_targets(self) -> int:
        return len(self.target_names)


def feature_columns(feature_set: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (side-input columns, MMD columns) of a feature set ('mmd' or 'composite')."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of {sorted(FEATURE_SETS)}")
    return FEATURE_SETS[feature_set], MMD_COLUMNS


# ---------------------------------------------------------------------------------------------- run protocol
#: A run stops at T_MAX seconds or when conversion reaches X_STOP, whichever comes first (docs/data-format.md).
T_MAX = 3600.0
X_STOP = 0.9


def before_t_max(times, t_max):
    """Mask of the runs that stopped before ``t_max`` (numpy arrays or tensors, physical seconds)."""
    return times < t_max * (1 - 1e-9)


def stopped_early(times) -> tuple[float, np.ndarray]:
    """(t_max, mask of the runs that stopped before t_max) of physical run times; t_max is the longest time."""
    times = np.asarray(times, dtype=np.float64)
    t_max = float(times.max())
    return t_max, before_t_max(times, t_max)
