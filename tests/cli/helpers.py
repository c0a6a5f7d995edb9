"""Shared checks of the hostile rounds: a command that fails as a user should see it, and a folder's bytes."""

from __future__ import annotations

from pathlib import Path


def fails(capsys, command, args) -> str:
    """Run ``command.main(args)``: exit 2, one ``error:`` line on stderr, no traceback; returns the line."""
    rc = command.main(args)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (to show that nothing was touched)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
