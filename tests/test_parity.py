"""Numerical parity with the reference ``lpips`` 0.1.4 package (max abs diff <= 1e-5)."""

import itertools

import pytest
import torch
from conftest import NETS, ours, photo_pairs, reference
from tolerances import PARITY_TOL as TOL  # the product claim, the same on every CPU

CONFIGS = list(itertools.product(NETS, ["0.1", "0.0"], [True, False], [False, True]))


def _ids(cfg):
    net, version, lp, spatial = cfg
    return f"{net}-v{version}-{'lin' if lp else 'net'}-{'spatial' if spatial else 'scalar'}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_forward_matches_reference_random(cfg):
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    y = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        a, b = ours(*cfg)(x, y), reference(*cfg)(x, y)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= TOL


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_forward_matches_reference_photographs(cfg):
    refs, dists = photo_pairs()
    with torch.no_grad():
        a, b = ours(*cfg)(refs, dists), reference(*cfg)(refs, dists)
    assert a.shape == b.shape == ((6, 1, 96, 128) if cfg[3] else (6, 1, 1, 1))
    assert (a - b).abs().max().item() <= TOL


@pytest.mark.parametrize("net", NETS)
def test_per_layer_and_normalize_flag_match_reference(net):
    refs, dists = photo_pairs(size=(64, 64), seed=1)
    x0, x1 = (refs + 1) / 2, (dists + 1) / 2  # [0, 1] images
    with torch.no_grad():
        a, la = ours(net)(x0, x1, retPerLayer=True, normalize=True)
        b, lb = reference(net)(x0, x1, retPerLayer=True, normalize=True)
    assert len(la) == len(lb) == (7 if net == "squeeze" else 5)
    for pa, pb in zip(la, lb):
        assert (pa - pb).abs().max().item() <= TOL
    assert (a - b).abs().max().item() <= TOL


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("lp", [True, False])
def test_input_gradients_match_reference(net, lp):
    refs, dists = photo_pairs(size=(64, 64), seed=2)
    grads = []
    for model in (ours(net, "0.1", lp), reference(net, "0.1", lp)):
        x = refs.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(x, dists).sum(), x)
        grads.append(g)
    assert torch.isfinite(grads[0]).all()
    assert (grads[0] - grads[1]).abs().max().item() <= TOL


def test_state_dict_keys_match_reference():
    assert set(ours("alex").state_dict()) == set(reference("alex").state_dict())
