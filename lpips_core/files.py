"""Every file the package writes, written atomically: a reader never sees a half-written file.

All writers go through :func:`atomic_path`: it hands out a temporary path in the
destination's folder (same file system, so the final ``os.replace`` is atomic) and
renames it into place only if the block finishes. On top of it: text, bytes, CSV,
JSON, ``torch.save`` payloads and matplotlib figures. :func:`cache_root` is the one
place that says where cached files (converted weights, feature caches) live.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "REPOSITORY_URL",
    "REPOSITORY_BRANCH",
    "STORED_MAX_BYTES",
    "STORED_MAX_AGE_S",
    "atomic_path",
    "atomic_paths",
    "write_text",
    "write_bytes",
    "write_csv",
    "write_dict_csv",
    "write_json",
    "save_torch",
    "pyplot",
    "save_figure",
    "printable",
    "cache_root",
    "stored_file",
    "stored_file_hint",
]


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike,
    suffix: str = ".tmp",
    *,
    fsync: bool = False,
    keep_previous: str | os.PathLike | None = None,
) -> Iterator[Path]:
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


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for several files that form one result; all are moved into place together.

    Each temporary file lies beside its destination (the same file system). Only when the
    block succeeds are they renamed into place, one right after the other; on an exception
    every temporary file is removed and every earlier file is left as it was, so a failure
    half-way never pairs new files with old ones.

    Example:
        >>> with atomic_paths(["m.npy", "m.files.txt"]) as (matrix, names):  # doctest: +SKIP
        ...     np.save(matrix, m); names.write_text("a.png\\nb.png\\n")
    """
    paths = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
            os.close(fd)
            tmps.append(Path(tmp))
        yield list(tmps)
        umask = os.umask(0)
        os.umask(umask)
        for tmp in tmps:
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()


def write_text(path: str | os.PathLike, text: str, errors: str = "strict") -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; returns the path.

    Args:
        errors: the encoder's error handler; ``"surrogateescape"`` writes file names that
            are not UTF-8 (as ``os.listdir`` gives them) back as their original bytes.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8", errors=errors) as f:
            f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence], errors: str = "strict") -> Path:
    """A CSV file with one header line, then ``rows`` (``csv`` module dialect, CRLF line ends).

    Args:
        errors: as :func:`write_text` (``"surrogateescape"`` for rows of file names).
    """
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buf.getvalue(), errors)


def write_dict_csv(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """A CSV file of dicts, columns in the order of the first row's keys (empty file without rows)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return write_text(path, buf.getvalue())


def _json_default(o: Any):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite_or_none(o: Any):
    """Replace NaN/inf by None (recursively) so the JSON is standard."""
    if isinstance(o, dict):
        return {k: _finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_none(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (np.floating,)):
        return _finite_or_none(float(o))
    return o


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Standard JSON (NaN/inf as null; numpy scalars, arrays and paths converted), indent 2."""
    return write_text(path, json.dumps(_finite_or_none(obj), indent=2, default=_json_default) + "\n")


def save_torch(
    obj: Any, path: str | os.PathLike, *, fsync: bool = False, keep_previous: str | os.PathLike | None = None
) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_path` for the options)."""
    with atomic_path(path, fsync=fsync, keep_previous=keep_previous) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def pyplot():
    """matplotlib's pyplot on the file backend (Agg), unless pyplot is in use already.

    A notebook (inline backend) or an application has imported pyplot with its own
    backend: switching it to Agg here would silently stop its later figures.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 120, metadata: dict | None = None) -> Path:
    """Save a matplotlib figure atomically (the format follows the file name's suffix).

    Args:
        metadata: passed to ``savefig`` (for PNG: text chunks, e.g. ``{"Software": ...}``).
    """
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=metadata)
    return Path(path)


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a file name (``surrogateescape``) shown as U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def cache_root() -> Path:
    """Where cached files live: ``$LPIPS_CORE_CACHE``, else ``~/.cache/lpips_core``."""
    base = os.environ.get("LPIPS_CORE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "lpips_core"


# --------------------------------------------------------------------------- stored results
#: The repository the course and the package live in: the same address as
#: ``repository.url`` / ``repository.branch`` in _config.yml (tests/test_release.py checks it).
REPOSITORY_URL = "https://github.com/lpips-course/lpips_core"
REPOSITORY_BRANCH = "main"


def _raw_base() -> str:
    """Base URL of the repository's files; ``$LPIPS_CORE_REPOSITORY_RAW`` overrides it (tests, forks)."""
    override = os.environ.get("LPIPS_CORE_REPOSITORY_RAW")
    if override:
        return override.rstrip("/")
    owner_repo = REPOSITORY_URL.removeprefix("https://github.com/").strip("/")
    return f"https://raw.githubusercontent.com/{owner_repo}/{REPOSITORY_BRANCH}"


def _checkout_root() -> Path | None:
    """The repository the package is imported from (an editable install or ``PYTHONPATH``), if any."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "lpips_core").is_dir() else None


#: Largest stored file fetched from the repository (the stored results are a few MB at most).
STORED_MAX_BYTES = 64 * 2**20
#: A fetched copy older than this is fetched again when the repository is reachable.
STORED_MAX_AGE_S = 7 * 24 * 3600


def _stored_digest_path(cached: Path) -> Path:
    return cached.with_name(cached.name + ".sha256")


def _stored_copy_intact(cached: Path) -> bool:
    """The cached copy is whole: its sha256 is the one recorded when it was fetched."""
    import hashlib

    record = _stored_digest_path(cached)
    if not (cached.is_file() and record.is_file()):
        return False
    expected = record.read_text(encoding="ascii", errors="replace").split()[:1]
    return expected == [hashlib.sha256(cached.read_bytes()).hexdigest()]


def _fetch_stored(url: str, timeout: float, max_bytes: int) -> bytes | None:
    """The body at ``url``, at most ``max_bytes`` (checked from Content-Length and while reading), or None."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and (not length.isdigit() or int(length) > max_bytes):
                return None
            data = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return None
    if len(data) > max_bytes or (length is not None and len(data) != int(length)):
        return None  # too large, or cut short
    return data


def stored_file(
    relpath: str,
    *,
    fetch: bool = True,
    timeout: float = 20.0,
    max_bytes: int = STORED_MAX_BYTES,
    max_age_s: float = STORED_MAX_AGE_S,
) -> Path | None:
    """A file committed to the repository (stored results, benchmark tables), wherever the package runs.

    Looked up, in order: in the checkout the package is imported from; in
    ``cache_root() / "stored"``; at the repository address (:data:`REPOSITORY_URL`,
    branch :data:`REPOSITORY_BRANCH`) over HTTPS, saved to that cache atomically.
    So a notebook on Colab, with the package installed from the repository and an
    empty working directory, reads the same stored results as one in a clone.

    A fetched file is at most ``max_bytes`` (a larger or cut-short answer is not
    kept), and its sha256 is recorded beside the cached copy (``<name>.sha256``): a
    copy that no longer matches it (damaged, truncated, edited) is never returned,
    and one older than ``max_age_s`` is fetched again when the repository answers
    (kept when it does not).

    Args:
        relpath: path inside the repository, e.g. ``"benchmarks/results/inference_cpu.json"``.
        fetch: allow the download (False: checkout and cache only).
    Returns:
        the local path, or None when no source has it (see :func:`stored_file_hint`).
    """
    import hashlib
    import time

    rel = Path(relpath)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"stored_file: {relpath!r} must be a path inside the repository, like 'results/x.json'")
    root = _checkout_root()
    if root is not None and (root / rel).is_file():
        return root / rel
    cached = cache_root() / "stored" / rel
    intact = _stored_copy_intact(cached)
    if intact and (not fetch or time.time() - cached.stat().st_mtime < max_age_s):
        return cached
    if not fetch:
        return None
    data = _fetch_stored(f"{_raw_base()}/{rel.as_posix()}", timeout, max_bytes)
    if data is None:
        return cached if intact else None  # a stale but whole copy beats nothing when offline
    with atomic_paths([cached, _stored_digest_path(cached)]) as (tmp, record):
        tmp.write_bytes(data)
        record.write_text(hashlib.sha256(data).hexdigest() + "\n", encoding="ascii")
    return cached


def stored_file_hint(relpath: str, how_to_make: str = "") -> str:
    """One line for a reader when :func:`stored_file` found nothing: where the file lives, how to get it."""
    url = f"{REPOSITORY_URL}/blob/{REPOSITORY_BRANCH}/{relpath}"
    make = f", or make it with `{how_to_make}`" if how_to_make else ""
    return (
        f"{relpath} is not in this checkout and could not be fetched from {url} (offline?): clone the repository{make}."
    )
