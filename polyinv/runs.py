"""Run folders, the distributed (DDP) environment, SIGTERM, TensorBoard and checkpoint files of a run.

Every run gets its own folder ``<output.root>/<name>/version_N``; DDP worker processes find it through
``POLYINV_RUN_DIR``. Nothing here knows about models or metrics.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from polyinv.atomic import atomic_path
from polyinv.errors import PolyinvError, RunInterrupted

RUN_DIR_ENV = "POLYINV_RUN_DIR"  # hands the run folder to DDP worker processes


def is_worker() -> bool:
    """True in a DDP worker process (local rank above 0): it trains but writes no run artefacts."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create and return ``root/name/version_N`` with the next free N (never reuses a folder)."""
    group = Path(root) / name
    try:
        group.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolyinvError(
            f"output.root {root}: cannot create the run folder {group} ({exc.strerror or exc})"
        ) from None
    existing = [
        int(p.name.split("_", 1)[1]) for p in group.glob("version_*") if p.name.split("_", 1)[1].isdigit()
    ]
    n = max(existing, default=-1) + 1
    while True:
        candidate = group / f"version_{n}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
        except OSError as exc:
            raise PolyinvError(
                f"output.root {root}: cannot create the run folder {candidate} ({exc.strerror or exc})"
            ) from None


def run_folder(root: str | Path, name: str, resume: Path | None) -> tuple[Path, bool]:
    """(the run's folder, whether this process created it): the resumed folder, the folder the DDP launcher
    handed a worker, or a new ``version_N`` (announced to the workers through the environment)."""
    worker_dir = os.environ.get(RUN_DIR_ENV)
    if resume is not None:
        return resume, False
    if worker_dir and is_worker():
        return Path(worker_dir), False
    try:
        run_dir = new_run_dir(root, name)
    except OSError as exc:
        raise PolyinvError(
            f"output.root {root}: cannot create the run folder ({exc.strerror or exc})"
        ) from exc
    os.environ[RUN_DIR_ENV] = str(run_dir)
    return run_dir, True


def discard_unfinished(run_dir: Path, model_files: tuple[str, ...]) -> None:
    """Remove a run folder this run created if it failed before saving any model (nothing to resume)."""
    if not any((run_dir / name).exists() for name in model_files):
        shutil.rmtree(run_dir, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def tb_logger(run_dir: Path) -> TensorBoardLogger:
    return TensorBoardLogger(save_dir=str(run_dir), name="", version="tensorboard", default_hp_metric=False)


def flat(config: dict, prefix: str = "") -> dict:
    """A nested config as ``section.key: value`` with plain values (TensorBoard's hyper-parameters)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, name + "."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


@contextlib.contextmanager
def sigterm_saves(trainer, run_dir: Path):
    """Lightning ends a SIGTERM'd fit in a code-less SystemExit (exit status 0): save last.ckpt and raise
    RunInterrupted instead, which names the command that continues the run."""
    try:
        yield
    except SIGTERMException as exc:
        trainer.save_checkpoint(run_dir / "last.ckpt")
        raise RunInterrupted(
            signal.SIGTERM,
            f"{run_dir}: training stopped by SIGTERM after {trainer.current_epoch} "
            f"epochs; continue with: polyinv fit --resume {run_dir}",
        ) from exc


def check_resumable(run_dir: Path, max_epochs: int | None) -> Path:
    """The run's last.ckpt, refused with one line (before anything is written) if it cannot continue."""
    path = run_dir / "last.ckpt"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        done = int(checkpoint["epoch"]) + 1
    except Exception as exc:
        raise PolyinvError(
            f"{path}: cannot resume from it ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
        ) from exc
    if max_epochs is not None and max_epochs <= done:
        raise PolyinvError(
            f"{run_dir}: the run has trained {done} epochs; give --trainer.max_epochs above {done} to continue"
        )
    return path


def store_domain(path: Path, domain: dict | None, drop_training_state: bool = False) -> None:
    """Replace the applicability domain stored in a Lightning checkpoint (atomic rewrite).

    ``drop_training_state`` also removes the optimizer and scheduler states, which inference never reads
    (L-BFGS keeps 2 × 50 weight-sized vectors: about 100× the weights); resuming reads last.ckpt."""
    if (domain is None and not drop_training_state) or not path.exists():
        return
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if domain is not None:
        checkpoint["polyinv_domain"] = domain
    if drop_training_state:
        checkpoint.pop("optimizer_states", None)
        checkpoint.pop("lr_schedulers", None)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def best_epoch(trainer) -> int | None:
    """The epoch of the trainer's best checkpoint (None without one)."""
    cb = trainer.checkpoint_callback
    if cb is None or not cb.best_model_path:
        return None
    try:
        return int(torch.load(cb.best_model_path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        return None
