"""Recipe validation and the experimental designs (432-recipe grid, Latin hypercube)."""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np
import pandas as pd
from scipy.stats import qmc

from polyinv.data.io import row_text
from polyinv.schema import MONOMER_0, NOMINAL_RANGES, RECIPE_COLUMNS, TEMP

#: The recipe fields the simulator takes (the fourth target, ``time``, is its output).
RECIPE_FIELDS: tuple[str, ...] = RECIPE_COLUMNS
#: Physical temperature window accepted by the simulator, °C.
TEMP_LIMITS: tuple[float, float] = (0.0, 200.0)

GRID_CBA = tuple(0.5 * i for i in range(1, 7))  # 0.5 .. 3.0 mol/L
GRID_CAIBN = tuple(round(0.0025 * i, 4) for i in range(1, 9))  # 0.0025 .. 0.02 mol/L
GRID_TEMP = tuple(60.0 + 2.5 * i for i in range(9))  # 60 .. 80 °C


def grid_design() -> pd.DataFrame:
    """The study's 6x8x9 grid, 432 recipes (docs/simulator.md).

    Order: ``cBA_0`` slowest, then ``cAIBN_0``, ``temp`` fastest (``itertools.product`` order), i.e.
    row ``i`` has cBA_0 index ``i // 72``, cAIBN_0 index ``(i // 9) % 8``, temp index ``i % 9``.
    """
    rows = list(itertools.product(GRID_CBA, GRID_CAIBN, GRID_TEMP))
    return pd.DataFrame(rows, columns=list(RECIPE_FIELDS))


def lhs_design(n: int, seed: int = 0, ranges: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """``n`` Latin-hypercube recipes inside the nominal domain (or ``ranges``, by internal role name), reproducible
    from ``seed``."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        sampler = qmc.LatinHypercube(d=len(RECIPE_FIELDS), rng=np.random.default_rng(seed))
    except TypeError:  # scipy < 1.15 names the argument ``seed``
        sampler = qmc.LatinHypercube(d=len(RECIPE_FIELDS), seed=np.random.default_rng(seed))
    unit = sampler.random(int(n))
    ranges = NOMINAL_RANGES if ranges is None else ranges
    lo = np.array([ranges[f][0] for f in RECIPE_FIELDS])
    hi = np.array([ranges[f][1] for f in RECIPE_FIELDS])
    return pd.DataFrame(qmc.scale(unit, lo, hi), columns=list(RECIPE_FIELDS))


def _check_value(name: str, value: object, max_cBA: float, row: object = None) -> float:
    where = "" if row is None else f" ({row_text(int(row))})"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        raise ValueError(f"{name} must be a number, got {value!r}{where}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v:g}{where}")
    if name == TEMP:
        if not TEMP_LIMITS[0] <= v <= TEMP_LIMITS[1]:
            raise ValueError(
                f"temp must be within {TEMP_LIMITS[0]:g}-{TEMP_LIMITS[1]:g} °C, got {v:g}{where}"
            )
    elif v <= 0:
        raise ValueError(f"{name} must be a positive concentration in mol/L, got {v:g}{where}")
    elif name == MONOMER_0 and v >= max_cBA:
        raise ValueError(f"cBA_0 must be below pure monomer ({max_cBA:.3f} mol/L), got {v:g}{where}")
    return v


def validate_recipes(recipes, max_cBA: float) -> pd.DataFrame:
    """Check and normalise recipes (mapping, DataFrame or (n, 3) array) into a float DataFrame.

    Raises ValueError naming the field and the value for anything without physical sense: missing
    field, non-numeric, NaN/inf, concentration <= 0 (or above pure BA), temperature outside 0-200 °C.
    """
    if isinstance(recipes, pd.DataFrame):
        missing = [f for f in RECIPE_FIELDS if f not in recipes.columns]
        if missing:
            raise ValueError(f"recipes lack field(s) {missing}; need {list(RECIPE_FIELDS)}")
        frame = recipes[list(RECIPE_FIELDS)]
    elif isinstance(recipes, dict):
        missing = [f for f in RECIPE_FIELDS if f not in recipes]
        if missing:
            raise ValueError(f"recipe lacks field(s) {missing}; need {list(RECIPE_FIELDS)}")
        frame = pd.DataFrame({f: [recipes[f]] for f in RECIPE_FIELDS}, dtype=object)
    else:
        arr = np.asarray(recipes, dtype=object)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != len(RECIPE_FIELDS):
            raise ValueError(
                f"recipes must have {len(RECIPE_FIELDS)} columns {list(RECIPE_FIELDS)}, got shape {arr.shape}"
            )
        frame = pd.DataFrame(arr, columns=list(RECIPE_FIELDS))
    if len(frame) == 0:
        raise ValueError("no recipes given")
    named = isinstance(recipes, pd.DataFrame) or len(frame) > 1  # rows of a table are named in messages
    out = {}
    for name in RECIPE_FIELDS:
        col = frame[name]
        if pd.api.types.is_float_dtype(col.dtype) or pd.api.types.is_integer_dtype(col.dtype):
            values = col.to_numpy(dtype=float)
            bad = ~np.isfinite(values) if name == TEMP else ~np.isfinite(values) | (values <= 0)
            if name == TEMP:
                bad |= (values < TEMP_LIMITS[0]) | (values > TEMP_LIMITS[1])
            if name == MONOMER_0:
                bad |= values >= max_cBA
            if bad.any():
                i = int(np.argmax(bad))
                _check_value(name, values[i], max_cBA, row=frame.index[i] if named else None)
            out[name] = values
        else:
            out[name] = np.array(
                [
                    _check_value(name, v, max_cBA, row=frame.index[i] if named else None)
                    for i, v in enumerate(col.tolist())
                ]
            )
    return pd.DataFrame(out)
