"""Input checks: every bad input gets a clear error or one warning."""

import warnings

import pytest
import torch
from conftest import NETS, ours, reference
from tolerances import assert_parity, assert_paths_agree

import lpips_core
from lpips_core.model.checks import InputRangeWarning
from lpips_core.model.nets import MIN_INPUT_SIZE


def rand(*shape):
    return torch.rand(*shape) * 2 - 1


def test_three_dim_input_is_batched():
    x, y = rand(3, 64, 64), rand(3, 64, 64)
    with torch.no_grad():
        assert ours()(x, y).shape == (1, 1, 1, 1)
        assert_parity(ours()(x, y), reference()(x[None], y[None]), "(3, H, W) input")


def test_grayscale_is_repeated_to_rgb():
    x, y = rand(2, 1, 64, 64), rand(2, 1, 64, 64)
    with torch.no_grad():
        a = ours()(x, y)
        b = reference()(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1))
    assert_parity(a, b, "grey input repeated to RGB")


def test_rgba_is_rejected_with_hint():
    with pytest.raises(ValueError, match=r"4 channels.*\[:, :3\]"):
        ours()(rand(1, 4, 64, 64), rand(1, 4, 64, 64))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(1, 3, 64, 64\).*\(1, 3, 64, 65\)"):
        ours()(rand(1, 3, 64, 64), rand(1, 3, 64, 65))


def test_integer_images_are_rejected_with_hint():
    with pytest.raises(TypeError, match="im2tensor"):
        ours()(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


@pytest.mark.parametrize("net", NETS)
def test_minimum_size_is_exact(net):
    """At MIN_INPUT_SIZE both accept the images and agree; one pixel less (either side) the
    reference's trunk fails (a feature map shrinks to nothing) and ours raises a clear error
    first: the minimum is neither too strict nor too lax."""
    low = MIN_INPUT_SIZE[net]
    with torch.no_grad():
        for h, w in ((low, low), (low, low + 5), (low + 5, low)):
            x, y = rand(1, 3, h, w), rand(1, 3, h, w)
            got, expected = ours(net)(x, y), reference(net)(x, y)
            assert got.shape == expected.shape == (1, 1, 1, 1) and torch.isfinite(got).all()
            assert_parity(got, expected, f"{net} at {h}x{w}")
        for h, w in ((low - 1, low - 1), (low - 1, low + 5), (low + 5, low - 1)):
            x, y = rand(1, 3, h, w), rand(1, 3, h, w)
            with pytest.raises(RuntimeError, match="too small"):  # torch: "Output size is too small"
                reference(net)(x, y)
            with pytest.raises(ValueError, match=f"at least {low} pixels"):
                ours(net)(x, y)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_are_rejected(bad):
    x = rand(1, 3, 64, 64)
    x[0, 0, 5, 5] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        ours()(x, rand(1, 3, 64, 64))


def test_out_of_range_warns_once_per_model():
    model = lpips_core.LPIPS(net="alex")
    x255 = torch.rand(1, 3, 64, 64) * 255
    with pytest.warns(InputRangeWarning, match="127.5"):
        model(x255, x255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x255, x255)  # second call: silent
    with pytest.warns(InputRangeWarning, match="normalize=True expects"):
        lpips_core.LPIPS(net="alex")(rand(1, 3, 64, 64), rand(1, 3, 64, 64), normalize=True)


def test_batch_of_one_equals_batch_of_64():
    x, y = rand(64, 3, 64, 64), rand(64, 3, 64, 64)
    with torch.no_grad():
        batched = ours()(x, y).flatten()
        single = torch.cat([ours()(x[i : i + 1], y[i : i + 1]).flatten() for i in range(0, 64, 9)])
    # the same pairs through one trunk call or eight: oneDNN may block the batch differently
    assert_paths_agree(single, batched[::9], "alex", "batch of 1 vs batch of 64")


def test_one_against_many_broadcasts_like_reference():
    x, y = rand(1, 3, 64, 64), rand(5, 3, 64, 64)
    with torch.no_grad():
        assert (ours()(x, y) - reference()(x, y)).abs().max() <= 1e-5


def test_unknown_net_and_version():
    with pytest.raises(ValueError, match="net='resnet'"):
        lpips_core.LPIPS(net="resnet")
    with pytest.raises(ValueError, match="version"):
        lpips_core.LPIPS(version="0.2")


def test_functional_distance_caches_model_and_matches():
    x, y = rand(2, 3, 64, 64), rand(2, 3, 64, 64)
    d = lpips_core.distance(x, y, net="alex")
    assert d.shape == (2,)
    with torch.no_grad():
        assert (d - reference()(x, y).flatten()).abs().max() <= 1e-5
    from lpips_core.model.functional import _cached_model

    lpips_core.distance(x, y, net="alexnet")
    assert _cached_model.cache_info().hits >= 1


def test_functional_distance_passes_gradients():
    x = rand(1, 3, 64, 64).requires_grad_(True)
    d = lpips_core.distance(x, rand(1, 3, 64, 64))
    (g,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
