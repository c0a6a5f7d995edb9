"""The model chosen per target by cross-validation on the training rows (``model.kind: auto``).

Candidates are configs (shipped ones by name, e.g. ``gp.yaml``): their ``model`` section on the run's data
and split. Each is scored per target on held-out predictions of the *training* rows only — the GP's exact
leave-one-out predictions (closed form, no refits), K-fold for the others — through the one evaluation
harness (:func:`polyinv.metrics.evaluate`). Every target takes the candidate with the best held-out R².
Cheap candidates go first; a costly one is skipped when the ones before it already reach ``good_enough``
on every target, or when its folds would not fit in ``budget_s``. The test split is never seen.

Saved as one folder: ``auto.json`` (choice, scores, costs, domain, interval calibration) and one file per
chosen member (``<name>.skops`` or ``<name>.ckpt``); :func:`polyinv.models.load_model` reads it like any model.
Intervals: a GP member's own calibrated interval; for a network member, the held-out |residuals| of its
folds (split-conformal, in the target's transformed space).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError
from polyinv.schema import MMD_COLUMNS, SIDE_INPUTS, TARGETS, ColumnCounts
from polyinv.trust.calibration import half_width_multiplier

KIND = "auto"
MANIFEST = "auto.json"
DEFAULT_CANDIDATES = ("gp.yaml", "gp_noisy.yaml", "mlp.yaml")
#: a network's final fit on every training row is assumed to cost this many of its folds (more rows per step)
FINAL_FIT_FOLDS = 1.5


class AutoModel(ColumnCounts):
    """One chosen member per target; same interface as any polyinv model."""

    kind = KIND

    def __init__(
        self,
        targets: Sequence[str] | None = None,
        side_inputs: Sequence[str] | None = None,
        mmd_columns: Sequence[str] | None = None,
        transforms: dict[str, str] | None = None,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        folds: int = 3,
        budget_s: float = 600.0,
        good_enough: float = 0.999,
        random_state: int = 42,
    ) -> None:
        """
        Args:
            candidates: configs whose model sections compete (shipped names such as gp.yaml, or paths)
            folds: K of the K-fold cross-validation of candidates without leave-one-out predictions
            budget_s: seconds the whole selection may take; a candidate whose folds would overrun it is skipped
            good_enough: a costly candidate is skipped when the cheaper ones reach this held-out R² on every target
            random_state: seed of the folds and of the networks (set from the run's seed)
        """
        if not candidates:
            raise PolyinvError("model.candidates is empty: name at least one config (e.g. gp.yaml)")
        if int(folds) < 2:
            raise PolyinvError(f"model.folds must be at least 2, got {folds}")
        if not float(budget_s) > 0:
            raise PolyinvError(f"model.budget_s must be positive, got {budget_s}")
        self.target_names = list(TARGETS if targets is None else targets)
        self.side_names = list(SIDE_INPUTS if side_inputs is None else side_inputs)
        self.mmd_names = list(MMD_COLUMNS if mmd_columns is None else mmd_columns)
        self.transforms = dict(transforms or {})
        self.hparams = {"candidates": [str(c) for c in candidates], "folds": int(folds), "budget_s": float(budget_s),
                        "good_enough": float(good_enough), "random_state": int(random_state)}
        self.members: dict = {}
        self.choice: dict[str, str] = {}
        self.selection: dict = {}
        self.calibration: dict[str, list[float]] = {}
        self.domain: dict | None = None
        self._heldout: np.ndarray | None = None  # held-out recipes of the fit rows (the domain's consistency check)
        self._fit_x: np.ndarray | None = None
        self._trainers: dict = {}

    # ------------------------------------------------------------------ selection
    def fit(self, config: dict, dm, rows: np.ndarray, log: Callable[[str], None] | None = print):
        """Score every candidate on held-out predictions of ``rows`` (training rows of ``dm``), choose per target,
        fit the chosen networks on all of ``rows``; ``log`` gets a line per step with the seconds used."""
        from polyinv.metrics import evaluate

        hp = self.hparams
        started = time.perf_counter()
        say = log or (lambda _line: None)
        frame = dm.frame.iloc[rows]
        y = frame[self.target_names].to_numpy(np.float64)
        configs = candidate_configs(hp["candidates"], config)
        scores, heldout, costs, skipped, fitted = {}, {}, {}, {}, {}
        for name, cfg in sorted(configs.items(), key=lambda item: _is_network(item[1])):
            elapsed = time.perf_counter() - started
            best = {t: max((s[t] for s in scores.values()), default=-np.inf) for t in self.target_names}
            if _is_network(cfg) and scores and min(best.values()) >= hp["good_enough"]:
                skipped[name] = f"the candidates before it reach held-out R² >= {hp['good_enough']} on every target"
                say(f"auto: {name} skipped ({skipped[name]})")
                continue
            tick = time.perf_counter()
            if _is_network(cfg):
                pred = self._kfold_network(name, cfg, dm, rows, started, say)
                if pred is None:
                    skipped[name] = f"its {hp['folds']} folds and final fit would overrun budget_s {hp['budget_s']:g}"
                    continue
            else:
                model = _build(cfg, dm, progress=False)
                model.fit(*_arrays(frame, model))
                pred = model.loo_predict_arrays(*_arrays(frame, model)) if hasattr(model, "loo_predict_arrays") else None
                if pred is None:
                    pred = self._kfold_classical(cfg, dm, rows)
                fitted[name] = model
            costs[name] = time.perf_counter() - tick
            metrics = evaluate(y, pred, self.target_names)
            scores[name] = {t: metrics["targets"][t]["r2"] for t in self.target_names}
            heldout[name] = pred
            say(f"auto: {name} held-out R² " + ", ".join(f"{t} {r:.4f}" for t, r in scores[name].items())
                + f" ({costs[name]:.0f} s; {elapsed + costs[name]:.0f} of {hp['budget_s']:.0f} s used)")
        if not scores:
            raise PolyinvError(f"auto: no candidate could be scored within model.budget_s {hp['budget_s']:g} s")
        self.choice = {t: max(scores, key=lambda n, t=t: scores[n][t]) for t in self.target_names}
        for name in dict.fromkeys(self.choice.values()):
            if name not in fitted:
                tick = time.perf_counter()
                fitted[name], self._trainers[name] = _train_network(configs[name], dm.restricted(rows), hp["random_state"])
                costs[name] += time.perf_counter() - tick
                say(f"auto: {name} fitted on all {len(rows)} training rows ({time.perf_counter() - tick:.0f} s)")
        self.members = {name: fitted[name] for name in dict.fromkeys(self.choice.values())}
        self._heldout = np.column_stack([heldout[self.choice[t]][:, j] for j, t in enumerate(self.target_names)])
        self._fit_x = np.hstack(_arrays(frame, self)[:2])
        for j, t in enumerate(self.target_names):  # split-conformal |residuals| for members without intervals
            if not hasattr(self.members[self.choice[t]], "predict_interval"):
                self.calibration[t] = np.sort(np.abs(self._transform(y, j) - self._transform(self._heldout, j))).tolist()
        self.selection = {"choice": self.choice, "heldout_r2": scores, "seconds": costs, "skipped": skipped,
                          "folds": hp["folds"], "budget_s": hp["budget_s"], "seconds_total": time.perf_counter() - started,
                          "heldout": {t: "leave-one-out" if hasattr(self.members[self.choice[t]], "loo_predict_arrays")
                                      else f"{hp['folds']}-fold" for t in self.target_names}}
        say("auto: chosen " + ", ".join(f"{t} {n}" for t, n in self.choice.items())
            + f" ({self.selection['seconds_total']:.0f} s)")
        return self

    def _kfold_network(self, name: str, cfg: dict, dm, rows: np.ndarray, started: float, say) -> np.ndarray | None:
        """Held-out predictions of ``rows`` by K-fold; None when the folds would overrun the budget."""
        from sklearn.model_selection import KFold

        from polyinv.inference import predict_frame

        hp = self.hparams
        pred = np.empty((len(rows), len(self.target_names)))
        splits = list(KFold(hp["folds"], shuffle=True, random_state=hp["random_state"]).split(rows))
        for k, (train, test) in enumerate(splits):
            tick = time.perf_counter()
            sub = dm.restricted(rows[train], rows[test])
            model, _ = _train_network(cfg, sub, hp["random_state"])
            pred[test] = predict_frame(model, sub.test_frame)
            fold = time.perf_counter() - tick
            left = (len(splits) - k - 1 + FINAL_FIT_FOLDS) * fold
            say(f"auto: {name} fold {k + 1}/{len(splits)} ({fold:.0f} s)")
            if time.perf_counter() - started + left > hp["budget_s"]:
                say(f"auto: {name} skipped: {left:.0f} s more would overrun budget_s {hp['budget_s']:g}")
                return None
        return pred

    def _kfold_classical(self, cfg: dict, dm, rows: np.ndarray) -> np.ndarray:
        from sklearn.model_selection import KFold

        pred = np.empty((len(rows), len(self.target_names)))
        for train, test in KFold(self.hparams["folds"], shuffle=True, random_state=self.hparams["random_state"]).split(rows):
            model = _build(cfg, dm, progress=False)
            model.fit(*_arrays(dm.frame.iloc[rows[train]], model))
            pred[test] = model.predict_arrays(*_arrays(dm.frame.iloc[rows[test]], model)[:2])
        return pred

    # ------------------------------------------------------------------ prediction
    def _transform(self, physical: np.ndarray, j: int) -> np.ndarray:
        values = np.asarray(physical, dtype=np.float64)[:, j]
        return np.log(np.maximum(values, 1e-300)) if self.transforms.get(self.target_names[j]) == "log" else values

    def _untransform(self, values: np.ndarray, j: int) -> np.ndarray:
        return np.exp(values) if self.transforms.get(self.target_names[j]) == "log" else values

    def predict_arrays(self, mmd: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Each target from its chosen member, physical units (N, T)."""
        by_member = {name: m.predict_arrays(mmd, side) for name, m in self.members.items()}
        return np.column_stack([by_member[self.choice[t]][:, _index(self.members[self.choice[t]], t)]
                                for t in self.target_names])

    def loo_predict_arrays(self, mmd: np.ndarray, side: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The held-out recipes of the rows the selection ran on (same rows, same order)."""
        x = np.hstack([np.asarray(mmd, dtype=np.float64), np.asarray(side, dtype=np.float64)])
        if self._heldout is None or self._fit_x is None or x.shape != self._fit_x.shape or not np.allclose(x, self._fit_x):
            raise PolyinvError("held-out predictions exist only for the rows the selection ran on, in order")
        return self._heldout.copy()

    def predict_interval(self, mmd: np.ndarray, side: np.ndarray, level: float = 0.9):
        """(mean, lower, upper) of the central ``level`` interval, physical units: a GP member's calibrated
        interval, or the chosen network's prediction ± the ``level`` quantile of its held-out |residuals|."""
        mean = self.predict_arrays(mmd, side)
        low, high = mean.copy(), mean.copy()
        intervals = {name: m.predict_interval(mmd, side, level) for name, m in self.members.items()
                     if hasattr(m, "predict_interval")}
        for j, t in enumerate(self.target_names):
            name = self.choice[t]
            if name in intervals:
                k = _index(self.members[name], t)
                low[:, j], high[:, j] = intervals[name][1][:, k], intervals[name][2][:, k]
            else:
                half = half_width_multiplier(self.calibration.get(t), level)
                centre = self._transform(mean, j)
                low[:, j], high[:, j] = self._untransform(centre - half, j), self._untransform(centre + half, j)
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
        manifest = {"polyinv_kind": KIND, "members": files, "choice": self.choice, "hparams": self.hparams,
                    "schema": {"targets": self.target_names, "side_inputs": self.side_names, "mmd_columns": self.mmd_names,
                               "transforms": self.transforms},
                    "selection": self.selection, "calibration": self.calibration, "domain": self.domain}
        path = folder / MANIFEST
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        return path

    @classmethod
    def from_manifest(cls, manifest: dict, members: dict) -> AutoModel:
        try:
            model = cls(**manifest["schema"], **manifest["hparams"])
        except (KeyError, TypeError) as exc:
            raise PolyinvError(f"{MANIFEST}: does not match an auto model of this polyinv version ({exc})") from exc
        model.members, model.choice = members, dict(manifest["choice"])
        model.selection, model.calibration = manifest.get("selection") or {}, manifest.get("calibration") or {}
        model.domain = manifest.get("domain")
        return model


def read_manifest(folder: str | Path) -> tuple[dict, dict[str, Path]]:
    """The manifest of an auto folder and its member files, each of which must lie inside the folder."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PolyinvError(f"{folder / MANIFEST}: cannot read the auto model's manifest ({type(exc).__name__})") from exc
    if not isinstance(manifest, dict) or manifest.get("polyinv_kind") != KIND or not isinstance(manifest.get("members"), dict):
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


# ---------------------------------------------------------------------------------------------- helpers
def candidate_configs(candidates: Sequence[str], run_config: dict) -> dict[str, dict]:
    """Each candidate config resolved (defaults included), with the run's seed, data and output settings."""
    from polyinv.config import find_config, parse

    out = {}
    for candidate in candidates:
        path = find_config(candidate)
        config = parse(["--config", str(path)])[0]
        if config["model"]["kind"] == KIND:
            raise PolyinvError(f"model.candidates: {candidate} is itself an auto config")
        config.update(seed=run_config["seed"], model_seed=run_config.get("model_seed"), data=run_config["data"])
        name = path.stem
        if name in out:
            raise PolyinvError(f"model.candidates names {name!r} twice")
        out[name] = config
    return out


def _is_network(config: dict) -> bool:
    from polyinv.models import NETWORKS

    return config["model"]["kind"] in NETWORKS


def _build(config: dict, dm, progress: bool):
    from polyinv.train import build_model

    config = dict(config, trainer=dict(config["trainer"], enable_progress_bar=progress))
    return build_model(config, dm)


def _arrays(frame, model) -> tuple[np.ndarray, ...]:
    return tuple(frame[list(c)].to_numpy(np.float64) for c in (model.mmd_names, model.side_names, model.target_names))


def _index(member, target: str) -> int:
    return list(member.target_names).index(target)


def _train_network(config: dict, dm, seed: int):
    """A network trained on ``dm``'s training rows with its config's trainer settings, in memory (no run folder)."""
    import lightning as L

    from polyinv.train import lbfgs_numerics

    L.seed_everything(seed if config.get("model_seed") is None else config["model_seed"], workers=True, verbose=False)
    model = _build(config, dm, progress=False)
    model.fit_statistics(dm.scalers(), dm.train_frame)
    trainer_cfg = {k: v for k, v in config["trainer"].items()}
    trainer_cfg.update(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer = L.Trainer(**trainer_cfg)
    with lbfgs_numerics(model.hparams.optimizer == "lbfgs"):
        trainer.fit(model, datamodule=dm)
    model.eval()
    return model.cpu(), trainer
