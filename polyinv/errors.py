"""One exception type for every user-facing problem (bad file, bad column, bad config)."""

from __future__ import annotations

import sys
from collections.abc import Callable


class PolyinvError(ValueError):
    """A problem with the user's input; its message is one line that names the culprit."""


def run_cli(main: Callable[[], int | None]) -> int:
    """Run a CLI body; turn a PolyinvError into one ``error: ...`` line on stderr and exit status 2."""
    try:
        return int(main() or 0)
    except PolyinvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
