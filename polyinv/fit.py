"""``python -m polyinv.fit --config configs/mlp.yaml [--section.key value ...] [--resume RUN_DIR]``.

Trains one model on a data file, evaluates it on the held-out test split, prints the metric table
and, as the last line, ``run: <run folder>``. Any config key can be overridden on the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from polyinv.errors import ArgumentParser, PolyinvError, run_cli


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m polyinv.fit", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config (configs/mlp.yaml, cnn.yaml, rf.yaml, rf_mmd.yaml)")
    parser.add_argument("--resume", help="run folder to continue from its last.ckpt (uses its saved config)")

    def body() -> int:
        args, rest = parser.parse_known_args(argv)
        from polyinv import config as cfg
        from polyinv.train import run

        overrides = cfg.parse_overrides(rest)
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "config.yaml").exists():
                raise PolyinvError(f"{run_dir}: not a run folder (no config.yaml)")
            config = cfg.resolve(None, overrides, base=cfg.load_yaml(run_dir / "config.yaml"))
            result = run(config, resume=run_dir)
        else:
            if not args.config:
                raise PolyinvError("--config is required (e.g. --config configs/mlp.yaml)")
            config = cfg.resolve(args.config, overrides)
            result = run(config)
        if result is not None:
            print(f"run: {result.run_dir}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
