"""The column schema and run protocol of a polymerization system: the one place that knows column names.

A :class:`System` holds what a data file of one monomer/initiator system looks like: the recipe columns a
model predicts, the outcome columns, the MMD columns, units, the design's nominal ranges, the run protocol
and the monomer's molar mass. ``BA_AIBN`` (the study's names, key ``ba``) is the default; :data:`SYSTEMS` also
holds MMA/AIBN (``mma``) and styrene/AIBN (``sty``), whose kinetics live in :mod:`polyinv.sim.parameters`.
Every other module takes its column names from here (the module-level names below are the default
system's); a test fails on a quoted column name anywhere else in the package. Inside polyinv a frame of any
system carries the default system's names as role names (``System.to_internal`` at reading,
``System.from_internal`` at writing), so the simulator, calibration and models know one set of names.
Model files store the column names they were trained on, and ``System.to_dict`` records the system with
runs and calibrations.

Run protocols (:data:`PROTOCOLS`): ``stop`` (the study's: a run stops at t_max or at x_stop conversion, its
stop time an outcome) and ``sampled`` (lab samples: each row is a sample taken at its ``time``, an input).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class System:
    """One monomer/initiator system: names, units, ranges and protocol of its data files."""

    name: str
    key: str
    monomer: str
    initiator: str
    monomer_molar_mass: float  # g/mol; M = chain length × this (end groups neglected)
    #: recipe columns, in the order models predict them: initial monomer, initial initiator, temperature, time
    monomer_0: str
    initiator_0: str
    temp: str
    time: str
    #: outcome columns beside the MMD: monomer left at the end of the run, number- and weight-average molar mass
    monomer_left: str
    mn: str
    mw: str
    n_mmd: int = 100
    mmd_prefix: str = "MMD"
    #: nominal recipe ranges of the design; relative MAE divides by their widths
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    #: the run protocol: a run stops at t_max seconds or when conversion reaches x_stop, whichever is first
    t_max: float = 3600.0
    x_stop: float = 0.9
    #: lab files may give the conversion (0-1) instead of the monomer left, and group samples of one reaction
    conversion_name: str = "conversion"
    reaction_name: str = "reaction"

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.monomer_0, self.initiator_0, self.temp, self.time)

    @property
    def side_inputs(self) -> tuple[str, ...]:
        return (self.monomer_left, self.mn, self.mw)

    @property
    def mmd_columns(self) -> tuple[str, ...]:
        return tuple(f"{self.mmd_prefix}{i}" for i in range(1, self.n_mmd + 1))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column of a composite data file, in the study's order."""
        return self.targets + self.side_inputs + self.mmd_columns

    def frame_conversion(self, table) -> np.ndarray:
        """Monomer conversion of every row of a table holding the monomer columns."""
        return conversion(
            np.asarray(table[self.monomer_left], dtype=np.float64),
            np.asarray(table[self.monomer_0], dtype=np.float64),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def renames(self) -> dict[str, str]:
        """This system's column names -> the internal role names (the default system's)."""
        return {
            mine: role
            for mine, role in zip(
                (*self.targets, *self.side_inputs), (*SYSTEM.targets, *SYSTEM.side_inputs), strict=True
            )
            if mine != role
        }

    def column(self, role: str) -> str:
        """This system's name of an internal role name (the default system's)."""
        return {r: mine for mine, r in self.renames.items()}.get(role, role)

    def name_text(self, text: str) -> str:
        """A message or note with the internal role names written in this system's names."""
        for mine, role in self.renames.items():
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(role)}(?![A-Za-z0-9_])", mine, text)
        return text

    def to_internal(self, table):
        """A frame with this system's columns renamed to the internal role names; a ``conversion`` column
        becomes the monomer left, [M]0 (1 - x), where the file has no monomer-left column but [M]0."""
        table = table.rename(columns=self.renames)
        conv = self.conversion_name
        if (
            conv in table.columns
            and SYSTEM.monomer_left not in table.columns
            and SYSTEM.monomer_0 in table.columns
        ):
            table = table.copy()
            table[SYSTEM.monomer_left] = table[SYSTEM.monomer_0].astype(float) * (
                1.0 - table[conv].astype(float)
            )
        return table

    def from_internal(self, table):
        """The inverse renaming of :meth:`to_internal` (for writing files in this system's names), derived
        columns included: ``<role>_lo``/``_hi``, ``model_<role>``, ``cand1_<role>`` and the like."""
        mine = {role: name for name, role in self.renames.items()}
        if not mine:
            return table

        def renamed(column: str) -> str:
            for role, name in mine.items():
                if column == role:
                    return name
                if column.startswith(role + "_") and column[len(role) + 1 :] in ("lo", "hi"):
                    return name + column[len(role) :]
                if column.endswith("_" + role):
                    return column[: -len(role)] + name
            return column

        return table.rename(columns={c: renamed(str(c)) for c in table.columns})


def aibn_in_toluene(key: str, monomer: str, short: str, molar_mass: float, name: str, ranges: dict) -> System:
    """A monomer/AIBN/toluene system in the study's column convention: ``c<short>_0``, ``cAIBN_0``, ``temp``,
    ``time``, ``c<short>_time``, ``Mn``, ``Mw``; ``ranges`` of the first four (the design's nominal box)."""
    m0, left = f"c{short}_0", f"c{short}_time"
    return System(
        name=name,
        key=key,
        monomer=monomer,
        initiator="AIBN",
        monomer_molar_mass=molar_mass,
        monomer_0=m0,
        initiator_0="cAIBN_0",
        temp="temp",
        time="time",
        monomer_left=left,
        mn="Mn",
        mw="Mw",
        ranges=dict(zip((m0, "cAIBN_0", "temp", "time"), ranges, strict=True)),
        units={
            m0: "mol/L",
            "cAIBN_0": "mol/L",
            "temp": "°C",
            "time": "s",
            left: "mol/L",
            "Mn": "g/mol",
            "Mw": "g/mol",
        },
    )


BA_AIBN = aibn_in_toluene(
    "ba",
    "n-butyl acrylate",
    "BA",
    128.17,
    "BA/AIBN in toluene",
    [(0.5, 3.0), (0.0025, 0.02), (60.0, 80.0), (0.0, 3600.0)],
)
#: The system polyinv's modules use (the study's), whose names are the internal role names of every system.
SYSTEM = BA_AIBN
LAB_BOX = [(0.005, 0.05), (50.0, 90.0), (0.0, 21600.0)]  # AIBN, °C, s of the other systems' nominal boxes
MMA_AIBN = aibn_in_toluene(
    "mma", "methyl methacrylate", "MMA", 100.12, "MMA/AIBN in toluene", [(1.0, 6.0), *LAB_BOX]
)
STY_AIBN = aibn_in_toluene("sty", "styrene", "Sty", 104.15, "styrene/AIBN in toluene", [(1.0, 6.0), *LAB_BOX])
#: Every system polyinv knows, by the key ``--system`` takes.
SYSTEMS: dict[str, System] = {s.key: s for s in (BA_AIBN, MMA_AIBN, STY_AIBN)}


def system_of(key: str) -> System:
    """The system of a ``--system`` key."""
    try:
        return SYSTEMS[key]
    except KeyError:
        raise ValueError(f"unknown system {key!r}; choose one of {', '.join(SYSTEMS)}") from None


def system_named_by(columns) -> System | None:
    """The system whose initial-monomer column a file's header holds (None: none or several)."""
    header = set(columns)
    found = [s for s in SYSTEMS.values() if s.monomer_0 in header]
    return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------------------------------------- the default's names
N_MMD = SYSTEM.n_mmd
#: Recipe columns: what the inverse model predicts (and what the simulator takes).
TARGETS: tuple[str, ...] = SYSTEM.targets
MONOMER_0, INITIATOR_0, TEMP, TIME = TARGETS
#: Scalar outcome columns added to the MMD in the "composite" feature set.
SIDE_INPUTS: tuple[str, ...] = SYSTEM.side_inputs
MONOMER_LEFT, MN, MW = SIDE_INPUTS
#: The MMD vector, w(log10 M) on the fixed grid, MMD1..MMD100.
MMD_COLUMNS: tuple[str, ...] = SYSTEM.mmd_columns
#: Recipe columns the simulator takes (the time comes from the protocol).
RECIPE_COLUMNS: tuple[str, ...] = (MONOMER_0, INITIATOR_0, TEMP)

#: Sheet names and column orders of the study's .xlsx (docs/data-format.md).
SHEET_COMPOSITE = "compuesta"
SHEET_MMD_RAW = "mmd_raw_data"
SHEET_METADATA = "metadata"
COMPOSITE_COLUMNS: tuple[str, ...] = SYSTEM.columns
MMD_RAW_COLUMNS: tuple[str, ...] = TARGETS + MMD_COLUMNS

#: Feature sets: which scalar side inputs accompany the MMD vector.
FEATURE_SETS: dict[str, tuple[str, ...]] = {"mmd": (), "composite": SIDE_INPUTS}

NOMINAL_RANGES: dict[str, tuple[float, float]] = SYSTEM.ranges
UNITS: dict[str, str] = SYSTEM.units

#: Molar mass of the monomer (n-butyl acrylate), g/mol.
M_MONOMER = SYSTEM.monomer_molar_mass


def mmd_columns(n: int) -> tuple[str, ...]:
    """The names of an n-point MMD (MMD1..MMDn; the default system's files have 100)."""
    return tuple(f"{SYSTEM.mmd_prefix}{i}" for i in range(1, n + 1))


def conversion(monomer_left, monomer_0):
    """Monomer conversion 1 − [M]_end / [M]_0 (arrays or tensors of concentrations): the one formula."""
    return 1.0 - monomer_left / monomer_0


def frame_conversion(table) -> np.ndarray:
    """Monomer conversion of every row of a table (the default system's columns)."""
    return SYSTEM.frame_conversion(table)


def feature_columns(feature_set: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (side-input columns, MMD columns) of a feature set ('mmd' or 'composite')."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of {sorted(FEATURE_SETS)}")
    return FEATURE_SETS[feature_set], MMD_COLUMNS


def protocol_columns(feature_set: str, protocol: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(targets, side inputs) of an inverse model: under ``stop`` the run's time is a target (when it stopped);
    under ``sampled`` it is when the sample was taken, an input, and the model predicts the recipe alone."""
    side, _ = feature_columns(feature_set)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return (TARGETS, side) if protocol == "stop" else (RECIPE_COLUMNS, (TIME, *side))


# ---------------------------------------------------------------------------------------------- run protocol
T_MAX = SYSTEM.t_max
X_STOP = SYSTEM.x_stop
#: ``stop``: the study's runs (t_max / x_stop, stop time an outcome); ``sampled``: lab samples at their own time
PROTOCOLS: tuple[str, ...] = ("stop", "sampled")
#: A sampled run is treated as complete beyond this conversion (the integrator's reach near full conversion)
SAMPLED_X_STOP = 0.999


def frame_mmd_columns(table) -> tuple[str, ...]:
    """The MMD columns of a frame, MMD1..MMDn (n >= 2, consecutive from 1)."""
    n = 0
    while f"{SYSTEM.mmd_prefix}{n + 1}" in table.columns:
        n += 1
    return mmd_columns(n)


def before_t_max(times, t_max):
    """Mask of the runs that stopped before ``t_max`` (numpy arrays or tensors, physical seconds)."""
    return times < t_max * (1 - 1e-9)


def stopped_early(times) -> tuple[float, np.ndarray]:
    """(t_max, mask of the runs that stopped before t_max) of physical run times; t_max is the longest time."""
    times = np.asarray(times, dtype=np.float64)
    t_max = float(times.max())
    return t_max, before_t_max(times, t_max)
