"""Mean-opinion-score evaluation: how well do metrics predict people's quality ratings?

Input: a CSV with one row per rated (distorted) image::

    distorted,reference,<score column>[,...]

paths relative to the CSV's folder. The LIVE IQA JPEG subset in
``../shared/data/live_jpeg`` (``dmos.csv``: ``distorted,reference,dmos,dmos_realigned``)
is the one set of real human ratings here: evaluation only, never training.

Every metric is computed on the full-size pair as a distance (larger = more
different: PSNR enters as -PSNR, SSIM as 1 - SSIM), and reported with

* SROCC (Spearman) and KROCC (Kendall) with the score, and
* PLCC: Pearson after the 4-parameter logistic fit (VQEG),

each with a paired bootstrap 95% interval. With DMOS (higher = worse) a good
distance correlates positively; with MOS (higher = better) negatively.

Images are processed one pair at a time under ``torch.inference_mode`` (768x512
VGG features take ~0.5 GB), and a reference's features are computed once and
reused for all its distorted versions.

:func:`evaluate_mos` (``lpips-core evaluate-mos``) takes a :class:`MosConfig`,
computes a :class:`MosResult` (:func:`score_mos`; its ``to_dict()`` is results.json)
and writes the report (:func:`write_mos_report`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.images import im2tensor, load_image
from ..data.textfiles import read_csv_rows, read_json
from ..files import write_json, write_text
from ..progress import progress_bar
from . import plots
from .distances import DistanceFunction
from .mos_cache import DistanceCache, seed_from_results
from .registry import METRIC_SETS, MOS_STATISTICS, check_statistics
from .reports import signature_lines
from .runs import build_metrics
from .stats import cluster_correlation_test, format_p, mos_correlations, paired_correlation_test

__all__ = [
    "MOS_METRICS",
    "MOS_ALL_METRICS",
    "SCORE_COLUMNS",
    "RESAMPLE_UNITS",
    "LIVE_RELEASE2_IMAGES",
    "MOSDataError",
    "MOSRow",
    "read_mos_csv",
    "resolve_table",
    "compute_mos_distances",
    "check_cached",
    "seed_cache",
    "summary_table",
    "mos_markdown",
    "scene_of",
    "MosConfig",
    "MosResult",
    "score_mos",
    "write_mos_report",
    "evaluate_mos",
]

MOS_METRICS = METRIC_SETS["mos"]
#: Every metric the three-type LIVE table is scored with (``--metrics all``).
MOS_ALL_METRICS = METRIC_SETS["mos_all"]
SCORE_COLUMNS = ("score", "dmos", "mos", "dmos_realigned")


class MOSDataError(ValueError):
    """A problem with the MOS table (missing column, bad value, missing image), naming the row."""


@dataclass
class MOSRow:
    distorted: Path
    reference: Path
    score: float
    row: int  # 1-based line number in the CSV (header = line 1)
    name: str = ""  # the 'distorted' entry as written in the CSV
    group: str = ""  # e.g. the distortion type ('' when the table has no group column)


def read_mos_csv(
    path: str | Path, score_column: str | None = None, check_files: bool = True, group_column: str | None = None
) -> list[MOSRow]:
    """Read a ``distorted,reference,score[,group]`` table.

    Args:
        path: the CSV file; relative image paths resolve against its folder.
        score_column: column holding the subjective score; default: the first of
            'score', 'dmos', 'mos', 'dmos_realigned' present.
        check_files: fail (listing the rows) when an image file is missing.
        group_column: column that groups rows (e.g. 'distortion'); None: none.
    Raises:
        MOSDataError naming the file, the column or the rows that are wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise MOSDataError(f"{path}: no such CSV file")
    header, records = read_csv_rows(path, MOSDataError)  # UTF-8 (a BOM is fine), size-checked
    for needed in ("distorted", "reference"):
        if needed not in header:
            raise MOSDataError(
                f"{path}: no '{needed}' column (header is {','.join(header) or 'empty'}); "
                f"expected distorted,reference,<score>"
            )
    if score_column is None:
        score_column = next((c for c in SCORE_COLUMNS if c in header), None)
        if score_column is None:
            raise MOSDataError(f"{path}: no score column; name one with --score-column (header is {','.join(header)})")
    elif score_column not in header:
        raise MOSDataError(f"{path}: no column '{score_column}' (header is {','.join(header)})")
    if group_column is not None and group_column not in header:
        raise MOSDataError(
            f"{path}: no group column '{group_column}' (header is {','.join(header)}); "
            f"name another with --group-column or pass --group-column ''"
        )
    rows, problems = [], []
    for record in records:
        line, rec = record.line, record.values
        if record.problem:
            problems.append(f"line {line}: {record.problem}")
            continue
        try:
            score = float(rec[score_column])
            if not np.isfinite(score):
                raise ValueError
        except ValueError:
            problems.append(f"line {line}: {score_column}={rec[score_column]!r} is not a number")
            continue
        dist, ref = path.parent / rec["distorted"], path.parent / rec["reference"]
        if check_files:
            missing = [str(p) for p in (dist, ref) if not p.is_file()]
            if missing:
                problems.append(f"line {line}: missing {', '.join(missing)}")
                continue
        group = rec[group_column] if group_column is not None else ""
        if group_column is not None and not group:
            problems.append(f"line {line}: empty {group_column}")
            continue
        rows.append(MOSRow(dist, ref, score, line, rec["distorted"], group))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} in all)" if len(problems) > 10 else "")
        raise MOSDataError(f"{path}: {shown}")
    if len(rows) < 4:
        raise MOSDataError(f"{path}: {len(rows)} rated image(s); correlations need at least 4")
    return rows


def resolve_table(data: str | Path) -> Path:
    """``data`` may be the CSV or a folder holding exactly one (``dmos.csv`` / ``mos.csv`` preferred)."""
    data = Path(data)
    if data.is_file():
        return data
    if not data.is_dir():
        raise MOSDataError(f"{data}: no such folder or CSV file")
    for name in ("dmos.csv", "mos.csv", "scores.csv"):
        if (data / name).is_file():
            return data / name
    tables = sorted(data.glob("*.csv"))
    if len(tables) == 1:
        return tables[0]
    raise MOSDataError(f"{data}: expected one CSV (distorted,reference,score); found {len(tables)}")


def _load(path: Path, max_side: int | None) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]; downscaled (PIL area filter) so the longer side is <= max_side."""
    img = load_image(path)
    if max_side is not None and max(img.shape[:2]) > max_side:
        scale = max_side / max(img.shape[:2])
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        img = np.asarray(Image.fromarray(img).resize(size, Image.BOX))
    return im2tensor(img)


def _metric_groups(fns: Mapping[str, DistanceFunction]) -> list[list[str]]:
    """Metrics that share ``feature_key`` (e.g. lpips-vgg and net-vgg) in one group, in order."""
    groups: dict = {}
    for name, fn in fns.items():
        key = fn.feature_key()
        groups.setdefault(key if key is not None else ("own", name), []).append(name)
    return list(groups.values())


def compute_mos_distances(
    rows: Sequence[MOSRow],
    fns: Mapping[str, DistanceFunction],
    max_side: int | None = None,
    progress: bool = True,
    cache: DistanceCache | None = None,
) -> tuple[dict, dict]:
    """Distance of each metric for each row; features of each image computed once.

    A reference's features are computed once for all its distorted versions, metrics
    with the same ``feature_key`` share one trunk pass, and pairs found in ``cache``
    are not recomputed (new ones are added to it, saved after every reference).

    Returns:
        ({metric: (N,) distances in row order}, {metric: seconds spent computing in this
        call; shared features count towards every metric that used them})
    """
    by_ref: dict[Path, list[int]] = {}
    for i, r in enumerate(rows):
        by_ref.setdefault(r.reference, []).append(i)
    out = {m: np.full(len(rows), np.nan) for m in fns}
    seconds = dict.fromkeys(fns, 0.0)
    todo = {m: set(range(len(rows))) for m in fns}
    if cache is not None:
        for m in fns:
            for i, r in enumerate(rows):
                value = cache.get(m, r.distorted, r.reference, max_side)
                if value is not None:
                    out[m][i] = value
                    todo[m].discard(i)
    bar = progress_bar(
        total=sum(len(t) for t in todo.values()), desc="MOS pairs x metrics", unit="pair", enabled=progress
    )
    with torch.inference_mode():
        for group in _metric_groups(fns):
            first = fns[group[0]]
            for ref_path, idx in by_ref.items():
                need = [i for i in idx if any(i in todo[m] for m in group)]
                if not need:
                    continue
                ref = _load(ref_path, max_side)
                t0 = time.perf_counter()
                f_ref = first.features(ref)  # once per reference
                t_feat = time.perf_counter() - t0
                for i in need:
                    img = _load(rows[i].distorted, max_side)
                    if img.shape != ref.shape:
                        raise MOSDataError(
                            f"line {rows[i].row}: {rows[i].distorted} is {img.shape[3]}x"
                            f"{img.shape[2]} but {ref_path} is {ref.shape[3]}x{ref.shape[2]}"
                        )
                    t0 = time.perf_counter()
                    f_img = first.features(img)
                    t_feat += time.perf_counter() - t0
                    for m in group:
                        if i in todo[m]:
                            t0 = time.perf_counter()
                            out[m][i] = float(fns[m].from_features(f_ref, f_img)[0])
                            seconds[m] += time.perf_counter() - t0
                            if cache is not None:
                                cache.put(m, rows[i].distorted, rows[i].reference, max_side, out[m][i])
                            bar.update(1)
                    del f_img
                del f_ref
                for m in group:
                    seconds[m] += t_feat
                if cache is not None:
                    cache.save()
    bar.close()
    return out, seconds


def check_cached(
    rows: Sequence[MOSRow],
    fns: Mapping[str, DistanceFunction],
    cache: DistanceCache,
    n: int = 3,
    tol: float = 1e-6,
    max_side: int | None = None,
) -> dict[str, float]:
    """Recompute the first ``n`` cached rows of each metric; raise if any differs by more than ``tol``.

    Returns:
        {metric: largest absolute difference seen}.
    """
    worst = {}
    for m, fn in fns.items():
        picked = [r for r in rows if cache.get(m, r.distorted, r.reference, max_side) is not None][:n]
        if not picked:
            continue
        fresh, _ = compute_mos_distances(picked, {m: fn}, max_side=max_side, progress=False)
        stored = np.array([cache.get(m, r.distorted, r.reference, max_side) for r in picked])
        worst[m] = float(np.max(np.abs(fresh[m] - stored)))
        if not worst[m] <= tol:
            raise MOSDataError(
                f"{cache.path}: cached {m} distances differ from a fresh computation by "
                f"{worst[m]:.2e} (> {tol:g}) on {picked[0].name}; delete the cache to recompute"
            )
    return worst


def seed_cache(
    cache: DistanceCache,
    results_json: str | Path,
    fns: Mapping[str, DistanceFunction],
    table: str | Path | None = None,
    n_check: int = 3,
    tol: float = 1e-6,
) -> dict:
    """Fill ``cache`` from a stored ``evaluate-mos`` results.json, after checking it is reproducible.

    Args:
        results_json: the stored run (its ``distances`` and ``table``, e.g. results/live_jpeg).
        fns: the metrics to take from it (others in the file are ignored).
        table: the CSV that run read (default: the path stored in the file).
        n_check: recompute this many rows of each metric; any difference over ``tol`` raises.
    Returns:
        {'added': entries added, 'checked': {metric: largest difference}}.
    """
    stored = read_json(results_json, MOSDataError)
    if not isinstance(stored, dict) or not isinstance(stored.get("distances"), dict):
        raise MOSDataError(f"{results_json}: not an evaluate-mos results.json (no 'distances' block)")
    if stored.get("max_side") is not None:
        raise MOSDataError(f"{results_json}: computed at max_side={stored['max_side']}; seed only full-size runs")
    table = Path(table or stored["table"])
    if not table.is_file():
        raise MOSDataError(f"{results_json}: the table it was computed on, {table}, is absent; pass table=")
    rows = read_mos_csv(table, stored.get("score_column"))
    stored["distances"] = {k: v for k, v in stored["distances"].items() if k in ("ids", "score", *fns)}
    seeded = DistanceCache()
    added = seed_from_results(seeded, stored, rows)
    checked = check_cached(rows, {m: f for m, f in fns.items() if m in seeded.entries}, seeded, n=n_check, tol=tol)
    for m, entries in seeded.entries.items():
        cache.entries.setdefault(m, {}).update(entries)
    cache.save()
    return {"added": added, "checked": checked}


def _fmt(c: dict) -> str:
    lo, hi = c["ci"]
    return f"{c['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def _cell(r: dict, statistic: str) -> str:
    """``r[statistic]`` with its interval, or "not computed" (a run with fewer ``statistics``)."""
    return _fmt(r[statistic]) if statistic in r else "not computed"


def _per_group_rows(results: dict, statistic: str, head: Sequence[str]) -> list[str]:
    """A Markdown table: header cells ``head``, then per metric its pooled ``statistic`` and each group's."""
    groups = results["groups"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m, r in results["metrics"].items():
        cells = [m, _cell(r, statistic), *(_cell(groups[g][m], statistic) for g in groups)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_table(results: dict, metrics: Sequence[str] | None = None, per_group: bool = False) -> str:
    """A compact Markdown table of an evaluate-mos results.json (:meth:`MosResult.to_dict`): SROCC, KROCC
    and PLCC with intervals, or (``per_group``) pooled SROCC beside each group's.

    Args:
        metrics: rows to show, in order (default: all).
    """
    names = [m for m in (metrics or results["metrics"]) if m in results["metrics"]]
    if per_group and results.get("groups"):
        groups = list(results["groups"])
        head = "| metric | pooled SROCC | " + " | ".join(f"{g} ({results['group_n'][g]})" for g in groups) + " |"
        lines = [head, "|---" * (len(groups) + 2) + "|"]
        for m in names:
            lines.append(
                f"| {m} | {_fmt(results['metrics'][m]['srocc'])} | "
                + " | ".join(f"{results['groups'][g][m]['srocc']['value']:.3f}" for g in groups)
                + " |"
            )
    else:
        lines = ["| metric | SROCC [95% CI] | KROCC [95% CI] | PLCC [95% CI] |", "|---|---|---|---|"]
        for m in names:
            r = results["metrics"][m]
            lines.append(f"| {m} | {_cell(r, 'srocc')} | {_cell(r, 'krocc')} | {_cell(r, 'plcc')} |")
    return "\n".join(lines) + f"\n\nIntervals resample {_resampled(results)}.\n"


def mos_markdown(results: dict) -> str:
    """Tables of an evaluate-mos results.json (:meth:`MosResult.to_dict`): metric x (SROCC, KROCC, PLCC)
    pooled, SROCC per group, paired tests; each with 95% intervals."""
    groups = results.get("groups") or {}
    has_plcc = any("plcc" in r for r in results["metrics"].values())
    pooled = f"pooled over {results['n']} images" if groups else f"{results['n']} images"
    lines = [
        f"### Agreement with human ratings: {results['table']} ({results['score_column']}, {pooled})",
        "",
        f"> {results['note']}",
        "",
        "| metric | SROCC [95% CI] | KROCC [95% CI] | PLCC (logistic) [95% CI] | seconds |",
        "|---|---|---|---|---|",
    ]
    for m, r in results["metrics"].items():
        lines.append(f"| {m} | {_cell(r, 'srocc')} | {_cell(r, 'krocc')} | {_cell(r, 'plcc')} | {r['seconds']:.1f} |")
    lines += [
        "",
        f"Correlations are of each metric as a distance (PSNR as -PSNR, SSIM/MS-SSIM as 1 - value) "
        f"with the score; {results['direction']}. Intervals: paired percentile bootstrap, "
        f"{results['n_resamples']} resamples of {_resampled(results)}"
        f"{', the logistic refitted in each' if has_plcc else ''}. "
        f"Seconds: computed in this run (0 where every distance came from the cache).",
        "",
    ]
    if groups:
        lines += [f"#### SROCC per {results['group_column']} [95% CI]", ""]
        sizes = [f"{g} ({results['group_n'][g]})" for g in groups]
        lines += _per_group_rows(results, "srocc", ["metric", "pooled", *sizes])
        if has_plcc:
            lines += ["", *_per_group_rows(results, "plcc", ["metric", "PLCC pooled", *(f"PLCC {g}" for g in groups)])]
        lines.append("")
    tests = results.get("paired_tests") or {}
    if tests:
        lines += [
            "#### Paired bootstrap tests on the pooled set: SROCC(LPIPS) - SROCC(traditional)",
            "",
            "| LPIPS | vs | difference [95% CI] | p |",
            "|---|---|---|---|",
        ]
        for a, row in tests.items():
            for b, t in row.items():
                lo, hi = t["ci"]
                lines.append(
                    f"| {a} | {b} | {t['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                    f"{format_p(t['p_value'], t.get('n_resamples', results['n_resamples']))} |"
                )
        lines += [
            "",
            f"{_resampled(results).capitalize()} resampled, the two metrics kept paired "
            f"({results['n_resamples']} resamples); positive = LPIPS ranks the images closer to the "
            "human ordering.",
            "",
        ]
    if results.get("skipped"):
        lines.append("Skipped: " + "; ".join(f"{k} ({v})" for k, v in results["skipped"].items()) + "\n")
    return "\n".join(lines)


def scene_of(row: MOSRow) -> str:
    """The reference scene of a rated image: its reference's file name without extension.

    LIVE keeps the same photograph in two folders (JPEG and blur/noise); by name they are one scene.
    """
    return row.reference.stem


def _resampled(results: dict) -> str:
    if results.get("resampled", "images") == "scenes":
        return f"whole reference scenes ({results.get('n_scenes', '?')})"
    return "single images"


#: LIVE IQA Release 2 rates 779 distorted images of 29 references (5 distortion types).
LIVE_RELEASE2_IMAGES = 779


def _note(table: Path, rows: Sequence[MOSRow], max_side: int | None) -> str:
    """What the ratings are; for LIVE, which part of it (so nobody compares it with full-LIVE numbers)."""
    groups: dict[str, set] = {}
    counts: dict[str, int] = {}
    for r in rows:
        g = r.group or "jpeg"
        groups.setdefault(g, set()).add(scene_of(r))
        counts[g] = counts.get(g, 0) + 1
    if "live" in str(table).lower():
        parts = ", ".join(f"{counts[g]} {g} from {len(groups[g])} scenes" for g in groups)
        scale = " on one realigned DMOS scale" if len(groups) > 1 else ""
        text = (
            f"Real human ratings (LIVE IQA Release 2: {len(rows)} of its {LIVE_RELEASE2_IMAGES} distorted "
            f"images, {parts}{scale}; evaluation only). Not comparable with results published on all of "
            "LIVE. "
        )
    else:
        text = "Ratings as stored in the table. "
    return text + ("Full-size images." if max_side is None else f"Images downscaled to a longer side of {max_side} px.")


def _table_header(table: Path) -> list[str]:
    return read_csv_rows(table, MOSDataError)[0]


#: How :func:`evaluate_mos` resamples for its intervals and paired tests.
RESAMPLE_UNITS = ("scenes", "images")


@dataclass
class MosConfig:
    """What ``lpips-core evaluate-mos`` runs: which ratings, which metrics, how they are scored.

    Ratings and reports:
        data: the CSV ``distorted,reference,<score>[,...]`` or its folder (e.g.
            ``../shared/data/live_jpeg``; see :func:`resolve_table`).
        out_dir: where results.json, results.md and mos_scatter.png go (None: write nothing).
        score_column: None: 'score', 'dmos', 'mos' or 'dmos_realigned', whichever comes first.
        group_column: column whose values group the rows (e.g. 'distortion'): correlations are
            reported pooled and per group. 'auto': 'distortion' when the table has it; None
            (or ''): no groups.
        limit: use only the first ``limit`` rows (quick checks; None: all).
        max_side: downscale images so the longer side is at most this many pixels (None: full size).
    Metrics:
        metrics: specs for :func:`lpips_core.eval.distances.make_distance` (default
            :data:`MOS_METRICS`); ignored when :func:`evaluate_mos` is given ready ``fns``.
        device: 'cpu', 'cuda', ...
    Statistics:
        statistics: which of SROCC, KROCC and PLCC (:data:`~lpips_core.eval.registry.MOS_STATISTICS`)
            to compute, each with its interval; the others read "not computed" in the report.
            PLCC's logistic, refitted in every resample, costs most of the time.
        n_resamples: bootstrap resamples of the 95% intervals and paired tests.
        paired: also test each LPIPS metric against each traditional one on the pooled set.
        resample: 'scenes' (default): intervals and paired tests resample whole reference
            scenes (the distorted versions of one photograph are not independent ratings);
            'images': single images, as if every rating were independent (narrower, and too
            optimistic).
    Output:
        progress: a progress bar on stderr. verbose: print the Markdown report.
    """

    data: str | Path
    out_dir: str | Path | None = None
    metrics: Sequence[str] = MOS_METRICS
    score_column: str | None = None
    n_resamples: int = 1000
    max_side: int | None = None
    limit: int | None = None
    device: str = "cpu"
    progress: bool = True
    verbose: bool = True
    group_column: str | None = "auto"
    paired: bool = True
    resample: str = "scenes"
    statistics: Sequence[str] = MOS_STATISTICS

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLE_UNITS:
            raise ValueError(f"resample={self.resample!r}: use 'scenes' or 'images'")
        check_statistics(self.statistics)


@dataclass
class MosResult:
    """What :func:`evaluate_mos` computed; :meth:`to_dict` is its results.json.

    Attributes:
        table: the CSV read. score_column: its score column. n: rated images used.
        max_side: the downscaling (None: full size). note: what the ratings are (:func:`_note`).
        direction: which sign a good distance's correlations have with this score.
        n_resamples, resampled ('scenes' | 'images'), n_scenes: the bootstrap.
        skipped: {metric spec: why its weights were unavailable}.
        metrics: {metric: {'srocc', 'krocc', 'plcc' (each {'value', 'ci'}; those of
            ``config.statistics``), 'logistic' (with 'plcc'), 'seconds', 'label', 'kind',
            'signature'}} on the pooled set.
        seconds_total: wall time of the computation.
        group_column: the grouping column (None: none); group_n: {group: images}.
        groups: {group: {metric: {'srocc', 'krocc', 'plcc', ...}}} (with two groups or more).
        paired_tests: {LPIPS metric: {traditional metric: SROCC difference test}}.
        distances: per image, in row order: 'ids', 'score', 'scene'[, 'group'] and each
            metric's distance (lists).
    """

    table: str
    score_column: str
    n: int
    max_side: int | None
    note: str
    direction: str
    n_resamples: int
    resampled: str
    n_scenes: int
    skipped: dict
    metrics: dict
    seconds_total: float
    group_column: str | None
    group_n: dict
    groups: dict
    paired_tests: dict
    distances: dict

    def to_dict(self) -> dict:
        """The results.json content (the fields above, in order)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def markdown(self) -> str:
        """results.md: :func:`mos_markdown` and the metrics' signatures."""
        return mos_markdown(self.to_dict()) + "\n" + signature_lines(self.metrics)


def score_mos(
    config: MosConfig,
    *,
    fns: Mapping[str, DistanceFunction] | None = None,
    cache: str | Path | DistanceCache | None = None,
) -> MosResult:
    """The computing half of :func:`evaluate_mos`: every metric's distance per rated image,
    correlated with the scores (pooled, per group) and paired-tested.

    Args:
        fns: ready distance functions to use instead of ``config.metrics``.
        cache: a :class:`DistanceCache` or its JSON path: per-image distances read and written there.
    """
    table = resolve_table(config.data)
    header = _table_header(table)
    group_column = config.group_column
    if group_column == "auto":
        group_column = "distortion" if "distortion" in header else None
    group_column = group_column or None
    score_column = config.score_column
    rows = read_mos_csv(table, score_column, group_column=group_column)
    if score_column is None:
        score_column = next(c for c in SCORE_COLUMNS if c in header)
    if config.limit is not None:
        rows = rows[: config.limit]
    skipped: dict = {}
    if fns is None:
        fns, skipped = build_metrics(config.metrics, device=config.device)
    if cache is not None and not isinstance(cache, DistanceCache):
        cache = DistanceCache(cache)
    n_resamples, max_side = config.n_resamples, config.max_side
    t0 = time.perf_counter()
    dists, seconds = compute_mos_distances(rows, fns, max_side=max_side, progress=config.progress, cache=cache)
    scores = np.array([r.score for r in rows])
    labels = np.array([r.group for r in rows])
    scenes = np.array([scene_of(r) for r in rows])
    clusters = scenes if config.resample == "scenes" else None
    group_names = list(dict.fromkeys(labels.tolist())) if group_column else []
    metrics = {}
    for m, d in dists.items():
        res = mos_correlations(d, scores, n_resamples=n_resamples, clusters=clusters, statistics=config.statistics)
        res["seconds"] = seconds[m]
        res["label"], res["kind"] = fns[m].label, fns[m].kind
        sig = getattr(fns[m], "signature", None)  # how the number was computed (issue 14)
        res["signature"] = sig("native" if max_side is None else f"longer-side-{max_side}") if callable(sig) else None
        metrics[m] = res
    groups = {}
    if len(group_names) > 1:
        for g in group_names:
            mask = labels == g
            groups[g] = {
                m: mos_correlations(
                    d[mask],
                    scores[mask],
                    n_resamples=n_resamples,
                    clusters=None if clusters is None else clusters[mask],
                    statistics=config.statistics,
                )
                for m, d in dists.items()
            }
    tests = {}
    if config.paired:
        trad = [m for m in dists if fns[m].kind == "traditional"]
        for a in (m for m in dists if fns[m].kind == "lpips"):
            tests[a] = {
                b: (
                    cluster_correlation_test(dists[a], dists[b], scores, clusters, n_resamples=n_resamples)
                    if clusters is not None
                    else paired_correlation_test(dists[a], dists[b], scores, n_resamples=n_resamples)
                )
                for b in trad
            }
    return MosResult(
        table=str(table),
        score_column=score_column,
        n=len(rows),
        max_side=max_side,
        note=_note(table, rows, max_side),
        direction=(
            "DMOS: higher = worse, so a good distance has positive correlations"
            if _worse_is_higher(score_column)
            else "a MOS (higher = better) gives a good distance negative SROCC/KROCC"
        ),
        n_resamples=n_resamples,
        resampled=config.resample,
        n_scenes=len(set(scenes.tolist())),
        skipped=skipped,
        metrics=metrics,
        seconds_total=time.perf_counter() - t0,
        group_column=group_column,
        group_n={g: int(np.sum(labels == g)) for g in group_names},
        groups=groups,
        paired_tests=tests,
        distances={
            "ids": [r.name for r in rows],
            "score": scores.tolist(),
            "scene": scenes.tolist(),
            **({"group": labels.tolist()} if group_column else {}),
            **{m: d.tolist() for m, d in dists.items()},
        },
    )


def _worse_is_higher(score_column: str) -> bool:
    """A DMOS (a difference of opinion scores) rises as the image gets worse; a MOS falls."""
    return "dmos" in score_column.lower()


def write_mos_report(result: MosResult, out_dir: str | Path) -> None:
    """Write results.json, results.md and mos_scatter.png (every metric against the score) into ``out_dir``."""
    out_dir = Path(out_dir)
    write_json(out_dir / "results.json", result.to_dict())
    write_text(out_dir / "results.md", result.markdown())
    table, column, d = Path(result.table), result.score_column, result.distances
    worse_is_higher = _worse_is_higher(column)
    plots.plot_mos_scatter_grid(
        {m: np.array(d[m]) for m in result.metrics},
        np.array(d["score"]),
        out_dir / "mos_scatter.png",
        logistic={m: r.get("logistic") for m, r in result.metrics.items()},
        labels={m: r["label"] for m, r in result.metrics.items()},
        stats_text={
            m: "\n".join(f"{name.upper()} {r[name]['value']:.3f}" for name in ("srocc", "plcc") if name in r)
            for m, r in result.metrics.items()
        },
        ylabel=f"{column}" + (" (higher = worse)" if worse_is_higher else ""),
        title=f"Metrics vs {column}: {table.parent.name if not result.group_n else table.stem} ({result.n} images)",
        groups=np.array(d["group"]) if len(result.group_n) > 1 else None,
    )


def evaluate_mos(
    config: MosConfig,
    *,
    fns: Mapping[str, DistanceFunction] | None = None,
    cache: str | Path | DistanceCache | None = None,
) -> MosResult:
    """Correlate every metric with subjective scores; write results.json, results.md, mos_scatter.png.

    :func:`score_mos`, then (with ``config.out_dir``) :func:`write_mos_report`; the
    Markdown is printed when ``config.verbose``.

    Args:
        config: the run (see :class:`MosConfig`).
        fns: ready distance functions to use instead of ``config.metrics``.
        cache: a :class:`DistanceCache` or its JSON path: per-image distances read and written there.
    """
    result = score_mos(config, fns=fns, cache=cache)
    if config.out_dir is not None:
        write_mos_report(result, config.out_dir)
    if config.verbose:
        print(result.markdown())
    return result
