"""The ``polyinv`` command: ``polyinv fit|predict|simulate|calibrate|design|explain|ensemble|tune ...`` (also ``python -m polyinv``).

Each subcommand is a small module here that only parses its options and calls library functions.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from polyinv.log import VERBOSITY_FLAGS

COMMANDS = {
    "fit": "train a model on a data file and score it on the held-out test split",
    "predict": "predict the recipe of every row of a file with a saved model",
    "simulate": "simulate a design or a file's recipes with the kinetic model, in the study's format",
    "calibrate": "fit the kinetic model's parameters and MMD axis to a data file",
    "design": "propose recipes for target Mn, Mw or dispersity, conversion and time, verified by simulation",
    "explain": "permutation importance of the inputs, per target",
    "ensemble": "train a deep ensemble of one network config, with calibrated intervals",
    "tune": "search a config's hyperparameters with Optuna (resumable, shareable storage)",
}


def usage() -> str:
    lines = [
        "usage: polyinv COMMAND [options]   (polyinv COMMAND --help for its options)",
        "",
        "every command takes -q (warnings and results only) and -v (more detail)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    flags = [a for a in argv if a in VERBOSITY_FLAGS]  # -q/-v before the command name apply to the command
    words = [a for a in argv if a not in VERBOSITY_FLAGS]
    if not words:
        print(usage())
        return 2
    command, rest = words[0], words[1:] + flags
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return importlib.import_module(f"polyinv.cli.{command}").main(rest)
