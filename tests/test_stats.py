"""Statistics: bootstrap intervals, the paired test, correlations and the logistic fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from lpips_core.eval import stats


def test_bootstrap_ci_of_a_mean_covers_it_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 2, 200).astype(float)
    large = rng.integers(0, 2, 20000).astype(float)
    lo_s, hi_s = stats.bootstrap_ci(small)
    lo_l, hi_l = stats.bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    # width ~ 2 * 1.96 * sqrt(p(1-p)/n): the normal approximation, an independent formula
    for x, (lo, hi) in ((small, (lo_s, hi_s)), (large, (lo_l, hi_l))):
        expected = 2 * 1.96 * np.sqrt(x.mean() * (1 - x.mean()) / x.size)
        assert hi - lo == pytest.approx(expected, rel=0.15)


def test_bootstrap_ci_is_reproducible_and_handles_constants():
    x = np.random.default_rng(1).random(300)
    assert stats.bootstrap_ci(x, seed=3) == stats.bootstrap_ci(x, seed=3)
    assert stats.bootstrap_ci(np.full(50, 0.5)) == (0.5, 0.5)


def test_stratified_ci_with_one_group_matches_the_plain_bootstrap():
    x = np.random.default_rng(2).integers(0, 2, 2000).astype(float)
    lo, hi = stats.stratified_bootstrap_ci(x, np.zeros(x.size), n_resamples=4000, seed=5)
    lo2, hi2 = stats.bootstrap_ci(x, n_resamples=4000, seed=6)
    assert lo == pytest.approx(lo2, abs=0.006) and hi == pytest.approx(hi2, abs=0.006)


def test_stratified_ci_averages_groups_not_items():
    # group a: 1000 items all 1.0; group b: 10 items all 0.0 -> mean of group means is 0.5, exactly
    values = np.r_[np.ones(1000), np.zeros(10)]
    groups = np.r_[["a"] * 1000, ["b"] * 10]
    assert stats.stratified_bootstrap_ci(values, groups) == (0.5, 0.5)


def test_paired_bootstrap_test_matches_a_permutation_test():
    rng = np.random.default_rng(4)
    n = 400
    a = rng.integers(0, 2, n).astype(float)
    flip = rng.random(n) < 0.15
    b_same = np.where(rng.random(n) < 0.5, a, a)  # identical
    b_worse = np.where(flip, 0.0, a)  # b loses 15% of a's agreements
    res_same = stats.paired_bootstrap_test(a, b_same, n_resamples=2000)
    assert res_same["difference"] == 0 and res_same["p_value"] == 1.0
    res = stats.paired_bootstrap_test(a, b_worse, n_resamples=4000)
    assert res["difference"] == pytest.approx((a - b_worse).mean())
    assert res["ci"][0] > 0 and res["p_value"] < 0.001
    # the exact-ish paired permutation (sign-flip) test of scipy agrees it is significant
    perm = sps.permutation_test(
        (a, b_worse), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=2000, random_state=0
    )
    assert perm.pvalue < 0.01
    # a small, noisy difference: each test's Monte-Carlo p-value is within 4 standard errors
    # of its exact value, computed here from the distribution it samples
    c = np.where(rng.random(n) < 0.03, 1 - a, a)
    B = 4000
    res_c = stats.paired_bootstrap_test(a, c, n_resamples=B)
    perm_c = sps.permutation_test(
        (a, c), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=B, random_state=0
    )
    exact_boot, exact_perm = _exact_p_values(a - c)
    assert 0.2 < exact_boot < 0.9 and 0.2 < exact_perm < 0.9  # far from 0 and 1: a real test
    # an estimate from B resamples has standard error sqrt(p (1 - p) / B); the +1 correction
    # (1 + hits) / (1 + B) moves it by at most 1 / (B + 1). scipy's two-sided value is twice a
    # one-sided estimate (P(S >= |s|), the null being symmetric), so twice its error.
    se_boot = np.sqrt(exact_boot * (1 - exact_boot) / B)
    one_sided = exact_perm / 2
    se_perm = 2 * np.sqrt(one_sided * (1 - one_sided) / B)
    assert abs(res_c["p_value"] - exact_boot) <= 4 * se_boot + 1 / (B + 1), (res_c["p_value"], exact_boot)
    assert abs(perm_c.pvalue - exact_perm) <= 4 * se_perm + 2 / (B + 1), (perm_c.pvalue, exact_perm)
    # (the two estimates are not compared with each other: the tests resample differently, a
    # centred bootstrap vs sign flips, and with 18 discordant items of 400 their exact
    # p-values differ by the discreteness, ~0.09 here, more than either's sampling error)


def _exact_p_values(diff: np.ndarray) -> tuple[float, float]:
    """Exact (infinitely many resamples) p-values of the mean of paired differences in {-1, 0, 1}.

    * The paired bootstrap (``stats.paired_bootstrap_test``) draws n items with replacement:
      the counts (N+, N-) of +1 and -1 are multinomial with the sample's proportions, and
      p = P(|S - s| >= |s|) for S = N+ - N-, s = k+ - k- observed.
    * The sign-flip permutation test (scipy ``permutation_type='samples'``) flips each of the
      k = k+ + k- non-zero differences with probability 1/2: S = 2 Bin(k, 1/2) - k and the
      two-sided p = 2 min(P(S <= s), P(S >= s)) (scipy's definition).
    """
    n = diff.size
    kp, km = int(np.sum(diff > 0)), int(np.sum(diff < 0))
    s = kp - km
    j = np.arange(n + 1)[:, None]  # N+
    m = np.arange(n + 1)[None, :]  # N-
    q = km / (n - kp)  # P(-1 | not +1)
    joint = sps.binom.pmf(j, n, kp / n) * np.where(m <= n - j, sps.binom.pmf(m, np.maximum(n - j, 0), q), 0.0)
    assert joint.sum() == pytest.approx(1.0, abs=1e-9)
    boot = float(joint[np.abs(j - m - s) >= abs(s)].sum())
    k = kp + km
    flips = 2 * np.arange(k + 1) - k  # S for each number of +1 signs
    pmf = sps.binom.pmf(np.arange(k + 1), k, 0.5)
    perm = float(min(1.0, 2 * min(pmf[flips <= s].sum(), pmf[flips >= s].sum())))
    return boot, perm


def test_paired_test_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same items"):
        stats.paired_bootstrap_test(np.ones(3), np.ones(4))


def test_correlations_hand_computed_and_scipy():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    out = stats.correlations(x, 2 * x + 1)
    for k in ("pearson", "spearman", "kendall"):
        assert out[k]["r"] == pytest.approx(1.0)
    out = stats.correlations(x, -(x**3))
    assert out["spearman"]["r"] == pytest.approx(-1.0) and out["kendall"]["r"] == pytest.approx(-1.0)
    assert out["pearson"]["r"] > -1.0
    # one swapped pair out of 10: Kendall tau = (9 - 1) / 10 = 0.8
    y = np.array([1.0, 2.0, 3.0, 5.0, 4.0])
    assert stats.correlations(x, y)["kendall"]["r"] == pytest.approx(0.8)
    rng = np.random.default_rng(0)
    a, b = rng.random(50), rng.random(50)
    assert stats.correlations(a, b)["spearman"]["p"] == pytest.approx(sps.spearmanr(a, b).pvalue)
    assert np.isnan(stats.correlations(np.ones(5), x)["pearson"]["r"])
    # non-finite pairs (-PSNR of identical images) are left out, not turned into nan
    with_inf = stats.correlations(np.r_[x, -np.inf], np.r_[2 * x + 1, 0.0])
    assert with_inf["n"] == 5 and with_inf["pearson"]["r"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3"):
        stats.correlations([1, 2], [1, 2])


def test_logistic_fit_recovers_its_parameters_and_raises_plcc():
    x = np.linspace(0, 1, 60)
    true = (90.0, 10.0, 0.4, 0.08)
    y = stats.logistic4(x, *true)
    params = stats.fit_logistic4(x, y)
    assert np.allclose(stats.logistic4(x, *params), y, atol=1e-3)
    assert params[2] == pytest.approx(0.4, abs=1e-3)
    # a saturating (non-linear) relation: linear Pearson < 1, PLCC after the fit = 1
    assert sps.pearsonr(x, y).statistic < 0.97
    assert stats.plcc(x, y) == pytest.approx(1.0, abs=1e-6)
    # decreasing relations fit too (PSNR vs DMOS)
    assert stats.plcc(-x, y) == pytest.approx(1.0, abs=1e-6)


def test_mos_correlations_report_values_with_intervals():
    rng = np.random.default_rng(0)
    x = rng.random(60)
    y = stats.logistic4(x, 80, 5, 0.5, 0.15) + rng.normal(0, 4, x.size)
    out = stats.mos_correlations(x, y, n_resamples=200)
    assert out["srocc"]["value"] == pytest.approx(sps.spearmanr(x, y).statistic)
    assert out["krocc"]["value"] == pytest.approx(sps.kendalltau(x, y).statistic)
    for k in ("srocc", "krocc", "plcc"):
        lo, hi = out[k]["ci"]
        assert lo <= out[k]["value"] <= hi and hi - lo < 0.3
    with pytest.raises(ValueError, match="at least 4"):
        stats.mos_correlations([1, 2, 3], [1, 2, 3])


def test_mos_correlations_computes_only_the_statistics_asked_for():
    """SROCC alone (no logistic fit in every resample) is the same number, interval and
    p-value as in the full report; an unknown statistic is refused by name."""
    rng = np.random.default_rng(1)
    x = rng.random(40)
    y = stats.logistic4(x, 80, 5, 0.5, 0.15) + rng.normal(0, 4, x.size)
    scenes = np.repeat(np.arange(10), 4)
    for clusters in (None, scenes):
        full = stats.mos_correlations(x, y, n_resamples=100, clusters=clusters)
        only = stats.mos_correlations(x, y, n_resamples=100, clusters=clusters, statistics=("srocc",))
        assert only["srocc"] == full["srocc"]
        assert "plcc" not in only and "krocc" not in only and "logistic" not in only
    with pytest.raises(ValueError, match="statistics.*'pearson'.*srocc, krocc, plcc"):
        stats.mos_correlations(x, y, statistics=("srocc", "pearson"))
