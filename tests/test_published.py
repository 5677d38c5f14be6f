"""Published values: the reference repository's example triplet and torchmetrics' documented squeeze values."""

import torch
from conftest import SHARED, needs_shared, require_backbone

import lpips_core

EX = SHARED / "fixtures" / "bapps_examples"


@needs_shared
def test_alex_example_triplet_matches_published_values():
    require_backbone("alex")
    model = lpips_core.LPIPS(net="alex", version="0.1")
    ref, p0, p1 = (lpips_core.load_tensor(EX / f"ex_{n}.png") for n in ("ref", "p0", "p1"))
    with torch.no_grad():
        d0, d1 = model(ref, p0).item(), model(ref, p1).item()
    assert round(d0, 3) == 0.722  # README of the reference repository
    assert round(d1, 3) == 0.138


def test_squeeze_matches_torchmetrics_documented_values():
    require_backbone("squeeze")
    model = lpips_core.LPIPS(net="squeeze", version="0.1")
    gen = torch.Generator().manual_seed(42)
    img1 = torch.rand(2, 3, 100, 100, generator=gen) * 2 - 1
    img2 = torch.rand(2, 3, 100, 100, generator=gen) * 2 - 1
    with torch.no_grad():
        d = model(img1, img2).flatten()
    # torchmetrics LearnedPerceptualImagePatchSimilarity(net_type='squeeze', reduction=None) docs
    assert torch.allclose(d, torch.tensor([0.1024, 0.0938]), atol=5e-5)
