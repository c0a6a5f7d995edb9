"""``polyinv fit --config configs/mlp.yaml [--section.key value ...]`` or ``polyinv fit --resume RUN_DIR``.

Trains one model on a data file, evaluates it on the held-out test split, prints the metric table and,
as the last line, ``run: <run folder>``. ``--help`` lists every setting of the config's model kind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from polyinv import config as cfg
from polyinv.errors import PolyinvError, run_cli
from polyinv.log import quiet
from polyinv.runner import run


def resume_argv(argv: list[str]) -> tuple[list[str], Path | None]:
    """``--resume RUN`` → (the run's saved config first, then the other arguments; the run folder)."""
    if "--resume" not in argv and not any(a.startswith("--resume=") for a in argv):
        return argv, None
    rest, run_dir = [], None
    i = 0
    while i < len(argv):
        if argv[i] == "--resume" and i + 1 < len(argv):
            run_dir, i = Path(argv[i + 1]), i + 2
        elif argv[i].startswith("--resume="):
            run_dir, i = Path(argv[i].split("=", 1)[1]), i + 1
        else:
            rest.append(argv[i])
            i += 1
    if run_dir is None:
        raise PolyinvError("--resume needs a run folder")
    if not (run_dir / "config.yaml").is_file():
        raise PolyinvError(f"{run_dir}: not a run folder (no config.yaml)")
    if not (run_dir / "last.ckpt").is_file():
        raise PolyinvError(f"{run_dir}: no last.ckpt to resume from (only network runs resume)")
    if any(a == "--config" or a.startswith("--config=") for a in rest):
        raise PolyinvError("--resume takes the run's own config; give overrides only")
    return ["--config", str(run_dir / "config.yaml"), *rest], run_dir


def main(argv: Sequence[str] | None = None) -> int:
    def body(argv: list[str]) -> int:
        started = time.perf_counter()
        args, resume = resume_argv(argv)
        config, _ = cfg.parse(args, prog="polyinv fit", description=__doc__.splitlines()[0])
        result = run(config, resume=resume, verbose=not quiet(), progress=False if quiet() else None)
        if result is not None:  # None in a DDP worker process
            print(result.table())
            print(
                f"{time.perf_counter() - started:.0f} s from reading the config to here "
                f"(training {result.train_seconds:.0f} s)"
            )
            print(f"run: {result.run_dir}")
        return 0

    return run_cli(body, argv)
