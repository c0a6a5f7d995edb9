"""One exception type for every user-facing problem, and the one wrapper that turns it into an error line."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from polyinv.log import configure, split_verbosity


class PolyinvError(ValueError):
    """A problem with the user's input; its message is one line that names the culprit."""


class PolyinvWarning(UserWarning):
    """Something in the user's input that polyinv uses as given but the user should know about."""


class RunInterrupted(Exception):
    """A training run stopped by a signal; its last.ckpt is kept so that ``polyinv fit --resume`` continues."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a PolyinvError (one line) instead of usage + exit; lists
    the -v/-q every command takes (read by run_cli before parsing)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="store_true", help="more detail in the narration")
        self.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="warnings and results only: no narration, no progress bars",
        )

    def error(self, message: str):
        raise PolyinvError(f"{message} (see {self.prog} --help)")


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, PolyinvWarning):
        return f"warning: {message}\n"
    return _plain_format(message, category, filename, lineno, line)


_plain_format = warnings.formatwarning


def run_cli(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command's body on its command line (``sys.argv[1:]`` when None) less ``-v``/``-q``, which set
    polyinv's logging (polyinv.log): a PolyinvError becomes one ``error: ...`` line on stderr and exit status
    2; a signalled run exits 128 + the signal; polyinv's warnings print as one ``warning: ...`` line."""
    warnings.formatwarning = _format_warning
    argv, verbosity = split_verbosity(list(sys.argv[1:] if argv is None else argv))
    configure(verbosity)
    try:
        return int(main(argv) or 0)
    except PolyinvError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
