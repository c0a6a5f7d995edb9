"""Read the study's data files (.xlsx any sheet, .csv, .parquet) and validate them against the schema."""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from polyinv.errors import PolyinvError, PolyinvWarning
from polyinv.schema import (
    INITIATOR_0,
    MMD_COLUMNS,
    MN,
    MONOMER_0,
    MONOMER_LEFT,
    MW,
    SHEET_COMPOSITE,
    TIME,
    System,
    mmd_columns,
)

SUPPORTED = (".xlsx", ".xlsm", ".csv", ".parquet", ".pq")
_MMD_NAME = re.compile(r"^MMD(\d+)$")


def header_of(path: str | Path, sheet: str | None = None) -> list[str]:
    """A readable file's column names, stripped (none where it cannot be read: for hints on an error path)."""
    try:
        frame, _ = _read_raw(Path(path), sheet)
    except PolyinvError:
        return []
    return [str(c).strip() for c in frame.columns]


def _read_raw(path: Path, sheet: str | None) -> tuple[pd.DataFrame, str]:
    """Read a file into a DataFrame; return it with a short description of where it came from."""
    if not path.exists():
        raise PolyinvError(f"{path}: file not found")
    if path.is_dir():
        raise PolyinvError(f"{path}: is a folder, expected a .xlsx, .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise PolyinvError(f"{path}: unsupported file type {suffix!r}; use .xlsx, .csv or .parquet")
    try:
        if suffix in (".xlsx", ".xlsm"):
            sheet = sheet or SHEET_COMPOSITE
            with pd.ExcelFile(path, engine="openpyxl") as book:
                if sheet not in book.sheet_names:
                    raise PolyinvError(
                        f"{path}: no sheet {sheet!r}; the file has sheets {', '.join(map(repr, book.sheet_names))}"
                    )
                frame = book.parse(sheet)
                header = list(book.parse(sheet, header=None, nrows=1).iloc[0]) if len(frame.columns) else []
            where = f"{path} [sheet {sheet}]"
            _check_header(header, where)
            return frame, where
        if sheet:
            raise PolyinvError(f"{path}: a sheet name ({sheet!r}) only applies to .xlsx files")
        if suffix == ".csv":  # only a truly empty cell is missing; 'n/a', 'NA', '-' are reported as text
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
            with open(path, newline="", encoding="utf-8", errors="replace") as handle:
                header = next(csv.reader(handle), [])
            _check_header(header, str(path))
            if len(frame.columns) == 1 and ";" in str(frame.columns[0]):
                raise PolyinvError(
                    f"{path}: the file parses into one column; it looks separated by ';' "
                    "(polyinv reads comma-separated CSV: save it with ',' as the separator)"
                )
            return frame, str(path)
        return pd.read_parquet(path), str(path)
    except PolyinvError:
        raise
    except Exception as exc:  # unreadable / corrupt file: one line, no traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolyinvError(f"{path}: cannot read file ({first})") from exc


def _check_header(header: Sequence, where: str) -> None:
    """A column named twice is refused (pandas would rename the second copy and train on the first)."""
    names = [str(h).strip() for h in header if not (isinstance(h, float) and np.isnan(h))]
    seen = set()
    for name in names:
        if name in seen:
            raise PolyinvError(f"{where}: column {name!r} appears more than once in the header")
        seen.add(name)


def _check_mmd_columns(frame: pd.DataFrame, where: str, mmd_columns: Sequence[str]) -> None:
    found = sorted(int(m.group(1)) for c in frame.columns if (m := _MMD_NAME.match(str(c).strip())))
    if len(found) != len(mmd_columns) or any(c not in frame.columns for c in mmd_columns):
        expected = f"{mmd_columns[0]}..{mmd_columns[-1]} ({len(mmd_columns)} columns)"
        if not found:
            raise PolyinvError(f"{where}: no MMD columns found; expected {expected}")
        missing = [c for c in mmd_columns if c not in frame.columns]
        detail = f"missing {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}; " if missing else ""
        raise PolyinvError(
            f"{where}: the MMD has {len(found)} columns (MMD{found[0]}..MMD{found[-1]}); {detail}expected {expected}"
        )


def read_table(
    path: str | Path,
    columns: Sequence[str],
    sheet: str | None = None,
    mmd_columns: Sequence[str] = MMD_COLUMNS,
    optional: Sequence[str] = (),
) -> pd.DataFrame:
    """Read ``path`` and return exactly ``columns`` as float64, validated (and those of ``optional`` the file has).

    Every problem raises :class:`PolyinvError` with a one-line message naming the file, sheet,
    column, row and value: a missing file or sheet, a missing column, an MMD of the wrong length,
    empty, non-numeric or non-finite cells, physically impossible rows (:func:`check_physical`). Rows are
    named by :func:`row_text`.
    """
    frame, where = _read_raw(Path(path), sheet)
    frame.columns = [str(c).strip() for c in frame.columns]
    return _validated(frame, where, columns, mmd_columns, optional)


def _validated(
    frame: pd.DataFrame,
    where: str,
    columns: Sequence[str],
    mmd_columns: Sequence[str],
    optional: Sequence[str],
) -> pd.DataFrame:
    """The checks and float conversion of :func:`read_table` on a frame already read (stripped column names)."""
    if len(frame) == 0:
        raise PolyinvError(f"{where}: no data rows")
    if any(c in columns for c in mmd_columns):
        _check_mmd_columns(frame, where, mmd_columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PolyinvError(f"{where}: missing column(s) {', '.join(missing)}")
    columns = [*columns, *(c for c in optional if c in frame.columns and c not in columns)]
    out = {}
    for column in columns:
        raw = frame[column]
        if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
            raise PolyinvError(
                f"{where}: column {column!r} holds {'true/false' if pd.api.types.is_bool_dtype(raw) else 'date'} "
                "values, not numbers"
            )
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(float))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            shown = raw.iloc[i]
            what = "an empty cell" if pd.isna(shown) else f"the non-numeric value {shown!r}"
            if not pd.isna(shown) and isinstance(shown, (int, float, np.number)):
                what = f"the non-finite value {float(shown):g}"
            raise PolyinvError(
                f"{where}: column {column!r}, {row_text(i)}: {what} ({int(bad.sum())} bad cell(s) in this column)"
            )
        out[column] = values.to_numpy(np.float64)
    table = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
    check_physical(table, where)
    return table


def row_text(i: int) -> str:
    """How every message names a row: the 0-based data row (as the ``row`` column of outputs) and its file line."""
    return f"data row {i} (line {i + 2} of the file)"


#: Columns that are concentrations, times or molar masses: a negative value is no measurement.
NON_NEGATIVE = (MONOMER_0, INITIATOR_0, TIME, MONOMER_LEFT, MN, MW)


def check_physical(table: pd.DataFrame, where: str) -> None:
    """Refuse rows no polymerization can produce (negative concentrations, times or molar masses, Mw < Mn);
    warn, naming the rows, about negative MMD values (baseline-corrected lab data may hold small ones)."""
    for column in (c for c in NON_NEGATIVE if c in table):
        bad = np.flatnonzero(table[column].to_numpy() < 0)
        if len(bad):
            raise PolyinvError(
                f"{where}: column {column!r}, {row_text(int(bad[0]))}: negative value "
                f"{float(table[column].iloc[bad[0]]):g} ({len(bad)} such row(s))"
            )
    if {MN, MW} <= set(table):
        bad = np.flatnonzero(table[MW].to_numpy() < table[MN].to_numpy() * (1 - 1e-9))
        if len(bad):
            i = int(bad[0])
            raise PolyinvError(
                f"{where}: {row_text(i)}: Mw {table[MW].iloc[i]:.6g} is below Mn {table[MN].iloc[i]:.6g}, "
                f"which no distribution has ({len(bad)} such row(s))"
            )
    mmd = [c for c in table if _MMD_NAME.match(c)]
    if mmd:
        rows = np.flatnonzero((table[mmd].to_numpy() < 0).any(axis=1))
        if len(rows):
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            warnings.warn(
                f"{where}: negative MMD values in {len(rows)} data row(s) ({shown}); they are used as given",
                PolyinvWarning,
                stacklevel=2,
            )


#: Fewest MMD points a lab trace may have (issue 34: traces of 20-40 points are common).
MIN_MMD_POINTS = 10


def read_system_table(
    path: str | Path,
    system: System,
    roles: Sequence[str],
    sheet: str | None = None,
    *,
    mmd: bool | None = True,
    group: str | None = None,
    group_optional: bool = False,
    optional: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a file of ``system`` in its own column names and return the internal role names (``roles``, the
    default system's names: see :mod:`polyinv.schema`) as float64, validated as :func:`read_table` does.

    The monomer-left role may come from the file's ``conversion`` column (0-1) when it has no monomer-left column;
    the MMD has the file's own number of points (at least :data:`MIN_MMD_POINTS`; ``mmd`` None: where the file has
    MMD columns); ``group``, where given, is a column of labels (a reaction's samples) returned as text under the
    same name (``group_optional``: only where the file has it); ``optional``: more columns (the file's own names)
    returned where the file has them.
    """
    frame, where = _read_raw(Path(path), sheet)
    frame.columns = [str(c).strip() for c in frame.columns]
    wanted = [system.column(r) for r in roles]
    conversion = None
    left = system.column(MONOMER_LEFT)
    if left in wanted and left not in frame.columns and system.conversion_name in frame.columns:
        wanted = [c for c in wanted if c != left]
        conversion = system.conversion_name
    n = len([c for c in frame.columns if _MMD_NAME.match(c)])
    mmd_names: tuple[str, ...] = ()
    if mmd or (mmd is None and n):
        if n < MIN_MMD_POINTS:
            raise PolyinvError(
                f"{where}: {'no MMD columns' if n == 0 else f'the MMD has {n} columns'}; "
                f"expected MMD1..MMDn with n >= {MIN_MMD_POINTS}"
            )
        mmd_names = mmd_columns(n)
    columns = [*wanted, *([conversion] if conversion else []), *mmd_names]
    table = _validated(frame, where, columns, mmd_names or MMD_COLUMNS, optional)
    conversion = conversion or (system.conversion_name if system.conversion_name in table.columns else None)
    if conversion:
        x = table[conversion].to_numpy()
        bad = np.flatnonzero((x < 0) | (x > 1))
        if len(bad):
            raise PolyinvError(
                f"{where}: column {conversion!r}, {row_text(int(bad[0]))}: conversion {x[bad[0]]:g} is not between "
                f"0 and 1 ({len(bad)} such row(s))"
            )
    table = system.to_internal(table)
    if group is not None and group in frame.columns:
        labels = frame[group]
        empty = np.flatnonzero(labels.isna().to_numpy())
        if len(empty):
            raise PolyinvError(f"{where}: column {group!r}, {row_text(int(empty[0]))}: an empty cell")
        table[group] = labels.astype(str).str.strip().to_numpy()
    elif group is not None and not group_optional:
        raise PolyinvError(f"{where}: missing column {group!r} (--group)")
    return table
