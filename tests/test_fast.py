"""Every fast path of lpips_core.LPIPS gives the reference package's numbers.

The oracle is ``lpips.LPIPS`` 0.1.4 with the same trunk weights
(``conftest.reference``); spies check that the path under test was really taken.
No timings here: speed lives in benchmarks/bench_inference.py.
"""

import copy
import functools
import pickle

import pytest
import torch
from conftest import NETS, ours, photo, photo_pairs, reference
from tolerances import PARITY_TOL, assert_paths_agree, float32_tol

import lpips_core
from lpips_core.model import fast, functional, trunk
from lpips_core.model import kernels as K

#: Every ``<= TOL`` below compares with the reference package: the product claim.
#: Two of our own paths are compared with ``assert_paths_agree`` (tests/tolerances.py).
TOL = PARITY_TOL


def _rand_pair(n=3, hw=(64, 64), seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, *hw, generator=gen) * 2 - 1
    y = torch.rand(n, 3, *hw, generator=gen) * 2 - 1
    return x, y


def _photo_batch(n=6, size=64, seed=3):
    """``n`` crops of real photographs, (n, 3, size, size) in [-1, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera"]
    out = []
    for i in range(n):
        img = photo(names[i % len(names)])
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        out.append(lpips_core.im2tensor(img[y : y + size, x : x + size]))
    return torch.cat(out)


def _max_diff(a, b):
    return (a - b).abs().max().item()


class _TrunkCalls:
    """Records the batch size of every call of the trunk's first stage."""

    def __init__(self, model):
        self.sizes = []
        self._h = model.net.slice1.register_forward_hook(lambda m, i, o: self.sizes.append(i[0].shape[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._h.remove()


@pytest.fixture
def layout_spy(monkeypatch):
    """Records, for every channel-weighting call, the ``channels_last`` flag it was given
    and the layout its tensor really has, read from the strides: channels innermost
    (stride 1 along C: (N, h, w, C) memory) or columns innermost (plain NCHW)."""
    seen = []
    real = K.channel_weighted_sum

    def spy(d, w, channels_last):
        n, c, h, wd = d.shape
        assert c > 1 and h * wd > 1, d.shape  # else both layouts are the same memory
        nhwc = d.stride() == (h * wd * c, 1, wd * c, c)
        nchw = d.stride() == (c * h * wd, h * wd, wd, 1)
        assert nhwc != nchw, (d.shape, d.stride())
        seen.append((channels_last, nhwc, (h, wd)))
        return real(d, w, channels_last)

    monkeypatch.setattr(K, "channel_weighted_sum", spy)
    return seen


def _expected_tap_layouts(net, images, channels_last):
    """Whether each tap should be channels-last, derived from the map sizes alone.

    The rule (``trunk.stage_format``): on the channels-last path a stage runs
    channels-last when its input is channels-last and has at least
    ``SMALL_MAP_PIXELS`` pixels, else NCHW (and every stage after it then gets an
    NCHW input). Stage k's input is the image for k = 0, tap k - 1 after; the tap
    sizes come from the reference package's trunk (torchvision's layers), not
    from lpips_core.
    """
    ref = reference(net)
    with torch.no_grad():
        taps = ref.net(ref.scaling_layer(images))
    inputs = [tuple(images.shape[2:])] + [tuple(t.shape[2:]) for t in taps[:-1]]
    layouts, cl = [], channels_last
    for h, w in inputs:
        cl = cl and h * w >= trunk.SMALL_MAP_PIXELS
        layouts.append(cl)
    return layouts, [tuple(t.shape[2:]) for t in taps]


# --------------------------------------------------------------------------- forward fast paths
@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("channels_last", [True, False])
def test_inference_path_matches_reference_per_layer(net, channels_last, monkeypatch, layout_spy):
    model = ours(net)
    monkeypatch.setattr(model, "channels_last", channels_last)
    refs, dists = photo_pairs(size=(64, 64), seed=4)
    with torch.no_grad():
        a, la = model(refs, dists, retPerLayer=True)
        b, lb = reference(net)(refs, dists, retPerLayer=True)
    # each tap is weighted in the layout it should have: channels-last for the big early
    # taps only (stages fed with maps under SMALL_MAP_PIXELS pixels run in NCHW)
    expected, tap_sizes = _expected_tap_layouts(net, refs, channels_last)
    assert [hw for _, _, hw in layout_spy] == tap_sizes  # one weighting per tap, in order
    assert [nhwc for _, nhwc, _ in layout_spy] == expected  # the layout each tap really has
    assert [flag for flag, _, _ in layout_spy] == expected  # and the one it is weighted as
    if channels_last and net == "alex":  # 64x64: stages 4-5 see 3x3 maps (9 < 16 pixels)
        assert expected == [True, True, True, False, False]
    assert _max_diff(a, b) <= TOL
    for pa, pb in zip(la, lb):
        assert pa.shape == pb.shape and _max_diff(pa, pb) <= TOL


@pytest.mark.parametrize(
    "cfg", [("alex", "0.1", True, True), ("squeeze", "0.0", False, True), ("vgg", "0.1", False, False)]
)
def test_contiguous_layout_matches_reference_spatial_and_baseline(cfg, monkeypatch):
    model = ours(*cfg)
    monkeypatch.setattr(model, "channels_last", False)
    x, y = _rand_pair(2, (64, 80))
    with torch.no_grad():
        a, b = model(x, y, normalize=False), reference(*cfg)(x, y)
    assert a.shape == b.shape and _max_diff(a, b) <= TOL


@pytest.mark.parametrize("net", NETS)
def test_identical_inputs_give_exactly_zero(net):
    x, _ = _rand_pair(3)
    with torch.no_grad():
        assert ours(net)(x, x.clone()).abs().max().item() == 0.0


def test_inference_mode_is_used_and_outputs_are_ordinary_tensors(monkeypatch):
    model = copy.deepcopy(ours("alex")).requires_grad_(False)  # nothing needs a gradient
    modes = []
    real = K.squared_unit_difference
    monkeypatch.setattr(
        K, "squared_unit_difference", lambda *a: modes.append(torch.is_inference_mode_enabled()) or real(*a)
    )
    x, y = _rand_pair(2)
    d = model(x, y)  # grad mode on, but no input or parameter requires grad
    assert modes and all(modes)
    assert not d.is_inference() and not d.requires_grad
    scale = torch.ones((), requires_grad=True)
    (d * scale).sum().backward()  # usable in a later graph
    assert scale.grad is not None
    with torch.no_grad():
        assert _max_diff(d, reference("alex")(x, y)) <= TOL


def test_graph_is_kept_when_linear_weights_require_grad():
    model = ours("alex")  # lins require grad by default, as in the reference
    x, y = _rand_pair(2)
    d = model(x, y)
    d.sum().backward()
    grad = model.lins[0].conv.weight.grad
    model.zero_grad(set_to_none=True)
    ref = reference("alex")
    ref(x, y).sum().backward()
    assert grad is not None and _max_diff(grad, ref.lins[0].model[-1].weight.grad) <= TOL
    ref.zero_grad(set_to_none=True)


def test_one_trunk_call_for_both_inputs():
    model = ours("alex")
    x, y = _rand_pair(4)
    with torch.no_grad(), _TrunkCalls(model) as calls:
        model(x, y)
    assert calls.sizes == [8]


def test_batch_of_one_broadcasts_like_reference():
    model = ours("alex")
    x, y = _rand_pair(4)
    with torch.no_grad(), _TrunkCalls(model) as calls:
        a = model(x[:1], y)
        a2 = model(y, x[:1])
    b = reference("alex")(x[:1].expand_as(y), y)
    assert calls.sizes == [1, 4, 4, 1]
    assert a.shape == (4, 1, 1, 1) and _max_diff(a, b) <= TOL and _max_diff(a2, b) <= TOL


@pytest.mark.parametrize("budget,sizes", [(3 * 64 * 64, [2, 2, 2]), (64 * 64, [1, 1, 1, 1, 1, 1])])
def test_chunked_and_split_pairs_match_reference(budget, sizes, monkeypatch):
    """Big inputs run in chunks of pairs, or a pair's images one after the other."""
    monkeypatch.setattr(fast, "PIXEL_BUDGET", budget)
    model = ours("squeeze")
    x, y = _rand_pair(3)
    with torch.no_grad(), _TrunkCalls(model) as calls:
        a, la = model(x, y, retPerLayer=True)
    b, lb = reference("squeeze")(x, y, retPerLayer=True)
    assert calls.sizes == sizes
    assert _max_diff(a, b) <= TOL and all(_max_diff(p, q) <= TOL for p, q in zip(la, lb))


def test_cpu_budget_is_per_thread(monkeypatch):
    """On a CPU a trunk call holds at most CPU_PIXELS_PER_THREAD pixels per torch thread (and never
    more than PIXEL_BUDGET): chunk sizes by hand for 3 pairs of 64x64, with the reference's numbers."""
    monkeypatch.setattr(fast, "PIXEL_BUDGET", 4 * 64 * 64)
    monkeypatch.setattr(fast, "CPU_PIXELS_PER_THREAD", 2 * 64 * 64)  # one pair per thread
    model = ours("alex")
    x, y = _rand_pair(3)
    b = reference("alex")(x, y)
    n = torch.get_num_threads()
    try:
        for threads, sizes in ((1, [2, 2, 2]), (2, [4, 2]), (3, [4, 2])):  # 3 threads: PIXEL_BUDGET caps it
            torch.set_num_threads(threads)
            with torch.no_grad(), _TrunkCalls(model) as calls:
                a = model(x, y)
            assert calls.sizes == sizes, threads
            assert _max_diff(a, b) <= TOL
    finally:
        torch.set_num_threads(n)


def test_grayscale_float64_and_normalize_on_fast_path():
    model = ours("alex")
    x, y = _rand_pair(2)
    gx, gy = (x[:, :1] + 1) / 2, (y[:, :1] + 1) / 2  # grayscale in [0, 1]
    with torch.no_grad():
        a = model(gx.double(), gy.double(), normalize=True)
        b = reference("alex")(gx.repeat(1, 3, 1, 1), gy.repeat(1, 3, 1, 1), normalize=True)
    assert a.dtype == torch.float32 and _max_diff(a, b) <= TOL


def test_train_mode_with_dropout_uses_reference_computation():
    model = copy.deepcopy(ours("alex")).train()
    ref = copy.deepcopy(reference("alex")).train()
    x, y = _rand_pair(2)
    torch.manual_seed(7)
    a = model(x, y)
    torch.manual_seed(7)
    b = ref(x, y)
    with torch.no_grad():
        plain = ours("alex")(x, y)
    assert _max_diff(a, b) <= TOL  # same dropout masks, same numbers
    assert _max_diff(a, plain) > 1e-4  # dropout really was active
    a.sum().backward()
    assert torch.isfinite(model.lins[2].conv.weight.grad).all()


# --------------------------------------------------------------------------- feature API
@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_features_are_unit_contiguous_and_reproduce_forward(net):
    model = ours(net)
    refs, dists = photo_pairs(size=(64, 64), seed=5)
    with torch.no_grad():
        f0, f1 = model.features(refs), model.features(dists)
        d = model.distance_from_features(f0, f1)
        b = reference(net)(refs, dists)
    assert len(f0) == len(model.chns)
    for f, c in zip(f0, model.chns):
        assert f.shape[:2] == (6, c) and f.is_contiguous() and f.dtype == torch.float32
        norms = torch.linalg.vector_norm(f, dim=1)
        assert ((norms - 1).abs() < 1e-5).logical_or(norms == 0).all()
    assert _max_diff(d, b) <= TOL


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_a_fixed_targets_stored_features_give_the_loss_and_gradients_of_forward(net):
    """LPIPS as a loss with the target's features computed once (chapter 6): the distances
    and the image gradients are the reference's ``d(x, target)``, the target broadcast."""
    refs, dists = photo_pairs(size=(64, 64), seed=3)
    target, start = dists[:1], refs[:3]
    model = ours(net).requires_grad_(False)
    target_feats = model.features(target)
    x = start.clone().requires_grad_(True)
    d = model.distance_from_features(model.features(x), target_feats)
    (g,) = torch.autograd.grad(d.sum(), x)
    x_ref = start.clone().requires_grad_(True)
    d_ref = reference(net)(x_ref, target.expand_as(x_ref))
    (g_ref,) = torch.autograd.grad(d_ref.sum(), x_ref)
    assert d.shape == d_ref.shape == (3, 1, 1, 1)
    assert _max_diff(d, d_ref) <= TOL and _max_diff(g, g_ref) <= TOL


def test_squared_unit_difference_matches_reference_and_broadcasts():
    import lpips

    t0 = torch.relu(torch.randn(1, 32, 5, 6)).contiguous(memory_format=torch.channels_last)
    t1 = torch.relu(torch.randn(4, 32, 5, 6)).contiguous(memory_format=torch.channels_last)
    t0[:, :, 0] = 0  # zero feature vectors
    expected = (lpips.normalize_tensor(t0) - lpips.normalize_tensor(t1)) ** 2
    # same values up to the rounding order of the 32-term norm (tests/tolerances.py's model)
    tol = float32_tol(expected.abs().max().item(), accumulations=32)
    for a, b in ((t0, t1), (t1, t0)):
        got = K.squared_unit_difference(a, b)
        assert got.shape == (4, 32, 5, 6) and _max_diff(got, expected) <= tol
    assert K.squared_unit_difference(t1, t1.clone()).abs().max().item() == 0.0


def test_unit_features_match_reference_normalisation():
    import lpips

    t = torch.relu(torch.randn(4, 64, 9, 9)).contiguous(memory_format=torch.channels_last)
    t[:, :, :2] = 0
    ours_f = K.unit_features(t)
    assert ours_f.is_contiguous(memory_format=torch.channels_last)
    expected = lpips.normalize_tensor(t)
    # same values up to the rounding order of the 64-term norm (tests/tolerances.py's model)
    assert _max_diff(ours_f, expected) <= float32_tol(expected.abs().max().item(), accumulations=64)


@pytest.mark.parametrize("spatial", [False, True])
def test_one_to_many_matches_reference_and_runs_reference_once(spatial):
    model = ours("alex", "0.1", True, spatial)
    imgs = _photo_batch(5, 64)
    ref_img = _photo_batch(1, 64, seed=9)[0]  # (3, H, W)
    with torch.no_grad(), _TrunkCalls(model) as calls:
        a = model.one_to_many(ref_img, imgs, chunk_size=2)
    b = reference("alex", "0.1", True, spatial)(ref_img[None].expand_as(imgs), imgs)
    assert calls.sizes == [1, 2, 2, 1]
    assert a.shape == b.shape and _max_diff(a, b) <= TOL
    assert not a.is_inference()
    with torch.no_grad():  # chunks of one image: the reference's features must not be overwritten
        assert _max_diff(model.one_to_many(ref_img, imgs, chunk_size=1), b) <= TOL


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_pairwise_matches_one_reference_call_per_pair(net):
    model = ours(net)
    imgs = _photo_batch(6, 64)
    with _TrunkCalls(model) as calls:
        dist = model.pairwise(imgs, chunk_size=4)
    assert calls.sizes == [4, 2]  # every image through the trunk once
    assert dist.shape == (6, 6) and torch.equal(dist, dist.T)
    assert (dist.diagonal() == 0).all() and (dist >= 0).all()
    ref = reference(net)
    i, j = torch.triu_indices(6, 6, offset=1)
    with torch.no_grad():
        expected = ref(imgs[i], imgs[j]).flatten()
    assert (dist[i, j] - expected).abs().max().item() <= TOL


def test_embedding_distances_are_lpips_distances():
    model = ours("squeeze", "0.1", False)  # baseline: all weights 1
    imgs = _photo_batch(3, 64)
    emb = model.embed(imgs)
    with torch.no_grad():
        expected = reference("squeeze", "0.1", False)(imgs[[0, 0, 1]], imgs[[1, 2, 2]]).flatten()
    got = torch.stack([(emb[a] - emb[b]).pow(2).sum() for a, b in ((0, 1), (0, 2), (1, 2))])
    assert (got - expected).abs().max().item() <= TOL


def test_pairwise_rejects_spatial_models_and_negative_weights():
    imgs = _photo_batch(2, 64)
    with pytest.raises(ValueError, match="spatial=False"):
        ours("alex", "0.1", True, True).pairwise(imgs)
    model = copy.deepcopy(ours("alex"))
    with torch.no_grad():
        model.lins[1].conv.weight[0, 0] = -0.5
    with pytest.raises(ValueError, match="layer 1 has negative linear weights"):
        model.pairwise(imgs)
    with pytest.raises(ValueError, match="chunk_size"):
        ours("alex").pairwise(imgs, chunk_size=0)


def test_one_to_many_rejects_a_batch_of_references():
    imgs = _photo_batch(3, 64)
    with pytest.raises(ValueError, match="one reference image"):
        ours("alex").one_to_many(imgs[:2], imgs)


# --------------------------------------------------------------------------- options
def test_bfloat16_error_is_below_one_percent_on_photographs():
    model = copy.deepcopy(ours("alex"))
    model.dtype = torch.bfloat16
    refs, dists = photo_pairs(size=(64, 64), seed=6)
    with torch.no_grad():
        approx, exact = model(refs, dists), ours("alex")(refs, dists)
    assert approx.dtype == torch.float32
    rel = ((approx - exact).abs() / exact.abs()).max().item()
    assert 0 < rel <= 0.01


def test_models_with_compile_option_copy_and_pickle():
    model = copy.deepcopy(ours("alex"))
    model.compile = True
    # not run: compiling takes tens of seconds
    model._compiled_core = torch.compile(functools.partial(fast.fused_layers, model))
    clone = copy.deepcopy(model)
    assert clone._compiled_core is None
    assert pickle.loads(pickle.dumps(model))._compiled_core is None


def test_constructor_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="dtype"):
        lpips_core.LPIPS(net="alex", pretrained=False, pnet_rand=True, dtype=torch.int8)


@pytest.mark.parametrize("spatial", [False, True])
def test_large_taps_are_reduced_in_row_blocks_exactly(spatial, monkeypatch):
    """The memory-saving blocked reduction (used for big images) gives the reference's numbers."""
    monkeypatch.setattr(fast, "BLOCK_ELEMENTS", 2**12)  # force several blocks even at 64x64
    calls = []
    real = fast.tap_distance_blocked
    monkeypatch.setattr(fast, "tap_distance_blocked", lambda self, *a: calls.append(1) or real(self, *a))
    model = ours("vgg", "0.1", True, spatial)
    x, y = _rand_pair(2, (64, 48))
    with torch.no_grad():
        a, b = model(x, y), reference("vgg", "0.1", True, spatial)(x, y)
    assert len(calls) == 5
    assert a.shape == b.shape and _max_diff(a, b) <= TOL


def test_cached_functional_model_built_in_inference_mode_still_gives_gradients():
    functional._cached_model.cache_clear()
    x, y = _rand_pair(2)
    with torch.inference_mode():
        first = lpips_core.distance(x, y)  # builds and caches the model here
    x = x.clone().requires_grad_(True)
    d = lpips_core.distance(x, y)
    (g,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert_paths_agree(d.detach(), first, "alex", "autograd path vs inference-mode path")
