"""The output policy of every command that writes (one place, used everywhere).

- ``check_output`` / ``check_folder`` before any work: an output that is one of the command's inputs is refused
  even with ``--overwrite``; an existing file is replaced only with ``--overwrite``; a folder where a file is
  wanted (or the reverse), a name too long for the file system and a place that cannot be written are one-line
  errors.
- ``atomic_path`` at the end: the output is written to a temporary file beside the target and then placed;
  without ``overwrite`` the placement refuses a file that appeared meanwhile (another process), so nothing is
  ever replaced silently. A crash or an error leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from polyinv.errors import PolyinvError


def _same(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    return False


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for the file system"
    return exc.strerror or str(exc)


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _existing_folder(target: Path) -> Path:
    folder = target.absolute().parent
    while not os.path.exists(folder):  # os.path: never raises (Path.exists does on a name too long)
        folder = folder.parent
    return folder


def _check_name(target: Path, option: str) -> None:
    """No part of the name is longer than the file system allows (checked first: stat() fails on such names)."""
    whole = len(os.fsencode(str(target.absolute())))
    if whole >= 4096:  # PATH_MAX of Linux
        raise PolyinvError(
            f"{option} {str(target)[:60]}...: the path is longer than the file system allows ({whole} bytes)"
        )
    limit = _name_max(_existing_folder(target))
    long = [part for part in target.absolute().parts if len(os.fsencode(part)) > limit]
    if long:
        raise PolyinvError(
            f"{option} {str(target)[:60]}...: the name is longer than the file system allows "
            f"({len(os.fsencode(long[0]))} bytes, at most {limit})"
        )


def _writable(target: Path, option: str) -> None:
    """The nearest existing folder above ``target`` can take new files (a probe file is made and removed
    there: a read-only mount or folder says so even to root)."""
    folder = _existing_folder(target)
    if not os.path.isdir(folder):
        raise PolyinvError(f"{option} {target}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".polyinv-probe.", dir=folder)
    except OSError as exc:
        raise PolyinvError(f"{option} {target}: cannot write in {folder} ({_reason(exc)})") from None
    os.close(fd)
    os.unlink(probe)


def check_output(
    path: str | os.PathLike,
    option: str,
    *,
    overwrite: bool = False,
    inputs: Iterable = (),
    suffixes: Iterable[str] | None = None,
) -> Path:
    """Refuse, before any work, an output file that cannot or may not be written (module docstring)."""
    target = _check_file(path, option, overwrite, inputs, suffixes)
    _writable(target, option)
    return target


def _check_file(path, option: str, overwrite: bool, inputs: Iterable, suffixes: Iterable[str] | None) -> Path:
    """check_output's checks of the name itself (everything but whether its folder can be written)."""
    target = Path(path)
    _check_name(target, option)
    if os.path.isdir(target):
        raise PolyinvError(f"{option} {target} is a folder; give a file name")
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if target.suffix.lower() not in suffixes:
            raise PolyinvError(f"{option} {target}: give a name ending in {' or '.join(suffixes)}")
    for source in inputs:
        if source is not None and _same(target, Path(source)):
            raise PolyinvError(f"{option} {target} is the input file {source}; give another name")
    if os.path.lexists(target) and not overwrite:  # lexists: a dangling link is taken too
        raise PolyinvError(f"{option} {target} exists; pass --overwrite to replace it")
    return target


def check_folder(
    path: str | os.PathLike,
    option: str,
    names: Iterable[str],
    *,
    overwrite: bool = False,
    inputs: Iterable = (),
) -> Path:
    """Refuse, before any work, a folder of outputs that cannot take the files ``names`` (existing ones are
    replaced only with ``overwrite``; none may be an input)."""
    folder = Path(path)
    _check_name(folder, option)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise PolyinvError(f"{option} {folder} is a file; give a folder")
    for name in names:
        _check_file(folder / name, option, overwrite, inputs, None)
    _writable(folder / "x", option)  # one probe for the folder, not one per file
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success place it at ``path``.

    ``overwrite`` False: the placement refuses a file that appeared at ``path`` meanwhile (one-line error,
    nothing replaced). On any exception the temporary file is removed and ``path`` is left as it was. A failure
    of the file system (read-only, full, name too long) is a one-line error naming the file.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # a short temporary name: a target near the file system's name limit must still get one
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:32]}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise PolyinvError(f"{target}: cannot write ({_reason(exc)})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        if overwrite:
            os.replace(tmp_path, target)
        else:
            _place_new(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise PolyinvError(f"{target}: cannot write ({_reason(exc)})") from None
        raise


def _place_new(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` only if ``target`` does not exist (a hard link fails if it does)."""
    appeared = PolyinvError(
        f"{target} appeared while this command ran (another process?); nothing was replaced: "
        f"run again with another name or --overwrite"
    )
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise appeared from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        try:  # a file system without hard links: reserve the name, then move over the reservation
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            raise appeared from None
        os.replace(tmp, target)
        return
    tmp.unlink()
