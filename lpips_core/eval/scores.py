"""Scores of collected distances: 2AFC per subset and group, JND mAP, correlations, paired tests.

Every score comes with a bootstrap interval (:mod:`.stats`); the per-item agreement
itself is :func:`lpips_core.data.judgments.twoafc_scores`.
"""
from __future__ import annotations

import numpy as np

from ..data.judgments import score_jnd, twoafc_scores
from . import stats
from .collect import JNDDistances, TwoAFCDistances

#: Subset groups the paper averages over.
GROUPS = {"trad_cnn": ("traditional", "cnn"), "real_algs": ("superres", "deblur", "color", "frameinterp")}


def _cell(value: float, ci: tuple[float, float], n: int) -> dict:
    return {"score": float(value), "ci": [float(ci[0]), float(ci[1])], "n": int(n)}


def score_2afc_results(res: TwoAFCDistances, n_resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> dict:
    """2AFC score per metric and subset with bootstrap intervals, plus subset averages.

    Returns:
        {metric: {subset: {'score', 'ci', 'n'}, 'mean': ..., 'trad_cnn': ..., 'real_algs': ...}}
        where 'mean' averages all subsets' scores (each subset weighs the same, as in the paper)
        and the group keys appear when all their subsets are present.
    """
    subsets = list(dict.fromkeys(res.subset.tolist()))
    out: dict = {}
    for m in res.metrics:
        per = twoafc_scores(res.d0[m], res.d1[m], res.judge)  # (N,) agreement per triplet
        row: dict = {}
        for s in subsets:
            mask = res.subset == s
            row[s] = _cell(per[mask].mean(), stats.bootstrap_ci(per[mask], level=level, n_resamples=n_resamples,
                                                          seed=seed), mask.sum())
        groups = {"mean": tuple(subsets)}
        groups.update({g: members for g, members in GROUPS.items() if all(x in subsets for x in members)})
        for g, members in groups.items():
            if g == "mean" and len(subsets) == 1:
                row[g] = row[subsets[0]]
                continue
            mask = np.isin(res.subset, members)
            value = float(np.mean([row[x]["score"] for x in members]))
            row[g] = _cell(value, stats.stratified_bootstrap_ci(per[mask], res.subset[mask], level=level,
                                                          n_resamples=n_resamples, seed=seed), mask.sum())
        out[m] = row
    return out


def score_jnd_results(res: JNDDistances, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """JND mAP per metric and subset with percentile-bootstrap intervals (pairs resampled)."""
    subsets = list(dict.fromkeys(res.subset.tolist()))
    rng = np.random.default_rng(seed)
    out: dict = {}
    alpha = (1 - level) / 2
    for m in res.metrics:
        row = {}
        for s in subsets:
            mask = res.subset == s
            d, same = res.d[m][mask], res.same[mask]
            boot = [score_jnd(d[i], same[i]) for i in rng.integers(0, d.size, size=(n_resamples, d.size))]
            boot = np.asarray(boot)[np.isfinite(boot)]
            ci = (np.quantile(boot, alpha), np.quantile(boot, 1 - alpha)) if boot.size else (np.nan, np.nan)
            row[s] = _cell(score_jnd(d, same), ci, mask.sum())
        if len(subsets) > 1:
            vals = [row[s]["score"] for s in subsets]
            row["mean"] = {"score": float(np.mean(vals)), "ci": [float("nan")] * 2, "n": int(len(res.same))}
        out[m] = row
    return out


def judgment_correlations(res: TwoAFCDistances) -> dict:
    """Per metric: Pearson/Spearman/Kendall between ``d0 - d1`` and the judgment ``h``.

    A positive correlation is right: when p0 is farther than p1, more judges prefer p1.
    """
    return {m: stats.correlations(res.d0[m] - res.d1[m], res.judge) for m in res.metrics}


def paired_tests(res: TwoAFCDistances, baseline: str, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap test of every metric against ``baseline`` on the same triplets."""
    base = twoafc_scores(res.d0[baseline], res.d1[baseline], res.judge)
    out = {}
    for m in res.metrics:
        if m != baseline:
            out[m] = stats.paired_bootstrap_test(twoafc_scores(res.d0[m], res.d1[m], res.judge), base,
                                           n_resamples=n_resamples, seed=seed)
    return out
