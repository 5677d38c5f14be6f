"""What the course says about people, checked against hand computation, plain loops and the real labels.

* one judge's agreement with the panel and the oracle bound (hand computation; the real BAPPS
  val labels give 82.6 / 87.1 on Trad+CNN, the figures of the paper and of the issue that
  corrected the "ceiling");
* the cluster bootstrap (the same draws repeated by a plain loop; wider than the item bootstrap
  when clusters share an effect);
* agreement by margin (a plain loop over bins);
* the calibration study's folds (no reference scene on both sides) and its training on cached means
  (the same weights as the fast path's own cache).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED, needs_shared
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from lpips_core.data import twoafc_scores
from lpips_core.eval.stats import (
    cluster_bootstrap_ci,
    cluster_bootstrap_test,
    cluster_correlation_test,
    cluster_draws,
    format_p,
    paired_bootstrap_test,
)
from lpips_core.studies import published
from lpips_core.studies.calibration import scene_folds

PUBLISHED = SHARED / "data" / "bapps_val_published"
SUBSETS = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")


# --------------------------------------------------------------------------- the two label-only rows
def test_judge_agreement_and_oracle_bound_by_hand():
    # five judges: 0, 1, 2, 3 and 5 of them chose p1
    h = np.array([0.0, 0.2, 0.4, 0.6, 1.0])
    subset = np.array(["cnn"] * 5)
    # one more judge sides with the panel's fraction with probability h^2 + (1-h)^2
    assert published.judge_agreement(h, subset)["cnn"]["score"] == pytest.approx((1 + 0.68 + 0.52 + 0.52 + 1) / 5)
    # always picking the majority scores max(h, 1-h)
    assert published.oracle_bound(h, subset)["cnn"]["score"] == pytest.approx((1 + 0.8 + 0.6 + 0.6 + 1) / 5)
    # averages over subsets weigh each subset the same, as the paper's table does
    two = published.oracle_bound(np.array([0.2, 0.4, 1.0]), np.array(["traditional", "cnn", "cnn"]))
    assert two["trad_cnn"]["score"] == pytest.approx((0.8 + (0.6 + 1.0) / 2) / 2)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 2), st.floats(0, 2), st.sampled_from([0, 0.2, 0.4, 0.5, 0.6, 0.8, 1])),
        min_size=1,
        max_size=40,
    )
)
def test_no_metric_scores_above_the_oracle_bound_and_the_majority_reaches_it(rows):
    d0, d1, h = (np.array(c, dtype=np.float64) for c in zip(*rows))
    agree = twoafc_scores(d0, d1, h)
    assert np.all(agree <= np.maximum(h, 1 - h) + 1e-12)
    majority = twoafc_scores(np.where(h > 0.5, 1.0, 0.0), np.where(h > 0.5, 0.0, 1.0), h)  # p1 closer iff h > .5
    assert majority.mean() == pytest.approx(np.maximum(h, 1 - h).mean())


@needs_shared
def test_oracle_bound_on_the_real_bapps_labels():
    """87.1 (Trad+CNN) and 76.6 (real algorithms), and per subset as the issue computed them."""
    if not PUBLISHED.is_dir():
        pytest.skip("../shared/data/bapps_val_published is absent")
    from lpips_core.data.published import read_published_dir

    t = next(iter(read_published_dir(PUBLISHED).values()))
    bound = published.oracle_bound(t.h, t.subset, n_resamples=10)
    judge = published.judge_agreement(t.h, t.subset, n_resamples=10)
    assert [round(100 * bound[s]["score"], 2) for s in SUBSETS] == [85.78, 88.47, 80.12, 74.00, 76.41, 75.97]
    assert round(100 * bound["trad_cnn"]["score"], 1) == 87.1 and round(100 * bound["real_algs"]["score"], 1) == 76.6
    assert round(100 * judge["trad_cnn"]["score"], 1) == 82.6  # the paper's "human" row
    for g in ("trad_cnn", "real_algs"):
        assert bound[g]["score"] > judge[g]["score"]


# --------------------------------------------------------------------------- cluster bootstrap
def _clustered(seed: int = 0, k: int = 8, per: int = 12):
    """Scores with a shared effect per cluster: items of one cluster move together."""
    rng = np.random.default_rng(seed)
    clusters = np.repeat([f"scene{i}" for i in range(k)], per)
    effect = np.repeat(rng.normal(0, 0.3, k), per)
    a = effect + rng.normal(0.1, 0.05, k * per)
    b = rng.normal(0.0, 0.05, k * per)
    return a, b, clusters


def test_cluster_bootstrap_test_equals_a_plain_loop():
    a, b, clusters = _clustered()
    got = cluster_bootstrap_test(a, b, clusters, n_resamples=400, seed=3)
    names = list(dict.fromkeys(clusters.tolist()))
    boot = []
    for row in cluster_draws(len(names), 400, seed=3):  # the same draws, one resample at a time
        idx = np.concatenate([np.flatnonzero(clusters == names[k]) for k in row])
        boot.append(np.mean(a[idx] - b[idx]))
    boot = np.array(boot)
    observed = np.mean(a - b)
    assert got["difference"] == pytest.approx(observed, abs=1e-12)
    assert got["ci"] == pytest.approx((np.quantile(boot, 0.025), np.quantile(boot, 0.975)), abs=1e-12)
    extreme = np.sum(np.abs(boot - observed) >= abs(observed) - 1e-15)
    assert got["p_value"] == pytest.approx((1 + extreme) / 401)
    assert got["clusters"] == 8 and got["n"] == a.size


def test_cluster_correlation_test_equals_a_plain_loop():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(7), 9)
    mos = rng.normal(size=63) + np.repeat(rng.normal(size=7), 9)
    pa, pb = mos + rng.normal(0, 0.3, 63), mos + rng.normal(0, 0.9, 63)
    got = cluster_correlation_test(pa, pb, mos, clusters, n_resamples=300, seed=2)
    boot = []
    for row in cluster_draws(7, 300, seed=2):
        idx = np.concatenate([np.flatnonzero(clusters == k) for k in row])
        boot.append(sps.spearmanr(pa[idx], mos[idx]).statistic - sps.spearmanr(pb[idx], mos[idx]).statistic)
    assert got["ci"] == pytest.approx((np.quantile(boot, 0.025), np.quantile(boot, 0.975)), abs=1e-12)
    assert got["difference"] == pytest.approx(sps.spearmanr(pa, mos).statistic - sps.spearmanr(pb, mos).statistic)


def test_cluster_interval_is_wider_than_the_item_interval_when_clusters_share_an_effect():
    a, b, clusters = _clustered(seed=4)
    by_item = paired_bootstrap_test(a, b, n_resamples=2000)
    by_cluster = cluster_bootstrap_test(a, b, clusters, n_resamples=2000)
    width = lambda t: t["ci"][1] - t["ci"][0]
    assert width(by_cluster) > 2 * width(by_item)  # 8 independent clusters, not 96 independent items
    lo, hi = cluster_bootstrap_ci(a - b, np.mean, clusters, n_resamples=2000)
    assert lo < np.mean(a - b) < hi


def test_format_p_says_less_than_one_over_b_at_the_floor():
    assert format_p(1 / 1001, 1000) == "p < 0.001"
    assert format_p(1 / 10001, 10000) == "p < 0.0001"
    assert format_p(0.2014, 1000) == "p = 0.20"
    assert format_p(0.004, 1000) == "p = 0.004"


def test_cluster_bootstrap_needs_two_clusters():
    with pytest.raises(ValueError, match="at least 2 clusters"):
        cluster_bootstrap_test([1, 0], [0, 1], ["a", "a"])


# --------------------------------------------------------------------------- agreement by margin
def test_agreement_by_margin_equals_a_plain_loop():
    rng = np.random.default_rng(0)
    d0, d1 = rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)
    h = rng.choice([0, 0.2, 0.4, 0.6, 0.8, 1], 500)
    edges = (0.0, 0.1, 0.3, 1.0)
    rows = published.agreement_by_margin(d0, d1, h, edges, n_resamples=50)
    for k, row in enumerate(rows):
        picked = []
        for i in range(500):
            margin = abs(d0[i] - d1[i]) / (d0[i] + d1[i])
            last = k == len(edges) - 2
            if edges[k] <= margin and (margin < edges[k + 1] or (last and margin <= edges[k + 1])):
                picked.append(i)
        assert row["n"] == len(picked)
        people = [(1 - h[i]) if d0[i] < d1[i] else h[i] if d1[i] < d0[i] else 0.5 for i in picked]
        assert row["agreement"] == pytest.approx(np.mean(people))
        assert row["oracle"] == pytest.approx(np.mean([max(h[i], 1 - h[i]) for i in picked]))
    assert sum(r["n"] for r in rows) == 500


# --------------------------------------------------------------------------- the calibration study
def test_scene_folds_keep_every_scene_on_one_side():
    rng = np.random.default_rng(0)
    scenes = rng.choice([f"s{i}" for i in range(29)], 1000)
    fold = scene_folds(scenes, 7)
    for s in set(scenes.tolist()):
        assert len(set(fold[scenes == s].tolist())) == 1, s
    sizes = np.bincount(fold)
    assert sizes.size == 7 and sizes.min() > 0.6 * sizes.max()
    with pytest.raises(ValueError, match="n_folds"):
        scene_folds(scenes, 30)


@needs_shared
def test_live_calibration_folds_hold_out_whole_scenes():
    table = SHARED / "data" / "live_three_types.csv"
    if not table.is_file():
        pytest.skip("../shared/data/live_three_types.csv is absent")
    from lpips_core.data.live_2afc import derive_triplets, read_rated_table
    from lpips_core.studies.calibration import scene_of

    triplets = derive_triplets(read_rated_table(table))
    scenes = np.array([scene_of(t.p0) for t in triplets])
    assert all(scene_of(t.p0) == scene_of(t.p1) for t in triplets)  # a triplet is one scene's
    fold = scene_folds(scenes, 7)
    for f in range(7):
        train, test = set(scenes[fold != f].tolist()), set(scenes[fold == f].tolist())
        assert not train & test
    # the 7 scenes with blur and noise (the only ones with cross-type triplets) fall in 7 different folds
    cross = [t for t, s in zip(triplets, fold) if t.subset == "cross"]
    assert len({f for t, f in zip(triplets, fold) if t.subset == "cross"}) == 7
    assert len(cross) == 520


def test_training_on_cached_triplets_equals_the_fast_path(tmp_path):
    """CachedTriplets gives the Trainer the same means the fast path would cache: the same weights."""
    from lpips_core.train import TrainConfig, Trainer
    from lpips_core.train.fastpath import CachedTriplets, load_or_build

    class Tiny(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x = torch.rand(24, 3, 3, 32, 32, generator=g) * 2 - 1
            self.h = torch.rand(24, 1, generator=g)

        def __len__(self):
            return 24

        def __getitem__(self, i):
            return {"ref": self.x[i, 0], "p0": self.x[i, 1], "p1": self.x[i, 2], "judge": self.h[i]}

    config = dict(
        net="alex", mode="lin", fast=True, progress=False, epochs=3, lr=1e-2, batch_size=8, cache_dir=str(tmp_path)
    )
    direct = Trainer(TrainConfig(**config), Tiny())
    direct.fit()
    cache = load_or_build(direct.model, Tiny(), tmp_path, progress=False)
    via_cache = Trainer(TrainConfig(**config), CachedTriplets(cache, "alex"))
    via_cache.fit()
    for a, b in zip(direct.model.lins, via_cache.model.lins):
        assert torch.equal(a.conv.weight, b.conv.weight)
    with pytest.raises(ValueError, match="net='vgg'"):
        Trainer(TrainConfig(**{**config, "net": "vgg"}), CachedTriplets(cache, "alex")).fit()


def test_stored_results_keep_the_promises_the_book_reads():
    """The stored results the chapters load: no scene on both sides of a calibration fold, no score
    above the oracle bound, intervals that resample scenes (no ../shared needed)."""
    import json

    from conftest import REPO

    from lpips_core.studies.calibration import CalibrationResult

    calib = json.loads((REPO / "results" / "live_calibration" / "results.json").read_text())
    result = CalibrationResult.from_json(calib["result"])
    for f in range(int(result.fold.max()) + 1):
        assert not set(result.scene[result.fold == f]) & set(result.scene[result.fold != f]), f
    assert np.all(np.isfinite(np.concatenate([result.d0[m] for m in result.models])))
    pub = json.loads((REPO / "results" / "bapps_val_published" / "results.json").read_text())
    for model, row in pub["2afc"].items():
        for s in SUBSETS:
            assert row[s]["score"] <= pub["oracle_bound"][s]["score"], (model, s)
    der = json.loads((REPO / "results" / "live_2afc" / "results.json").read_text())
    for label in ("h", "h_majority"):
        bound = der["reference_rows"][label]["oracle bound"]
        for model, row in der["2afc"][label].items():
            assert all(row[s]["score"] <= bound[s]["score"] + 1e-12 for s in der["subsets"]), (label, model)
    for name in ("live_jpeg", "live_three_types"):
        assert json.loads((REPO / "results" / name / "results.json").read_text())["resampled"] == "scenes"
