"""2AFC triplets derived from human DMOS ratings (LIVE), in the BAPPS layout.

BAPPS asks people which of two distorted versions of a reference is closer to it.
LIVE asked them to rate each distorted image on its own; from those ratings a
2AFC judgment follows once a psychometric model says how individual observers
scatter around the mean. The model used here is Thurstone's law of comparative
judgment, case III (independent, unequal variances): an observer's difference
score of image i is ``N(DMOS_i, s_i^2)`` with ``s_i`` the per-image standard
deviation LIVE publishes, and they find p1 closer when its score is lower, so::

    h = P(p1 preferred) = Phi((DMOS_0 - DMOS_1) / sqrt(s_0^2 + s_1^2))

The hard majority label ``1[DMOS_0 > DMOS_1]`` (0.5 on a tie) is stored beside it,
so results can be checked not to hinge on the model. The result is **derived from
human DMOS ratings**: no person made these 2AFC choices.

Every pair of distorted versions of the same reference is a triplet; pairs of
different distortion types (a blurred vs a noisy version) form the subset
``cross``, the question BAPPS's 2AFC asks and single-type LIVE cannot.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm

from ..files import write_csv, write_text
from .formats import DataError
from .textfiles import read_csv_rows

CROSS = "cross"
BUILDER_VERSION = 1


@dataclass
class RatedImage:
    """One row of a DMOS table: paths resolved, DMOS (0-100, higher = worse) and its std."""

    distorted: Path
    reference: Path
    name: str
    distortion: str
    dmos: float
    std: float


@dataclass
class DerivedTriplet:
    """Two distorted versions of one reference and the derived judgment."""

    p0: RatedImage
    p1: RatedImage
    subset: str  # the distortion type, or 'cross'
    h: float  # Thurstone case III P(p1 preferred), in [0, 1]
    h_majority: float  # 1 if DMOS_0 > DMOS_1, 0 if lower, 0.5 if equal


def read_rated_table(
    path: str | Path,
    score_column: str = "dmos_realigned",
    std_column: str = "dmos_std",
    type_column: str = "distortion",
) -> list[RatedImage]:
    """Read ``distorted,reference,distortion,dmos_realigned,dmos_std`` (paths relative to the CSV).

    Raises:
        DataError naming the file, line and column of a bad or missing value or image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such CSV (expected e.g. ../shared/data/live_three_types.csv)")
    out, problems = [], []
    header, records = read_csv_rows(path, DataError)  # UTF-8 (a BOM is fine), size-checked
    for col in ("distorted", "reference", type_column, score_column, std_column):
        if col not in header:
            raise DataError(f"{path}: no '{col}' column (header is {','.join(header)})")
    for record in records:
        line, rec = record.line, record.values
        if record.problem:
            problems.append(f"line {line}: {record.problem}")
            continue
        try:
            dmos, std = float(rec[score_column]), float(rec[std_column])
        except ValueError:
            problems.append(f"line {line}: {score_column}/{std_column} not numbers")
            continue
        if not (np.isfinite(dmos) and np.isfinite(std) and std > 0):
            problems.append(f"line {line}: {std_column}={rec[std_column]!r} must be a positive number")
            continue
        dist, ref = path.parent / rec["distorted"], path.parent / rec["reference"]
        missing = [str(p) for p in (dist, ref) if not p.is_file()]
        if missing:
            problems.append(f"line {line}: missing {', '.join(missing)}")
            continue
        out.append(RatedImage(dist, ref, rec["distorted"], rec[type_column], dmos, std))
    if problems:
        raise DataError(
            f"{path}: " + "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        )
    return out


def thurstone_h(dmos0, dmos1, std0, std1):
    """P(an observer finds p1 closer to the reference) under Thurstone case III; arrays or floats."""
    return norm.cdf((np.asarray(dmos0) - np.asarray(dmos1)) / np.sqrt(np.square(std0) + np.square(std1)))


def derive_triplets(images: list[RatedImage], std_scale: float = 1.0) -> list[DerivedTriplet]:
    """Every pair of distorted versions of each reference, with h and the majority label.

    Args:
        std_scale: multiplies the per-image std (1: as published).
    Returns:
        triplets grouped by reference (the same file content counts as one reference), pairs in
        table order; subsets in the order single types first, 'cross' last.
    """
    by_ref: dict[str, list[RatedImage]] = {}
    digests: dict[Path, str] = {}
    for im in images:  # one reference may sit in two folders (LIVE's JPEG and blur/noise copies)
        if im.reference not in digests:
            digests[im.reference] = hashlib.sha256(im.reference.read_bytes()).hexdigest()
        by_ref.setdefault(digests[im.reference], []).append(im)
    out = []
    for ims in by_ref.values():
        for a, b in itertools.combinations(ims, 2):
            h = float(thurstone_h(a.dmos, b.dmos, std_scale * a.std, std_scale * b.std))
            majority = 0.5 if a.dmos == b.dmos else float(a.dmos > b.dmos)
            subset = a.distortion if a.distortion == b.distortion else CROSS
            out.append(DerivedTriplet(a, b, subset, h, majority))
    return sorted(out, key=lambda t: t.subset == CROSS)  # stable: otherwise table order


def _place(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if copy:
        shutil.copyfile(src, dst)
    else:
        os.symlink(os.path.abspath(src), dst)


MANIFEST_FIELDS = (
    "subset",
    "id",
    "reference",
    "p0",
    "p1",
    "type0",
    "type1",
    "dmos0",
    "dmos1",
    "std0",
    "std1",
    "h",
    "h_majority",
)


def write_bapps_layout(
    triplets: list[DerivedTriplet],
    out: str | Path,
    split: str = "val",
    copy: bool = False,
    source: str = "",
    std_scale: float = 1.0,
) -> Path:
    """Write ``out/2afc/<split>/<subset>/{ref,p0,p1,judge,judge_majority}/`` plus ``triplets.csv`` and a data card.

    Images are symbolic links to the rated files (``copy=True``: copies), so the set costs no
    space and the pixels stay where their licence is. ``judge/<id>.npy`` holds h (float32,
    shape (1,)), the file every 2AFC reader takes; ``judge_majority/`` the hard label.

    Returns:
        ``out``.
    """
    out = Path(out)
    counters: dict[str, int] = {}
    rows = []
    for t in triplets:
        k = counters.get(t.subset, 0)
        counters[t.subset] = k + 1
        tid = f"{k:06d}"
        root = out / "2afc" / split / t.subset
        _place(t.p0.reference, root / "ref" / f"{tid}.png", copy)
        _place(t.p0.distorted, root / "p0" / f"{tid}.png", copy)
        _place(t.p1.distorted, root / "p1" / f"{tid}.png", copy)
        for folder, value in (("judge", t.h), ("judge_majority", t.h_majority)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            np.save(root / folder / f"{tid}.npy", np.array([value], dtype=np.float32))
        rows.append(
            {
                "subset": t.subset,
                "id": tid,
                "reference": str(t.p0.reference.name),
                "p0": t.p0.name,
                "p1": t.p1.name,
                "type0": t.p0.distortion,
                "type1": t.p1.distortion,
                "dmos0": t.p0.dmos,
                "dmos1": t.p1.dmos,
                "std0": t.p0.std,
                "std1": t.p1.std,
                "h": f"{t.h:.6f}",
                "h_majority": t.h_majority,
            }
        )
    write_manifest(out / "triplets.csv", rows)
    write_text(out / "README.md", data_card(triplets, source, split, std_scale))
    return out


def write_manifest(path: str | Path, rows: list[dict]) -> None:
    """``triplets.csv``: one row per triplet, the rated images' names as in the DMOS table."""
    write_csv(path, list(MANIFEST_FIELDS), [[r[k] for k in MANIFEST_FIELDS] for r in rows])


def read_manifest(path: str | Path) -> list[dict]:
    """The rows of a ``triplets.csv`` written by :func:`write_bapps_layout` (numbers as floats)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such triplets.csv (build it with data_scripts/make_live_2afc.py)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("dmos0", "dmos1", "std0", "std1", "h", "h_majority"):
            r[k] = float(r[k])
    return rows


def data_card(triplets: list[DerivedTriplet], source: str, split: str, std_scale: float) -> str:
    """The README of a built set: what the judgments are (derived from ratings), counts, the model."""
    subsets = list(dict.fromkeys(t.subset for t in triplets))
    refs = {s: len({t.p0.reference.name for t in triplets if t.subset == s}) for s in subsets}
    lines = [
        "# LIVE 2AFC: triplets with judgments derived from human DMOS ratings",
        "",
        "**Derived from human DMOS ratings.** No person chose between p0 and p1 here:",
        "each h is computed from the two images' DMOS (LIVE IQA Release 2, realigned; people rated each",
        "image on its own) by the psychometric model below. Evaluation only; never train on it.",
        "",
        f"Built by `data_scripts/make_live_2afc.py` (builder version {BUILDER_VERSION}) from `{source}`,",
        f"std scale {std_scale:g}. Images are links to the rated files; LIVE's licence"
        " (`LICENSE-LIVE.txt` beside them) applies.",
        "",
        "## Layout (BAPPS)",
        "",
        f"`2afc/{split}/<subset>/{{ref,p0,p1}}/<id>.png`, `judge/<id>.npy` (h, float32 shape (1,)),",
        "`judge_majority/<id>.npy` (hard label), and `triplets.csv` (one row per triplet: the images'",
        "names in the DMOS table, their DMOS and std, h, the majority label). Images are full size.",
        "",
        "| subset | triplets | references | what |",
        "|---|---|---|---|",
    ]
    for s in subsets:
        what = "two different distortion types of one reference" if s == CROSS else f"two {s} levels"
        lines.append(f"| `{s}` | {sum(t.subset == s for t in triplets)} | {refs[s]} | {what} |")
    h = np.array([t.h for t in triplets])
    lines += [
        "",
        "## The psychometric model",
        "",
        "Thurstone's law of comparative judgment, case III (independent observers' scores, unequal",
        "variances): an observer's difference score of image i is normal with mean DMOS_i and the",
        "standard deviation LIVE publishes for that image (`dmos_std`), so",
        "",
        "    h = Phi((DMOS_0 - DMOS_1) / sqrt(std_0^2 + std_1^2)),",
        "",
        "the probability that an observer finds p1 (lower DMOS = less distorted) closer to the",
        "reference. Why this model: it uses only what LIVE measured (mean and spread per image), it",
        "is the standard bridge from ratings to paired comparisons, and it gives soft labels like",
        "BAPPS's fractions. Its limits: LIVE's std is that of the rating scale after realignment,",
        "and if it is smaller than the scatter of single observers' 2AFC choices, h is too confident;",
        "ratings of two images seen apart are not choices seen side by side. So the hard majority",
        "label 1[DMOS_0 > DMOS_1] is stored as well, and results should be read under both.",
        "",
        f"h: mean {h.mean():.3f}; {np.mean((h < 0.05) | (h > 0.95)):.1%} of triplets have h < 0.05 or > 0.95.",
        "",
    ]
    return "\n".join(lines)
