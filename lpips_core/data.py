"""Perceptual-judgment datasets: BAPPS 2AFC and JND, plus simple table and folder formats.

A 2AFC item is one triplet shown to judges ("which of p0, p1 is closer to ref?")::

    {'ref', 'p0', 'p1': float32 (3, H, W) in [-1, 1],
     'judge': float32 (1,) = fraction of judges preferring p1, in [0, 1],
     'subset': str, 'id': str}

A JND item is one pair shown briefly ("are these the same?")::

    {'p0', 'p1': float32 (3, H, W) in [-1, 1],
     'same': float32 (1,) = fraction of judges answering "same", in [0, 1],
     'subset': str, 'id': str}

The default DataLoader collation batches them ((N, 3, H, W), (N, 1), lists of str).

Where the data can live (``root``), detected automatically:

* BAPPS layout (Zhang et al. 2018, and the mini set of :mod:`lpips_core.mini_bapps`):
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

Images are read as the reference repository's loader does: PIL RGB, bilinear resize to
``load_size`` (``transforms.Resize``), ``ToTensor`` and ``Normalize((0.5,)*3, (0.5,)*3)``,
i.e. ``x / 255 * 2 - 1``. BAPPS patches are square, where this is exactly the reference;
non-square images are resized to ``load_size x load_size`` so that triplets batch.
"""
from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .images import IMAGE_SUFFIXES, ImageLoadError, load_image

KINDS = ("2afc", "jnd")
MAX_ERRORS_LISTED = 20


class DataError(ValueError):
    """A dataset that cannot be read as asked: unknown layout, bad rows, missing subset."""


# --------------------------------------------------------------------------- images
def load_patch(path: str | os.PathLike, load_size: int | None = 64) -> torch.Tensor:
    """Read one image as the reference BAPPS loader does.

    Args:
        path: image file (any format Pillow reads; grey and 16-bit are converted to 8-bit RGB).
        load_size: side of the output square (PIL bilinear resize), or None to keep the size.
    Returns:
        float32 (3, load_size, load_size) tensor in [-1, 1].
    Raises:
        ImageLoadError: naming the file, when it is missing or unreadable.
    """
    arr = load_image(path)  # (H, W, 3) uint8
    if load_size is not None and arr.shape[:2] != (load_size, load_size):
        arr = np.array(Image.fromarray(arr).resize((load_size, load_size), Image.BILINEAR))
    x = torch.from_numpy(arr).permute(2, 0, 1).float().div(255)  # ToTensor
    return x.sub_(0.5).div_(0.5)  # Normalize((0.5,)*3, (0.5,)*3)


def _image_problem(path: Path, verify: bool) -> str | None:
    """None when ``path`` is an image Pillow can read, else what is wrong with it."""
    if not path.is_file():
        return f"missing image {path}"
    if verify:
        try:
            with Image.open(path) as im:
                im.verify()
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
TABLE_COLUMNS = {"2afc": ("ref_path", "img1_path", "img2_path", "judgment"),
                 "jnd": ("p0_path", "p1_path", "same")}


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
            hint = ("fix or remove these rows, or pass on_error='skip' to skip them"
                    if kept else "no usable rows are left")
            raise DataError(f"{self.source}: {n} bad row(s) of {total}; {hint}:\n  {listed}{more}")
        warnings.warn(f"{self.source}: skipped {n} bad row(s) of {total}, kept {kept}:\n  {listed}{more}",
                      stacklevel=4)


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


def _check_row(problems: _Problems, where: str, paths: Sequence[Path], raw_value, name: str,
               verify: bool) -> float | None:
    bad = [p for p in (_image_problem(path, verify) for path in paths) if p]
    value, why = _parse_value(raw_value, name)
    if why:
        bad.append(why)
    for b in bad:
        problems.add(where, b)
    return None if bad else value


def _progress(items: Sequence, desc: str):
    """tqdm over long checks only (a few hundred files check silently)."""
    if len(items) < 2000:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="item", leave=False)


# --------------------------------------------------------------------------- BAPPS layout
def _is_bapps_subset(folder: Path, kind: str) -> bool:
    need = ("ref", "p0", "p1", "judge") if kind == "2afc" else ("p0", "p1", "same")
    return all((folder / n).is_dir() for n in need)


def _files_by_stem(folder: Path, suffixes: set[str]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in suffixes}


def _bapps_records(split_dir: Path, kind: str, subsets: Sequence[str] | None, on_error: str,
                   max_errors: int, verify: bool, sink: list[str] | None = None) -> list[Record]:
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
        raise DataError(f"{where}: no subset {', '.join(map(repr, unknown))}; "
                        f"available: {', '.join(sorted(found))}")
    return list(subsets)


def _pick_split(root: Path, parent: Path, split: str | None, what: str) -> Path:
    """``parent/<split>``, choosing the only split when ``split`` is None."""
    splits = sorted(d.name for d in parent.iterdir() if d.is_dir() and not d.name.startswith("."))
    if split is None:
        if len(splits) == 1:
            return parent / splits[0]
        raise DataError(f"{root} holds {what} splits {', '.join(splits) or '(none)'}; "
                        f"pass split= one of them")
    if split not in splits:
        raise DataError(f"{root}: no {what} split {split!r}; available: {', '.join(splits) or '(none)'}")
    return parent / split


# --------------------------------------------------------------------------- tables (CSV, JSON)
def _table_records(path: Path, kind: str, subsets, on_error: str, max_errors: int,
                   verify: bool, sink: list[str] | None = None) -> list[Record]:
    rows: list[tuple[str, dict]] = []
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header = [h.strip() for h in (reader.fieldnames or [])]
                reader.fieldnames = header
                for i, row in enumerate(reader):
                    rows.append((f"row {i + 2}", row))  # line 1 is the header
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: not a readable UTF-8 CSV table ({exc})") from exc
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise DataError(f"{path}: expected a JSON list of objects with fields "
                            f"{', '.join(TABLE_COLUMNS[kind])}[, category]")
        header = sorted({k for d in data for k in d})
        rows = [(f"item {i}", d) for i, d in enumerate(data)]
    columns = TABLE_COLUMNS[kind]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}; found {', '.join(header) or 'nothing'}; "
                        f"a {kind} table needs {', '.join(columns)}[, category][, id]")
    problems = _Problems(str(path), on_error, max_errors, sink)
    records: list[Record] = []
    chosen = None if subsets is None else ({subsets} if isinstance(subsets, str) else set(subsets))
    for where, row in _progress(rows, f"checking {path.name}"):
        subset = str(row.get("category") or "default").strip()
        if chosen is not None and subset not in chosen:
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


def _has_samples(folder: Path) -> bool:
    return any(folder.glob(f"*{JUDGMENT_SUFFIX}"))


def _sample_records(split_dir: Path, subsets, on_error: str, max_errors: int,
                    verify: bool, sink: list[str] | None = None) -> list[Record]:
    folders = {d.name: d for d in sorted(split_dir.iterdir()) if d.is_dir() and _has_samples(d)}
    chosen = _choose_subsets(folders, subsets, split_dir)
    problems = _Problems(str(split_dir), on_error, max_errors, sink)
    records: list[Record] = []
    total = 0
    for subset in chosen:
        folder = folders[subset]
        files = {p.name: p for p in folder.iterdir()}
        by_name: dict[tuple[str, str], Path] = {}
        for name, p in files.items():
            for part in SAMPLE_PARTS:
                tag = f"_{part}"
                if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.endswith(tag):
                    by_name[(p.stem[: -len(tag)], part)] = p
        samples = sorted({n[: -len(JUDGMENT_SUFFIX)] for n in files if n.endswith(JUDGMENT_SUFFIX)}
                         | {s for s, _ in by_name})
        for sample in samples:
            total += 1
            where = f"{subset}/{sample}"
            jpath = folder / f"{sample}{JUDGMENT_SUFFIX}"
            paths = [by_name.get((sample, part), folder / f"{sample}_{part}.png") for part in SAMPLE_PARTS]
            raw = jpath.read_text(encoding="utf-8").strip() if jpath.is_file() else None
            if raw is None:
                problems.add(where, f"missing judgment file {jpath}")
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
    if kind == "2afc" and (any(_has_samples(d) for d in subdirs)
                           or any(_has_samples(s) for d in subdirs for s in d.iterdir() if s.is_dir())):
        return "samples"
    expected = ("<root>/2afc/<split>/<subset>/{ref,p0,p1,judge}, a CSV/JSON file, or "
                "<split>/<category>/sample_XXX_{ref,img1,img2}.png with sample_XXX_judgment.txt"
                if kind == "2afc" else "<root>/jnd/<split>/<subset>/{p0,p1,same} or a CSV/JSON file")
    raise DataError(f"{root}: unknown {kind} layout; expected {expected}")


def read_records(root: str | os.PathLike, kind: str = "2afc", split: str | None = None,
                 subsets: Sequence[str] | str | None = None, on_error: str = "raise",
                 max_errors: int = MAX_ERRORS_LISTED, verify_images: bool = True,
                 problems: list[str] | None = None) -> list[Record]:
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
    if not any(_has_samples(d) for d in root.iterdir() if d.is_dir()):
        root = _pick_split(root, root, split, "sample")
    return _sample_records(root, subsets, on_error, max_errors, verify_images, problems)


# --------------------------------------------------------------------------- datasets
class _JudgmentDataset(Dataset):
    kind = "2afc"

    def __init__(self, root: str | os.PathLike, subsets: Sequence[str] | str | None = None,
                 load_size: int | None = 64, split: str | None = None, on_error: str = "raise",
                 max_errors: int = MAX_ERRORS_LISTED, verify_images: bool = True,
                 records: Sequence[Record] | None = None):
        self.root = Path(root)
        self.load_size = load_size
        self.records: list[Record] = list(records) if records is not None else read_records(
            root, self.kind, split, subsets, on_error, max_errors, verify_images)
        self.subsets = sorted({r.subset for r in self.records})

    def __len__(self) -> int:
        return len(self.records)

    @property
    def values(self) -> np.ndarray:
        """(N,) float64 judgments of every item, without reading images."""
        return np.array([r.value for r in self.records], dtype=np.float64)

    def __getitem__(self, index: int) -> dict:
        r = self.records[index]
        item: dict = {}
        for key, path in zip(IMAGE_KEYS[self.kind], r.paths):
            try:
                item[key] = load_patch(path, self.load_size)
            except ImageLoadError as exc:
                raise ImageLoadError(f"item {r.subset}/{r.id}: {exc}") from exc
        item[VALUE_KEY[self.kind]] = torch.tensor([r.value], dtype=torch.float32)
        item["subset"] = r.subset
        item["id"] = r.id
        return item

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, items={len(self)}, "
                f"subsets={self.subsets}, load_size={self.load_size})")


class TwoAFCDataset(_JudgmentDataset):
    """2AFC triplets (ref, p0, p1) with the fraction of judges who found p1 closer to ref.

    Args:
        root: BAPPS dataset folder (with ``split``), a split folder (``<bapps>/2afc/val``),
            one subset folder, a CSV/JSON file, or a per-sample folder tree (see module doc).
        subsets: subset (category) names to keep; None keeps all.
        load_size: images are resized (PIL bilinear) to ``load_size x load_size``; None keeps size.
        split: 'train' or 'val' when ``root`` is a dataset folder holding several splits.
        on_error: 'raise' (default): one error listing every bad row; 'skip': warn and drop them.
        max_errors: how many bad rows the message lists.
        verify_images: also open every image once (Pillow ``verify``) to find damaged files
            before training starts; False only checks that the files exist.
    Item:
        ``{'ref', 'p0', 'p1'}``: float32 (3, H, W) in [-1, 1]; ``'judge'``: float32 (1,) in [0, 1]
        (fraction preferring p1); ``'subset'``, ``'id'``: str.

    The mini set of :mod:`lpips_core.mini_bapps` has judgments from a SIMULATED observer
    (LPIPS-VGG or a pixel metric through a logistic psychometric function), not from people;
    see its ``README.md`` data card.

    Example:
        >>> ds = TwoAFCDataset('data/mini_bapps', split='val', subsets=['traditional'])  # doctest: +SKIP
        >>> ds[0]['ref'].shape, ds[0]['judge']                                           # doctest: +SKIP
        (torch.Size([3, 64, 64]), tensor([0.4000]))
    """

    kind = "2afc"

    @property
    def judges(self) -> np.ndarray:
        """(N,) fraction of judges preferring p1, per triplet."""
        return self.values


class JNDDataset(_JudgmentDataset):
    """JND pairs (p0, p1) with the fraction of judges who answered "same".

    Args: as :class:`TwoAFCDataset` (``root`` a BAPPS folder with ``jnd/``, a split folder
    such as ``<bapps>/jnd/val``, a subset folder, or a CSV/JSON file with ``p0_path,p1_path,same``).
    Item:
        ``{'p0', 'p1'}``: float32 (3, H, W) in [-1, 1]; ``'same'``: float32 (1,) in [0, 1];
        ``'subset'``, ``'id'``: str.
    """

    kind = "jnd"

    @property
    def sames(self) -> np.ndarray:
        """(N,) fraction of judges answering "same", per pair."""
        return self.values


# --------------------------------------------------------------------------- splits, augmentation, loaders
class FlipAugment(Dataset):
    """Mirror every image of an item left-right together (same flip for ref, p0, p1), with probability p.

    The judgment is unchanged by a mirror image of the whole triplet. The flips follow
    a generator seeded with ``seed`` (re-seeded per DataLoader worker from the loader's
    own seed), so a run is reproducible from ``seed`` for a fixed number of workers.
    """

    def __init__(self, dataset: Dataset, p: float = 0.5, seed: int = 0):
        self.dataset, self.p = dataset, p
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        if torch.rand((), generator=self.generator).item() < self.p:
            for key in ("ref", "p0", "p1"):
                if key in item:
                    item[key] = item[key].flip(-1)  # (3, H, W): mirror along W
        return item


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(info.seed % 2**63)


class LPIPSDataModule:
    """Train/val/test datasets and DataLoaders for judgment data, split reproducibly.

    Splits:
        * ``root`` a BAPPS dataset folder with both an official ``train`` and ``val`` split
          (and ``split``, ``test_split`` left None): train and val are drawn from the
          official train split (``val_split`` of it held out for model selection), and test is
          the official ``val`` split, on which the paper reports its scores.
        * anything else (one split folder, a CSV/JSON table, per-sample folders, or
          ``test_split`` given): the items are shuffled with ``seed`` and cut into
          ``1 - val_split - test_split``, ``val_split`` and ``test_split`` fractions.

    Args:
        root: any location :class:`TwoAFCDataset` / :class:`JNDDataset` accepts.
        batch_size: items per batch (the reference trains with 50).
        val_split: fraction held out for validation, in [0, 1).
        test_split: fraction held out for testing, or None (see Splits).
        seed: seeds the split, the shuffling and the flips.
        augment: mirror training items left-right (all images of an item together), p = 0.5.
        kind: '2afc' or 'jnd'.
        load_size, subsets, split, on_error, verify_images: passed to the dataset.
        num_workers: DataLoader worker processes (0 loads in the calling process).

    Example:
        >>> dm = LPIPSDataModule('data/mini_bapps', batch_size=50)    # doctest: +SKIP
        >>> batch = next(iter(dm.train_dataloader()))                  # doctest: +SKIP
        >>> batch['ref'].shape, batch['judge'].shape                   # doctest: +SKIP
        (torch.Size([50, 3, 64, 64]), torch.Size([50, 1]))
    """

    def __init__(self, root: str | os.PathLike, batch_size: int = 50, val_split: float = 0.1,
                 test_split: float | None = None, seed: int = 0, augment: bool = True,
                 kind: str = "2afc", load_size: int | None = 64,
                 subsets: Sequence[str] | str | None = None, split: str | None = None,
                 num_workers: int = 0, on_error: str = "raise", verify_images: bool = True):
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: choose '2afc' or 'jnd'")
        if not 0 <= val_split < 1 or not 0 <= (test_split or 0) < 1 or val_split + (test_split or 0) >= 1:
            raise ValueError(f"val_split={val_split}, test_split={test_split}: each must be in [0, 1) "
                             f"and together below 1, leaving items to train on")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        self.root, self.batch_size, self.val_split, self.test_split = Path(root), batch_size, val_split, test_split
        self.seed, self.augment, self.kind, self.num_workers = seed, augment, kind, num_workers
        self.dataset_kwargs = dict(load_size=load_size, subsets=subsets, on_error=on_error,
                                   verify_images=verify_images)
        self.split = split
        self.train_dataset = self.val_dataset = self.test_dataset = None
        # one generator for the training loaders: each epoch shuffles (and flips) differently,
        # and the run is reproducible; val/test loaders get their own, so they do not disturb it
        self._train_generator = torch.Generator().manual_seed(seed)

    def _official_splits(self) -> bool:
        parent = self.root / self.kind
        return (self.split is None and self.test_split is None and parent.is_dir()
                and (parent / "train").is_dir() and (parent / "val").is_dir())

    def setup(self) -> "LPIPSDataModule":
        """Read and check the records and make the splits (once); returns self."""
        if self.train_dataset is not None:
            return self
        cls = TwoAFCDataset if self.kind == "2afc" else JNDDataset
        if self._official_splits():
            pool = cls(self.root, split="train", **self.dataset_kwargs)
            test = cls(self.root, split="val", **self.dataset_kwargs)
            n_test = 0
        else:
            pool = cls(self.root, split=self.split, **self.dataset_kwargs)
            test = None
            n_test = int(round((self.test_split or 0) * len(pool)))
        n = len(pool)
        n_val = int(round(self.val_split * n))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        val_idx, test_idx, train_idx = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
        if not train_idx:
            raise DataError(f"{self.root}: {n} item(s) leave nothing to train on after the splits")
        subset = torch.utils.data.Subset
        train = subset(pool, train_idx)
        self.train_dataset = FlipAugment(train, 0.5, self.seed) if self.augment else train
        self.val_dataset = subset(pool, val_idx)
        self.test_dataset = test if test is not None else subset(pool, test_idx)
        return self

    def _loader(self, dataset: Dataset, shuffle: bool) -> torch.utils.data.DataLoader:
        generator = self._train_generator if shuffle else torch.Generator().manual_seed(self.seed)
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            generator=generator, worker_init_fn=_seed_worker)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        """Shuffled (seeded) training batches, mirrored at random when ``augment``."""
        return self._loader(self.setup().train_dataset, shuffle=True)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.setup().val_dataset, shuffle=False)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.setup().test_dataset, shuffle=False)

    def __repr__(self) -> str:
        if self.train_dataset is None:
            return f"LPIPSDataModule(root={str(self.root)!r}, not set up)"
        return (f"LPIPSDataModule(root={str(self.root)!r}, train={len(self.train_dataset)}, "
                f"val={len(self.val_dataset)}, test={len(self.test_dataset)})")
