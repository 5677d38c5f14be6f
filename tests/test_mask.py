"""Masked LPIPS: receptive fields measured with gradients, exactness, the all-ones mask, dropped layers.

Oracles: the nonzero support of d(tap) / d(input) (autograd on torchvision's
trunks, random weights), the reference ``lpips`` package's per-layer maps with
the valid positions found by brute force, and the unmasked distance.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import lpips_core
from lpips_core.model.masks import MaskedLayerWarning, position_weights
from lpips_core.model.nets import NETS
from tests.conftest import ours, photo_pairs, reference
from tests.tolerances import assert_parity, assert_paths_agree


def measured_support(trunk, k: int, side: int, pos: int) -> tuple[int, int]:
    """First and last input row whose value changes tap k at (pos, pos), by autograd."""
    x = torch.randn(2, 3, side, side, requires_grad=True)
    tap = x
    for stage in trunk.stages[: k + 1]:
        tap = stage(tap)
    (g,) = torch.autograd.grad(tap[:, :, pos, pos].sum(), x)
    rows = g.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    return int(rows.min()), int(rows.max())


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_receptive_fields_match_gradients(net):
    torch.manual_seed(0)
    trunk = lpips_core.Trunk(net, pretrained=False)
    fields = NETS[net].receptive_fields
    for k, rf in enumerate(fields):
        inner = math.ceil(-rf.offset / rf.jump)  # first position whose window is wholly in the image
        side = inner * rf.jump + rf.offset + rf.size + 2
        lo, hi = measured_support(trunk, k, side, inner)
        assert (lo, hi) == (rf.offset + inner * rf.jump, rf.offset + inner * rf.jump + rf.size - 1), (net, k)
        if rf.offset < 0:  # position 0 reaches into the padding: clipped at row 0
            assert measured_support(trunk, k, side, 0) == (0, rf.offset + rf.size - 1), (net, k, "corner")


def photo_pair(side: int):
    x, y = photo_pairs(size=(side, side))
    return x[:1], y[:1]


def test_pixels_outside_the_mask_cannot_change_the_distance():
    x, y = photo_pair(224)
    mask = torch.zeros(1, 1, 224, 224)
    mask[..., 10:214, 20:222] = 1  # 204 x 202: relu5's 163-pixel window fits
    model = ours("alex")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", MaskedLayerWarning)  # every layer keeps positions
        d = model(x, y, mask=mask)
        g = torch.Generator().manual_seed(1)
        noise0, noise1 = torch.rand(x.shape, generator=g) * 2 - 1, torch.rand(x.shape, generator=g) * 2 - 1
        x2, y2 = torch.where(mask.bool(), x, noise0), torch.where(mask.bool(), y, noise1)
        d2 = model(x2, y2, mask=mask)
        soft = model(x, y, mask=mask, mask_mode="soft"), model(x2, y2, mask=mask, mask_mode="soft")
    assert float((d - d2).abs().max()) <= 1e-6
    assert float((soft[0] - soft[1]).abs().max()) > 1e-3  # the soft mode leaks context, as documented


def brute_force_masked(ref, x, y, mask, net) -> torch.Tensor:
    """The reference's per-layer maps, averaged over positions whose window lies in the mask (loops)."""
    import lpips

    with torch.no_grad():
        outs0, outs1 = ref.net.forward(ref.scaling_layer(x)), ref.net.forward(ref.scaling_layer(y))
        total = 0.0
        H = x.shape[-1]
        for k, rf in enumerate(NETS[net].receptive_fields):
            diff = (lpips.normalize_tensor(outs0[k]) - lpips.normalize_tensor(outs1[k])) ** 2
            dmap = ref.lins[k](diff)[0, 0]  # (h, w)
            vals = []
            for i in range(dmap.shape[0]):
                for j in range(dmap.shape[1]):
                    r0, c0 = max(rf.offset + i * rf.jump, 0), max(rf.offset + j * rf.jump, 0)
                    r1, c1 = min(rf.offset + i * rf.jump + rf.size, H), min(rf.offset + j * rf.jump + rf.size, H)
                    if bool(mask[0, 0, r0:r1, c0:c1].all()):
                        vals.append(dmap[i, j])
            total = total + (torch.stack(vals).mean() if vals else 0.0)
    return torch.as_tensor(total).view(1, 1, 1, 1)


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_hard_mask_equals_brute_force_on_the_reference(net):
    from tests.conftest import require_backbone

    require_backbone(net)
    x, y = photo_pair(128)
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 5:120, 0:100] = 1
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskedLayerWarning)
        got = ours(net)(x, y, mask=mask)
    assert_parity(got, brute_force_masked(reference(net), x, y, mask, net), f"{net} hard mask")


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_all_ones_mask_equals_the_unmasked_distance(net, mode):
    x, y = photo_pairs(size=(64, 64))
    with torch.no_grad():
        unmasked = ours(net)(x, y)
        masked = ours(net)(x, y, mask=torch.ones(1, 1, 64, 64), mask_mode=mode)
        functional = (
            lpips_core.distance(x, y, net=net, mask=torch.ones(64, 64), mask_mode=mode)
            if net == "alex"
            else masked.flatten()
        )
    assert_paths_agree(masked, unmasked, net, f"{net} {mode} all-ones mask")
    assert_paths_agree(functional, unmasked.flatten(), net, "distance(mask=ones)")


def test_a_layer_without_valid_positions_is_dropped_warned_and_signed():
    x, y = photo_pair(96)
    mask = torch.zeros(1, 1, 96, 96)
    mask[..., :, :60] = 1  # 60 columns: alex relu3 (99), relu4, relu5 see more
    model = lpips_core.LPIPS(net="alex")
    with pytest.warns(MaskedLayerWarning, match="relu3, relu4, relu5") as record:
        with torch.no_grad():
            total, layers = model(x, y, mask=mask, retPerLayer=True)
    assert record[0].filename == __file__
    assert [float(layer) == 0.0 for layer in layers] == [False, False, True, True, True]
    assert "|mask:hard|dropped:relu3,relu4,relu5|" in model.signature()
    with torch.no_grad():
        model(x, y)
    assert "mask" not in model.signature()  # the signature describes the last call


def test_position_weights_hard_is_the_minimum_over_the_window():
    rf = NETS["alex"].receptive_fields[0]  # 11 px, jump 4, offset -2
    mask = torch.ones(1, 1, 64, 64)
    mask[..., 30, 30] = 0
    w = position_weights(mask, rf, (15, 15), "hard")[0, 0]
    zero = {(i, j) for i in range(15) for j in range(15) if float(w[i, j]) == 0}
    expected = {
        (i, j)
        for i in range(15)
        for j in range(15)
        if -2 + 4 * i <= 30 <= -2 + 4 * i + 10 and -2 + 4 * j <= 30 <= -2 + 4 * j + 10
    }
    assert zero == expected and len(expected) == 9


def test_bad_masks_are_clear_errors():
    x, y = photo_pair(64)
    with pytest.raises(ValueError, match=r"mask has shape \(1, 1, 32, 32\)"):
        ours()(x, y, mask=torch.ones(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"mask values must lie in \[0, 1\]"):
        ours()(x, y, mask=torch.full((1, 1, 64, 64), 2.0))
    with pytest.raises(ValueError, match="mask_mode='blur'"):
        ours()(x, y, mask=torch.ones(1, 1, 64, 64), mask_mode="blur")
