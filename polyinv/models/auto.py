"""The model chosen per target by cross-validation on the training rows (``model.kind: auto``).

This module holds the fitted composite (predict, intervals, save, load); :mod:`polyinv.select` makes the
choice, above training, because choosing trains other models: every candidate scored on the same K folds of
the training rows, the test split never seen, a costly candidate run only where it can still change the
choice and its counted work fits ``budget`` (the rule is stated there and in docs/models.md).

Saved as one folder: ``auto.json`` (choice, scores, costs, domain, interval calibration) and one file per
chosen member (``<name>.skops`` or ``<name>.ckpt``); :func:`polyinv.models.load_model` reads it like any model.
Intervals: a GP member's own calibrated interval; for a network member, the held-out |residuals| of its
folds (split-conformal, in the target's transformed space).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.models.base import InverseModel, register
from polyinv.models.intervals import half_width_multiplier
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS

KIND = "auto"
MANIFEST = "auto.json"
DEFAULT_CANDIDATES = ("gp.yaml", "gp_noisy.yaml", "mlp.yaml")
RETIRED_HPARAMS = ("budget_s", "good_enough")


@register
class AutoModel(InverseModel):
    """One chosen member per target; same interface as any polyinv model."""

    kind = KIND
    family = "auto"
    has_interval = True
    has_loo = True

    def __init__(
        self,
        targets: Sequence[str] | None = None,
        side_inputs: Sequence[str] | None = None,
        mmd_columns: Sequence[str] | None = None,
        transforms: dict[str, str] | None = None,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        folds: int = 5,
        budget: float = 1_000_000.0,
        min_gain: float = 0.002,
        fold_jobs: int = 0,
        random_state: int = 42,
    ) -> None:
        """
        Args:
            candidates: configs whose model sections compete (shipped names such as gp.yaml, or paths)
            folds: K of the K-fold cross-validation every candidate is scored by (the same folds for all)
            budget: work the network candidates may take, in MLP row-epochs (rows × epochs × the kind's cost
                per row-epoch, over the folds and the final fit); counted, never timed
            min_gain: a candidate after the first runs only while the ones before it leave at least this
                much global held-out R² to gain
            fold_jobs: a network's folds trained side by side in this many processes (0: one per CPU core);
                the predictions are the same whatever the number
            random_state: seed of the folds and of the networks (set from the run's seed)
        """
        if not candidates:
            raise PolyinvError("model.candidates is empty: name at least one config (e.g. gp.yaml)")
        if int(folds) < 2:
            raise PolyinvError(f"model.folds must be at least 2, got {folds}")
        if not float(budget) >= 0:
            raise PolyinvError(f"model.budget must be zero or more MLP row-epochs, got {budget}")
        if int(fold_jobs) < 0:
            raise PolyinvError(f"model.fold_jobs must be 0 (one per CPU core) or more, got {fold_jobs}")
        if not 0 <= float(min_gain) <= 1:
            raise PolyinvError(f"model.min_gain must lie in [0, 1] (a share of global R²), got {min_gain}")
        self.target_names = list(TARGETS if targets is None else targets)
        self.side_names = list(SIDE_INPUTS if side_inputs is None else side_inputs)
        self.mmd_names = list(MMD_COLUMNS if mmd_columns is None else mmd_columns)
        self.transforms = dict(transforms or {})
        self.hparams = {
            "candidates": [str(c) for c in candidates],
            "folds": int(folds),
            "budget": float(budget),
            "min_gain": float(min_gain),
            "fold_jobs": int(fold_jobs),
            "random_state": int(random_state),
        }
        self.members: dict = {}
        self.choice: dict[str, str] = {}
        self.selection: dict = {}
        self.calibration: dict[str, list[float]] = {}
        self.domain: dict | None = None
        self._heldout: np.ndarray | None = (
            None  # held-out recipes of the fit rows (the domain's consistency check)
        )
        self._fit_x: np.ndarray | None = None
        self._trainers: dict = {}

    def adopt(
        self,
        members: dict,
        choice: dict[str, str],
        heldout: dict[str, np.ndarray],
        x: np.ndarray,
        y: np.ndarray,
        selection: dict,
        trainers: dict | None = None,
    ) -> AutoModel:
        """Take a selection's result (polyinv.select): the chosen ``members`` by name, the ``choice`` per target,
        each candidate's held-out predictions of the fit rows ``x`` (their targets ``y``); ``trainers`` saves
        the network members. Members without intervals get split-conformal |residuals| of their held-out rows."""
        self.members, self.choice, self._trainers = members, dict(choice), dict(trainers or {})
        self._heldout = np.column_stack(
            [heldout[self.choice[t]][:, j] for j, t in enumerate(self.target_names)]
        )
        self._fit_x = np.asarray(x, dtype=np.float64)
        self.calibration = {}
        for j, t in enumerate(self.target_names):
            if not self.members[self.choice[t]].has_interval:
                self.calibration[t] = np.sort(
                    np.abs(self._transform(y, j) - self._transform(self._heldout, j))
                ).tolist()
        self.selection = dict(selection)
        return self

    # ------------------------------------------------------------------ prediction
    def _transform(self, physical: np.ndarray, j: int) -> np.ndarray:
        values = np.asarray(physical, dtype=np.float64)[:, j]
        return (
            np.log(np.maximum(values, 1e-300))
            if self.transforms.get(self.target_names[j]) == "log"
            else values
        )

    def _untransform(self, values: np.ndarray, j: int) -> np.ndarray:
        return np.exp(values) if self.transforms.get(self.target_names[j]) == "log" else values

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Each target from its chosen member, physical units (N, T)."""
        by_member = {name: m.predict_arrays(mmd, side) for name, m in self.members.items()}
        return np.column_stack(
            [by_member[self.choice[t]][:, _index(self.members[self.choice[t]], t)] for t in self.target_names]
        )

    def loo_predict_arrays(
        self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray, folds=None
    ) -> np.ndarray:
        """The held-out recipes of the rows the selection ran on (same rows, same order), from its folds."""
        if folds is not None:
            raise PolyinvError("an auto model keeps the held-out recipes of its own folds only")
        x = np.hstack([np.asarray(mmd, dtype=np.float64), np.asarray(side, dtype=np.float64)])
        if (
            self._heldout is None
            or self._fit_x is None
            or x.shape != self._fit_x.shape
            or not np.allclose(x, self._fit_x)
        ):
            raise PolyinvError("held-out predictions exist only for the rows the selection ran on, in order")
        return self._heldout.copy()

    def predict_interval(self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9):
        """(mean, lower, upper) of the central ``level`` interval, physical units: a GP member's calibrated
        interval, or the chosen network's prediction ± the ``level`` quantile of its held-out |residuals|."""
        mean = self.predict_arrays(mmd, side)
        low, high = mean.copy(), mean.copy()
        intervals = {
            name: m.predict_interval(mmd, side, level) for name, m in self.members.items() if m.has_interval
        }
        for j, t in enumerate(self.target_names):
            name = self.choice[t]
            if name in intervals:
                k = _index(self.members[name], t)
                low[:, j], high[:, j] = intervals[name][1][:, k], intervals[name][2][:, k]
            else:
                half = half_width_multiplier(self.calibration.get(t), level)
                centre = self._transform(mean, j)
                low[:, j], high[:, j] = (
                    self._untransform(centre - half, j),
                    self._untransform(centre + half, j),
                )
        return mean, low, high

    # ------------------------------------------------------------------ saving and loading
    def save(self, folder: str | Path) -> Path:
        """Write the chosen members and ``auto.json`` into ``folder`` (atomically, file by file)."""
        folder = Path(folder)
        files = {}
        for name, member in self.members.items():
            if name in self._trainers:
                files[name] = f"{name}.ckpt"
                with atomic_path(folder / files[name]) as tmp:
                    self._trainers[name].save_checkpoint(tmp, weights_only=True)
            else:
                files[name] = f"{name}.skops"
                member.save(folder / files[name])
        manifest = {
            "polyinv_kind": KIND,
            "members": files,
            "choice": self.choice,
            "hparams": self.hparams,
            "schema": {
                "targets": self.target_names,
                "side_inputs": self.side_names,
                "mmd_columns": self.mmd_names,
                "transforms": self.transforms,
            },
            "selection": self.selection,
            "calibration": self.calibration,
            "domain": self.domain,
            "files": self.files_info(),
        }
        path = folder / MANIFEST
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        return path

    @classmethod
    def from_manifest(cls, manifest: dict, members: dict) -> AutoModel:
        try:
            # budget_s and good_enough (selection settings of earlier versions) do not change predictions
            hparams = {k: v for k, v in manifest["hparams"].items() if k not in RETIRED_HPARAMS}
            model = cls(**manifest["schema"], **hparams)
        except (KeyError, TypeError) as exc:
            raise PolyinvError(
                f"{MANIFEST}: does not match an auto model of this polyinv version ({exc})"
            ) from exc
        model.members, model.choice = members, dict(manifest["choice"])
        model.selection, model.calibration = (
            manifest.get("selection") or {},
            manifest.get("calibration") or {},
        )
        model.domain = manifest.get("domain")
        model.read_files_info(manifest.get("files"))
        return model


def read_manifest(folder: str | Path) -> tuple[dict, dict[str, Path]]:
    """The manifest of an auto folder and its member files, each of which must lie inside the folder."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PolyinvError(
            f"{folder / MANIFEST}: cannot read the auto model's manifest ({type(exc).__name__})"
        ) from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("polyinv_kind") != KIND
        or not isinstance(manifest.get("members"), dict)
    ):
        raise PolyinvError(f"{folder / MANIFEST}: not a polyinv auto-model manifest")
    root = folder.resolve()
    files = {}
    for name, file in manifest["members"].items():
        path = (folder / str(file)).resolve()
        if path.parent != root:
            raise PolyinvError(f"{folder / MANIFEST}: member {file!r} lies outside the model's folder")
        files[name] = path
    if set(manifest.get("choice", {}).values()) - set(files):
        raise PolyinvError(f"{folder / MANIFEST}: a target's chosen member has no file")
    return manifest, files


def _index(member, target: str) -> int:
    return list(member.target_names).index(target)
