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
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from ..data.images import im2tensor, load_image
from ..files import write_json, write_text
from ..progress import progress_bar
from . import plots
from .distances import DistanceFunction
from .reports import signature_lines
from .runs import build_metrics
from .stats import mos_correlations

MOS_METRICS = ("lpips-alex", "lpips-vgg", "lpips-squeeze", "psnr", "ssim", "ms_ssim", "dists", "l2_lab")
SCORE_COLUMNS = ("score", "dmos", "mos")


class MOSDataError(ValueError):
    """A problem with the MOS table (missing column, bad value, missing image), naming the row."""


@dataclass
class MOSRow:
    distorted: Path
    reference: Path
    score: float
    row: int  # 1-based line number in the CSV (header = line 1)
    name: str = ""  # the 'distorted' entry as written in the CSV


def read_mos_csv(path: str | Path, score_column: str | None = None, check_files: bool = True) -> list[MOSRow]:
    """Read a ``distorted,reference,score`` table.

    Args:
        path: the CSV file; relative image paths resolve against its folder.
        score_column: column holding the subjective score; default: the first of
            'score', 'dmos', 'mos' present.
        check_files: fail (listing the rows) when an image file is missing.
    Raises:
        MOSDataError naming the file, the column or the rows that are wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise MOSDataError(f"{path}: no such CSV file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        for needed in ("distorted", "reference"):
            if needed not in header:
                raise MOSDataError(f"{path}: no '{needed}' column (header is {','.join(header) or 'empty'}); "
                                   f"expected distorted,reference,<score>")
        if score_column is None:
            score_column = next((c for c in SCORE_COLUMNS if c in header), None)
            if score_column is None:
                raise MOSDataError(f"{path}: no score column; name one with --score-column (header is "
                                   f"{','.join(header)})")
        elif score_column not in header:
            raise MOSDataError(f"{path}: no column '{score_column}' (header is {','.join(header)})")
        rows, problems = [], []
        for line, rec in enumerate(reader, start=2):
            rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items()}
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
            rows.append(MOSRow(dist, ref, score, line, rec["distorted"]))
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


def compute_mos_distances(rows: Sequence[MOSRow], fns: Mapping[str, DistanceFunction],
                          max_side: int | None = None, progress: bool = True) -> tuple[dict, dict]:
    """Distance of each metric for each row, references' features computed once.

    Returns:
        ({metric: (N,) distances in row order}, {metric: seconds spent computing})
    """
    by_ref: dict[Path, list[int]] = {}
    for i, r in enumerate(rows):
        by_ref.setdefault(r.reference, []).append(i)
    out = {m: np.full(len(rows), np.nan) for m in fns}
    seconds = dict.fromkeys(fns, 0.0)
    bar = progress_bar(total=len(rows) * len(fns), desc="MOS pairs x metrics", unit="pair", enabled=progress)
    with torch.inference_mode():
        for ref_path, idx in by_ref.items():
            ref = _load(ref_path, max_side)
            distorted = {i: _load(rows[i].distorted, max_side) for i in idx}
            for i, img in distorted.items():
                if img.shape != ref.shape:
                    raise MOSDataError(f"line {rows[i].row}: {rows[i].distorted} is {img.shape[3]}x{img.shape[2]} "
                                       f"but {ref_path} is {ref.shape[3]}x{ref.shape[2]}")
            for name, fn in fns.items():
                t0 = time.perf_counter()
                f_ref = fn.features(ref)  # once per reference
                for i, img in distorted.items():
                    out[name][i] = float(fn.from_features(f_ref, fn.features(img))[0])
                    bar.update(1)
                del f_ref
                seconds[name] += time.perf_counter() - t0
    bar.close()
    return out, seconds


def _fmt(c: dict) -> str:
    lo, hi = c["ci"]
    return f"{c['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def mos_markdown(results: dict) -> str:
    """Table: metric x (SROCC, KROCC, PLCC), each with its 95% interval, plus timing."""
    lines = [f"### Agreement with human ratings: {results['table']} ({results['score_column']}, "
             f"{results['n']} images)", "",
             f"> {results['note']}", "",
             "| metric | SROCC [95% CI] | KROCC [95% CI] | PLCC (logistic) [95% CI] | seconds |",
             "|---|---|---|---|---|"]
    for m, r in results["metrics"].items():
        lines.append(f"| {m} | {_fmt(r['srocc'])} | {_fmt(r['krocc'])} | {_fmt(r['plcc'])} | {r['seconds']:.1f} |")
    lines += ["", f"Correlations are of each metric as a distance (PSNR as -PSNR, SSIM/MS-SSIM as 1 - value) "
              f"with the score; {results['direction']}. Intervals: paired percentile bootstrap, "
              f"{results['n_resamples']} resamples, the logistic refitted in each.", ""]
    if results.get("skipped"):
        lines.append("Skipped: " + "; ".join(f"{k} ({v})" for k, v in results["skipped"].items()) + "\n")
    return "\n".join(lines)


def evaluate_mos(data: str | Path, out_dir: str | Path | None = None, metrics: Sequence[str] = MOS_METRICS,
                 score_column: str | None = None, n_resamples: int = 1000, max_side: int | None = None,
                 limit: int | None = None, device: str = "cpu", progress: bool = True,
                 fns: Mapping[str, DistanceFunction] | None = None, verbose: bool = True) -> dict:
    """Correlate every metric with subjective scores; write results.json, results.md, mos_scatter.png.

    Args:
        data: the CSV or its folder (e.g. ``../shared/data/live_jpeg``).
        out_dir: where to write (None: write nothing).
        metrics: specs for :func:`lpips_core.eval.distances.make_distance`.
        score_column: default: 'score', 'dmos' or 'mos', whichever comes first.
        max_side: downscale images so the longer side is at most this (None: full size).
        limit: use only the first ``limit`` rows (quick checks).
    Returns:
        {'metrics': {name: {'srocc', 'krocc', 'plcc', 'logistic', 'seconds'}}, 'distances', ...}.
    """
    table = resolve_table(data)
    rows = read_mos_csv(table, score_column)
    if score_column is None:
        with open(table, newline="") as f:
            header = next(csv.reader(f))
        score_column = next(c for c in SCORE_COLUMNS if c in [h.strip() for h in header])
    if limit is not None:
        rows = rows[:limit]
    skipped: dict = {}
    if fns is None:
        fns, skipped = build_metrics(metrics, device=device)
    t0 = time.perf_counter()
    dists, seconds = compute_mos_distances(rows, fns, max_side=max_side, progress=progress)
    scores = np.array([r.score for r in rows])
    worse_is_higher = "dmos" in score_column.lower()
    results = {
        "table": str(table), "score_column": score_column, "n": len(rows), "max_side": max_side,
        "note": ("Real human ratings (LIVE IQA Release 2, JPEG subset; evaluation only). "
                 if "live" in str(table).lower() else "Ratings as stored in the table. ")
                + ("Full-size images." if max_side is None else f"Images downscaled to a longer side of {max_side} px."),
        "direction": ("DMOS: higher = worse, so a good distance has positive correlations" if worse_is_higher
                      else "a MOS (higher = better) gives a good distance negative SROCC/KROCC"),
        "n_resamples": n_resamples, "skipped": skipped, "metrics": {}, "seconds_total": 0.0,
        "distances": {"ids": [r.name for r in rows],
                      "score": scores.tolist(), **{m: d.tolist() for m, d in dists.items()}},
    }
    for m, d in dists.items():
        res = mos_correlations(d, scores, n_resamples=n_resamples)
        res["seconds"] = seconds[m]
        res["label"] = fns[m].label
        sig = getattr(fns[m], "signature", None)  # how the number was computed (issue 14)
        res["signature"] = sig("native" if max_side is None else f"longer-side-{max_side}") if callable(sig) else None
        results["metrics"][m] = res
    results["seconds_total"] = time.perf_counter() - t0
    text = mos_markdown(results) + "\n" + signature_lines(results["metrics"])
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / "results.json", results)
        write_text(out_dir / "results.md", text)
        plots.plot_mos_scatter_grid(
            dists, scores, out_dir / "mos_scatter.png",
            logistic={m: r["logistic"] for m, r in results["metrics"].items()},
            labels={m: fns[m].label for m in dists},
            stats_text={m: f"SROCC {r['srocc']['value']:.3f}\nPLCC {r['plcc']['value']:.3f}"
                        for m, r in results["metrics"].items()},
            ylabel=f"{score_column}" + (" (higher = worse)" if worse_is_higher else ""),
            title=f"Metrics vs {score_column}: {table.parent.name} ({len(rows)} images)")
    if verbose:
        print(text)
    return results
