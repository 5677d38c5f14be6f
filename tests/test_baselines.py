"""Traditional metrics and DISTS: each checked against a hand-computed value or an independent library."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import photo, require_backbone
from tolerances import assert_paths_agree

from lpips_core.eval import baselines as B
from lpips_core.eval.baselines import TraditionalMetrics


def _u8_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) in [-1, 1]."""
    return (torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 127.5 - 1).contiguous()


@pytest.fixture(scope="module")
def crops():
    """A real photograph crop, a noisy and a blurred version, uint8 and as tensors."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(0)
    crop = photo("astronaut")[100:196, 150:246]  # (96, 96, 3)
    noisy = np.clip(crop + rng.normal(0, 15, crop.shape), 0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(crop).filter(ImageFilter.GaussianBlur(2)))
    return {"ref": crop, "noisy": noisy, "blurred": blurred}


def test_psnr_of_a_constant_offset_is_hand_computed():
    # a constant offset of 0.1 on [0, 1] images: MSE = 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB
    x01 = torch.rand(2, 3, 32, 32) * 0.8
    x, y = x01 * 2 - 1, (x01 + 0.1) * 2 - 1
    assert torch.allclose(B.psnr(x, y), torch.full((2,), 20.0), atol=1e-4)
    assert B.psnr(x, x).isinf().all()


def test_lpnorm_of_a_constant_offset_is_the_offset():
    x01 = torch.rand(3, 16, 16) * 0.5
    x, y = x01 * 2 - 1, (x01 + 0.25) * 2 - 1
    tm = TraditionalMetrics()
    for p in (1, 2, 3):
        assert tm.lpnorm(x, y, p=p) == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(ValueError, match="p must be > 0"):
        tm.lpnorm(x, y, p=0)


def test_l1_l2_match_torchmetrics(crops):
    from torchmetrics.functional import mean_absolute_error, mean_squared_error

    x, y = _u8_to_tensor(crops["ref"]), _u8_to_tensor(crops["noisy"])
    a, b = (x + 1) / 2, (y + 1) / 2
    assert B.lpnorm(x, y, 1).item() == pytest.approx(mean_absolute_error(a, b).item(), rel=1e-5)
    assert B.lpnorm(x, y, 2).item() ** 2 == pytest.approx(mean_squared_error(a, b).item(), rel=1e-5)


def test_psnr_and_ssim_agree_with_scikit_image(crops):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    for name in ("noisy", "blurred"):
        ref, dist = crops["ref"], crops[name]
        x, y = _u8_to_tensor(ref), _u8_to_tensor(dist)
        sk_psnr = peak_signal_noise_ratio(ref, dist, data_range=255)
        # float32 here vs float64 in scikit-image: MSE to ~1e-6 relative, PSNR to ~1e-6 dB
        # (measured 9e-7); a wrong data_range would move it by 6 dB
        assert B.psnr(x, y).item() == pytest.approx(sk_psnr, abs=1e-4)
    # SSIM with Wang et al.'s settings in scikit-image (Gaussian window, sigma 1.5, population
    # covariance). The SSIM maps agree pixel for pixel; torchmetrics averages over a slightly
    # larger border region, which moves the mean by ~5e-3 on 96 px crops and ~1e-4 on 300 px.
    big = photo("astronaut")[100:400, 150:450]
    noisy = np.clip(big + np.random.default_rng(0).normal(0, 15, big.shape), 0, 255).astype(np.uint8)
    sk_ssim = structural_similarity(
        big / 255.0,
        noisy / 255.0,
        data_range=1.0,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert B.ssim(_u8_to_tensor(big), _u8_to_tensor(noisy)).item() == pytest.approx(sk_ssim, abs=5e-4)


def test_identical_images_give_the_extreme_values(crops):
    x = _u8_to_tensor(crops["ref"])
    tm = TraditionalMetrics()
    vals = tm.compute_all_metrics(x[0], x[0])
    assert set(vals) >= {"psnr", "ssim", "l1", "l2"}
    assert vals["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert vals["l1"] == 0 and vals["l2"] == 0 and vals["l2_lab"] == 0
    assert vals["psnr"] == float("inf")
    assert all(isinstance(v, float) for v in vals.values())


def test_l2_lab_matches_the_reference_formula(crops):
    # the reference lpips.L2(colorspace='Lab'): lpips.l2(rgb2lab(a), rgb2lab(b), range=100) on uint8 images
    import lpips
    from skimage.color import rgb2lab

    for name in ("noisy", "blurred"):
        expected = lpips.l2(rgb2lab(crops["ref"]), rgb2lab(crops[name]), range=100.0)
        ours = B.l2_lab(_u8_to_tensor(crops["ref"]), _u8_to_tensor(crops[name])).item()
        # kornia's float32 Lab vs scikit-image's float64 Lab, the same CIE formulas: float32
        # rounding through a few dozen operations (measured 9e-8 relative)
        assert ours == pytest.approx(expected, rel=1e-5)


def test_ms_ssim_agrees_with_piq_and_rejects_small_images():
    import piq

    big = photo("coffee")[:192, :192]
    noisy = np.clip(big + np.random.default_rng(1).normal(0, 20, big.shape), 0, 255).astype(np.uint8)
    x, y = _u8_to_tensor(big), _u8_to_tensor(noisy)
    ours = B.ms_ssim(x, y).item()
    theirs = piq.multi_scale_ssim((x + 1) / 2, (y + 1) / 2, data_range=1.0).item()
    # two independent implementations (torchmetrics and piq, float32 both) that differ in
    # their pooling between scales: measured 7e-5 apart here
    assert ours == pytest.approx(theirs, abs=1e-3)
    assert 0 < ours < 1
    assert B.ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="at least 176x176"):
        B.ms_ssim(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))


def test_dists_matches_the_authors_implementation(crops):
    """piq's DISTS built offline == the DISTS_pytorch reference code with the same VGG16 weights."""
    require_backbone("vgg")
    from unittest import mock

    import DISTS_pytorch.DISTS_pt as authors

    real_load = torch.load

    class _VGG:
        features = B.vgg16_features()

    with (
        mock.patch.object(authors.models, "vgg16", lambda pretrained=True: _VGG()),
        mock.patch.object(authors.torch, "load", lambda path: real_load(B.dists_weights_path(), weights_only=True)),
    ):
        reference = authors.DISTS().eval()
    x = torch.cat([_u8_to_tensor(crops["ref"])] * 2)
    y = torch.cat([_u8_to_tensor(crops["noisy"]), _u8_to_tensor(crops["blurred"])])
    ours = B.dists(x, y)
    with torch.no_grad():
        theirs = reference((x + 1) / 2, (y + 1) / 2)
    # two float32 evaluations through the same VGG16 trunk: the trunk's rounding bound
    assert_paths_agree(ours, theirs, "vgg", "DISTS vs the authors' code")
    assert B.dists(x[:1], x[:1]).item() == pytest.approx(0.0, abs=1e-5)


def test_bad_inputs_are_named():
    tm = TraditionalMetrics()
    with pytest.raises(ValueError, match=r"img1 .* same shape"):
        tm.psnr(torch.zeros(3, 8, 8), torch.zeros(3, 9, 8))
    with pytest.raises(ValueError, match="img0 must be"):
        tm.ssim(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="unknown metric"):
        tm.compute_all_metrics(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), include=("fsim",))
    with pytest.raises(ValueError, match="input_range"):
        TraditionalMetrics(input_range=(0, 255))


def test_input_range_zero_one_gives_the_same_values(crops):
    x, y = _u8_to_tensor(crops["ref"]), _u8_to_tensor(crops["blurred"])
    a = TraditionalMetrics().compute_all_metrics(x, y)
    b = TraditionalMetrics(input_range=(0, 1)).compute_all_metrics((x + 1) / 2, (y + 1) / 2)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_as_distance_orders_every_metric_the_same_way(crops):
    """Stronger noise is farther for every metric once turned into a distance."""
    ref = crops["ref"]
    rng = np.random.default_rng(3)
    x = _u8_to_tensor(ref)
    mild = _u8_to_tensor(np.clip(ref + rng.normal(0, 5, ref.shape), 0, 255).astype(np.uint8))
    strong = _u8_to_tensor(np.clip(ref + rng.normal(0, 40, ref.shape), 0, 255).astype(np.uint8))
    for name in ("psnr", "ssim", "l1", "l2", "l2_lab"):
        fn = B.METRIC_FUNCTIONS[name]
        assert B.as_distance(name, fn(x, mild)) < B.as_distance(name, fn(x, strong)), name
