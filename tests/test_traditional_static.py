"""The design document's static calls: ``TraditionalMetrics.psnr(img1, img2)`` on the class itself.

The document's snippet uses ``torch.rand(3, 224, 224)`` images, so the class call
reads [0, 1] images; the instance call keeps the instance's ``input_range``.
Oracles: scikit-image (PSNR, SSIM) and numpy (L1, RMSE).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lpips_core.design_api import TraditionalMetrics


def test_the_design_documents_snippet_runs_on_the_class():
    torch.manual_seed(0)
    img1, img2 = torch.rand(3, 224, 224), torch.rand(3, 224, 224)  # the document's images
    psnr = TraditionalMetrics.psnr(img1, img2)
    ssim = TraditionalMetrics.ssim(img1, img2)
    l2 = TraditionalMetrics.lpnorm(img1, img2, p=2)
    all_metrics = TraditionalMetrics.compute_all_metrics(img1, img2)

    a, b = img1.permute(1, 2, 0).double().numpy(), img2.permute(1, 2, 0).double().numpy()
    assert isinstance(psnr, float) and isinstance(ssim, float) and isinstance(l2, float)
    assert psnr == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-4)
    # torchmetrics averages SSIM over a slightly larger border than scikit-image (module docstring)
    assert ssim == pytest.approx(
        structural_similarity(
            a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        ),
        abs=2e-3,
    )
    assert l2 == pytest.approx(np.sqrt(((a - b) ** 2).mean()), rel=1e-5)
    assert all_metrics["l1"] == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    assert [all_metrics[k] for k in ("psnr", "ssim", "l2")] == pytest.approx([psnr, ssim, l2])


def test_instance_calls_keep_their_range_and_agree_with_the_class_call():
    torch.manual_seed(1)
    img1, img2 = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    on_class = TraditionalMetrics.psnr(img1, img2)
    default = TraditionalMetrics().psnr(img1 * 2 - 1, img2 * 2 - 1)  # [-1, 1] instance
    zero_one = TraditionalMetrics(input_range=(0, 1)).psnr(img1, img2)
    assert on_class.shape == (2,)
    assert torch.equal(on_class, default) and torch.equal(on_class, zero_one)
    misread = TraditionalMetrics().psnr(img1, img2)  # [0, 1] images read as [-1, 1]: half the range
    assert float((misread - on_class).abs().min()) > 5.0
