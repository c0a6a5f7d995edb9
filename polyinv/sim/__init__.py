"""Forward kinetic simulator of BA/AIBN solution polymerization and the dataset generator."""

from polyinv.sim.designs import RECIPE_FIELDS, grid_design, lhs_design, validate_recipes
from polyinv.sim.grid import (
    DEFAULT_AXIS,
    DELTA_LOG10M,
    LOG10M_MAX,
    LOG10M_MIN,
    MMDAxis,
    log10m_grid,
    moments_from_mmd,
)
from polyinv.sim.parameters import DEFAULT_PARAMETERS, KineticParameters, RateCoefficient, no_backbiting
from polyinv.sim.simulate import EXTRA_COLUMNS, SimulationResult, simulate, simulate_many

__all__ = [
    "DEFAULT_AXIS",
    "DEFAULT_PARAMETERS",
    "DELTA_LOG10M",
    "EXTRA_COLUMNS",
    "KineticParameters",
    "LOG10M_MAX",
    "LOG10M_MIN",
    "MMDAxis",
    "RECIPE_FIELDS",
    "RateCoefficient",
    "SimulationResult",
    "grid_design",
    "lhs_design",
    "log10m_grid",
    "moments_from_mmd",
    "no_backbiting",
    "simulate",
    "simulate_many",
    "validate_recipes",
]
