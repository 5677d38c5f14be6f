"""A per-image distance cache for MOS evaluation, so a long table is computed once.

``d(reference, distorted)`` of one metric depends only on the two files, so it is
stored under a key made of both files' contents (sha256) and the downscaling
(``max_side``): renaming or moving the folder keeps the entries, changing a pixel
invalidates them. The file is JSON::

    {"version": 1, "entries": {metric: {"<sha16 distorted>:<sha16 reference>:<max_side>": d}}}

and is rewritten atomically after every reference, so an interrupted run keeps
what it finished.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data.textfiles import read_json
from ..files import write_json

CACHE_VERSION = 1


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the file's sha256 (collisions among a few thousand images: ~1e-12)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _checked_entries(path: Path, entries) -> dict[str, dict[str, float]]:
    """The cache's entries, each a finite number (-PSNR is negative), or a ValueError naming the entry."""
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise ValueError(f"{path}: 'entries' is not {{metric: {{key: distance}}}}; delete the file to recompute")
    for metric, values in entries.items():
        for key, d in values.items():
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d):
                raise ValueError(
                    f"{path}: {metric} {key}: {d!r} is not a finite distance; delete the file "
                    f"(or that entry) to recompute"
                )
    return {m: {k: float(d) for k, d in v.items()} for m, v in entries.items()}


class DistanceCache:
    """Distances of (metric, distorted file, reference file, max_side), read from and written to ``path``.

    Args:
        path: the JSON file (None: an in-memory cache that is never written).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, dict[str, float]] = {}
        self._digests: dict[Path, str] = {}
        if self.path is not None and self.path.is_file():
            data = read_json(self.path, ValueError)
            version = data.get("version") if isinstance(data, dict) else None
            if version != CACHE_VERSION:
                raise ValueError(
                    f"{self.path}: distance cache version {version!r}, expected "
                    f"{CACHE_VERSION}; delete the file to recompute"
                )
            self.entries = _checked_entries(self.path, data.get("entries"))

    def key(self, distorted: Path, reference: Path, max_side: int | None) -> str:
        for p in (distorted, reference):
            if p not in self._digests:
                self._digests[p] = file_digest(p)
        return f"{self._digests[distorted]}:{self._digests[reference]}:{max_side or 'full'}"

    def get(self, metric: str, distorted: Path, reference: Path, max_side: int | None) -> float | None:
        return self.entries.get(metric, {}).get(self.key(distorted, reference, max_side))

    def put(self, metric: str, distorted: Path, reference: Path, max_side: int | None, value: float) -> None:
        self.entries.setdefault(metric, {})[self.key(distorted, reference, max_side)] = float(value)

    def save(self) -> None:
        if self.path is not None:
            write_json(
                self.path,
                {
                    "version": CACHE_VERSION,
                    "entries": {m: dict(sorted(v.items())) for m, v in sorted(self.entries.items())},
                },
            )

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())


def seed_from_results(cache: DistanceCache, results: Mapping, rows: Sequence, max_side: int | None = None) -> int:
    """Copy the distances stored in an ``evaluate-mos`` results.json into ``cache``.

    Args:
        results: the parsed results.json (its ``distances`` block: ``ids`` and one list per metric).
        rows: :class:`lpips_core.eval.mos.MOSRow` of the table that run read (matched by ``name``).
    Returns:
        the number of entries added. Check a few against a fresh computation before trusting
        them (:func:`lpips_core.eval.mos.check_cached`).
    """
    by_name = {r.name: r for r in rows}
    dist = results["distances"]
    added = 0
    for metric, values in dist.items():
        if metric in ("ids", "score"):
            continue
        for name, value in zip(dist["ids"], values):
            row = by_name.get(name)
            if row is not None and value is not None:
                cache.put(metric, row.distorted, row.reference, max_side, value)
                added += 1
    return added
