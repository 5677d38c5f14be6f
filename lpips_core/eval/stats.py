"""Statistics for comparing metrics: bootstrap intervals, paired tests, correlations.

* :func:`bootstrap_ci`: percentile bootstrap interval of any statistic of one
  sample, or of paired samples (``scipy.stats.bootstrap``).
* :func:`stratified_bootstrap_ci`: interval of the mean of per-group means (the
  paper's "average over subsets"), resampling inside each group.
* :func:`paired_bootstrap_test`: are two metrics' 2AFC scores on the same
  triplets different? Difference, interval and two-sided p-value.
* :func:`cluster_bootstrap_test`, :func:`cluster_correlation_test`,
  :func:`cluster_bootstrap_ci`: the same questions when items come in clusters
  that are not independent (the distorted versions of one reference scene):
  whole clusters are resampled, never single items.
* :func:`format_p`: a bootstrap p-value as text, ``p < 1/B`` at the resampling floor.
* :func:`correlations`: Pearson, Spearman and Kendall with p-values (``scipy.stats``).
* :func:`fit_logistic4` / :func:`plcc`: the 4-parameter logistic mapping used
  before the Pearson correlation in image-quality studies (VQEG), and
  :func:`mos_correlations`, SROCC / KROCC / PLCC each with a bootstrap interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Callable

import numpy as np
import torch
from scipy import optimize, stats

from .registry import MOS_STATISTICS, check_statistics

__all__ = [
    "DEFAULT_RESAMPLES",
    "bootstrap_ci",
    "stratified_bootstrap_ci",
    "paired_bootstrap_test",
    "format_p",
    "cluster_draws",
    "cluster_bootstrap_test",
    "cluster_bootstrap_ci",
    "cluster_correlation_test",
    "correlations",
    "logistic4",
    "fit_logistic4",
    "plcc",
    "MOS_STATISTICS",
    "mos_correlations",
    "paired_correlation_test",
]

DEFAULT_RESAMPLES = 1000


def _vec(x, name: str = "values") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


# --------------------------------------------------------------------------- bootstrap
def bootstrap_ci(
    data,
    statistic: Callable = np.mean,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    paired_with=None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval.

    Args:
        data: (N,) sample (e.g. per-triplet 2AFC agreements).
        statistic: ``statistic(sample) -> float``, or ``statistic(x, y)`` when
            ``paired_with`` is given; resampling keeps the pairs together.
        level: confidence level, e.g. 0.95.
        n_resamples: number of bootstrap resamples.
        seed: random seed (intervals are reproducible).
        paired_with: optional (N,) second sample paired with ``data``.
    Returns:
        (low, high). A constant sample gives (value, value).
    """
    x = _vec(data, "data")
    samples = (x,) if paired_with is None else (x, _vec(paired_with, "paired_with"))
    if paired_with is not None and samples[1].shape != x.shape:
        raise ValueError(f"paired samples differ in length: {x.size} and {samples[1].size}")
    if x.size < 2 or (paired_with is None and np.all(x == x[0])):
        v = float(statistic(*samples))
        return v, v
    vectorized = paired_with is None and statistic in (np.mean, np.median)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples (e.g. constant) give nan; reported as such
        res = stats.bootstrap(
            samples,
            statistic,
            n_resamples=n_resamples,
            confidence_level=level,
            method="percentile",
            paired=paired_with is not None,
            vectorized=vectorized,
            random_state=np.random.default_rng(seed),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def stratified_bootstrap_ci(
    values, groups, level: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Interval of the mean of per-group means, resampling with replacement inside each group.

    This is the interval of a score averaged over subsets (e.g. 2AFC on
    "traditional" and "cnn" averaged, as in the paper's tables).

    Args:
        values: (N,) per-item values.
        groups: (N,) group label of each item.
    Returns:
        (low, high) percentile interval.
    """
    v = _vec(values)
    g = np.asarray(groups).reshape(-1)
    if g.shape != v.shape:
        raise ValueError(f"values ({v.size}) and groups ({g.size}) differ in length")
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_resamples)
    labels = list(dict.fromkeys(g.tolist()))
    for label in labels:
        member = v[g == label]
        idx = rng.integers(0, member.size, size=(n_resamples, member.size))
        boot += member[idx].mean(axis=1)
    boot /= len(labels)
    alpha = (1 - level) / 2
    return float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def paired_bootstrap_test(scores_a, scores_b, level: float = 0.95, n_resamples: int = 10000, seed: int = 0) -> dict:
    """Paired bootstrap test of ``mean(a) - mean(b)`` on the same items.

    Items (triplets) are resampled together, so the correlation between the
    two metrics' per-item agreements is kept. The p-value is two-sided for the
    null "no difference", from the bootstrap distribution shifted to zero
    (``P(|d* - d| >= |d|)``, with the +1 correction so it is never 0).

    Args:
        scores_a, scores_b: (N,) per-item scores of two metrics on the same items.
    Returns:
        {'difference', 'ci': (low, high), 'p_value', 'n'}.
    """
    a, b = _vec(scores_a, "scores_a"), _vec(scores_b, "scores_b")
    if a.shape != b.shape:
        raise ValueError(f"scores_a ({a.size}) and scores_b ({b.size}) must score the same items")
    diff = a - b
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // max(diff.size, 1))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, diff.size, size=(stop - start, diff.size))
        boot[start:stop] = diff[idx].mean(axis=1)
    return {**_test_result(observed, boot, level), "n": int(diff.size)}


def _test_result(observed: float, boot: np.ndarray, level: float) -> dict:
    """Difference, percentile interval and two-sided p-value of a bootstrap distribution.

    The p-value is ``(1 + #{|d* - d| >= |d|}) / (1 + B)``: the distribution shifted to
    zero, with the +1 correction so that it is never 0; its floor is ``1 / (1 + B)``.
    """
    boot = boot[np.isfinite(boot)]
    alpha = (1 - level) / 2
    extreme = int(np.sum(np.abs(boot - observed) >= abs(observed) - 1e-15))
    return {
        "difference": float(observed),
        "ci": (float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))),
        "p_value": float(min(1.0, (1 + extreme) / (1 + boot.size))),
        "n_resamples": int(boot.size),
    }


def format_p(p_value: float, n_resamples: int) -> str:
    """A bootstrap p-value as text: ``'p = 0.20'``, or ``'p < 0.001'`` at the floor of B = 1000 resamples.

    No resampled difference as extreme as the observed one gives ``p = 1 / (1 + B)``; all that is
    known then is that p is below about 1/B, so that is what is printed.
    """
    if p_value <= 1.0 / (1 + n_resamples) + 1e-12:
        return f"p < {1.0 / n_resamples:.2g}"
    return f"p = {p_value:.2g}" if p_value < 0.01 else f"p = {p_value:.2f}"


# --------------------------------------------------------------------------- cluster bootstrap
def _cluster_index(clusters, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Cluster labels -> (labels in first-seen order, the item indices of each cluster)."""
    g = np.asarray(clusters).reshape(-1)
    if g.size != n:
        raise ValueError(f"clusters ({g.size}) and values ({n}) differ in length")
    labels = np.array(list(dict.fromkeys(g.tolist())), dtype=object)
    members = [np.flatnonzero(g == lab) for lab in labels]
    if len(labels) < 2:
        raise ValueError(f"a cluster bootstrap needs at least 2 clusters, got {len(labels)}")
    return labels, members


def cluster_draws(n_clusters: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_clusters) cluster indices drawn with replacement; the draws every cluster
    function here uses, so a test can repeat them with a plain loop."""
    return np.random.default_rng(seed).integers(0, n_clusters, size=(n_resamples, n_clusters))


def cluster_bootstrap_test(
    scores_a, scores_b, clusters, level: float = 0.95, n_resamples: int = 10000, seed: int = 0
) -> dict:
    """Paired test of ``mean(a) - mean(b)`` resampling whole clusters (e.g. reference scenes).

    Items of one cluster (all the triplets built from one photograph) are not independent,
    so resampling items makes intervals too narrow. Here each resample draws as many clusters
    as there are, with replacement, and takes the mean difference over all their items
    (the pooled mean, as the observed one is).

    Args:
        scores_a, scores_b: (N,) per-item scores of two metrics on the same items.
        clusters: (N,) cluster label of each item.
    Returns:
        {'difference', 'ci': (low, high), 'p_value', 'n_resamples', 'n', 'clusters'}.
    """
    a, b = _vec(scores_a, "scores_a"), _vec(scores_b, "scores_b")
    if a.shape != b.shape:
        raise ValueError(f"scores_a ({a.size}) and scores_b ({b.size}) must score the same items")
    diff = a - b
    labels, members = _cluster_index(clusters, diff.size)
    sums = np.array([diff[m].sum() for m in members])  # (K,)
    counts = np.array([m.size for m in members], dtype=np.float64)
    draws = cluster_draws(len(labels), n_resamples, seed)  # (B, K)
    boot = sums[draws].sum(1) / counts[draws].sum(1)
    return {**_test_result(float(diff.mean()), boot, level), "n": int(diff.size), "clusters": len(labels)}


def _resampled_items(members: list[np.ndarray], draws: np.ndarray):
    """For each row of cluster draws, the concatenated item indices of the drawn clusters."""
    for row in draws:
        yield np.concatenate([members[k] for k in row])


def cluster_bootstrap_ci(
    data,
    statistic: Callable,
    clusters,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    paired_with=None,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` resampling whole clusters (items of a cluster stay together).

    Args:
        data: (N,) values; statistic: ``statistic(x) -> float``, or ``statistic(x, y)`` with ``paired_with``.
        clusters: (N,) cluster label of each item.
    Returns:
        (low, high); resamples where the statistic is undefined (nan) are left out.
    """
    x = _vec(data, "data")
    y = None if paired_with is None else _vec(paired_with, "paired_with")
    _, members = _cluster_index(clusters, x.size)
    boot = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for idx in _resampled_items(members, cluster_draws(len(members), n_resamples, seed)):
            boot.append(statistic(x[idx]) if y is None else statistic(x[idx], y[idx]))
    boot = np.asarray(boot, dtype=np.float64)
    boot = boot[np.isfinite(boot)]
    alpha = (1 - level) / 2
    return float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def cluster_correlation_test(
    pred_a, pred_b, mos, clusters, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95
) -> dict:
    """Paired test of ``SROCC(a, mos) - SROCC(b, mos)`` resampling whole clusters (reference scenes).

    As :func:`paired_correlation_test`, but a resample draws clusters with replacement and
    keeps every image of a drawn cluster, so images of one scene never count as independent.

    Returns:
        {'difference', 'ci', 'p_value', 'n_resamples', 'n', 'clusters'}.
    """
    a, b, y = _vec(pred_a, "pred_a"), _vec(pred_b, "pred_b"), _vec(mos, "mos")
    if not a.shape == b.shape == y.shape:
        raise ValueError(f"pred_a ({a.size}), pred_b ({b.size}) and mos ({y.size}) must be the same images")
    labels, members = _cluster_index(clusters, a.size)
    observed = float(stats.spearmanr(a, y).statistic - stats.spearmanr(b, y).statistic)
    boot = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample of one constant cluster has no correlation (nan)
        for idx in _resampled_items(members, cluster_draws(len(labels), n_resamples, seed)):
            boot.append(stats.spearmanr(a[idx], y[idx]).statistic - stats.spearmanr(b[idx], y[idx]).statistic)
    return {
        **_test_result(observed, np.asarray(boot, dtype=np.float64), level),
        "n": int(a.size),
        "clusters": len(labels),
    }


# --------------------------------------------------------------------------- correlations
def correlations(x, y) -> dict:
    """Pearson, Spearman and Kendall (tau-b) correlations with two-sided p-values.

    Pairs where either value is not finite (e.g. -PSNR of identical images is -inf)
    are left out; ``n`` counts the pairs used.

    Args:
        x, y: (N,) paired samples, N >= 3.
    Returns:
        {'pearson': {'r', 'p'}, 'spearman': {...}, 'kendall': {...}, 'n'}; r is nan
        when either sample is constant.
    """
    x, y = _vec(x, "x"), _vec(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x ({x.size}) and y ({y.size}) differ in length")
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size < 3:
        raise ValueError(f"correlations need at least 3 pairs, got {x.size}")
    out: dict = {"n": int(x.size)}
    constant = np.all(x == x[0]) or np.all(y == y[0])
    for name, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        if constant:
            out[name] = {"r": float("nan"), "p": float("nan")}
            continue
        res = fn(x, y)
        out[name] = {"r": float(res.statistic), "p": float(res.pvalue)}
    return out


def logistic4(x, b1: float, b2: float, b3: float, b4: float):
    """VQEG 4-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``.

    Monotonic in x, rising from b2 to b1 (falling when b1 < b2).
    """
    z = np.clip(-(np.asarray(x, dtype=np.float64) - b3) / (abs(b4) + 1e-12), -500, 500)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def fit_logistic4(x, y, p0: Sequence[float] | None = None) -> np.ndarray:
    """Least-squares fit of :func:`logistic4` mapping metric values ``x`` to scores ``y``.

    Args:
        x: (N,) metric values; y: (N,) subjective scores (MOS or DMOS).
        p0: optional starting point (b1, b2, b3, b4).
    Returns:
        (4,) parameters. If the optimiser does not converge, the best linear fit's
        end points are used as a logistic that is nearly linear over the data.
    """
    x, y = _vec(x, "x"), _vec(y, "y")
    if p0 is None:
        rising = stats.spearmanr(x, y).statistic >= 0 if x.size > 2 and np.std(x) > 0 else True
        hi, lo = float(np.max(y)), float(np.min(y))
        p0 = (
            [hi, lo, float(np.median(x)), float(np.std(x)) or 1.0]
            if rising
            else [lo, hi, float(np.median(x)), float(np.std(x)) or 1.0]
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(logistic4, x, y, p0=list(p0), maxfev=20000)
        if np.all(np.isfinite(params)):
            return params
    except (RuntimeError, optimize.OptimizeWarning, ValueError):
        pass
    return np.asarray(p0, dtype=np.float64)


def plcc(x, y, params: np.ndarray | None = None) -> float:
    """Pearson correlation between ``y`` and the logistic-mapped ``x`` (fit when ``params`` is None)."""
    x, y = _vec(x, "x"), _vec(y, "y")
    params = fit_logistic4(x, y) if params is None else params
    fitted = logistic4(x, *params)
    if np.std(fitted) == 0 or np.std(y) == 0:
        return float("nan")
    return float(stats.pearsonr(fitted, y).statistic)


def mos_correlations(
    pred,
    mos,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    clusters=None,
    statistics: Sequence[str] = MOS_STATISTICS,
) -> dict:
    """SROCC, KROCC and PLCC (after the 4-parameter logistic fit) between a metric and MOS/DMOS.

    Each comes with a paired percentile-bootstrap interval; the logistic is
    refitted in every resample (warm-started at the full-data fit), so the PLCC
    interval includes the fit's own uncertainty.

    Args:
        pred: (N,) metric values (distances: larger = more different).
        mos: (N,) subjective scores.
        clusters: (N,) cluster of each image (its reference scene): the intervals then
            resample whole scenes (:func:`cluster_bootstrap_ci`); None: single images.
        statistics: which of :data:`MOS_STATISTICS` to compute. Each is resampled with the
            same seed, so one asked for alone is the number of the full report; PLCC's refit
            in every resample costs most of the time.
    Returns:
        {'srocc': {'value', 'ci', 'p'}, 'krocc': {...}, 'plcc': {'value', 'ci', 'p'},
        'logistic': [b1, b2, b3, b4] (with 'plcc'), 'n', 'resampled': 'images' or 'clusters'}.
    """
    statistics = check_statistics(statistics)
    x, y = _vec(pred, "pred"), _vec(mos, "mos")
    if x.shape != y.shape:
        raise ValueError(f"pred ({x.size}) and mos ({y.size}) differ in length")
    if x.size < 4:
        raise ValueError(f"MOS correlations need at least 4 images, got {x.size}")
    if clusters is not None and len(set(np.asarray(clusters).reshape(-1).tolist())) < 2:
        clusters = None  # one scene: its images are all there is to resample
    out: dict = {"n": int(x.size)}
    if "plcc" in statistics:
        params = fit_logistic4(x, y)
        out["logistic"] = [float(p) for p in params]
    out["resampled"] = "images" if clusters is None else "clusters"

    def srocc(a, b):
        return stats.spearmanr(a, b).statistic

    def krocc(a, b):
        return stats.kendalltau(a, b).statistic

    def plcc_refit(a, b):
        return plcc(a, b, fit_logistic4(a, b, p0=params))

    def plcc_test(a, b):  # Pearson after the full-data logistic fit, with its p-value
        return stats.pearsonr(logistic4(a, *params), b)

    # name -> (the test on all images, the statistic of one resample)
    computed = {"srocc": (stats.spearmanr, srocc), "krocc": (stats.kendalltau, krocc), "plcc": (plcc_test, plcc_refit)}
    for name in MOS_STATISTICS:
        if name not in statistics:
            continue
        test, fn = computed[name]
        result = test(x, y)
        value, p = result.statistic, result.pvalue
        if clusters is None:
            ci = bootstrap_ci(x, fn, level=level, n_resamples=n_resamples, seed=seed, paired_with=y)
        else:
            ci = cluster_bootstrap_ci(x, fn, clusters, level=level, n_resamples=n_resamples, seed=seed, paired_with=y)
        out[name] = {"value": float(value), "p": float(p), "ci": ci}
    return out


def paired_correlation_test(
    pred_a, pred_b, mos, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95
) -> dict:
    """Paired bootstrap test of ``SROCC(a, mos) - SROCC(b, mos)`` on the same images.

    Images are resampled together (the two metrics' predictions stay paired with
    the score); the p-value is two-sided for "no difference", from the bootstrap
    distribution shifted to zero, as in :func:`paired_bootstrap_test`. Compare
    absolute correlations by giving both metrics the same sign (distances).

    Args:
        pred_a, pred_b: (N,) two metrics' values on the same images.
        mos: (N,) subjective scores.
    Returns:
        {'difference', 'ci': (low, high), 'p_value', 'n'}.
    """
    a, b, y = _vec(pred_a, "pred_a"), _vec(pred_b, "pred_b"), _vec(mos, "mos")
    if not a.shape == b.shape == y.shape:
        raise ValueError(f"pred_a ({a.size}), pred_b ({b.size}) and mos ({y.size}) must be the same images")
    ra, rb, ry = (stats.rankdata(v) for v in (a, b, y))
    observed = float(stats.spearmanr(a, y).statistic - stats.spearmanr(b, y).statistic)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_resamples, a.size))

    def rowwise_spearman(r):  # Pearson of the ranks of each resample (ties get average ranks)
        x, z = stats.rankdata(r[idx], axis=1), stats.rankdata(ry[idx], axis=1)
        x, z = x - x.mean(1, keepdims=True), z - z.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (x * z).sum(1) / np.sqrt((x * x).sum(1) * (z * z).sum(1))

    boot = rowwise_spearman(ra) - rowwise_spearman(rb)
    return {**_test_result(observed, boot, level), "n": int(a.size)}
