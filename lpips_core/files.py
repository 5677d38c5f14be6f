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
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch


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


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """A CSV file with one header line, then ``rows`` (``csv`` module dialect, CRLF line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


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


def save_torch(obj: Any, path: str | os.PathLike, *, fsync: bool = False,
               keep_previous: str | os.PathLike | None = None) -> Path:
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


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (the format follows the file name's suffix)."""
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return Path(path)


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


def stored_file(relpath: str, *, fetch: bool = True, timeout: float = 20.0) -> Path | None:
    """A file committed to the repository (stored results, benchmark tables), wherever the package runs.

    Looked up, in order: in the checkout the package is imported from; in
    ``cache_root() / "stored"``; at the repository address (:data:`REPOSITORY_URL`,
    branch :data:`REPOSITORY_BRANCH`) over HTTPS, saved to that cache atomically.
    So a notebook on Colab, with the package installed from the repository and an
    empty working directory, reads the same stored results as one in a clone.

    Args:
        relpath: path inside the repository, e.g. ``"benchmarks/results/inference_cpu.json"``.
        fetch: allow the download (False: checkout and cache only).
    Returns:
        the local path, or None when no source has it (see :func:`stored_file_hint`).
    """
    rel = Path(relpath)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"stored_file: {relpath!r} must be a path inside the repository, like 'results/x.json'")
    root = _checkout_root()
    if root is not None and (root / rel).is_file():
        return root / rel
    cached = cache_root() / "stored" / rel
    if cached.is_file():
        return cached
    if not fetch:
        return None
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{_raw_base()}/{rel.as_posix()}", timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return write_bytes(cached, data)


def stored_file_hint(relpath: str, how_to_make: str = "") -> str:
    """One line for a reader when :func:`stored_file` found nothing: where the file lives, how to get it."""
    url = f"{REPOSITORY_URL}/blob/{REPOSITORY_BRANCH}/{relpath}"
    make = f", or make it with `{how_to_make}`" if how_to_make else ""
    return (f"{relpath} is not in this checkout and could not be fetched from {url} (offline?): "
            f"clone the repository{make}.")
