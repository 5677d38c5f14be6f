"""2AFC and JND scores against the reference's lpips/trainer.py, hand-computed cases, and
the one distance-function interface (LPIPS, net baseline, checkpoint, traditional, DISTS)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ours, photo_pairs, reference, require_backbone

from lpips_core.eval import distances as metrics
from lpips_core.model import load_lpips_checkpoint
from lpips_core.eval import make_distance, score_2afc, score_jnd, twoafc_scores


class _FakeLoader:
    """The reference's data-loader interface (``.load_data()`` yields batches) over arrays."""

    def __init__(self, batches):
        self.batches = batches

    def load_data(self):
        return iter(self.batches)


def _reference_2afc(d0, d1, h, batch=7):
    from lpips.trainer import score_2afc_dataset

    # the reference calls func(ref, p0) and func(ref, p1); carry the distances in p0/p1
    batches = [{"ref": torch.zeros(len(d0[i:i + batch])), "p0": torch.tensor(d0[i:i + batch]),
                "p1": torch.tensor(d1[i:i + batch]), "judge": torch.tensor(h[i:i + batch])[:, None]}
               for i in range(0, len(d0), batch)]
    return score_2afc_dataset(_FakeLoader(batches), lambda ref, p: p)[0]


def _reference_jnd(ds, same, batch=7):
    from lpips.trainer import score_jnd_dataset

    batches = [{"p0": torch.zeros(len(ds[i:i + batch])), "p1": torch.tensor(ds[i:i + batch]),
                "same": torch.tensor(same[i:i + batch])[:, None]} for i in range(0, len(ds), batch)]
    return score_jnd_dataset(_FakeLoader(batches), lambda p0, p1: p1)[0]


def test_2afc_matches_the_reference_trainer():
    rng = np.random.default_rng(0)
    n = 103
    d0, d1 = rng.random(n), rng.random(n)
    d1[:10] = d0[:10]  # ties
    h = rng.choice([0.0, 1 / 3, 0.5, 2 / 3, 1.0], n)
    assert score_2afc(d0, d1, h) == pytest.approx(_reference_2afc(d0, d1, h), abs=1e-12)


def test_2afc_hand_computed_cases():
    d0 = np.array([0.1, 0.2, 0.3, 0.4])
    d1 = np.array([0.2, 0.1, 0.3, 0.5])
    # all judges agree with the metric: p0 closer -> h=0; p1 closer -> h=1
    assert score_2afc(d0[[0, 1, 3]], d1[[0, 1, 3]], [0.0, 1.0, 0.0]) == 1.0
    # all disagree
    assert score_2afc(d0[[0, 1, 3]], d1[[0, 1, 3]], [1.0, 0.0, 1.0]) == 0.0
    # a tie scores 0.5 whatever the judges said
    assert twoafc_scores([0.3], [0.3], [1.0])[0] == 0.5 and twoafc_scores([0.3], [0.3], [0.0])[0] == 0.5
    # split judges: h = 0.25 and the metric picks p0 -> 0.75
    assert score_2afc([0.1], [0.2], [0.25]) == pytest.approx(0.75)
    # torch tensors of shape (N, 1), as a DataLoader batches them
    assert score_2afc(torch.tensor([[0.1], [0.2]]), torch.tensor([[0.2], [0.1]]),
                      torch.tensor([[0.0], [1.0]])) == 1.0
    with pytest.raises(ValueError, match="same length"):
        score_2afc([0.1], [0.2, 0.3], [0.0])


def test_jnd_matches_the_reference_trainer():
    rng = np.random.default_rng(1)
    n = 57
    ds = rng.random(n)  # distinct distances: the ranking is unambiguous
    same = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n)
    assert score_jnd(ds, same) == pytest.approx(_reference_jnd(ds, same), abs=1e-12)


def test_jnd_hand_computed_cases():
    # perfect ranking: every "same" pair is closer than every "different" pair -> AP = 1
    assert score_jnd([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx(1.0)
    # worst ranking with 2 positives of 4: precisions at the positives are 1/3 and 2/4
    # VOC envelope: recall 0.5 at precision 1/3 -> max over later = 0.5, so AP = 0.5*0.5 + 0.5*0.5
    assert score_jnd([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(0.5)
    # one positive ranked second: AP = precision there = 1/2
    assert score_jnd([0.1, 0.2, 0.3], [0, 1, 0]) == pytest.approx(0.5)


def _net_ok(net):
    require_backbone(net)


@pytest.mark.parametrize("net", ["alex", "squeeze"])
@pytest.mark.parametrize("lpips", [True, False])
def test_lpips_distance_function_equals_the_reference(net, lpips):
    _net_ok(net)
    x0, x1 = photo_pairs(size=(64, 64))
    fn = metrics.LPIPSDistance(ours(net, "0.1", lpips))
    with torch.inference_mode():
        d = fn(x0, x1)
        ref = reference(net, "0.1", lpips)(x0, x1).flatten()
    assert d.shape == (6,)
    assert torch.allclose(d, ref, atol=1e-5)
    assert fn.kind == ("lpips" if lpips else "net") and fn.name == f"{'lpips' if lpips else 'net'}-{net}"


def test_features_once_then_split_equals_pairwise_calls():
    _net_ok("alex")
    ref, p0 = photo_pairs(size=(64, 64))
    p1 = torch.flip(p0, dims=[3])
    fn = make_distance("lpips-alex")
    n = ref.shape[0]
    with torch.inference_mode():
        fr, f0, f1 = metrics.split_features(fn.features(torch.cat([ref, p0, p1])), [n, n, n])
        d0, d1 = fn.from_features(fr, f0), fn.from_features(fr, f1)
        assert torch.allclose(d0, fn(ref, p0), atol=1e-6)
        assert torch.allclose(d1, fn(ref, p1), atol=1e-6)


def test_traditional_distance_functions_are_distances():
    x0, x1 = photo_pairs(size=(64, 64))
    from lpips_core.eval import baselines

    for name in ("psnr", "ssim", "l1", "l2", "l2_lab"):
        fn = make_distance(name)
        d = fn(x0, x1)
        raw = baselines.METRIC_FUNCTIONS[name](x0, x1)
        expected = {"psnr": -raw, "ssim": 1 - raw}.get(name, raw)
        assert torch.allclose(d, expected), name
        assert (fn(x0, x0) <= d).all(), name  # identical images are the closest


def test_make_distance_rejects_unknown_specs_with_a_list():
    with pytest.raises(ValueError, match="unknown metric 'fsim'.*lpips"):
        make_distance("fsim")
    with pytest.raises(FileNotFoundError, match="nope.pth: no such checkpoint"):
        make_distance("nope.pth")


def test_checkpoint_round_trip_and_net_inference(tmp_path):
    """A trained model saved as linear weights (or nested in a checkpoint) scores like the model."""
    _net_ok("alex")
    torch.manual_seed(0)
    model = ours("alex")
    state = {k: v * torch.rand_like(v) for k, v in model.linear_state_dict().items()}
    flat, nested = tmp_path / "lin.pth", tmp_path / "ckpt.pth"
    torch.save(state, flat)
    torch.save({"epoch": 3, "net": "alex", "model": {**state, "rank.net.0.weight": torch.zeros(1)}}, nested)
    x0, x1 = photo_pairs(size=(64, 64))
    import lpips_core

    expected = lpips_core.LPIPS(net="alex", model_path=flat)(x0, x1).flatten()
    for path in (flat, nested):
        fn = make_distance(str(path))
        assert fn.kind == "checkpoint" and fn.name == "trained-alex"
        with torch.inference_mode():
            assert torch.allclose(fn(x0, x1), expected, atol=1e-6)
    bad = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="other.pth: no LPIPS linear weights"):
        make_distance(str(bad))
    with pytest.raises(ValueError, match="holds alex linear weights, not vgg"):
        load_lpips_checkpoint(flat, net="vgg")


def test_dists_distance_function_reuses_features():
    require_backbone("vgg")
    x0, x1 = photo_pairs(size=(64, 64))
    from lpips_core.eval import baselines

    fn = make_distance("dists")
    with torch.inference_mode():
        assert torch.allclose(fn(x0, x1), baselines.dists(x0, x1), atol=1e-6)
