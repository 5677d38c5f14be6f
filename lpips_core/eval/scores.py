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


def score_2afc_results(
    res: TwoAFCDistances, n_resamples: int = 1000, seed: int = 0, level: float = 0.95, clusters=None
) -> dict:
    """2AFC score per metric and subset with bootstrap intervals, plus subset averages.

    Args:
        clusters: (N,) cluster of each triplet (e.g. its reference scene): intervals then resample
            whole clusters (:func:`.stats.cluster_bootstrap_ci`), because triplets built from one
            photograph are not independent. None: triplets resampled one by one (stratified by
            subset for the averages).
    Returns:
        {metric: {subset: {'score', 'ci', 'n'}, 'mean': ..., 'trad_cnn': ..., 'real_algs': ...}}
        where 'mean' averages all subsets' scores (each subset weighs the same, as in the paper)
        and the group keys appear when all their subsets are present.
    """
    subsets = list(dict.fromkeys(res.subset.tolist()))
    groups = {"mean": tuple(subsets)}
    groups.update({g: members for g, members in GROUPS.items() if all(x in subsets for x in members)})
    out: dict = {}
    for m in res.metrics:
        per = twoafc_scores(res.d0[m], res.d1[m], res.judge)  # (N,) agreement per triplet
        row: dict = {}
        for s in subsets:
            mask = res.subset == s
            row[s] = _cell(
                per[mask].mean(),
                subset_mean_interval(
                    per[mask],
                    res.subset[mask],
                    None if clusters is None else np.asarray(clusters)[mask],
                    level,
                    n_resamples,
                    seed,
                ),
                mask.sum(),
            )
        for g, members in groups.items():
            if g == "mean" and len(subsets) == 1:
                row[g] = row[subsets[0]]
                continue
            mask = np.isin(res.subset, members)
            value = float(np.mean([row[x]["score"] for x in members]))
            row[g] = _cell(
                value,
                subset_mean_interval(
                    per[mask],
                    res.subset[mask],
                    None if clusters is None else np.asarray(clusters)[mask],
                    level,
                    n_resamples,
                    seed,
                ),
                mask.sum(),
            )
        out[m] = row
    return out


def _mean_of_subset_means(values: np.ndarray, codes: np.ndarray) -> float:
    """Mean over subsets of each subset's mean; nan when a resample lost a subset entirely."""
    present = np.unique(codes)
    return float(np.mean([values[codes == c].mean() for c in present]))


def subset_mean_interval(
    per: np.ndarray, subset: np.ndarray, clusters=None, level: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap interval of the mean of subset means of ``per`` (one subset: of its mean).

    Args:
        per: (N,) per-triplet values; subset: (N,) subset names.
        clusters: (N,) cluster labels: resample whole clusters; None: triplets, within each subset.
    """
    names = list(dict.fromkeys(subset.tolist()))
    if clusters is None:
        if len(names) == 1:
            return stats.bootstrap_ci(per, level=level, n_resamples=n_resamples, seed=seed)
        return stats.stratified_bootstrap_ci(per, subset, level=level, n_resamples=n_resamples, seed=seed)
    codes = np.array([names.index(x) for x in subset.tolist()], dtype=np.float64)

    def statistic(x, c):
        return _mean_of_subset_means(x, c) if np.unique(c).size == len(names) else float("nan")

    if len(set(np.asarray(clusters).tolist())) < 2:  # one scene: nothing to resample
        v = float(per.mean())
        return v, v
    return stats.cluster_bootstrap_ci(
        per, statistic, clusters, level=level, n_resamples=n_resamples, seed=seed, paired_with=codes
    )


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
            out[m] = stats.paired_bootstrap_test(
                twoafc_scores(res.d0[m], res.d1[m], res.judge), base, n_resamples=n_resamples, seed=seed
            )
    return out
