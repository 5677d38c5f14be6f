"""Statements the course makes about LPIPS itself, checked on the reference package.

The oracle is the reference ``lpips`` package (its trunk, its normalisation, its
"net" and "lin" distances) and plain linear algebra; ``lpips_core`` is not used,
so these tests check the book's explanations, not our implementation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import photo, reference, require_backbone
from PIL import Image, ImageFilter
from tolerances import ZERO_TOL, float32_tol


def _blurred_chain(size: int = 64) -> torch.Tensor:
    """A photograph crop and Gaussian blurs of it, sigma 0, 1, 2, 4: (4, 3, size, size) in [-1, 1]."""
    crop = Image.fromarray(photo("astronaut")[40 : 40 + 4 * size : 4, 170 : 170 + 4 * size : 4])
    imgs = [np.asarray(crop)] + [np.asarray(crop.filter(ImageFilter.GaussianBlur(s))) for s in (1, 2, 4)]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_unit_taps_distance_is_two_minus_two_cosine():
    """Chapter 1: after ReLU the squared distance of unit taps is 2 - 2 cos, in [0, 2];
    with every weight 1 a tap's LPIPS term is twice the mean cosine distance."""
    require_backbone("alex")
    ref = reference("alex", lpips=False)
    x = _blurred_chain()
    x0, x1 = x[:1].expand(3, -1, -1, -1), x[1:]
    with torch.no_grad():
        taps0 = ref.net(ref.scaling_layer(x0))
        taps1 = ref.net(ref.scaling_layer(x1))
        _, per_layer = ref(x0, x1, retPerLayer=True)
    import lpips as reference_package

    for k, (a, b) in enumerate(zip(taps0, taps1)):
        assert (a >= 0).all() and (b >= 0).all(), "taps come after a ReLU"
        sq = ((reference_package.normalize_tensor(a) - reference_package.normalize_tensor(b)) ** 2).sum(1)
        cos = F.cosine_similarity(a, b, dim=1)
        nonzero = (a.norm(dim=1) > 0) & (b.norm(dim=1) > 0)
        # One unit vector each: their squared distance is 2 - 2 cos up to a few
        # roundings per channel (C <= 384 terms in each sum).
        tol = float32_tol(2.0, a.shape[1])
        assert float((sq - (2 - 2 * cos))[nonzero].abs().max()) <= tol, f"tap {k}"
        assert float(sq.max()) <= 2 + tol and float(sq.min()) >= -ZERO_TOL, f"tap {k}: not in [0, 2]"
        term = 2 * (1 - cos).mean(dim=(1, 2))  # twice the mean cosine distance, per image
        if nonzero.all():
            assert torch.allclose(per_layer[k].flatten(), term, rtol=0, atol=tol), f"tap {k}"


@pytest.mark.parametrize("lpips_weights", [True, False], ids=["lin", "net"])
def test_lpips_is_a_squared_distance_triangle_inequality(lpips_weights: bool):
    """Chapter 6: LPIPS is a squared Euclidean distance in a feature space, so it can
    break the triangle inequality along a chain of blurs, while its square root keeps it."""
    require_backbone("alex")
    ref = reference("alex", lpips=lpips_weights)
    x = _blurred_chain()
    n = len(x)
    i, j = zip(*itertools.product(range(n), repeat=2))
    with torch.no_grad():
        d = ref(x[list(i)], x[list(j)]).reshape(n, n).double()
    d = (d + d.T) / 2  # the reference is symmetric up to rounding
    d.fill_diagonal_(0)
    violations_d = violations_sqrt = 0
    tol = float32_tol(float(d.max()), 9451)  # rounding of one alex distance (tests/tolerances.py)
    for a, b, c in itertools.permutations(range(n), 3):
        violations_d += bool(d[a, c] > d[a, b] + d[b, c] + tol)
        violations_sqrt += bool(d[a, c].sqrt() > d[a, b].sqrt() + d[b, c].sqrt() + tol**0.5)
    assert violations_sqrt == 0
    # sharp -> blur 2 vs sharp -> blur 1 -> blur 2: the squared distance adds up faster
    assert violations_d > 0, d
