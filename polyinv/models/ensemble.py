"""Deep ensembles: N networks of one config that differ only in their initialisation seed.

Saved as one folder: ``member_00.ckpt`` … plus ``ensemble.json`` (member files, calibration,
validation/test coverage). :func:`polyinv.models.load_model` loads the folder like any checkpoint; a
manifest naming a member outside its folder is refused. Trained by :func:`polyinv.runner.fit_ensemble`.

Prediction = mean of the members in the scaled target space (e.g. log cAIBN_0), mapped back to
physical units. Interval = mean ± m·std of the members in that space, where the multiplier ``m`` is
calibrated on the validation split (see :mod:`polyinv.models.intervals`) so that the central
``level`` interval covers the validation rows at the requested rate; monotone transforms map
the interval ends to physical units.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.models.base import InverseModel
from polyinv.models.intervals import abs_z, half_width_multiplier

KIND = "ensemble"
MANIFEST = "ensemble.json"


class EnsembleModel(InverseModel):
    """A list of loaded polyinv networks sharing one schema; same interface as any model."""

    kind = KIND
    family = "ensemble"
    has_interval = True

    def __init__(
        self, members: list, calibration: dict[str, list[float]] | None = None, domain: dict | None = None
    ) -> None:
        if not members:
            raise PolyinvError("an ensemble needs at least one member")
        first = members[0]
        for m in members[1:]:
            if (m.target_names, m.side_names, m.mmd_names) != (
                first.target_names,
                first.side_names,
                first.mmd_names,
            ):
                raise PolyinvError("ensemble members disagree on their input or target columns")
        self.members = members
        self.target_names = list(first.target_names)
        self.side_names = list(first.side_names)
        self.mmd_names = list(first.mmd_names)
        self.domain = domain or first.domain  # the ensemble's own (with consistency) when saved
        self.read_files_info(first.files_info())
        self.calibration = dict(calibration or {})

    def _scaled(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """(members, N, T) member predictions in the first member's scaled target space."""
        scaler = self.members[0].target_scaler
        out = []
        for member in self.members:
            physical = torch.as_tensor(member.predict_arrays(mmd, side), dtype=torch.float64)
            out.append(scaler(physical).numpy())
        return np.stack(out)

    def _physical(self, scaled: np.ndarray) -> np.ndarray:
        return self.members[0].target_scaler.inverse(torch.as_tensor(scaled, dtype=torch.float64)).numpy()

    def mean_std(self, mmd: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and spread in scaled target space, (N, T) each."""
        scaled = self._scaled(np.asarray(mmd, dtype=np.float64), np.asarray(side, dtype=np.float64))
        std = scaled.std(axis=0, ddof=1) if len(self.members) > 1 else np.zeros(scaled.shape[1:])
        return scaled.mean(axis=0), std

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        return self._physical(self.mean_std(mmd, side)[0])

    def predict_interval(self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9):
        """(mean, lower, upper) of the calibrated central ``level`` interval, physical units."""
        if len(self.members) < 2:
            raise PolyinvError("an ensemble of one member gives no interval")
        mean, std = self.mean_std(mmd, side)
        mult = np.array([half_width_multiplier(self.calibration.get(t), level) for t in self.target_names])
        return self._physical(mean), self._physical(mean - mult * std), self._physical(mean + mult * std)

    def calibrate(self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray) -> None:
        """Store the normalised |residuals| of held-out (validation) rows per target."""
        mean, std = self.mean_std(mmd, side)
        y = (
            self.members[0].target_scaler(torch.as_tensor(np.array(targets, dtype=np.float64))).numpy()
        )  # a writable copy
        z = abs_z(y, mean, std)
        self.calibration = {t: z[:, j].tolist() for j, t in enumerate(self.target_names)}

    # ------------------------------------------------------------------ saving and loading
    def save(self, folder: str | Path, member_files: list[str], extra: dict | None = None) -> Path:
        """Write ``ensemble.json`` into ``folder`` (member files already there)."""
        manifest = {
            "polyinv_kind": KIND,
            "members": member_files,
            "calibration": self.calibration,
            "domain": self.domain,
            **(extra or {}),
        }
        path = Path(folder) / MANIFEST
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        return path


def read_manifest(folder: str | Path) -> tuple[dict, list[Path]]:
    """The manifest of an ensemble folder and its member files, each of which must lie inside the folder."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PolyinvError(
            f"{folder / MANIFEST}: cannot read ensemble manifest ({type(exc).__name__})"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("polyinv_kind") != KIND or not manifest.get("members"):
        raise PolyinvError(f"{folder / MANIFEST}: not a polyinv ensemble manifest")
    root = folder.resolve()
    files = []
    for name in manifest["members"]:
        path = (folder / str(name)).resolve()
        if path.parent != root:
            raise PolyinvError(f"{folder / MANIFEST}: member {name!r} lies outside the ensemble folder")
        files.append(path)
    return manifest, files
