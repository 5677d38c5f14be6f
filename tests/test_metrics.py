"""2AFC and JND scores against the reference's lpips/trainer.py, hand-computed cases, and
the one distance-function interface (LPIPS, net baseline, checkpoint, traditional, DISTS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ours, photo_pairs, reference, require_backbone
from tolerances import assert_paths_agree

from lpips_core.eval import distances as metrics
from lpips_core.eval import make_distance, score_2afc, score_jnd, twoafc_scores
from lpips_core.model import load_lpips_checkpoint


class _FakeLoader:
    """The reference's data-loader interface (``.load_data()`` yields batches) over arrays."""

    def __init__(self, batches):
        self.batches = batches

    def load_data(self):
        return iter(self.batches)


def _reference_2afc(d0, d1, h, batch=7):
    from lpips.trainer import score_2afc_dataset

    # the reference calls func(ref, p0) and func(ref, p1); carry the distances in p0/p1
    batches = [
        {
            "ref": torch.zeros(len(d0[i : i + batch])),
            "p0": torch.tensor(d0[i : i + batch]),
            "p1": torch.tensor(d1[i : i + batch]),
            "judge": torch.tensor(h[i : i + batch])[:, None],
        }
        for i in range(0, len(d0), batch)
    ]
    return score_2afc_dataset(_FakeLoader(batches), lambda ref, p: p)[0]


def _reference_jnd(ds, same, batch=7):
    from lpips.trainer import score_jnd_dataset

    batches = [
        {
            "p0": torch.zeros(len(ds[i : i + batch])),
            "p1": torch.tensor(ds[i : i + batch]),
            "same": torch.tensor(same[i : i + batch])[:, None],
        }
        for i in range(0, len(ds), batch)
    ]
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
    assert score_2afc(torch.tensor([[0.1], [0.2]]), torch.tensor([[0.2], [0.1]]), torch.tensor([[0.0], [1.0]])) == 1.0
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
        # one trunk pass over the three stacks vs one per pair: our two float32 paths
        assert_paths_agree(d0, fn(ref, p0), "alex", "d0 from shared features")
        assert_paths_agree(d1, fn(ref, p1), "alex", "d1 from shared features")


def _u8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] made from uint8 images -> those (N, H, W, 3) uint8 images, exactly."""
    u = ((x.double() + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    assert np.abs(u - np.round(u)).max() < 1e-4  # photo_pairs' images are uint8 / 127.5 - 1
    return np.round(u).astype(np.uint8)


def _skimage_distance(name: str, a: np.ndarray, b: np.ndarray) -> float:
    """The distance ``name`` of two (H, W, 3) uint8 images, by scikit-image / numpy in float64.

    SSIM: the project's SSIM is torchmetrics' (Gaussian window 11, sigma 1.5, population
    covariance, K1 .01, K2 .03), whose SSIM map covers the whole image, the windows at the
    border reading a mirror-reflected image (torch's 'reflect', numpy's 'reflect': edge
    pixel not repeated). scikit-image reflects with the edge repeated (scipy's 'reflect')
    and averages only the map 5 px away from the border, where no window reaches the
    padding: that is a different mean (up to 3e-2 on these 64 px crops). So the
    image is padded by 5 px the torch way first; scikit-image's cropped mean of the padded
    image is then the mean over the original pixels with torch's border: the same
    quantity, computed independently (numpy padding, scipy Gaussian filter, float64).
    """
    from skimage.color import rgb2lab
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    p, q = a / 255.0, b / 255.0
    if name == "psnr":
        return -peak_signal_noise_ratio(p, q, data_range=1.0)
    if name == "ssim":
        pad = ((5, 5), (5, 5), (0, 0))
        return 1.0 - structural_similarity(
            np.pad(p, pad, mode="reflect"),
            np.pad(q, pad, mode="reflect"),
            data_range=1.0,
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            K1=0.01,
            K2=0.03,
        )
    if name == "l1":
        return float(np.mean(np.abs(p - q)))
    if name == "l2":  # root mean squared error
        return float(np.sqrt(mean_squared_error(p, q)))
    if name == "l2_lab":  # lpips.L2(colorspace='Lab'): 0.5 * mean(((Lab0 - Lab1) / 100)^2)
        return float(0.5 * np.mean(((rgb2lab(p) - rgb2lab(q)) / 100.0) ** 2))
    raise KeyError(name)


def _float32_tolerances(n: int) -> dict[str, float]:
    """How far our float32 values may be from scikit-image's float64 ones, for means over n values.

    Our metrics are float32 means over ``n`` = 3 H W values (the squared or absolute
    differences, the per-pixel Lab differences, the SSIM map), scikit-image's float64.
    Each term carries a few float32 roundings of relative size eps and the float32 sum
    of n terms adds a random walk of ~eps sqrt(n): relative error ~ eps sqrt(n), allowed
    SAFETY (4) times. For PSNR = -10 log10(MSE) a relative error r of the MSE is an
    absolute 10 / ln(10) * r dB. SSIM is a mean of ratios whose numerators and
    denominators hold local variances E[x^2] - mu^2 (terms <= 1, 121-tap sums: ~eps
    sqrt(121) absolute after cancellation) over denominators >= C2 = (0.03)^2: up to
    eps sqrt(121) / C2 per pixel in flat regions, of random sign, so divided by sqrt(n)
    in the mean. On 64 px crops these bounds (2.3e-4 dB, 5.3e-5 absolute for SSIM,
    5.3e-5 relative) are 5x (SSIM: 1e-5 seen) to hundreds of times above the differences
    seen, and far below the convention errors they must catch: edge-repeating instead of
    mirror padding moves 1 - SSIM by up to 1.3e-3, the cropped mean by 3e-2, a 7x7
    uniform window by 3e-2; a data range of 255/256 moves PSNR by 0.03 dB; a dropped 0.5
    in L2-Lab or MSE for RMSE is a factor.
    """
    from tolerances import F32_EPS, SAFETY

    rel = SAFETY * F32_EPS * np.sqrt(n)
    return {
        "psnr": 10 / np.log(10) * rel,  # absolute, dB
        "ssim": SAFETY * F32_EPS * np.sqrt(11 * 11) / 0.03**2 / np.sqrt(n),  # absolute
        "l1": rel,
        "l2": rel,
        "l2_lab": rel,
    }  # relative


def test_traditional_distance_functions_are_distances():
    """Each traditional distance equals scikit-image's / numpy's value on the same uint8 images."""
    x0, x1 = photo_pairs(size=(64, 64))
    a, b = _u8(x0), _u8(x1)
    tol = _float32_tolerances(n=3 * 64 * 64)
    from lpips_core.eval import baselines

    for name in ("psnr", "ssim", "l1", "l2", "l2_lab"):
        fn = make_distance(name)
        d = fn(x0, x1)
        assert d.shape == (6,) and d.dtype == torch.float32, name
        expected = np.array([_skimage_distance(name, a[i], b[i]) for i in range(6)])
        if name in ("psnr", "ssim"):  # absolute tolerance
            assert np.abs(d.double().numpy() - expected).max() <= tol[name], (name, d, expected)
        else:
            assert np.allclose(d.double().numpy(), expected, rtol=tol[name], atol=0), (name, d, expected)
        # the distance function is the baselines metric turned into a distance
        raw = baselines.METRIC_FUNCTIONS[name](x0, x1)
        assert torch.equal(d, {"psnr": -raw, "ssim": 1 - raw}.get(name, raw)), name
        # identical images are the closest: -inf for -PSNR, 0 for the others
        same = fn(x0, x0)
        assert (same < d).all(), name
        if name == "psnr":
            assert torch.isneginf(same).all()
        else:
            assert same.abs().max() <= tol["ssim"], name


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
            assert_paths_agree(fn(x0, x1), expected, "alex", f"checkpoint {path.name}")
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
        assert_paths_agree(fn(x0, x1), baselines.dists(x0, x1), "vgg", "DISTS from shared features")
