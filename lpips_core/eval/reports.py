"""Reports of an evaluation: the paper's numbers, Markdown tables, judgment notes, distance files."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..files import write_csv
from .collect import TwoAFCDistances
from .scores import GROUPS
from .stats import format_p

#: The paper's 2AFC agreement (%), poster table; DESIGN.md section 3. Cited, not reproduced.
#: "human" is one judge's agreement with the panel, not a ceiling (see ``published.oracle_bound``).
PAPER_2AFC = {
    "human": {"trad_cnn": 82.6, "real_algs": 69.5},
    "l2_lab": {"trad_cnn": 68.9},
    "ssim": {"trad_cnn": 69.7},
    "fsimc": {"trad_cnn": 70.0},
    "net-squeeze": {"trad_cnn": 78.0, "real_algs": 64.0},
    "lpips-squeeze": {"trad_cnn": 79.8, "real_algs": 65.1},
    "tune-squeeze": {"trad_cnn": 79.9, "real_algs": 64.5},
    "net-alex": {"trad_cnn": 76.8, "real_algs": 65.0},
    "lpips-alex": {"trad_cnn": 78.7, "real_algs": 65.3},
    "tune-alex": {"trad_cnn": 80.6, "real_algs": 64.3},
    "net-vgg": {"trad_cnn": 75.7, "real_algs": 62.6},
    "lpips-vgg": {"trad_cnn": 79.4, "real_algs": 64.1},
    "tune-vgg": {"trad_cnn": 81.4, "real_algs": 64.0},
}
PAPER_CITATION = (
    "Zhang et al., CVPR 2018, 2AFC agreement on BAPPS val with human judgments (the paper's numbers, not measured here)"
)


def _dataset_root(path: Path) -> Path:
    """The folder holding ``2afc/`` or ``jnd/`` above ``path`` (or ``path``'s own folder)."""
    start = path if path.is_dir() else path.parent
    for folder in [start, *list(start.parents)[:3]]:
        if (folder / "2afc").is_dir() or (folder / "jnd").is_dir():
            return folder
    return start


def judgment_note(data: str | Path | None) -> str:
    """Where the judgments come from, for every report: the mini set's are simulated.

    Reads the data card (``README.md``) of the dataset root; a card that says
    "simulated" (the mini set's does) gives the simulated-observer warning, naming the
    observer when the card does (a metric equal to the observer wins by construction).
    """
    if data is None:
        return "Judgments: supplied in memory (source unknown)."
    root = _dataset_root(Path(data))
    card = root / "README.md"
    text = card.read_text(errors="replace") if card.is_file() else ""
    if "simulated" in text.lower() or root.name == "mini_bapps":
        observer = re.search(r"observer\s+`([^`]+)`", text)
        who = f" ({observer.group(1)})" if observer else ""
        # the card by its dataset-relative name: reports are shared, local paths mean nothing to readers
        return (
            f"Judgments come from a SIMULATED observer{who} (see {root.name}/README.md), not from people; scores here "
            f"are agreement with that simulation, not with human perception"
            + (", and the metric the observer uses is favoured by construction." if who else ".")
        )
    return f"Judgments: as stored in the dataset {root.name!r}."


# --------------------------------------------------------------------------- tables
def _pct(x: float) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def markdown_table(
    scores: dict,
    title: str = "2AFC agreement (%)",
    note: str = "",
    paper: Mapping[str, Mapping[str, float]] | None = None,
    speed: Mapping[str, float] | None = None,
) -> str:
    """Metric x subset table, each cell ``score [low, high]`` in percent.

    Args:
        scores: output of :func:`score_2afc_results` (or the JND scorer).
        paper: optional {metric: {'trad_cnn': %, 'real_algs': %}} shown in extra columns.
        speed: optional {metric: pairs/s}.
    """
    metrics = list(scores)
    if not metrics:
        return f"### {title}\n\n(no results)\n"
    cols = [c for c in next(iter(scores.values())) if c not in ("mean", *GROUPS)]
    cols += [c for c in ("trad_cnn", "real_algs", "mean") if c in next(iter(scores.values()))]
    header = ["metric"] + [
        {"trad_cnn": "Trad+CNN avg", "real_algs": "real algs avg", "mean": "mean of subsets"}.get(c, c) for c in cols
    ]
    if paper is not None:
        header += ["paper Trad+CNN", "paper real algs"]
    if speed is not None:
        header += ["pairs/s"]
    lines = [f"### {title}", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in metrics:
        cells = [m]
        for c in cols:
            cell = scores[m].get(c)
            if cell is None:
                cells.append("-")
            else:
                lo, hi = (np.nan if v is None else v for v in (cell.get("ci") or [None, None]))
                ci = "" if not (np.isfinite(lo) and np.isfinite(hi)) else f" [{_pct(lo)}, {_pct(hi)}]"
                cells.append(f"{_pct(cell['score'])}{ci}")
        if paper is not None:
            ref = paper.get(m, {})
            cells += [
                f"{ref['trad_cnn']:.1f}" if "trad_cnn" in ref else "-",
                f"{ref['real_algs']:.1f}" if "real_algs" in ref else "-",
            ]
        if speed is not None:
            cells.append(f"{speed[m]:.0f}" if m in speed else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if paper is not None:
        lines += [
            "",
            f"Paper columns: {PAPER_CITATION}; human agreement there: "
            f"{PAPER_2AFC['human']['trad_cnn']} (Trad+CNN), {PAPER_2AFC['human']['real_algs']} (real algs).",
        ]
    lines.append("")
    return "\n".join(lines)


def _p(p: float) -> str:
    """A p-value for a table: doubles underflow to 0 below ~1e-308."""
    if p is None or not np.isfinite(p):
        return "-"
    return "<1e-300" if p < 1e-300 else f"{p:.1e}"


def correlation_table(corrs: dict, note: str = "") -> str:
    """Markdown: Pearson / Spearman / Kendall of (d0 - d1) with the judgment, with p-values."""
    lines = ["### Correlation of distance difference (d0 - d1) with the judgment", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += ["| metric | Pearson r (p) | Spearman rho (p) | Kendall tau (p) |", "|---|---|---|---|"]
    for m, c in corrs.items():
        cells = [f"{c[k]['r']:.3f} ({_p(c[k]['p'])})" for k in ("pearson", "spearman", "kendall")]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def write_distances_csv(path: str | Path, res: TwoAFCDistances) -> None:
    """Per-triplet distances of every metric (id, subset, judge, <metric>_d0, <metric>_d1)."""
    header = ["id", "subset", "judge"] + [f"{m}_{k}" for m in res.metrics for k in ("d0", "d1")]
    rows = (
        [res.ids[i], res.subset[i], f"{res.judge[i]:.6g}"]
        + [f"{getattr(res, k)[m][i]:.8g}" for m in res.metrics for k in ("d0", "d1")]
        for i in range(len(res.judge))
    )
    write_csv(path, header, rows)


def read_distances_csv(path: str | Path) -> TwoAFCDistances:
    """Read back :func:`write_distances_csv` (timings are not stored: ``seconds`` is empty)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if header[:3] != ["id", "subset", "judge"] or (len(header) - 3) % 2:
        raise ValueError(f"{path}: not a distances_2afc.csv (header {','.join(header[:5])}...)")
    cols = list(zip(*body)) if body else [[] for _ in header]
    metrics = [h[:-3] for h in header[3::2]]
    return TwoAFCDistances(
        judge=np.array(cols[2], dtype=float),
        subset=np.array(cols[1]),
        ids=list(cols[0]),
        d0={m: np.array(cols[3 + 2 * i], dtype=float) for i, m in enumerate(metrics)},
        d1={m: np.array(cols[4 + 2 * i], dtype=float) for i, m in enumerate(metrics)},
    )


def signature_lines(metrics: dict) -> str:
    """results.md's list of the metrics' signatures."""
    lines = ["Signatures (how each number was computed):", ""]
    lines += [f"- `{k}`: `{m['signature']}`" for k, m in metrics.items() if m.get("signature")]
    return "\n".join(lines) + "\n"


def paired_table(tests: Mapping[str, dict], title: str = "", scale: float = 100.0) -> str:
    """Paired tests as a Markdown table: difference, 95% interval and p (``p < 1/B`` at the floor).

    Args:
        tests: {'a - b': {'difference', 'ci', 'p_value', 'n_resamples'}} (e.g. from
            :func:`.stats.cluster_bootstrap_test`); values are multiplied by ``scale``
            (100: 2AFC points; 1: correlation differences).
    Returns:
        the table, with a line saying which intervals exclude zero.
    """
    digits = 1 if scale >= 100 else 3
    lines = ([f"### {title}", ""] if title else []) + [
        "| comparison | difference [95% CI] | p | interval excludes 0 |",
        "|---|---|---|---|",
    ]
    for name, t in tests.items():
        lo, hi = (scale * v for v in t["ci"])
        lines.append(
            f"| {name} | {scale * t['difference']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] | "
            f"{format_p(t['p_value'], t.get('n_resamples', 10_000))} | "
            f"{'yes' if lo > 0 or hi < 0 else 'no'} |"
        )
    return "\n".join(lines) + "\n"
