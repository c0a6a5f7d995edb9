"""``polyinv ensemble --config configs/mlp.yaml --members N [--level 0.9] [--section.key value ...]``.

Trains N copies of one network config that differ only in their initialisation seed and writes one
loadable folder ``<output.root>/<name>_ensemble/version_K`` (``member_00.ckpt`` …, ``ensemble.json``); the
interval is calibrated on the validation split, test metrics and coverage go to ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyinv import config as cfg
from polyinv.errors import run_cli
from polyinv.log import quiet
from polyinv.runner import fit_ensemble


def _options(parser) -> None:
    parser.add_argument("--members", type=int, default=5, help="number of members")
    parser.add_argument("--level", type=float, default=0.9, help="interval level reported on the test split")


def main(argv: Sequence[str] | None = None) -> int:
    def body(argv: list[str]) -> int:
        config, own = cfg.parse(
            argv, prog="polyinv ensemble", description=__doc__.splitlines()[0], extra=_options
        )
        result = fit_ensemble(
            config, own["members"], own["level"], verbose=not quiet(), progress=False if quiet() else None
        )
        if result is not None:  # None in a DDP worker process
            interval = result.metrics["interval"]
            print(result.table())
            print(
                f"coverage of the {interval['level']:g} interval: "
                + ", ".join(f"{t} {c:.3f}" for t, c in interval["coverage"].items())
            )
            print(f"run: {result.run_dir}")
        return 0

    return run_cli(body, argv)
