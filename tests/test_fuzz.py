"""Property-based input fuzzing of the public entry points (hypothesis).

Every generated case must either give the reference package's numbers on the
equivalent valid input, or raise a clear ``TypeError``/``ValueError`` whose
message names the argument; anything else (a RuntimeError from deep inside
torch, an IndexError, a silently different number) fails.

Input policy (what "the equivalent valid input" is):

=====================  ==========================================================
dtype                  float32 as is; float64, float16 and bfloat16 are converted
                       to float32 (result = reference on ``x.float()``, returned
                       as float32); uint8, bool, integer and complex tensors are
                       refused with a TypeError pointing at ``im2tensor`` /
                       ``x.float() / 127.5 - 1``
memory layout          channels-last, transposed and strided (non-contiguous)
                       views give the values of their contiguous copy
channels               3 (RGB); 1 is repeated to RGB; anything else ValueError
dims                   (N, C, H, W) or (C, H, W) (batched to N = 1); others ValueError
NaN / Inf              ValueError "<arg> contains NaN or Inf values", no range warning
out of range           computed as given, one InputRangeWarning per model, pointing at
                       the caller's line
N = 0                  an empty result: (0, 1, 1, 1) from forward and one_to_many,
                       (0,) from distance, (0, 0) from pairwise
batch 1 vs batch N     broadcast (reference semantics); other mismatches ValueError
device                 inputs must be on the model's device; a 'meta' tensor (used
                       here as "another device") is a ValueError naming the argument;
                       ``distance(device=...)`` moves inputs, refusing unknown or
                       unavailable devices with a ValueError
size                   each side >= the net's minimum (alex 31, vgg 16, squeeze 16),
                       else ValueError
non-tensors            TypeError naming the argument
=====================  ==========================================================

Examples are bounded (``max_examples``) and derandomized so the suite is
reproducible in CI and stays within its time budget; set
``HYPOTHESIS_PROFILE=thorough`` for a longer, randomized run.
"""

from __future__ import annotations

import math
import os
import re
import warnings

import numpy as np
import pytest
import torch
from conftest import ours, reference
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from tolerances import PARITY_TOL, assert_parity, assert_paths_agree

import lpips_core
from lpips_core.model.checks import InputRangeWarning
from lpips_core.model.nets import MIN_INPUT_SIZE

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def bounded(n: int):
    """Per-test example budget in the CI profile (the thorough profile keeps its own)."""
    if settings.default.max_examples > 150:
        return settings(max_examples=settings.default.max_examples)
    return settings(max_examples=n)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
REFUSED_DTYPES = (torch.uint8, torch.bool, torch.int64, torch.int16, torch.complex64)
LAYOUTS = ("contiguous", "channels_last", "transposed", "strided")
CLEAR = (TypeError, ValueError)


# --------------------------------------------------------------------------- generating inputs
def make_images(seed: int, n: int, c: int, h: int, w: int, scale: float = 1.0) -> torch.Tensor:
    """(n, c, h, w) float32 values, uniform in [-scale, scale], from a seed (fast to draw)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, h, w, generator=g) * 2 - 1) * scale


def lay_out(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values in another memory layout (the result compares equal to ``x``)."""
    if layout == "channels_last" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "transposed":  # stored (.., W, H), viewed as (.., H, W): non-contiguous
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "strided":  # every other column of a twice-wider tensor
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


def canonical(x: torch.Tensor) -> torch.Tensor:
    """The equivalent valid input of the reference: float32, (N, 3, H, W), contiguous."""
    x = x.float()
    if x.dim() == 3:
        x = x[None]
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.contiguous()


def names_argument(exc: BaseException, names: tuple[str, ...]) -> bool:
    msg = str(exc)
    return any(re.search(rf"\b{re.escape(n)}\b", msg) for n in names)


def expected_problem(net: str, xs: dict[str, torch.Tensor | object]) -> type | None:
    """The error class our policy demands for these inputs, or None when they are valid."""
    tensors = {}
    for name, x in xs.items():
        if not isinstance(x, torch.Tensor) or not (x.is_floating_point()):
            return TypeError
        if x.dim() not in (3, 4) or x.shape[-3] not in (1, 3):
            return ValueError
        tensors[name] = x if x.dim() == 4 else x[None]
    shapes = [t.shape for t in tensors.values()]
    if len(shapes) == 2:
        (n0, *rest0), (n1, *rest1) = shapes
        if rest0 != rest1 or (n0 != n1 and 1 not in (n0, n1)):
            return ValueError
    if any(t.device.type == "meta" for t in tensors.values()):
        return ValueError
    if min(shapes[0][-2:]) < MIN_INPUT_SIZE[net]:
        return ValueError
    if any(t.numel() and not torch.isfinite(t).all() for t in tensors.values()):
        return ValueError
    return None


#: What may be wrong with a generated input; "none" (listed first, so hypothesis shrinks towards
#: it) is drawn about half of the time so that valid inputs are compared with the reference often.
FAULTS = ("none", "none", "none", "none", "dtype", "channels", "nonfinite", "small")


@st.composite
def image_case(draw, net: str = "alex", allow_bad: bool = True, fault: str | None = None):
    """One input tensor: batch, size, channels, dtype, memory layout, value range, and at most one fault."""
    fault = fault or (draw(st.sampled_from(FAULTS), label="fault") if allow_bad else "none")
    low = MIN_INPUT_SIZE[net]
    h, w = draw(st.integers(low, low + 24)), draw(st.integers(low, low + 24))
    if fault == "small":
        h = draw(st.integers(1, low - 1))
    n = draw(st.integers(0, 3))
    c = draw(st.sampled_from((2, 4, 5) if fault == "channels" else (3, 1)))
    dtype = draw(st.sampled_from(REFUSED_DTYPES if fault == "dtype" else FLOATS))
    layout = draw(st.sampled_from(LAYOUTS))
    scale = draw(st.sampled_from((1.0, 0.01, 3.0)))
    three_d = draw(st.booleans()) and n == 1
    x = make_images(draw(st.integers(0, 2**16)), n, c, h, w, scale)
    if fault == "nonfinite" and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(
            st.sampled_from((float("nan"), float("inf"), float("-inf")))
        )
    if dtype.is_floating_point or dtype.is_complex:
        x = x.to(dtype)
    else:
        x = ((x.clamp(-1, 1) + 1) * 127.5).to(dtype)
    if three_d:
        x = x[0]
    return lay_out(x, layout)


# --------------------------------------------------------------------------- forward against the reference
def check_against_reference(net: str, in0, in1, normalize: bool = False) -> None:
    """ours(in0, in1) equals the reference on the canonical inputs, or raises the policy's clear error."""
    model = ours(net)
    problem = expected_problem(net, {"in0": in0, "in1": in1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.no_grad():
                got = model(in0, in1, normalize=normalize)
        except CLEAR as exc:
            event(f"refused: {type(exc).__name__}: {re.sub(r'[-0-9(), .x]+', ' ', str(exc))[:40]}")
            assert problem is not None, f"valid input refused: {exc!r}"
            assert isinstance(exc, problem), f"expected {problem.__name__}, got {exc!r}"
            assert names_argument(exc, ("in0", "in1")), f"message does not name the argument: {exc}"
            assert not [w for w in caught if issubclass(w.category, InputRangeWarning)], (
                "a refused input must not also warn about its range"
            )
            return
    assert problem is None, f"expected {problem.__name__}, got a result"
    a, b = canonical(in0), canonical(in1)
    event(f"computed: {in0.dtype}/{in1.dtype}" + (", empty" if 0 in (a.shape[0], b.shape[0]) else ""))
    assert got.dtype == torch.float32
    assert got.shape == (max(a.shape[0], b.shape[0]) if min(a.shape[0], b.shape[0]) else 0, 1, 1, 1)
    if got.numel() == 0:
        return
    with torch.no_grad():
        expected = reference(net)(a, b, normalize=normalize)
    # the product's 1e-5, relative for the large distances of out-of-range inputs
    scale = max(1.0, float(expected.abs().max()))
    assert (got - expected).abs().max() <= PARITY_TOL * scale, (got.flatten(), expected.flatten())


@bounded(150)
@given(data=st.data())
def test_forward_is_the_reference_or_a_clear_error(data):
    net = "alex"
    in0 = data.draw(image_case(net), label="in0")
    # in1: mostly a valid image of a comparable shape (same, or a batch of 1), sometimes independent
    pairing = data.draw(st.sampled_from(("same shape", "batch of 1", "independent")), label="in1 is")
    if pairing == "independent":
        in1 = data.draw(image_case(net), label="in1")
    else:
        shape = in0.shape if pairing == "same shape" else (1, *in0.shape[-3:])
        in1 = make_images(data.draw(st.integers(0, 2**16)), math.prod(shape[:-3]), *shape[-3:]).view(shape)
        dtype = in0.dtype if in0.is_floating_point() else torch.float32
        in1 = lay_out(in1.to(dtype), data.draw(st.sampled_from(LAYOUTS), label="in1 layout"))
    if data.draw(st.booleans(), label="swap"):
        in0, in1 = in1, in0
    check_against_reference(net, in0, in1, normalize=False)


@bounded(20)
@given(case=image_case("squeeze", allow_bad=False), seed=st.integers(0, 2**16), normalize=st.booleans())
def test_squeeze_valid_inputs_match_the_reference(case, seed, normalize):
    x = case.float() if case.dim() == 4 else case.float()[None]
    other = make_images(seed, *x.shape).to(case.dtype)
    if normalize:
        case, other = (case.float() + 1) / 2, (other.float() + 1) / 2
    check_against_reference("squeeze", case, other, normalize=normalize)


@bounded(25)
@given(
    bad=st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.text(max_size=3),
        st.lists(st.floats(), max_size=3),
        st.just(np.zeros((1, 3, 32, 32), np.float32)),
    )
)
def test_non_tensors_are_type_errors_naming_the_argument(bad):
    x = make_images(0, 1, 3, 32, 32)
    for args, names in (((bad, x), ("in0",)), ((x, bad), ("in1",))):
        with pytest.raises(TypeError) as err:
            ours("alex")(*args)
        assert names_argument(err.value, names)
    with pytest.raises(TypeError, match="img0"):
        lpips_core.distance(bad, x)
    with pytest.raises(TypeError, match="images"):
        ours("alex").pairwise(bad)
    with pytest.raises(TypeError, match="ref"):
        ours("alex").one_to_many(bad, x)


# --------------------------------------------------------------------------- invariants
@st.composite
def valid_batch(draw, net: str = "alex", max_n: int = 4):
    low = MIN_INPUT_SIZE[net]
    n = draw(st.integers(1, max_n))
    h, w = draw(st.integers(low, low + 20)), draw(st.integers(low, low + 20))
    scale = draw(st.sampled_from((1.0, 0.3, 0.02)))
    return make_images(draw(st.integers(0, 2**16)), n, 3, h, w, scale)


@bounded(40)
@given(x=valid_batch(), seed=st.integers(0, 2**16), data=st.data())
def test_distance_invariants(x, seed, data):
    """d(x, x) == 0, symmetry and batch-order independence within float32 rounding, d >= 0."""
    model = ours("alex")
    y = make_images(seed, *x.shape)
    with torch.no_grad():
        dxx = model(x, x)
        dxy, dyx = model(x, y), model(y, x)
    assert torch.equal(dxx, torch.zeros_like(dxx))
    assert_paths_agree(dyx, dxy, "alex", "d(y, x) vs d(x, y)")  # the two trunk halves swap places
    assert (dxy >= 0).all()
    perm = torch.tensor(data.draw(st.permutations(range(x.shape[0])), label="perm"))
    with torch.no_grad():
        permuted = model(x[perm], y[perm])
    assert_paths_agree(permuted, dxy[perm], "alex", "permuted batch")
    # the functional form gives the same numbers
    assert_paths_agree(lpips_core.distance(x, y), dxy.flatten(), "alex", "distance()")


@bounded(30)
@given(x=valid_batch(max_n=5))
def test_pairwise_is_a_symmetric_matrix_of_forward_distances(x):
    model = ours("alex")
    d = model.pairwise(x, chunk_size=2)
    n = x.shape[0]
    assert d.shape == (n, n) and d.dtype == torch.float32
    assert torch.equal(d, d.T)
    assert torch.equal(torch.diagonal(d), torch.zeros(n))
    assert (d >= 0).all()
    i, j = torch.triu_indices(n, n, 1)
    if len(i):
        with torch.no_grad():
            pairs = reference("alex")(x[i], x[j]).flatten()
        assert_parity(d[i, j], pairs, "pairwise")


@bounded(30)
@given(x=valid_batch(max_n=4), data=st.data())
def test_one_to_many_equals_forward_on_each_pair(x, data):
    model = ours("alex")
    ref = make_images(data.draw(st.integers(0, 2**16)), 1, *x.shape[1:])
    ref_form = data.draw(st.sampled_from(("3d", "4d", "channels_last")), label="ref form")
    ref_in = ref[0] if ref_form == "3d" else lay_out(ref, "channels_last" if ref_form == "channels_last" else "")
    got = model.one_to_many(ref_in, x, chunk_size=data.draw(st.integers(1, 3)))
    with torch.no_grad():
        expected = reference("alex")(ref.expand_as(x).contiguous(), x)
    assert_parity(got, expected, "one_to_many")


@bounded(60)
@given(x=image_case("alex"), device=st.sampled_from(("cpu", "cpu", "cpu", "meta")), chunk=st.integers(1, 3))
def test_pairwise_and_one_to_many_inputs(x, device, chunk):
    """The same policy for pairwise and one_to_many, with their argument names."""
    x = x.to(device)
    n, size = (x.shape[0] if x.dim() == 4 else 1), x.shape[-2:]
    dtype = x.dtype
    problem = expected_problem("alex", {"images": x})
    model = ours("alex")
    event(f"{'refused' if problem else 'computed'}: {dtype} on {device}" + (", empty" if n == 0 else ""))
    try:
        d = model.pairwise(x, chunk_size=chunk)
    except CLEAR as exc:
        assert problem is not None and isinstance(exc, problem), repr(exc)
        assert names_argument(exc, ("images",)), str(exc)
    else:
        assert problem is None, f"expected {problem.__name__}"
        assert d.shape == (n, n)
        if n:
            with torch.no_grad():
                full = torch.stack(
                    [
                        reference("alex")(
                            canonical(x)[i : i + 1].expand_as(canonical(x)).contiguous(), canonical(x)
                        ).flatten()
                        for i in range(n)
                    ]
                )
            assert_parity(d, full, "pairwise")
    ref = make_images(1, 1, 3, *size)
    try:
        got = model.one_to_many(ref, x, chunk_size=chunk)
    except CLEAR as exc:
        assert problem is not None and isinstance(exc, problem), repr(exc)
        assert names_argument(exc, ("images",)), str(exc)
    else:
        assert problem is None
        assert got.shape == (n, 1, 1, 1)
        if n:
            with torch.no_grad():
                expected = reference("alex")(ref.expand(n, -1, -1, -1).contiguous(), canonical(x))
            assert_parity(got, expected, "one_to_many")


# --------------------------------------------------------------------------- functional distance
@pytest.mark.filterwarnings("ignore::lpips_core.model.checks.InputRangeWarning")
@bounded(60)
@given(case=image_case("alex"), device=st.sampled_from((None, "cpu", None, "cpu", "meta", "cuda:7", "nonsense", 3.5)))
def test_functional_distance_policy(case, device):
    other = case.clone() if isinstance(case, torch.Tensor) and case.is_floating_point() else case
    problem = expected_problem("alex", {"img0": case, "img1": other})
    if problem is None and device not in (None, "cpu"):
        problem = ValueError
    event(f"{'refused' if problem else 'computed'} (device={device!r})")
    try:
        d = lpips_core.distance(case, torch.flip(other, dims=[-1]) if problem is None else other, device=device)
    except CLEAR as exc:
        assert problem is not None and isinstance(exc, problem), repr(exc)
        assert names_argument(exc, ("img0", "img1", "device")), str(exc)
        return
    assert problem is None
    a = canonical(case)
    if a.shape[0] == 0:
        assert d.shape == (0,)
        return
    with torch.no_grad():
        expected = reference("alex")(a, torch.flip(a, dims=[-1])).flatten()
    assert d.dtype == torch.float32
    assert_parity(d, expected, "distance()")


# --------------------------------------------------------------------------- warnings: order and location
def test_non_finite_input_raises_without_a_range_warning_and_keeps_it():
    """The check order is type/shape -> finite -> range: an Inf image far outside [-1, 1]
    raises without warning, and the model's one range warning is still there for later."""
    model = lpips_core.LPIPS(net="alex")
    x = make_images(0, 1, 3, 32, 32) * 300
    x[0, 0, 3, 3] = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails here
        with pytest.raises(ValueError, match="in0 contains NaN or Inf"):
            model(x, make_images(1, 1, 3, 32, 32))
    with pytest.warns(InputRangeWarning) as record:
        model(torch.nan_to_num(x, posinf=300.0), make_images(1, 1, 3, 32, 32))
    assert len(record) == 1


@pytest.mark.parametrize("entry", ["forward", "no_grad forward", "one_to_many", "pairwise", "features", "distance"])
def test_range_warning_points_at_the_callers_line(entry):
    model = lpips_core.LPIPS(net="alex")
    x = make_images(0, 1, 3, 32, 32) * 255
    calls = {
        "forward": lambda: model(x, x),
        "no_grad forward": lambda: torch.no_grad()(model)(x, x),
        "one_to_many": lambda: model.one_to_many(x, x),
        "pairwise": lambda: model.pairwise(x),
        "features": lambda: model.features(x),
        "distance": lambda: lpips_core.distance(x, x, net="alex"),
    }
    if entry == "distance":
        from lpips_core.model.functional import _cached_model

        _cached_model("alex", "0.1", "cpu")._range_warned = False
    with pytest.warns(InputRangeWarning) as record:
        calls[entry]()
    assert [os.path.basename(w.filename) for w in record] == ["test_fuzz.py"]


# --------------------------------------------------------------------------- loaders
PIL_MODES = ("RGB", "L", "P", "RGBA", "LA", "CMYK", "1", "I;16", "PA")
FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "gif": "GIF", "tif": "TIFF", "webp": "WEBP", "ppm": "PPM"}


def expected_rgb(arr: np.ndarray, mode: str) -> np.ndarray:
    """What a lossless file of ``arr`` (H, W, 3 uint8) saved in ``mode`` must load as (as OpenCV would)."""
    if mode == "I;16":
        grey = (arr[:, :, 0].astype(np.uint16) * 257) >> 8
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    return np.asarray(Image.fromarray(arr).convert(mode).convert("RGB"))


def to_mode(arr: np.ndarray, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(arr[:, :, 0].astype(np.uint16) * 257)
    return Image.fromarray(arr).convert(mode)


def _save_kwargs(ext: str) -> dict:
    return {"lossless": True} if ext == "webp" else {}


def _storable() -> list[tuple[str, str]]:
    """(mode, extension) pairs Pillow can write (the others are not files anyone has)."""
    import io

    pairs = []
    for mode in PIL_MODES:
        for ext, fmt in FORMATS.items():
            try:
                to_mode(np.zeros((2, 2, 3), np.uint8), mode).save(io.BytesIO(), format=fmt, **_save_kwargs(ext))
            except (OSError, ValueError, KeyError):
                continue
            pairs.append((mode, ext))
    return pairs


STORABLE = _storable()


@bounded(120)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    mode_ext=st.sampled_from(STORABLE),
    seed=st.integers(0, 2**16),
    damage=st.sampled_from(("none", "truncate", "flip", "header", "none", "zero")),
    where=st.floats(0, 1),
)
def test_load_image_returns_rgb_uint8_or_names_the_file(tmp_path_factory, h, w, mode_ext, seed, damage, where):
    """Any file (any mode, format, damage) gives (H, W, 3) uint8 or an ImageLoadError naming it."""
    from lpips_core.data import load_patch
    from lpips_core.data.images import ImageLoadError, load_image

    mode, ext = mode_ext
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("img") / f"im.{ext}"
    to_mode(arr, mode).save(path, format=FORMATS[ext], **_save_kwargs(ext))
    data = bytearray(path.read_bytes())
    at = int(where * (len(data) - 1))
    if damage == "truncate":
        data = data[:at]
    elif damage == "flip":
        data[at] ^= 0x5A
    elif damage == "zero":
        data = bytearray()
    elif damage == "header":
        data[min(at, 24) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning on absurd damaged headers
        try:
            img = load_image(path)
            event(f"loaded ({damage})")
        except ImageLoadError as exc:
            event(f"ImageLoadError ({damage})")
            assert str(path) in str(exc)
            assert damage != "none", f"intact {mode} {ext} file refused: {exc}"
            with pytest.raises(ImageLoadError, match=re.escape(str(path))):
                load_patch(path, 16)
            return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    if damage == "none":
        assert img.shape[:2] == (h, w)
        lossless = (
            ext in ("png", "bmp", "tif", "ppm")
            or (ext == "webp" and mode != "I;16")
            or (ext == "gif" and mode in ("P", "L", "1"))
        )  # Pillow writes I;16 to webp/gif clipped
        if lossless and mode not in ("CMYK", "PA"):
            assert np.array_equal(img, expected_rgb(arr, mode)), (mode, ext)
        patch = load_patch(path, 16)
        assert patch.shape == (3, 16, 16) and patch.dtype == torch.float32
        assert float(patch.min()) >= -1 and float(patch.max()) <= 1


# --------------------------------------------------------------------------- the command line
@bounded(25)
@given(
    seed=st.integers(0, 2**16),
    size0=st.integers(28, 48),
    other_size=st.sampled_from((None, None, 33, 29)),
    kind=st.sampled_from(("png", "jpg", "grey", "rgba", "png", "empty", "text", "truncated", "missing")),
)
def test_cli_compare_prints_the_reference_or_one_line(tmp_path_factory, capsys, seed, size0, other_size, kind):
    """``lpips-core compare`` prints the reference's distance, or exits 2 with one line naming the file."""
    from lpips_core.cli import main

    folder = tmp_path_factory.mktemp("cli")
    size1 = other_size or size0
    rng = np.random.default_rng(seed)
    a = folder / "a.png"
    Image.fromarray(rng.integers(0, 256, (size0, size0, 3), dtype=np.uint8)).save(a)
    b = folder / f"b.{'jpg' if kind == 'jpg' else 'png'}"
    arr = rng.integers(0, 256, (size1, size1, 3), dtype=np.uint8)
    if kind in ("png", "jpg", "truncated"):
        Image.fromarray(arr).save(b)
    elif kind == "grey":
        Image.fromarray(arr[:, :, 0]).save(b)
    elif kind == "rgba":
        Image.fromarray(np.dstack([arr, arr[:, :, :1]])).save(b)
    elif kind == "empty":
        b.write_bytes(b"")
    elif kind == "text":
        b.write_text("not an image\n")
    if kind == "truncated":
        b.write_bytes(b.read_bytes()[: b.stat().st_size // 2])
    capsys.readouterr()
    code = main(["compare", str(a), str(b)])
    out, err = capsys.readouterr()
    event(f"{kind}: exit {code}")
    if code == 0:
        assert kind in ("png", "jpg", "grey", "rgba") and size0 == size1 and size0 >= MIN_INPUT_SIZE["alex"]
        x, y = lpips_core.load_tensor(a), lpips_core.load_tensor(b)
        with torch.no_grad():
            expected = reference("alex")(x, y).item()
        assert abs(float(out.strip().splitlines()[-1]) - expected) < 1e-5
    else:
        assert code == 2, err
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("lpips-core: error:"), err
        named = str(b) in lines[0] or b.name in lines[0] or "too small" in lines[0]
        assert named, lines[0]


# --------------------------------------------------------------------------- judgment tables
JUDGMENTS = {
    "0.25": 0.25,
    "1": 1.0,
    "0": 0.0,
    " 0.5 ": 0.5,
    "nan": None,
    "1.5": None,
    "-0.1": None,
    "": None,
    "abc": None,
    "inf": None,
    "0.5;0.2": None,
}
PATHS = ("ok", "ok", "ok", "missing", "empty", "damaged")


@bounded(40)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(PATHS), st.sampled_from(PATHS), st.sampled_from(PATHS), st.sampled_from(sorted(JUDGMENTS))
        ),
        max_size=6,
    ),
    fmt=st.sampled_from(("csv", "json")),
    on_error=st.sampled_from(("skip", "raise")),
    garbage=st.sampled_from((None, None, None, b"\xff\xfe\x00\x80", b"{[", b"\x00" * 7)),
)
def test_judgment_tables_give_the_valid_rows_or_one_clear_error(tmp_path_factory, rows, fmt, on_error, garbage):
    """A CSV/JSON table of 2AFC rows: the dataset holds exactly the valid rows with their judgments
    (``on_error='skip'``, hand-checked here), or one DataError naming the file and the bad rows."""
    import csv as csv_module
    import io
    import json

    from lpips_core.data import DataError, TwoAFCDataset

    folder = tmp_path_factory.mktemp("table")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / "ok.png")
    (folder / "damaged.png").write_bytes((folder / "ok.png").read_bytes()[:30])
    names = {"ok": "ok.png", "missing": "missing.png", "empty": "", "damaged": "damaged.png"}
    table = folder / f"t.{fmt}"
    header = ["ref_path", "img1_path", "img2_path", "judgment"]
    records = [[names[a], names[b], names[c], j] for a, b, c, j in rows]
    if garbage is not None:
        table.write_bytes(garbage)
    elif fmt == "csv":
        buf = io.StringIO()
        csv_module.writer(buf).writerows([header] + records)
        table.write_text(buf.getvalue())
    else:
        table.write_text(json.dumps([dict(zip(header, r)) for r in records]))
    valid = [JUDGMENTS[j] for a, b, c, j in rows if {a, b, c} == {"ok"} and JUDGMENTS[j] is not None]
    bad = len(rows) - len(valid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skip warning
        try:
            ds = TwoAFCDataset(table, on_error=on_error)
        except DataError as exc:
            assert str(table) in str(exc)
            assert garbage is not None or (bad and (on_error == "raise" or not valid)) or not rows, str(exc)
            return
    assert garbage is None and (bad == 0 or on_error == "skip")
    assert list(ds.values) == valid
    if valid:
        item = ds[0]
        assert item["ref"].shape == (3, 64, 64) and float(item["judge"]) == pytest.approx(valid[0])


# --------------------------------------------------------------------------- array <-> tensor conversions
@bounded(40)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    grey=st.booleans(),
    scale=st.sampled_from((1.0, 1.0, 1.5)),
)
def test_im2tensor_and_tensor2im_match_the_reference(h, w, seed, grey, scale):
    """Equal to ``lpips.im2tensor``/``lpips.tensor2im`` in range; out of range the reference's uint8
    cast wraps around (1.1 -> 11) where ours clips (-> 255)."""
    import lpips

    from lpips_core import im2tensor, tensor2im

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w) if grey else (h, w, 3), dtype=np.uint8)
    ours_t = im2tensor(img)
    assert torch.equal(ours_t, lpips.im2tensor(img if not grey else img[:, :, None]))
    t = torch.from_numpy(rng.uniform(-scale, scale, (1, 3, h, w)).astype(np.float32))
    raw = (t[0].permute(1, 2, 0).numpy() + 1) * 127.5
    if scale == 1.0:
        assert np.array_equal(tensor2im(t), lpips.tensor2im(t))
    assert np.array_equal(tensor2im(t), np.clip(raw, 0, 255).astype(np.uint8))


def test_im2tensor_warns_on_float_images_in_0_1():
    """The classic silent mistake: a [0, 1] float image given where 0-255 is expected."""
    from lpips_core import im2tensor

    img = np.random.default_rng(0).random((8, 8, 3))
    with pytest.warns(InputRangeWarning, match=r"in \[0, 1\]") as record:
        im2tensor(img)
    assert os.path.basename(record[0].filename) == "test_fuzz.py"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        im2tensor(img * 255)  # 0-255 floats are fine
        im2tensor((img * 255).astype(np.uint8))


# --------------------------------------------------------------------------- a real second device
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the 'meta' cases above stand in)")
def test_inputs_on_another_real_device():
    model = lpips_core.LPIPS(net="alex").cuda()
    x = make_images(0, 2, 3, 40, 40)
    with pytest.raises(ValueError, match="in0 is on cpu but the model is on cuda"):
        model(x, x.cuda())
    with pytest.raises(ValueError, match="in1 is on cpu but the model is on cuda"):
        model(x.cuda(), x)
    with pytest.raises(ValueError, match="images is on cpu"):
        model.pairwise(x)
    y = make_images(1, 2, 3, 40, 40)
    on_gpu = lpips_core.distance(x, y, device="cuda")  # distance moves its inputs
    assert on_gpu.device.type == "cuda"
    with torch.no_grad():
        assert (on_gpu.cpu() - reference("alex")(x, y).flatten()).abs().max() <= 1e-3  # TF32 convolutions
