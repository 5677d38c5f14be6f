"""Where perceptual judgments live on disk, and reading them into records (no pixels read).

Where the data can live (``root``), detected automatically:

* BAPPS layout (Zhang et al. 2018, and the mini set of :mod:`lpips_core.studies.mini_bapps`):
  ``<bapps>/2afc/{train,val}/<subset>/{ref,p0,p1}/<id>.png`` with ``judge/<id>.npy``, and
  ``<bapps>/jnd/val/<subset>/{p0,p1}/<id>.png`` with ``same/<id>.npy``. ``root`` may be the
  dataset folder (then pass ``split='train'`` or ``'val'``; a folder with a single split
  needs none), a split folder such as ``<bapps>/2afc/val``, or one subset folder.
* CSV (2AFC): header ``ref_path,img1_path,img2_path,judgment[,category][,id]``;
  img1 -> ``p0``, img2 -> ``p1``, ``judgment`` = fraction of judges preferring img2
  (0 or 1 for a single judge), ``category`` -> ``subset``. JND CSV: ``p0_path,p1_path,same[,category][,id]``.
* JSON: a list of objects with the same fields as the CSV columns.
* Per-sample folders (2AFC): ``<split>/<category>/sample_XXX_{ref,img1,img2}.<ext>`` and
  ``sample_XXX_judgment.txt`` holding one number; ``root`` is the top folder (pass ``split``)
  or one split folder.

Relative paths in CSV/JSON resolve against the file's folder. Bad rows (missing or
unreadable image, judgment that is not a number in [0, 1]) are an error that names the
file and every bad row (up to ``max_errors``); ``on_error='skip'`` drops them with a warning.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..progress import progress_bar
from .images import IMAGE_SUFFIXES, ImageTooLargeError, open_image
from .textfiles import read_csv_rows, read_json, read_small_text

KINDS = ("2afc", "jnd")
MAX_ERRORS_LISTED = 20


class DataError(ValueError):
    """A dataset that cannot be read as asked: unknown layout, bad rows, missing subset."""


def _image_problem(path: Path, verify: bool) -> str | None:
    """None when ``path`` is an image Pillow can read, else what is wrong with it."""
    if not path.is_file():
        return f"missing image {path}"
    if verify:
        try:
            with open_image(path) as im:  # the pixel budget, from the header
                im.verify()
        except ImageTooLargeError as exc:
            return str(exc)
        except Exception as exc:  # Pillow raises many types for damaged files
            return f"unreadable image {path} ({type(exc).__name__}: {exc})"
    return None


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Record:
    """One item before its images are read: image paths, the judgment, where it came from."""

    paths: tuple[Path, ...]  # 2AFC: (ref, p0, p1); JND: (p0, p1)
    value: float  # 2AFC: judge (fraction preferring p1); JND: same
    subset: str
    id: str


IMAGE_KEYS = {"2afc": ("ref", "p0", "p1"), "jnd": ("p0", "p1")}
VALUE_KEY = {"2afc": "judge", "jnd": "same"}
TABLE_COLUMNS = {"2afc": ("ref_path", "img1_path", "img2_path", "judgment"), "jnd": ("p0_path", "p1_path", "same")}


class _Problems:
    """Collects bad rows of one source, then raises (strict) or warns and counts (skip)."""

    def __init__(self, source: str, on_error: str, max_errors: int, sink: list[str] | None = None):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}: choose 'raise' (default) or 'skip'")
        self.source, self.on_error, self.max_errors, self.sink = source, on_error, max_errors, sink
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def finish(self, total: int, kept: int) -> None:
        if self.sink is not None:  # the caller reports them (``lpips-core analyze``)
            self.sink.extend(f"{self.source}: {item}" for item in self.items)
            return
        if not self.items:
            return
        n = len(self.items)
        listed = "\n  ".join(self.items[: self.max_errors])
        more = f"\n  ... and {n - self.max_errors} more" if n > self.max_errors else ""
        if self.on_error == "raise" or kept == 0:
            hint = (
                "fix or remove these rows, or pass on_error='skip' to skip them" if kept else "no usable rows are left"
            )
            raise DataError(f"{self.source}: {n} bad row(s) of {total}; {hint}:\n  {listed}{more}")
        warnings.warn(f"{self.source}: skipped {n} bad row(s) of {total}, kept {kept}:\n  {listed}{more}", stacklevel=4)


def _parse_value(raw, name: str) -> tuple[float | None, str | None]:
    """A judgment as float in [0, 1], or (None, reason)."""
    try:
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None, f"{name} {raw!r} is not a number"
    if arr.size != 1:
        return None, f"{name} holds {arr.size} values; expected one number in [0, 1]"
    value = float(arr[0])
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return None, f"{name} {value!r} is outside [0, 1] (fraction of judges)"
    return value, None


def _check_row(
    problems: _Problems, where: str, paths: Sequence[Path], raw_value, name: str, verify: bool
) -> float | None:
    bad = [p for p in (_image_problem(path, verify) for path in paths) if p]
    value, why = _parse_value(raw_value, name)
    if why:
        bad.append(why)
    for b in bad:
        problems.add(where, b)
    return None if bad else value


def _progress(items: Sequence, desc: str):
    """A progress bar over long checks only (a few hundred files check silently)."""
    if len(items) < 2000:
        return items
    return progress_bar(items, desc=desc, unit="item", leave=False)


# --------------------------------------------------------------------------- BAPPS layout
def _is_bapps_subset(folder: Path, kind: str) -> bool:
    need = ("ref", "p0", "p1", "judge") if kind == "2afc" else ("p0", "p1", "same")
    return all((folder / n).is_dir() for n in need)


def _files_by_stem(folder: Path, suffixes: set[str]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in suffixes}


def _bapps_records(
    split_dir: Path,
    kind: str,
    subsets: Sequence[str] | None,
    on_error: str,
    max_errors: int,
    verify: bool,
    sink: list[str] | None = None,
) -> list[Record]:
    if _is_bapps_subset(split_dir, kind):
        folders = {split_dir.name: split_dir}
    else:
        folders = {d.name: d for d in sorted(split_dir.iterdir()) if d.is_dir() and _is_bapps_subset(d, kind)}
    chosen = _choose_subsets(folders, subsets, split_dir)
    image_keys, value_dir = IMAGE_KEYS[kind], VALUE_KEY[kind]
    records: list[Record] = []
    problems = _Problems(str(split_dir), on_error, max_errors, sink)
    total = 0
    for subset in chosen:
        folder = folders[subset]
        images = {k: _files_by_stem(folder / k, IMAGE_SUFFIXES) for k in image_keys}
        values = _files_by_stem(folder / value_dir, {".npy"})
        stems = sorted(set(values).union(*images.values()))
        for stem in _progress(stems, f"checking {subset}"):
            total += 1
            where = f"{subset}/{stem}"
            missing = [f"missing image {folder / k / (stem + '.png')}" for k in image_keys if stem not in images[k]]
            if stem not in values:
                missing.append(f"missing judgment {folder / value_dir / (stem + '.npy')}")
            if missing:
                for m in missing:
                    problems.add(where, m)
                continue
            try:
                raw = np.load(values[stem], allow_pickle=False)
            except Exception as exc:
                problems.add(where, f"unreadable judgment {values[stem]} ({exc})")
                continue
            paths = tuple(images[k][stem] for k in image_keys)
            value = _check_row(problems, where, paths, raw, f"{value_dir} in {values[stem]}", verify)
            if value is not None:
                records.append(Record(paths, value, subset, stem))
    problems.finish(total, len(records))
    return records


def _choose_subsets(found: dict, subsets: Sequence[str] | str | None, where: Path) -> list[str]:
    if not found:
        raise DataError(f"{where}: no subsets found")
    if subsets is None:
        return sorted(found)
    if isinstance(subsets, str):
        subsets = [subsets]
    unknown = [s for s in subsets if s not in found]
    if unknown:
        raise DataError(f"{where}: no subset {', '.join(map(repr, unknown))}; available: {', '.join(sorted(found))}")
    return list(subsets)


def _pick_split(root: Path, parent: Path, split: str | None, what: str) -> Path:
    """``parent/<split>``, choosing the only split when ``split`` is None."""
    splits = sorted(d.name for d in parent.iterdir() if d.is_dir() and not d.name.startswith("."))
    if split is None:
        if len(splits) == 1:
            return parent / splits[0]
        raise DataError(f"{root} holds {what} splits {', '.join(splits) or '(none)'}; pass split= one of them")
    if split not in splits:
        raise DataError(f"{root}: no {what} split {split!r}; available: {', '.join(splits) or '(none)'}")
    return parent / split


# --------------------------------------------------------------------------- tables (CSV, JSON)
def _table_records(
    path: Path, kind: str, subsets, on_error: str, max_errors: int, verify: bool, sink: list[str] | None = None
) -> list[Record]:
    rows: list[tuple[str, dict]] = []
    width_problems: dict[str, str] = {}
    if path.suffix.lower() == ".csv":
        header, csv_rows = read_csv_rows(path, DataError)  # UTF-8 (a BOM is fine), size-checked
        for row in csv_rows:
            rows.append((f"row {row.line}", row.values))  # line 1 is the header
            if row.problem:
                width_problems[f"row {row.line}"] = row.problem
    else:
        data = read_json(path, DataError)
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise DataError(
                f"{path}: expected a JSON list of objects with fields {', '.join(TABLE_COLUMNS[kind])}[, category]"
            )
        header = sorted({k for d in data for k in d})
        rows = [(f"item {i}", d) for i, d in enumerate(data)]
    columns = TABLE_COLUMNS[kind]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing field(s) {', '.join(missing)}; found {', '.join(header) or 'nothing'}; "
            f"a {kind} table needs {', '.join(columns)}[, category][, id]"
        )
    problems = _Problems(str(path), on_error, max_errors, sink)
    records: list[Record] = []
    chosen = None if subsets is None else ({subsets} if isinstance(subsets, str) else set(subsets))
    for where, row in _progress(rows, f"checking {path.name}"):
        subset = str(row.get("category") or "default").strip()
        if chosen is not None and subset not in chosen:
            continue
        if where in width_problems:
            problems.add(where, width_problems[where])
            continue
        paths = []
        for c in columns[:-1]:
            raw = row.get(c)
            if raw is None or str(raw).strip() == "":
                problems.add(where, f"empty {c}")
                paths = None
                break
            p = Path(str(raw).strip())
            paths.append(p if p.is_absolute() else path.parent / p)
        if paths is None:
            continue
        value = _check_row(problems, where, paths, _strip(row.get(columns[-1])), columns[-1], verify)
        if value is not None:
            rid = str(row.get("id") or where.replace(" ", ""))
            records.append(Record(tuple(paths), value, subset, rid))
    total = sum(1 for _, row in rows if chosen is None or str(row.get("category") or "default").strip() in chosen)
    problems.finish(total, len(records))
    if chosen is not None:
        _choose_subsets({r.subset: 1 for r in records}, sorted(chosen), path)
    return records


def _strip(v):
    return v.strip() if isinstance(v, str) else v


# --------------------------------------------------------------------------- per-sample folders
SAMPLE_PARTS = ("ref", "img1", "img2")
JUDGMENT_SUFFIX = "_judgment.txt"


def has_samples(folder: Path) -> bool:
    return any(folder.glob(f"*{JUDGMENT_SUFFIX}"))


def _sample_records(
    split_dir: Path, subsets, on_error: str, max_errors: int, verify: bool, sink: list[str] | None = None
) -> list[Record]:
    folders = {d.name: d for d in sorted(split_dir.iterdir()) if d.is_dir() and has_samples(d)}
    chosen = _choose_subsets(folders, subsets, split_dir)
    problems = _Problems(str(split_dir), on_error, max_errors, sink)
    records: list[Record] = []
    total = 0
    for subset in chosen:
        folder = folders[subset]
        files = {p.name: p for p in folder.iterdir()}
        by_name: dict[tuple[str, str], Path] = {}
        for _name, p in files.items():
            for part in SAMPLE_PARTS:
                tag = f"_{part}"
                if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.endswith(tag):
                    by_name[(p.stem[: -len(tag)], part)] = p
        samples = sorted(
            {n[: -len(JUDGMENT_SUFFIX)] for n in files if n.endswith(JUDGMENT_SUFFIX)} | {s for s, _ in by_name}
        )
        for sample in samples:
            total += 1
            where = f"{subset}/{sample}"
            jpath = folder / f"{sample}{JUDGMENT_SUFFIX}"
            paths = [by_name.get((sample, part), folder / f"{sample}_{part}.png") for part in SAMPLE_PARTS]
            if not jpath.is_file():
                problems.add(where, f"missing judgment file {jpath}")
                continue
            try:
                raw = read_small_text(jpath, DataError)  # one number, UTF-8
            except DataError as exc:
                problems.add(where, f"unreadable judgment file: {exc}")
                continue
            value = _check_row(problems, where, paths, raw, f"judgment in {jpath}", verify)
            if value is not None:
                records.append(Record(tuple(paths), value, subset, sample))
    problems.finish(total, len(records))
    return records


# --------------------------------------------------------------------------- detection
def detect_format(root: str | os.PathLike, kind: str = "2afc") -> str:
    """Which layout ``root`` holds: 'bapps', 'csv', 'json' or 'samples'.

    Raises:
        DataError: when ``root`` is missing or none of the layouts fits.
    """
    root = Path(root)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: choose '2afc' or 'jnd'")
    if root.is_file():
        suffix = root.suffix.lower()
        if suffix in (".csv", ".json"):
            return suffix[1:]
        raise DataError(f"{root}: unknown data file type {suffix!r}; expected .csv or .json")
    if not root.is_dir():
        raise DataError(f"{root}: no such file or folder")
    if (root / kind).is_dir() or _is_bapps_subset(root, kind):
        return "bapps"
    subdirs = [d for d in root.iterdir() if d.is_dir()]
    if any(_is_bapps_subset(d, kind) for d in subdirs):
        return "bapps"
    if kind == "2afc" and (
        any(has_samples(d) for d in subdirs) or any(has_samples(s) for d in subdirs for s in d.iterdir() if s.is_dir())
    ):
        return "samples"
    expected = (
        "<root>/2afc/<split>/<subset>/{ref,p0,p1,judge}, a CSV/JSON file, or "
        "<split>/<category>/sample_XXX_{ref,img1,img2}.png with sample_XXX_judgment.txt"
        if kind == "2afc"
        else "<root>/jnd/<split>/<subset>/{p0,p1,same} or a CSV/JSON file"
    )
    raise DataError(f"{root}: unknown {kind} layout; expected {expected}")


def read_records(
    root: str | os.PathLike,
    kind: str = "2afc",
    split: str | None = None,
    subsets: Sequence[str] | str | None = None,
    on_error: str = "raise",
    max_errors: int = MAX_ERRORS_LISTED,
    verify_images: bool = True,
    problems: list[str] | None = None,
) -> list[Record]:
    """Find every item under ``root`` (any supported layout) and check it, reading no pixels.

    Args:
        problems: when a list, bad rows are appended to it (one line each) and skipped
            without raising or warning, whatever ``on_error`` says.
    Returns:
        records sorted by (subset, id) for folder layouts, in file order for tables.
    """
    root = Path(root)
    fmt = detect_format(root, kind)
    if fmt in ("csv", "json"):
        return _table_records(root, kind, subsets, on_error, max_errors, verify_images, problems)
    if fmt == "bapps":
        if (root / kind).is_dir():
            root = _pick_split(root, root / kind, split, kind)
        return _bapps_records(root, kind, subsets, on_error, max_errors, verify_images, problems)
    # per-sample folders: root is a split folder (categories inside) or the top folder
    if not any(has_samples(d) for d in root.iterdir() if d.is_dir()):
        root = _pick_split(root, root, split, "sample")
    return _sample_records(root, subsets, on_error, max_errors, verify_images, problems)
