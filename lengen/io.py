"""Atomic writing: every file and folder lengen produces appears whole or not at all.

A writer puts its output under a unique temporary name in the *same* directory (so the final
rename never crosses a filesystem, and two processes writing the same target never share a
temporary) and then ``os.replace``-s it into place, which is atomic on POSIX. A killed job leaves
at most a stray ``.NAME.*`` temporary, never a truncated result, checkpoint or cache entry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a unique temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


@contextmanager
def atomic_dir(path: str | os.PathLike, *, replace_empty: bool = True) -> Iterator[Path]:
    """Yield a unique temporary folder beside ``path``; on success it becomes ``path``.

    When ``path`` exists it must be an empty folder (``replace_empty``) or the rename fails, so a
    concurrent writer that finished first wins and nothing is clobbered.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private
        if replace_empty and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
