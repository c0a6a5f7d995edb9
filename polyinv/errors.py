"""One exception type for every user-facing problem, and the one wrapper that turns it into an error line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


class PolyinvError(ValueError):
    """A problem with the user's input; its message is one line that names the culprit."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a PolyinvError (one line) instead of usage + exit."""

    def error(self, message: str):
        raise PolyinvError(f"{message} (see {self.prog} --help)")


def run_cli(main: Callable[[], int | None]) -> int:
    """Run a command's body: a PolyinvError becomes one ``error: ...`` line on stderr and exit status 2."""
    try:
        return int(main() or 0)
    except PolyinvError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
