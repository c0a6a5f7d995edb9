"""LightningDataModule: read a study file, split it with a seed, fit scalers on the training split only.

Batches are ``(mmd, side, targets)`` in *physical* units: ``mmd`` shaped (B, 1, L) so a CNN sees
the MMD as a one-channel signal, ``side`` (B, k) the scalar side inputs (k = 0 for the MMD-only
feature set), ``targets`` (B, T). Scaling happens inside the model, with the statistics this
module fitted on the training rows (:meth:`scalers`), so it is applied exactly once and travels
in the checkpoint.

A file of another system (``system``) is read in its own column names and carries the internal role names
from then on (:mod:`polyinv.schema`); its MMD has the file's own number of points. Under the ``sampled``
protocol each row's time is an input and the targets are the recipe alone.
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold, train_test_split
from torch.utils.data import DataLoader, TensorDataset

from polyinv.data.io import header_of, read_system_table, read_table, row_text
from polyinv.errors import PolyinvError
from polyinv.nn.scaling import MIN_STD, ColumnScaler
from polyinv.schema import (
    COMPOSITE_COLUMNS,
    MMD_COLUMNS,
    MONOMER_LEFT,
    PROTOCOLS,
    SYSTEM,
    frame_mmd_columns,
    protocol_columns,
    system_named_by,
    system_of,
)

MIN_SPLIT_ROWS = 2  # R² needs two rows; fewer in any split is an error, not a silent NaN
MMD_SCALINGS = ("column", "pooled")


DEFAULT_DATA = "data/ba_aibn_grid432.xlsx"
REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_data_path(path: str | Path) -> Path:
    """A relative path that does not exist here is also looked up in the polyinv checkout (the shipped data)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        return REPO_ROOT / path
    return path


class PolyDataModule(L.LightningDataModule):
    """Seeded train/validation/test split of one data file (optionally k-fold) with train-only scalers.

    Args:
        path: data file (.xlsx, .csv or .parquet in the study's columns); a relative path missing here is
            looked up in the polyinv checkout
        sheet: sheet of an .xlsx file (null: compuesta); must be null for .csv and .parquet
        system: the chemistry whose column names the file uses (ba: the study's; mma, sty)
        protocol: stop (the study's runs: time is when a run stopped, a target) or sampled (lab samples:
            time is when the sample was taken, an input; the model predicts the recipe)
        feature_set: mmd (the MMD values) or composite (monomer left or conversion, Mn, Mw + MMD)
        axis: the file's MMD axis [log10 M of the first point, of the last, normalisation density|sum|max], stored
            in the model so that predict --axis can re-bin traces onto it (null: the file's metadata's, if any)
        test_path: a separate file to test on (all its rows); then no test split is cut from path
        transforms: per-column transform of inputs and targets, e.g. {Mn: log, cAIBN_0: log}
        mmd_scaling: column (every MMD point standardised) or pooled (one mean and spread for the MMD)
        test_fraction: share of the rows held out for the test split
        val_fraction: share of the remaining rows held out for validation (0: none)
        folds: K of a seeded K-fold whose fold `fold` is the test split (null: one random split)
        fold: which fold is the test split (with folds)
        seed: seed of the split
        batch_size: rows per training batch (0: every row in one batch, as L-BFGS needs)
        num_workers: data loader worker processes
    """

    def __init__(
        self,
        path: str = DEFAULT_DATA,
        sheet: str | None = None,
        feature_set: Literal["mmd", "composite"] = "composite",
        system: str = SYSTEM.key,
        protocol: Literal["stop", "sampled"] = "stop",
        axis: tuple[float, float, Literal["density", "sum", "max"]] | None = None,
        test_path: str | None = None,
        transforms: dict[str, Literal["log", "none"]] | None = None,
        mmd_scaling: Literal["column", "pooled"] = "column",
        test_fraction: float = 0.2,
        val_fraction: float = 0.1,
        folds: int | None = None,
        fold: int = 0,
        seed: int = 42,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.path = resolve_data_path(path)
        self.sheet = sheet
        self.test_path = Path(test_path) if test_path else None
        try:
            self.system = system_of(system)
        except ValueError as exc:
            raise PolyinvError(f"data.system: {exc}") from None
        if protocol not in PROTOCOLS:
            raise PolyinvError(f"data.protocol {protocol!r} unknown; choose one of {', '.join(PROTOCOLS)}")
        self.protocol = protocol
        self.axis = axis
        self.target_columns, self.side_columns = protocol_columns(feature_set, protocol)
        #: the study's files have the fixed 100-point MMD; other systems' and lab files their own (set by setup)
        self.mmd_columns = MMD_COLUMNS
        self.feature_set = feature_set
        transforms = {self.system.renames.get(c, c): t for c, t in (transforms or {}).items()}
        unknown = sorted(self.system.column(c) for c in set(transforms) - set(COMPOSITE_COLUMNS))
        if unknown:
            raise PolyinvError(f"data.transforms names unknown column(s): {', '.join(unknown)}")
        # a transform of a column this feature set does not use (e.g. Mn for 'mmd') is simply not needed
        self.transforms = {c: t for c, t in transforms.items() if c in self.columns}
        if mmd_scaling not in MMD_SCALINGS:
            raise PolyinvError(f"data.mmd_scaling {mmd_scaling!r} unknown; choose one of {MMD_SCALINGS}")
        self.mmd_scaling = mmd_scaling
        if not 0 < test_fraction < 1:
            raise PolyinvError(f"data.test_fraction must lie in (0, 1), got {test_fraction}")
        if not 0 <= val_fraction < 1:
            raise PolyinvError(f"data.val_fraction must lie in [0, 1), got {val_fraction}")
        if folds is not None and (int(folds) < 2 or not 0 <= int(fold) < int(folds)):
            raise PolyinvError(
                f"data.folds must be >= 2 and data.fold in 0..folds-1, got folds={folds}, fold={fold}"
            )
        self.test_fraction, self.val_fraction = float(test_fraction), float(val_fraction)
        self.folds, self.fold = (int(folds) if folds is not None else None), int(fold)
        self.seed = int(seed)
        if int(batch_size) < 0:
            raise PolyinvError(
                f"data.batch_size must be >= 0 (0: every row of a split in one batch), got {batch_size}"
            )
        self.batch_size = int(batch_size)  # 0: full batch
        self.num_workers = int(num_workers)
        self.frame: pd.DataFrame | None = None
        self.train_idx = self.val_idx = self.test_idx = np.empty(0, dtype=np.int64)
        self._scalers: dict[str, ColumnScaler] | None = None

    # ------------------------------------------------------------------ reading and splitting
    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.target_columns) + tuple(self.side_columns) + tuple(self.mmd_columns)

    def setup(self, stage: str | None = None) -> None:
        """Read, validate and split once; later calls are no-ops."""
        if self.frame is not None:
            return
        frame = self._read(self.path, self.sheet)
        if self.test_path is not None:
            # a fixed external test set: every row of test_path; train/validation from path
            test = self._read(
                self.test_path, self.sheet if self.test_path.suffix.startswith(".xls") else None
            )
            if len(test) < MIN_SPLIT_ROWS:
                raise PolyinvError(f"{self.test_path}: {len(test)} rows are too few for a test set")
            train, val = split_train_val(np.arange(len(frame)), self.val_fraction, self.seed, str(self.path))
            frame = pd.concat([frame, test], ignore_index=True)
            self.train_idx, self.val_idx = train, val
            self.test_idx = np.arange(len(frame) - len(test), len(frame))
        else:
            self.train_idx, self.val_idx, self.test_idx = split_indices(
                len(frame),
                self.test_fraction,
                self.val_fraction,
                self.seed,
                self.folds,
                self.fold,
                where=str(self.path),
            )
        self.frame = frame
        self._scalers = None
        self._check_scalable()

    @property
    def own_names(self) -> bool:
        """Whether files are read as the study's (the default system's names, the stop protocol, 100 points)."""
        return self.system.key == SYSTEM.key and self.protocol == "stop"

    def _read(self, path: Path, sheet: str | None) -> pd.DataFrame:
        """A validated file in the internal names; outside the study's files the MMD takes the file's length,
        the same for every file of the run. A file of another system than ``data.system`` is named in the error."""
        try:
            return self._read_validated(path, sheet)
        except PolyinvError as exc:
            other = system_named_by(header_of(path, sheet))
            if other is None or other.key == self.system.key:
                raise
            raise PolyinvError(
                f"{exc} — the file has {other.monomer_0}: set data.system {other.key}"
            ) from exc

    def _read_validated(self, path: Path, sheet: str | None) -> pd.DataFrame:
        if self.own_names:
            return read_frame(path, self.columns, sheet)
        roles = [*self.target_columns, *self.side_columns]
        conv = self.system.conversion_name
        training = self.frame is None and path == self.path  # the training file decides the inputs
        # the conversion is the model's input where the training file has it under the sampled protocol (as
        # measured: the monomer left would need [M]0, a target), or has no monomer left (either protocol); the
        # monomer left otherwise. Every later file must hold the same column.
        optional = [conv] if self.protocol == "sampled" and training else []
        frame = read_system_table(path, self.system, roles, sheet, optional=optional)
        if training and conv in frame.columns and MONOMER_LEFT in self.side_columns:
            self.side_columns = tuple(conv if c == MONOMER_LEFT else c for c in self.side_columns)
            self.transforms.pop(MONOMER_LEFT, None)
        names = frame_mmd_columns(frame)
        if training:
            self.mmd_columns = names
        elif names != tuple(self.mmd_columns):
            raise PolyinvError(
                f"{path}: the MMD has {len(names)} points; {self.path} has {len(self.mmd_columns)}"
            )
        return frame[list(self.columns)]

    def _check_scalable(self) -> None:
        """Every training value stays finite through its transform and the training rows' standardisation
        (a finite 1e308 would overflow the mean and train a NaN model)."""
        train = self.frame.iloc[self.train_idx]
        largest = float(np.finfo(np.float32).max)  # networks and forests compute in float32
        for column in self.columns:
            x = train[column].to_numpy(np.float64)
            if self.transforms.get(column) == "log":
                continue  # logs of positive values are finite; values <= 0 are refused when the scalers are fitted
            with np.errstate(all="ignore"):
                z = (x - x.mean()) / max(float(x.std()), MIN_STD)
            bad = ~np.isfinite(z) | (np.abs(x) > largest)
            if bad.any():
                i = int(np.flatnonzero(bad)[np.argmax(np.abs(x[bad]))])
                raise PolyinvError(
                    f"{self.path}: column {column!r}, {row_text(int(self.train_idx[i]))}: the value {float(x[i]):g} "
                    "is too large for the models (float32) or overflows when standardised; check the file (or give the "
                    "column a log transform)"
                )

    def restricted(self, train_idx: np.ndarray, test_idx: np.ndarray | None = None) -> PolyDataModule:
        """A copy over the same frame whose splits are these rows (no validation): inner cross-validation and
        refits on the training rows, with scalers fitted on ``train_idx`` alone."""

        if self.frame is None:
            self.setup()
        other = copy.copy(self)
        other.train_idx = np.asarray(train_idx)
        other.val_idx = np.empty(0, dtype=np.int64)
        other.test_idx = np.empty(0, dtype=np.int64) if test_idx is None else np.asarray(test_idx)
        other._scalers = None
        other.__dict__.pop("train_tensors", None)
        return other

    def _rows(self, idx: np.ndarray) -> pd.DataFrame:
        if self.frame is None:
            self.setup()
        assert self.frame is not None
        return self.frame.iloc[idx]

    @property
    def train_frame(self) -> pd.DataFrame:
        return self._rows(self.train_idx)

    @property
    def val_frame(self) -> pd.DataFrame:
        return self._rows(self.val_idx)

    @property
    def test_frame(self) -> pd.DataFrame:
        return self._rows(self.test_idx)

    # ------------------------------------------------------------------ scaling
    def scalers(self) -> dict[str, ColumnScaler]:
        """Scalers for ``mmd``, ``side`` and ``targets``, fitted on the training split only."""
        if self._scalers is None:
            train = self.train_frame
            scalers = {
                "mmd": ColumnScaler(self.mmd_columns, self.transforms, pooled=self.mmd_scaling == "pooled"),
                "side": ColumnScaler(self.side_columns, self.transforms),
                "targets": ColumnScaler(self.target_columns, self.transforms),
            }
            for name, cols in (
                ("mmd", self.mmd_columns),
                ("side", self.side_columns),
                ("targets", self.target_columns),
            ):
                try:
                    scalers[name].fit(train[list(cols)].to_numpy())
                except PolyinvError as exc:
                    raise PolyinvError(f"{self.path}: {exc}") from exc
            self._scalers = scalers
        return self._scalers

    # ------------------------------------------------------------------ tensors and loaders
    def tensors(self, frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mmd (N,1,L), side (N,k), targets (N,4)) as float32 physical values."""
        return frame_to_tensors(frame, self.side_columns, self.mmd_columns, self.target_columns)

    @cached_property
    def train_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training rows as (mmd, side, targets) tensors (epoch-end training metrics)."""
        return self.tensors(self.train_frame)

    def _loader(self, frame: pd.DataFrame, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            TensorDataset(*self.tensors(frame)),
            batch_size=self.batch_size or max(1, len(frame)),
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_frame, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_frame, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_frame, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


def read_frame(path: str | Path, columns: tuple[str, ...], sheet: str | None = None) -> pd.DataFrame:
    """Read and validate ``columns`` of a data file (see :func:`polyinv.data.io.read_table`)."""

    return read_table(path, columns, sheet=sheet, mmd_columns=MMD_COLUMNS)


def frame_to_tensors(
    frame: pd.DataFrame, side_columns, mmd_columns, target_columns=None
) -> tuple[torch.Tensor, ...]:
    """Turn a validated frame into model tensors; targets are omitted when ``target_columns`` is None."""
    mmd = torch.tensor(frame[list(mmd_columns)].to_numpy(np.float32)).unsqueeze(1)
    side = torch.tensor(frame[list(side_columns)].to_numpy(np.float32)).reshape(len(frame), len(side_columns))
    if target_columns is None:
        return mmd, side
    targets = torch.tensor(frame[list(target_columns)].to_numpy(np.float32))
    return mmd, side, targets


def split_indices(
    n_rows: int,
    test_fraction: float,
    val_fraction: float,
    seed: int,
    folds: int | None = None,
    fold: int = 0,
    where: str = "data",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, val, test) row indices.

    Without folds the test split is ``train_test_split(..., test_size=test_fraction,
    random_state=seed)`` — with seed 42 exactly the study's split. With ``folds=k`` the test split
    is fold ``fold`` of a shuffled, seeded k-fold. Validation is carved from the rest with the same seed.
    """
    rows = np.arange(n_rows)
    n_val_min = MIN_SPLIT_ROWS if val_fraction > 0 else 0
    need = MIN_SPLIT_ROWS * 2 + n_val_min
    if folds is not None:
        need = max(need, folds * MIN_SPLIT_ROWS)
    if n_rows < need:
        raise PolyinvError(
            f"{where}: {n_rows} rows are too few for the split (test {test_fraction:g}, validation "
            f"{val_fraction:g}{f', {folds} folds' if folds else ''}); need at least {need}"
        )
    if folds is not None:
        train_val, test = list(KFold(folds, shuffle=True, random_state=seed).split(rows))[fold]
    else:
        train_val, test = train_test_split(rows, test_size=test_fraction, random_state=seed)
    if len(test) < MIN_SPLIT_ROWS:
        raise PolyinvError(
            f"{where}: {n_rows} rows leave only {len(test)} in the test split; need at least {MIN_SPLIT_ROWS}"
        )
    train, val = split_train_val(train_val, val_fraction, seed, where, n_rows)
    return train, val, np.asarray(test)


def split_train_val(rows: np.ndarray, val_fraction: float, seed: int, where: str, n_rows: int | None = None):
    """Carve a seeded validation split from ``rows``; both parts must keep at least MIN_SPLIT_ROWS rows."""
    n_rows = len(rows) if n_rows is None else n_rows
    if val_fraction > 0:
        if len(rows) < 2 * MIN_SPLIT_ROWS:
            raise PolyinvError(f"{where}: {n_rows} rows are too few for a training and a validation split")
        train, val = train_test_split(rows, test_size=val_fraction, random_state=seed)
    else:
        train, val = rows, np.empty(0, dtype=np.int64)
    for name, part in (("validation", val), ("training", train)):
        if name == "validation" and val_fraction == 0:
            continue
        if len(part) < MIN_SPLIT_ROWS:
            raise PolyinvError(
                f"{where}: {n_rows} rows leave only {len(part)} in the {name} split; need at least {MIN_SPLIT_ROWS}"
            )
    return np.asarray(train), np.asarray(val)
