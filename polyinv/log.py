"""Library messages go through :mod:`logging` (the ``polyinv`` logger); the commands decide where they go.

Library code narrates with ``LOG.info`` and warns with ``LOG.warning`` (or hands :func:`say` to a function
that takes a ``log`` callable). A command (:func:`polyinv.errors.run_cli`) calls :func:`configure`: narration
to standard output, each warning as one ``warning: ...`` line on standard error; ``-q`` keeps warnings and
results only (no narration, no progress bars), ``-v`` adds debug detail. Results (tables, the run folder)
are printed by the command itself.
"""

from __future__ import annotations

import logging
import sys

LOG = logging.getLogger("polyinv")
WARNING_PREFIX = "warning: "
VERBOSITY_FLAGS = {"-q": -1, "--quiet": -1, "-v": 1, "--verbose": 1}


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return WARNING_PREFIX + text if record.levelno >= logging.WARNING else text


class _CurrentStream(logging.StreamHandler):
    """A handler on whatever ``sys.stdout`` / ``sys.stderr`` is when a record is emitted (tests swap them)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def stream(self):
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the current stream is used instead
        pass


def configure(verbosity: int = 0) -> None:
    """Route polyinv's messages: -1 warnings only, 0 narration too, 1 debug detail too."""
    LOG.handlers.clear()
    LOG.propagate = False
    out, err = _CurrentStream("stdout"), _CurrentStream("stderr")
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(_OneLine())
        LOG.addHandler(handler)
    LOG.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG)


def split_verbosity(argv: list[str]) -> tuple[list[str], int]:
    """(the command line without -v/-q, the verbosity they set; the last one wins)."""
    verbosity, rest = 0, []
    for arg in argv:
        if arg in VERBOSITY_FLAGS:
            verbosity = VERBOSITY_FLAGS[arg]
        else:
            rest.append(arg)
    return rest, verbosity


def quiet() -> bool:
    """True when the command runs with -q (no narration, no progress bars)."""
    return not LOG.isEnabledFor(logging.INFO)


def say(line: str) -> None:
    """One line of narration; a line that starts with ``warning: `` is logged as a warning."""
    if line.startswith(WARNING_PREFIX):
        LOG.warning(line[len(WARNING_PREFIX) :])
    else:
        LOG.info(line)
