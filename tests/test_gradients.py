"""Finite gradients where the reference gives NaN, without changing forward values."""

import lpips
import pytest
import torch
from conftest import NETS, ours
from tolerances import float32_tol

from lpips_core.model import normalize_tensor


def test_reference_normalisation_gives_nan_gradient_on_zero_vector():
    x = torch.zeros(1, 8, 2, 2, requires_grad=True)
    lpips.normalize_tensor(x).sum().backward()
    assert torch.isnan(x.grad).any()  # the bug being fixed


def test_normalisation_gradient_is_finite_on_zero_vector():
    x = torch.zeros(1, 8, 2, 2)
    x[0, :, 0, 0] = torch.randn(8)  # one non-zero position, three all-zero ones
    x.requires_grad_(True)
    normalize_tensor(x).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_normalisation_forward_unchanged():
    x = torch.relu(torch.randn(4, 64, 9, 9))
    x[:, :, :3] = 0  # all-zero feature vectors
    a, b = normalize_tensor(x), lpips.normalize_tensor(x)
    # unit vectors (magnitude 1) from a 64-term sum of squares, rounded in two orders
    assert (a - b).abs().max().item() <= float32_tol(1.0, x.shape[1])


@pytest.mark.parametrize("net", NETS)
def test_gradient_finite_for_identical_inputs(net):
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    d = ours(net)(x, x.detach().clone())
    (g,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(g).all()
    assert d.abs().max().item() == 0.0


@pytest.mark.parametrize("net", NETS)
def test_gradient_finite_for_black_images(net):
    black = torch.full((1, 3, 64, 64), -1.0, requires_grad=True)
    grey = torch.full((1, 3, 64, 64), -0.98)
    (g,) = torch.autograd.grad(ours(net)(black, grey).sum(), black)
    assert torch.isfinite(g).all()
