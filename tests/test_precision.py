"""precision='bf16' / 'int8': each mode's error within its contract on real photographs, the fp32
fallback and its one warning, the signature, and the quantised trunk built once.

The photographs are crops of scikit-image's *val* photographs of the mini set (none of the
int8 calibration photographs) with noise, blur and JPEG at three strengths: 8 references x 4
versions = 32 distances and 48 2AFC choices per trunk, 64x64 (the contract itself is measured
on LIVE and the mini set by benchmarks/precision_contract.py; the bounds here are in
tests/tolerances.py with their reasons).
"""

from __future__ import annotations

import copy
import functools
import io
import itertools
import warnings

import numpy as np
import pytest
import torch
from conftest import NETS, ours, photo, require_backbone
from PIL import Image, ImageFilter
from tolerances import PRECISION_CONTRACT, assert_paths_agree

import lpips_core
from lpips_core.model import precision as P

pytestmark = pytest.mark.skipif(
    not P.int8_support(torch.device("cpu"))[0], reason="int8 needs an x86-64 CPU with oneDNN's int8 kernels"
)

PHOTOS = ("astronaut", "coffee", "camera", "hubble_deep_field")


@functools.cache
def versions(side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(8, 3, s, s) references and (8, 4, 3, s, s) distorted versions, in [-1, 1]."""
    rng = np.random.default_rng(27)
    refs, dists = [], []
    for i in range(8):
        img = photo(PHOTOS[i % len(PHOTOS)])
        y, x = rng.integers(0, img.shape[0] - 2 * side), rng.integers(0, img.shape[1] - 2 * side)
        crop = np.asarray(Image.fromarray(img[y : y + 2 * side, x : x + 2 * side]).resize((side, side), Image.BICUBIC))
        out = []
        for kind in range(4):
            s = (kind + 1) / 4
            if kind % 2 == 0:
                d = np.clip(crop + rng.normal(0, 4 + 14 * s, crop.shape), 0, 255).astype(np.uint8)
            elif kind == 1:
                d = np.asarray(Image.fromarray(crop).filter(ImageFilter.GaussianBlur(0.4 + 1.2 * s)))
            else:
                buf = io.BytesIO()
                Image.fromarray(crop).save(buf, format="JPEG", quality=int(60 - 45 * s))
                d = np.asarray(Image.open(buf).convert("RGB"))
            out.append(lpips_core.im2tensor(d)[0])
        refs.append(lpips_core.im2tensor(crop)[0])
        dists.append(torch.stack(out))
    return torch.stack(refs), torch.stack(dists)


def distances(model) -> np.ndarray:
    refs, dists = versions()
    n, k = dists.shape[:2]
    with torch.inference_mode():
        d = model(refs.repeat_interleave(k, 0), dists.flatten(0, 1), input_range="-1,1")
    return d.flatten().double().numpy().reshape(n, k)


def contract_measures(d: np.ndarray, f: np.ndarray) -> dict:
    from scipy import stats

    rel = np.abs(d - f) / f
    flips = [
        np.sign(d[i, a] - d[i, b]) != np.sign(f[i, a] - f[i, b])
        for i in range(d.shape[0])
        for a, b in itertools.combinations(range(d.shape[1]), 2)
    ]
    return {
        "median_rel": float(np.median(rel)),
        "max_rel": float(rel.max()),
        "srocc": float(stats.spearmanr(d.ravel(), f.ravel()).statistic),
        "flipped": float(np.mean(flips)),
    }


def assert_within(mode: str, m: dict, what: str) -> None:
    c = PRECISION_CONTRACT[mode]
    assert m["median_rel"] <= c["median_rel"], (what, m)
    assert m["max_rel"] <= c["max_rel"], (what, m)
    assert m["srocc"] >= c["srocc"], (what, m)
    assert m["flipped"] <= c["flipped"], (what, m)


def fresh(net: str = "alex", precision: str = "fp32", config: P.Int8Config | None = None) -> lpips_core.LPIPS:
    """A new model in ``precision`` (a copy of the session's: building one costs a second)."""
    return copy.deepcopy(ours(net)).set_precision(precision, config)


@pytest.fixture
def no_bf16_units(monkeypatch):
    """This CPU as one without bf16 units (an AMX machine has them), and no warning given yet."""
    monkeypatch.setattr(P, "bf16_native", lambda device: False)
    monkeypatch.setattr(P, "_WARNED", set())


# --------------------------------------------------------------------------- the contracts
@pytest.mark.parametrize("net", NETS)
def test_int8_error_is_within_its_contract_on_real_photographs(net, one_thread):
    require_backbone(net)
    exact = distances(ours(net))
    model = fresh(net, "int8")
    approx = distances(model)
    assert_within("int8", contract_measures(approx, exact), f"{net} int8")
    assert not np.array_equal(approx, exact)  # it did run in int8
    assert model.signature().endswith(f"|precision:int8|lpips_core:{lpips_core.__version__}")


def test_bf16_numerics_are_within_their_contract(one_thread):
    """bf16 forced (emulated and slow where there are no bf16 units: alex only, 32 pairs of 64x64)."""
    exact = distances(ours("alex"))
    forced = fresh("alex")
    forced.dtype = torch.bfloat16
    assert_within("bf16", contract_measures(distances(forced), exact), "alex bf16")


def test_bf16_runs_as_bf16_where_the_cpu_has_bf16_units(monkeypatch, one_thread):
    monkeypatch.setattr(P, "bf16_native", lambda device: True)
    model = fresh("alex", "bf16")
    assert model.effective_precision() == "bf16" and "|precision:bf16|" in model.signature()
    refs, dists = versions()
    with torch.inference_mode():
        d = model(refs[:2], dists[:2, 0], input_range="-1,1")
        f = ours("alex")(refs[:2], dists[:2, 0], input_range="-1,1")
    assert d.dtype == torch.float32 and not torch.equal(d, f)  # bf16 trunk, float32 distances


# --------------------------------------------------------------------------- fallback
def test_bf16_without_bf16_units_warns_once_and_runs_exact_fp32(no_bf16_units):
    x, y = versions()[0][:2], versions()[1][:2, 1]
    with pytest.warns(P.PrecisionFallbackWarning, match="neither AVX512_BF16 nor AMX.*running exact fp32"):
        model = fresh("alex", "bf16")
        with torch.inference_mode():
            d = model(x, y, input_range="-1,1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: a second model and call stay quiet
        with torch.inference_mode():
            d2 = fresh("alex", "bf16")(x, y, input_range="-1,1")
            exact = ours("alex")(x, y, input_range="-1,1")
    assert model.effective_precision() == "fp32"  # the fp32 path itself: its numbers, within rounding order
    assert_paths_agree(d, exact, "alex", "bf16 fallback vs fp32")
    assert_paths_agree(d2, exact, "alex", "bf16 fallback (second model) vs fp32")
    assert model.signature() == ours("alex").signature()  # what ran: exact fp32


def test_int8_off_x86_cpus_falls_back_with_the_reason(monkeypatch):
    monkeypatch.setattr(P, "_WARNED", set())
    ok, why = P.support("int8", torch.device("cuda"))
    assert not ok and "x86 CPUs" in why
    with pytest.warns(P.PrecisionFallbackWarning, match="int8 runs on x86 CPUs only"):
        assert P.effective_precision("int8", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(P.platform, "machine", lambda: "aarch64")
    assert not P.int8_support(torch.device("cpu"))[0]


def test_unknown_precision_and_int8_misuse_are_refused():
    with pytest.raises(ValueError, match="precision='fp8'"):
        lpips_core.LPIPS(net="alex", precision="fp8")
    with pytest.raises(ValueError, match="compile=True"):
        lpips_core.LPIPS(net="alex", precision="int8", compile=True)
    model = fresh("alex", "int8")
    with pytest.raises(RuntimeError, match="torch.jit.script"):
        torch.jit.script(model)
    x = versions()[0][:1].clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="no gradients"):
        model(x, versions()[1][:1, 0])


# --------------------------------------------------------------------------- the cache
def test_int8_trunk_is_quantised_once_and_calibrated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LPIPS_CORE_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "_TRUNKS", {})
    calibrations = []
    real = P._calibrate
    monkeypatch.setattr(P, "_calibrate", lambda *a, **k: calibrations.append(1) or real(*a, **k))
    builds = P.BUILDS["count"]
    small = P.Int8Config(n_images=4, size=64)  # the caching, not the calibration, is tested here
    a, b = fresh("alex", "int8", small), fresh("alex", "int8", small)
    assert a.int8_trunk() is b.int8_trunk() and a.int8_trunk() is a.int8_trunk()
    assert P.BUILDS["count"] == builds + 1 and len(calibrations) == 1
    assert len(list((tmp_path / "int8").glob("*.json"))) == 1  # the calibrated ranges, on disk
    monkeypatch.setattr(P, "_TRUNKS", {})  # a new process: quantises the weights, does not calibrate
    c = fresh("alex", "int8", small)
    c.int8_trunk()
    assert len(calibrations) == 1
    x, y = versions()[0][:2], versions()[1][:2, 2]
    with torch.inference_mode():
        assert torch.equal(a(x, y, input_range="-1,1"), c(x, y, input_range="-1,1"))
    with torch.no_grad():  # new trunk weights: quantised again
        c.net.slice1[0].weight.mul_(1.01)
    assert c.int8_trunk() is not a.int8_trunk()


@pytest.mark.parametrize("net,version", [("alex", "0.1"), ("squeeze", "0.0")])
def test_official_trunks_use_the_shipped_ranges(net, version, tmp_path, monkeypatch):
    """No calibration (nor scikit-image) for the official weights: the same ranges on every machine."""
    require_backbone(net)
    monkeypatch.setenv("LPIPS_CORE_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "_TRUNKS", {})
    monkeypatch.setattr(P, "_calibrate", lambda *a, **k: pytest.fail("calibrated an official trunk"))
    copy.deepcopy(ours(net, version)).set_precision("int8").int8_trunk()
    assert P.BUILDS["count"] >= 1 and not (tmp_path / "int8").exists()


def test_functional_and_production_take_the_precision(monkeypatch):
    x, y = versions()[0][:2], versions()[1][:2, 0]
    d = lpips_core.distance(x, y, precision="int8", input_range="-1,1")
    f = lpips_core.distance(x, y, input_range="-1,1")
    assert d.shape == (2,) and not torch.equal(d, f)
    assert float(((d - f).abs() / f).max()) <= PRECISION_CONTRACT["int8"]["max_rel"]
    metric = lpips_core.ProductionLPIPS(net="alex", device="cpu", precision="int8")
    assert metric.precision == "int8" and "precision:int8" in metric.signature()
    assert metric.pairwise(torch.cat([x, y])).shape == (4, 4)


# --------------------------------------------------------------------------- dirs, allpairs, compare
def _folders(tmp_path):
    refs, dists = versions()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for i in range(4):
        Image.fromarray(lpips_core.tensor2im(refs[i : i + 1])).save(a / f"{i}.png")
        Image.fromarray(lpips_core.tensor2im(dists[i : i + 1, i % 4])).save(b / f"{i}.png")
    return a, b


def test_dirs_and_allpairs_record_the_precision(tmp_path):
    from lpips_core.eval.allpairs import AllPairsConfig, allpairs
    from lpips_core.eval.folders import FolderConfig, evaluate_folders

    a, b = _folders(tmp_path)
    exact = evaluate_folders(FolderConfig(a, b, workers=0, progress=False, plot=False))
    q = evaluate_folders(
        FolderConfig(a, b, tmp_path / "q.csv", workers=0, progress=False, plot=False, precision="int8")
    )
    assert "|precision:int8|" in q.summary["signature"]["lpips"]
    assert "precision" not in exact.summary["signature"]["lpips"]
    rel = [abs(x - y) / y for (_, x), (_, y) in zip(q.rows, exact.rows)]
    assert max(rel) <= PRECISION_CONTRACT["int8"]["max_rel"]
    from lpips_core.eval.resumable import ResumeError

    with pytest.raises(ResumeError, match="precision:int8"):  # an int8 table is not continued in fp32
        evaluate_folders(FolderConfig(a, b, tmp_path / "q.csv", workers=0, progress=False, plot=False, resume=True))
    res = allpairs(AllPairsConfig(a, tmp_path / "m.npy", workers=0, progress=False, precision="int8"))
    assert "|precision:int8|" in res.summary["signature"]["lpips"]
    matrix = res.load()
    assert matrix.shape == (4, 4) and (matrix.diagonal() == 0).all()


def test_cli_compare_precision_flag(tmp_path, capsys, no_bf16_units):
    from lpips_core.cli import main

    a, b = _folders(tmp_path)
    assert main(["compare", str(a / "0.png"), str(b / "0.png"), "--precision", "int8"]) == 0
    err = capsys.readouterr().err
    assert "|precision:int8|" in err
    assert main(["compare", str(a / "0.png"), str(b / "0.png"), "--precision", "bf16"]) == 0
    err = capsys.readouterr().err
    assert "lpips-core: warning: precision='bf16': this CPU has neither AVX512_BF16 nor AMX" in err
    assert "precision:" not in err.split("signature:")[1]
