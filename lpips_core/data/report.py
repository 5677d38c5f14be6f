"""What a judgment dataset holds: counts, judgment distributions, image sizes, problems.

Backs ``lpips-core analyze DATA_DIR``. Works on every layout :mod:`lpips_core.data.formats`
reads (BAPPS folders, CSV/JSON tables, per-sample folders) and never stops at a bad
row: bad rows are listed as problems.

Example:
    >>> from lpips_core.data.report import analyze          # doctest: +SKIP
    >>> report = analyze('data/mini_bapps')                  # doctest: +SKIP
    >>> print(report.text()); report.save('analysis')        # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import pyplot, save_figure, write_text
from ..progress import progress_bar
from .formats import KINDS, DataError, Record, detect_format, has_samples, read_records
from .images import ImageLoadError, open_image
from .textfiles import read_csv_rows, read_json

VALUE_NAME = {"2afc": "judge (fraction preferring p1)", "jnd": "same (fraction answering 'same')"}


@dataclass
class GroupReport:
    """One (kind, split, subset) group of items."""

    kind: str
    split: str
    subset: str
    values: np.ndarray  # (N,) judgments in [0, 1]
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> number of images

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.split}/{self.subset}"

    def distribution(self, max_levels: int = 12) -> str:
        """'0:10 0.5:3 1:9' when the values take few levels, else quartiles."""
        levels, counts = np.unique(np.round(self.values, 4), return_counts=True)
        if len(levels) <= max_levels:
            return " ".join(f"{lv:g}:{c}" for lv, c in zip(levels, counts))
        q = np.quantile(self.values, [0, 0.25, 0.5, 0.75, 1])
        return "quartiles " + " ".join(f"{v:.2f}" for v in q)


@dataclass
class DataReport:
    """Everything :func:`analyze` found under ``root``."""

    root: Path
    groups: list[GroupReport]
    problems: list[str]

    def text(self, max_problems: int = 30) -> str:
        """A plain-text table of the groups, then the problems."""
        header = f"{'group':34s} {'items':>6s} {'mean':>6s}  {'image sizes':22s} judgment levels: count"
        lines = [f"{self.root}", header, "-" * len(header)]
        for g in self.groups:
            sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in g.sizes.most_common(3))
            if len(g.sizes) > 3:
                sizes += f", +{len(g.sizes) - 3} more"
            mean = f"{g.values.mean():.3f}" if len(g.values) else "-"
            lines.append(f"{g.name:34s} {len(g.values):6d} {mean:>6s}  {sizes:22s} {g.distribution()}")
        totals = Counter()
        for g in self.groups:
            totals[f"{g.kind}/{g.split}"] += len(g.values)
        lines.append("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
        card = self.root / "README.md"
        if card.is_file() and "NOT human" in card.read_text(errors="replace"):
            lines.append(f"note: the data card ({card}) says these judgments are SIMULATED, not human")
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"  ... and {len(self.problems) - max_problems} more (all in problems.txt)")
        else:
            lines.append("no problems found")
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``summary.csv``, ``problems.txt`` and ``judgments.png`` (one histogram per group)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["kind", "split", "subset", "items", "mean_judgment", "image_sizes", "levels"])
        for g in self.groups:
            w.writerow(
                [
                    g.kind,
                    g.split,
                    g.subset,
                    len(g.values),
                    f"{g.values.mean():.4f}" if len(g.values) else "",
                    json.dumps({f"{a}x{b}": n for (a, b), n in g.sizes.items()}),
                    g.distribution(),
                ]
            )
        written = [
            write_text(out_dir / "summary.csv", buf.getvalue()),
            write_text(out_dir / "problems.txt", "".join(p + "\n" for p in self.problems)),
        ]
        fig = self.figure()
        written.append(save_figure(fig, out_dir / "judgments.png"))
        pyplot().close(fig)
        return written

    def figure(self):
        """Histogram of the judgments of every group (a grid of panels)."""
        plt = pyplot()
        n = max(len(self.groups), 1)
        cols = min(n, 3)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
        for ax, g in zip(axes.flat, self.groups):
            levels = np.unique(np.round(g.values, 4))
            if 0 < len(levels) <= 12:
                counts = [(np.round(g.values, 4) == lv).sum() for lv in levels]
                ax.bar(levels, counts, width=min(0.08, 0.8 / len(levels)), color="tab:blue")
            else:
                ax.hist(g.values, bins=20, range=(0, 1), color="tab:blue")
            ax.set_xlim(-0.05, 1.05)
            ax.set_title(f"{g.name} (n={len(g.values)})", fontsize=9)
            ax.set_xlabel(VALUE_NAME[g.kind], fontsize=8)
            ax.set_ylabel("items", fontsize=8)
        for ax in list(axes.flat)[len(self.groups) :]:
            ax.set_axis_off()
        fig.suptitle(f"judgment distribution: {self.root.name}", fontsize=10)
        fig.tight_layout()
        return fig


def _table_kind(path: Path) -> str:
    """'jnd' for a table whose fields are p0_path/p1_path/same, else '2afc'."""
    try:  # a table that cannot be read is reported by read_records, as a 2AFC table
        if path.suffix.lower() == ".csv":
            fields = read_csv_rows(path, DataError)[0]
        else:
            data = read_json(path, DataError)
            fields = list(data[0]) if isinstance(data, list) and data and isinstance(data[0], dict) else []
    except DataError:
        return "2afc"
    fields = [f.strip() for f in fields]
    return "jnd" if "same" in fields and "ref_path" not in fields else "2afc"


def find_sources(root: str | os.PathLike) -> list[tuple[str, str, Path]]:
    """(kind, split, location) of every readable group under ``root``.

    Raises:
        DataError: nothing under ``root`` looks like judgment data.
    """
    root = Path(root)
    if root.is_file():
        return [(_table_kind(root), root.stem, root)]
    if not root.is_dir():
        raise DataError(f"{root}: no such file or folder")
    if any((root / k).is_dir() for k in KINDS):  # a BAPPS dataset folder
        return [
            (k, d.name, d)
            for k in KINDS
            if (root / k).is_dir()
            for d in sorted((root / k).iterdir())
            if d.is_dir() and not d.name.startswith(".")
        ]
    errors = []
    for kind in KINDS:
        try:
            fmt = detect_format(root, kind)
        except DataError as exc:
            errors.append(str(exc))
            continue
        if fmt == "samples" and not any(has_samples(d) for d in root.iterdir() if d.is_dir()):
            return [(kind, d.name, d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
        return [(kind, root.name, root)]
    raise DataError(errors[0])


def _image_sizes(records: list[Record], problems: list[str], where: str) -> Counter:
    sizes: Counter = Counter()
    for r in progress_bar(records, desc=f"sizes {where}", unit="item", leave=False, enabled=len(records) >= 2000):
        item_sizes = []
        for p in r.paths:
            try:
                with open_image(p) as im:  # header only, within the pixel budget
                    item_sizes.append(im.size)
            except ImageLoadError as exc:
                problems.append(f"{where}/{r.subset}/{r.id}: {exc}")
                break
        if len(item_sizes) < len(r.paths):
            continue
        sizes.update(item_sizes)
        if len(set(item_sizes)) > 1:
            problems.append(
                f"{where}/{r.subset}/{r.id}: images differ in size "
                f"({', '.join(f'{w}x{h}' for w, h in item_sizes)}); load_size resizes them"
            )
    return sizes


def analyze(root: str | os.PathLike) -> DataReport:
    """Read every group under ``root`` (keeping bad rows as problems) and summarise it."""
    root = Path(root)
    groups: list[GroupReport] = []
    problems: list[str] = []
    for kind, split, location in find_sources(root):
        try:
            records = read_records(location, kind, problems=problems)
        except DataError as exc:
            problems.append(str(exc).replace("\n", " "))
            continue
        by_subset: dict[str, list[Record]] = {}
        for r in records:
            by_subset.setdefault(r.subset, []).append(r)
        for subset, recs in sorted(by_subset.items()):
            sizes = _image_sizes(recs, problems, f"{kind}/{split}")
            groups.append(GroupReport(kind, split, subset, np.array([r.value for r in recs]), sizes))
    if not groups and not problems:
        raise DataError(f"{root}: no items found")
    return DataReport(root, groups, problems)
