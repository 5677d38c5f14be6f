"""Atomic file writes: a reader never sees a half-written file.

Every writer in the package goes through :func:`atomic_path`: it hands out a
temporary path in the destination's folder (same file system, so the final
``os.replace`` is atomic) and renames it into place only if the block finishes.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", *, fsync: bool = False,
                keep_previous: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` when the block succeeds.

    On an exception (or a full disk) the temporary file is removed and any
    existing ``path`` is left untouched. The new file gets the usual
    permissions (0666 minus the umask), not ``mkstemp``'s private 0600.

    Args:
        suffix: of the temporary file (some writers choose the format by it).
        fsync: flush the new file to disk before the rename (checkpoints).
        keep_previous: keep the file being replaced under this name; it is renamed
            only once the new file is complete, so one of the two is always whole.

    Example:
        >>> with atomic_path("out.csv") as tmp:
        ...     tmp.write_text("a,b\\n")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
