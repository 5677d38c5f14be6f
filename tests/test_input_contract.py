"""The input contract: input_range on every entry point, the [0, 1] warning, signatures.

Oracles: the reference ``lpips`` package (with ``normalize=True`` for [0, 1]
images), hand-written signature strings, and counts of the min/max passes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lpips_core
from lpips_core.apps import ProductionLPIPS
from lpips_core.model.checks import InputRangeWarning, ZeroOneRangeWarning
from lpips_core.model.ranges import parse_input_range
from tests.conftest import ours, photo_pairs, reference
from tests.tolerances import assert_parity


@pytest.fixture(scope="module")
def photos01():
    """Two real photograph crops and their distortions, in [0, 1] (all >= 0, like a renderer's output)."""
    x, y = photo_pairs(size=(64, 64))
    return (x[:2] + 1) / 2, (y[:2] + 1) / 2


def zero_one_warnings(caught) -> list:
    return [w for w in caught if issubclass(w.category, ZeroOneRangeWarning)]


def test_zero_one_images_warn_once_per_call_site(photos01):
    a, b = photos01
    model = lpips_core.LPIPS(net="alex")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            model(a, b)  # one call site, three calls
        model(a, b)  # a second call site
    got = zero_one_warnings(caught)
    assert len(got) == 2, [str(w.message) for w in got]
    assert {w.filename for w in got} == {__file__}
    msg = str(got[0].message)
    for hint in ("[-1, 1]", "normalize=True", "input_range='0,1'", "input_range='-1,1'", "no negative value"):
        assert hint in msg, (hint, msg)


@pytest.mark.parametrize("how", ["normalize", "call range", "model range", "confirmed -1,1"])
def test_declared_ranges_are_silent(photos01, how):
    a, b = photos01
    calls = {
        "normalize": lambda: ours()(a, b, normalize=True),
        "call range": lambda: ours()(a, b, input_range="0,1"),
        "model range": lambda: lpips_core.LPIPS(net="alex", input_range="0,1")(a, b),
        "confirmed -1,1": lambda: lpips_core.LPIPS(net="alex", input_range="-1,1")(a * 2 - 1, b * 2 - 1),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calls[how]()


def test_real_minus_one_one_photographs_do_not_warn():
    x, y = photo_pairs(size=(64, 64))  # real photographs in [-1, 1]: dark pixels are negative
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours()(x, y)


@pytest.mark.parametrize("spelling", ["0,1", "(0, 1)", (0, 1), "0,255", "uint8 tensor"])
def test_ranges_equal_the_reference_with_normalize(photos01, spelling):
    a, b = photos01
    a8, b8 = (a * 255).round(), (b * 255).round()
    with torch.no_grad():
        expected = reference()(a8 / 255, b8 / 255, normalize=True)
        if spelling == "uint8 tensor":
            got = ours()(a8.to(torch.uint8), b8.to(torch.uint8), input_range="0,255")
        elif spelling == "0,255":
            got = ours()(a8, b8, input_range="0,255")
        else:
            got = ours()(a8 / 255, b8 / 255, input_range=spelling)
    assert_parity(got, expected, f"input_range={spelling!r}")


def test_distance_and_production_take_input_range(photos01):
    a, b = photos01
    with torch.no_grad():
        expected = reference()(a, b, normalize=True).flatten()
    assert_parity(lpips_core.distance(a, b, input_range="0,1"), expected, "distance")
    metric = ProductionLPIPS(net="alex", device="cpu", input_range="0,1")
    assert_parity(metric(a, b), expected, "ProductionLPIPS")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric(a, b)
        metric.one_to_many(a[0], b)
    assert "range:0,1" in metric.signature()


def test_bad_input_range_is_a_clear_error(photos01):
    a, b = photos01
    with pytest.raises(ValueError, match=r"input_range='0-1'.*'-1,1'.*'0,1'.*'0,255'"):
        parse_input_range("0-1")
    with pytest.raises(ValueError, match="input_range"):
        lpips_core.LPIPS(net="alex", input_range="0..1")
    with pytest.raises(ValueError, match="normalize=True.*input_range='0,255'"):
        ours()(a, b, normalize=True, input_range="0,255")


def test_out_of_range_still_warns_first(photos01):
    """0-255 data under the default: the out-of-range warning, not the [0, 1] one."""
    a, b = photos01
    with pytest.warns(InputRangeWarning, match="127.5") as record:
        lpips_core.LPIPS(net="alex")(a * 255, b * 255)
    assert not zero_one_warnings(record)


def test_the_warning_costs_no_extra_pass(photos01, monkeypatch):
    """One min/max pass per input (the finiteness check's), whatever the range."""
    a, b = photos01
    model = lpips_core.LPIPS(net="alex")
    calls = []
    real = torch.aminmax
    monkeypatch.setattr(torch, "aminmax", lambda x, *args, **kw: calls.append(1) or real(x, *args, **kw))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        model(a, b)
        model(a * 255, b * 255)
    assert len(calls) == 4


def test_signature_default_and_fields():
    assert ours().signature() == f"lpips|net:alex|v:0.1|range:-1,1|size:native|lpips_core:{lpips_core.__version__}"
    v = lpips_core.__version__
    model = lpips_core.LPIPS(net="alex", version="0.0", spatial=True, input_range="0,1", lpips=False)
    assert model.signature(size=64) == f"lpips|net:alex|v:0.0|range:0,1|size:64|baseline|spatial:on|lpips_core:{v}"
    bf16 = lpips_core.LPIPS(net="alex", dtype=torch.bfloat16)
    assert bf16.signature() == f"lpips|net:alex|v:0.1|range:-1,1|size:native|dtype:bf16|lpips_core:{v}"


def test_cli_compare_prints_the_signature_and_reads_arrays(tmp_path, photos01, capsys):
    from lpips_core.cli import main

    a, b = photos01
    np.save(tmp_path / "a.npy", a[0].permute(1, 2, 0).numpy())
    np.save(tmp_path / "b.npy", b[0].permute(1, 2, 0).numpy())
    assert main(["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--input-range", "0,1"]) == 0
    out, err = capsys.readouterr()
    with torch.no_grad():
        expected = float(reference()(a[:1], b[:1], normalize=True))
    assert abs(float(out) - expected) <= 1e-5
    assert "signature: lpips|net:alex|v:0.1|range:0,1|size:native|" in err


def test_signature_names_other_weights(tmp_path):
    from lpips_core.model import load_lpips_checkpoint

    path = tmp_path / "mine.pth"
    torch.save(ours().linear_state_dict(), path)
    v = lpips_core.__version__
    assert (
        load_lpips_checkpoint(path).signature()
        == f"lpips|net:alex|v:0.1|range:-1,1|size:native|lin:mine.pth|lpips_core:{v}"
    )
    assert "|lin:custom|" in lpips_core.LPIPS(net="alex", pretrained=False).signature()
    model = lpips_core.LPIPS(net="alex", pretrained=False)
    model.load_linear_weights(path)
    assert "|lin:mine.pth|" in model.signature()


def test_cli_compare_mask_png(tmp_path, capsys):
    from PIL import Image

    from lpips_core.cli import main

    x, y = photo_pairs(size=(64, 64))
    for name, t in (("a.png", x[0]), ("b.png", y[0])):
        Image.fromarray(((t.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(tmp_path / name)
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "all.png")
    small = np.zeros((64, 64), np.uint8)
    small[4:60, 4:60] = 255
    Image.fromarray(small).save(tmp_path / "small.png")
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    assert main(["compare", a, b, "--mask", str(tmp_path / "all.png")]) == 0
    out, err = capsys.readouterr()
    from lpips_core import load_tensor

    with torch.no_grad():
        expected = float(reference()(load_tensor(a), load_tensor(b)))
    assert abs(float(out) - expected) <= 1e-5  # an all-white mask is the unmasked distance
    assert "|range:0,255|size:native|mask:hard|lpips_core:" in err
    assert main(["compare", a, b, "--mask", str(tmp_path / "small.png")]) == 0
    _, err = capsys.readouterr()
    assert "lpips-core: warning: masked LPIPS (hard): layer(s) relu3, relu4, relu5" in err
    assert "|mask:hard|dropped:relu3,relu4,relu5|" in err
