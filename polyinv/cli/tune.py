"""``polyinv tune --config mlp.yaml --trials N [--storage URL] [--study NAME] [--out BEST.yaml]``.

Searches the settings listed in the config's ``tune.space`` with Optuna (TPE sampler, median pruning of network
trials), one line per trial; trials are kept in ``--storage`` (default: an SQLite file under
``<output.root>/tune``), so the command resumes a stopped study and several processes or machines started with
the same ``--storage`` and ``--study`` share one. At the end it writes the best config (``polyinv fit --config``
takes it), the trials' table beside it, and fits that config once to score it on the test split (``--no-test``
skips that fit).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from polyinv import config as cfg
from polyinv import tune
from polyinv.atomic import atomic_path, check_output
from polyinv.errors import run_cli
from polyinv.log import quiet, say
from polyinv.runner import run


def _options(parser) -> None:
    parser.add_argument("--trials", type=int, default=30, help="finished trials the study should hold")
    parser.add_argument(
        "--storage",
        type=str | None,
        default=None,
        help="Optuna storage URL (sqlite:///tune.db, postgresql://..., mysql://...; "
        "default: sqlite under <output.root>/tune)",
    )
    parser.add_argument("--study", type=str | None, default=None, help="study name (default: the run name)")
    parser.add_argument(
        "--out",
        type=str | None,
        default=None,
        help="best config YAML (default: <output.root>/tune/<study>_best.yaml); the trials go beside it as .csv",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--test", action=argparse.BooleanOptionalAction, default=True, help="fit the best config and score it"
    )
    parser.add_argument(
        "--sampler_seed", type=int | None, default=None, help="seed of the TPE sampler (null: random)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body(argv: list[str]) -> int:
        config, own = cfg.parse(
            argv, prog="polyinv tune", description=__doc__.splitlines()[0], extra=_options
        )
        base = _base_argv(argv)
        name = own["study"] or config["name"]
        out = Path(own["out"] or Path(config["output"]["root"]) / "tune" / f"{name}_best.yaml")
        check_output(out, "--out", overwrite=own["overwrite"], suffixes=(".yaml", ".yml"))
        table = out.with_suffix(".csv")
        check_output(table, "--out (its trials table)", overwrite=own["overwrite"])
        storage = own["storage"] or tune.default_storage(config, name)
        tell = (lambda line: None) if quiet() else say
        tell(f"study {name!r} in {storage}")
        study = tune.run_study(base, config, own["trials"], storage, name, own["sampler_seed"], print)
        best = tune.best_config(base, study)
        with atomic_path(out, overwrite=own["overwrite"]) as tmp:
            tmp.write_text(cfg.dump(best))
        with atomic_path(table, overwrite=own["overwrite"]) as tmp:
            pd.DataFrame(tune.trials_table(study)).to_csv(tmp, index=False)
        trial = tune.best_trial(study)
        print(f"best: trial {trial.number}, validation R² {trial.value:.4f}")
        print(f"config: {out}")
        if own["test"]:
            result = run(best, verbose=not quiet(), progress=False)
            if result is not None:
                print(result.table())
                print(f"run: {result.run_dir}")
        return 0

    return run_cli(body, argv)


class _Declared:
    """Records the options :func:`_options` declares: name → whether it takes a value."""

    def __init__(self) -> None:
        self.takes_value: dict[str, bool] = {}

    def add_argument(self, name: str, action=None, **_) -> None:
        flag = action in ("store_true", "store_false") or action is argparse.BooleanOptionalAction
        self.takes_value[name] = not flag
        if action is argparse.BooleanOptionalAction:
            self.takes_value[f"--no-{name[2:]}"] = False


def _base_argv(argv: list[str]) -> list[str]:
    """The command line less tune's own options (as :func:`_options` declares them): what every trial's config
    is parsed from."""
    declared = _Declared()
    _options(declared)
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        key = arg.split("=", 1)[0]
        if key in declared.takes_value:
            i += 2 if declared.takes_value[key] and "=" not in arg else 1
        else:
            out.append(arg)
            i += 1
    return out
