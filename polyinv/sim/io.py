"""Writing simulated data sets: .xlsx (study format + metadata sheet), .csv (+ JSON sidecar), .parquet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from polyinv.atomic import atomic_path
from polyinv.schema import (
    COMPOSITE_COLUMNS,
    SHEET_COMPOSITE,
    SHEET_METADATA,
    SHEET_MMD_RAW,
    frame_mmd_columns,
)

FORMATS: tuple[str, ...] = (".xlsx", ".csv", ".parquet")
PARQUET_METADATA_KEY = b"polyinv.metadata"


def output_format(path: str | os.PathLike) -> str:
    """The format chosen by the extension of ``path``; ValueError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"output path must end in one of {', '.join(FORMATS)}, got {str(path)!r}")
    return suffix


def metadata_sidecar(path: str | os.PathLike) -> Path:
    """Where the metadata of a .csv output goes: ``PATH.metadata.json``."""
    return Path(f"{path}.metadata.json")


def write_dataset(
    data: pd.DataFrame,
    path: str | os.PathLike,
    metadata: list[tuple[str, str]],
    overwrite: bool = True,
    columns: tuple[str, ...] | None = None,
) -> Path:
    """Write ``data`` (compuesta columns, or ``columns``: another system's names, first four the recipe) atomically;
    the format follows the extension.

    .xlsx: sheets ``compuesta``, ``mmd_raw_data`` (docs/data-format.md, same names and order) and ``metadata``
    (two columns key, value). .csv: the compuesta columns, metadata in ``PATH.metadata.json``.
    .parquet: the compuesta columns, metadata as JSON in the file's schema metadata. ``overwrite`` False: a
    file that appeared meanwhile is not replaced (polyinv.atomic).
    """
    fmt = output_format(path)
    # the study's columns, with the data's own MMD point count (a calibration's axis may have another)
    columns = (*COMPOSITE_COLUMNS[:7], *frame_mmd_columns(data)) if columns is None else columns
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ValueError(f"data lacks columns {missing[:5]}")
    composite = data[list(columns)]
    raw = (*columns[:4], *frame_mmd_columns(data))  # the mmd_raw_data sheet: recipe and MMD
    meta = pd.DataFrame(metadata, columns=["key", "value"])
    target = Path(path)
    if fmt == ".xlsx":
        with atomic_path(target, overwrite) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            composite.to_excel(writer, sheet_name=SHEET_COMPOSITE, index=False)
            data[list(raw)].to_excel(writer, sheet_name=SHEET_MMD_RAW, index=False)
            meta.to_excel(writer, sheet_name=SHEET_METADATA, index=False)
    elif fmt == ".csv":
        sidecar = metadata_sidecar(target)
        # the data file innermost: a failure while writing it is reported under its name
        with atomic_path(sidecar, overwrite) as tmp_meta, atomic_path(target, overwrite) as tmp:
            composite.to_csv(tmp, index=False)
            tmp_meta.write_text(
                json.dumps(dict(metadata), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    else:
        table = pa.Table.from_pandas(composite, preserve_index=False)
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[PARQUET_METADATA_KEY] = json.dumps(dict(metadata), ensure_ascii=False).encode("utf-8")
        with atomic_path(target, overwrite) as tmp:
            pq.write_table(table.replace_schema_metadata(schema_meta), tmp)
    return target


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The key/value metadata stored with a data set written by ``write_dataset``."""
    fmt = output_format(path)
    if fmt == ".xlsx":
        meta = pd.read_excel(path, sheet_name=SHEET_METADATA, dtype=str, keep_default_na=False)
        return dict(zip(meta["key"], meta["value"], strict=True))
    if fmt == ".csv":
        return json.loads(metadata_sidecar(path).read_text(encoding="utf-8"))

    raw = pq.read_schema(path).metadata[PARQUET_METADATA_KEY]
    return json.loads(raw.decode("utf-8"))
