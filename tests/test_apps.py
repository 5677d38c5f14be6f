"""The application wrapper and helpers, checked against the reference package and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED, needs_shared, photo, reference, require_backbone
from tolerances import PARITY_TOL, assert_parity, path_tol

from lpips_core import apps
from lpips_core.data.images import im2tensor


@pytest.fixture(scope="module")
def metric():
    require_backbone("alex")
    return apps.ProductionLPIPS(net="alex", device="cpu")


def _crops(n=4, size=64, seed=0):
    rng = np.random.default_rng(seed)
    img = photo("coffee")
    out = []
    for _ in range(n):
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        out.append(img[y : y + size, x : x + size].copy())
    return out


def test_inputs_of_every_kind_give_the_reference_distance(metric, tmp_path):
    from PIL import Image

    a, b = _crops(2)
    expected = reference("alex")(im2tensor(a), im2tensor(b)).item()
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(a).save(pa)
    Image.fromarray(b).save(pb)
    ta, tb = im2tensor(a)[0], im2tensor(b)[0]
    for x, y, norm in (
        (pa, pb, False),
        (str(pa), str(pb), False),
        (a, b, False),
        (Image.fromarray(a), Image.fromarray(b), False),
        (ta, tb, False),
        ((ta + 1) / 2, (tb + 1) / 2, True),
    ):
        d = metric(x, y, normalize=norm)
        assert isinstance(d, float) and d == pytest.approx(expected, abs=1e-5)
    batch = metric(torch.stack([ta, tb]), torch.stack([tb, ta]))
    assert batch.shape == (2,) and torch.allclose(batch, torch.full((2,), expected), atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        metric(a.astype(np.float32), b)
    with pytest.raises(TypeError, match="unsupported image type"):
        metric(3, b)
    assert "official alex" in repr(metric) and metric.device.type == "cpu"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def test_device_auto_picks_what_exists(monkeypatch):
    """'auto' (and None): CUDA when torch sees a GPU, else Apple MPS when available, else CPU; the one rule
    (lpips_core.devices) that ProductionLPIPS, dirs and allpairs share."""
    from lpips_core.devices import resolve_device

    # this machine, against torch's own availability checks (asked here, not through lpips_core)
    expected = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert apps.ProductionLPIPS.__init__.__globals__["resolve_device"] is resolve_device
    # the rule itself, with availability faked (torch.device("cuda") needs no GPU to be built)
    has_mps = getattr(torch.backends, "mps", None) is not None
    for cuda, mps, want in (
        (True, False, "cuda:0"),
        (True, True, "cuda:0"),
        (False, True, "mps"),
        (False, False, "cpu"),
    ):
        if mps and not has_mps:
            continue
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        if has_mps:
            monkeypatch.setattr(torch.backends.mps, "is_available", lambda mps=mps: mps)
        assert resolve_device("auto") == torch.device(want), (cuda, mps)
        assert resolve_device(None) == torch.device(want), (cuda, mps)
        # folder runs allow CUDA only
        assert resolve_device("auto", accelerators=("cuda",)) == torch.device(want if cuda else "cpu")
        # an explicit device is taken as given when it exists here; a bare 'cuda' is this rank's GPU
        assert resolve_device("cpu") == torch.device("cpu")
        if cuda:
            assert resolve_device("cuda:1") == torch.device("cuda", 1)
            monkeypatch.setenv("LOCAL_RANK", "1")
            assert resolve_device("cuda") == torch.device("cuda", 1)
            monkeypatch.delenv("LOCAL_RANK")
        else:
            with pytest.raises(ValueError, match="CUDA is not available"):
                resolve_device("cuda:1")
        assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_checkpoint_loads_once_and_scores_like_the_model(tmp_path):
    require_backbone("alex")
    import lpips_core

    model = lpips_core.LPIPS(net="alex")
    state = {k: v * 0.5 for k, v in model.linear_state_dict().items()}
    path = tmp_path / "half.pth"
    torch.save(state, path)
    wrapped = apps.ProductionLPIPS(checkpoint=path, device="cpu")
    a, b = _crops(2, seed=1)
    full = apps.ProductionLPIPS(net="alex", device="cpu")(a, b)
    assert wrapped(a, b) == pytest.approx(0.5 * full, rel=1e-5)  # the distance is linear in the weights
    assert str(path) in repr(wrapped)


def test_one_to_many_and_pairwise_match_single_calls(metric):
    crops = _crops(5, seed=2)
    ref_model = reference("alex")
    t = torch.cat([im2tensor(c) for c in crops])
    d = metric.one_to_many(crops[0], crops[1:])
    expected = torch.stack([ref_model(t[:1], t[i : i + 1]).flatten()[0] for i in range(1, 5)])
    assert torch.allclose(d, expected, atol=1e-5)
    m = metric.pairwise(crops)
    assert m.shape == (5, 5) and torch.allclose(m, m.T) and torch.all(m.diagonal() == 0)
    for i, j in ((0, 1), (2, 4), (3, 1)):
        assert m[i, j].item() == pytest.approx(ref_model(t[i : i + 1], t[j : j + 1]).item(), abs=PARITY_TOL)
    with pytest.raises(ValueError, match="share one size"):
        metric.pairwise([crops[0], crops[1][:32]])


def test_set_diversity_is_the_mean_over_pairs(metric):
    crops = _crops(4, seed=3)
    div = apps.set_diversity(crops, metric)
    # the oracle: the reference package's distance of each pair i < j, one call per pair
    ref_model = reference("alex")
    t = torch.cat([im2tensor(c) for c in crops])
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    with torch.no_grad():
        ref_d = np.array([ref_model(t[i : i + 1], t[j : j + 1]).item() for i, j in pairs], dtype=np.float64)
    assert ref_d.min() > 0.01  # four different crops: a real mean, not a sum of zeros
    assert div["mean"] == pytest.approx(ref_d.mean(), abs=PARITY_TOL)
    # each value within PARITY_TOL moves the sample std by at most PARITY_TOL * sqrt(n / (n - 1))
    assert div["std"] == pytest.approx(ref_d.std(ddof=1), abs=2 * PARITY_TOL)
    assert div["n_pairs"] == 6 and div["n_images"] == 4
    m = div["matrix"]
    assert m.shape == (4, 4) and torch.equal(m, m.T) and torch.all(m.diagonal() == 0)
    assert_parity(
        torch.tensor([m[i, j].item() for i, j in pairs], dtype=torch.float64),
        torch.from_numpy(ref_d),
        "diversity matrix",
    )
    # four copies of one image are not diverse at all
    assert apps.set_diversity([crops[0]] * 4, metric)["mean"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        apps.set_diversity(crops[:1], metric)


def test_jpeg_curve_gets_closer_as_quality_rises(metric):
    img = photo("astronaut")[:128, :128].copy()
    rows = apps.jpeg_quality_curve(img, qualities=(5, 30, 95), metric=metric)
    lp = [r["lpips"] for r in rows]
    ps = [r["psnr"] for r in rows]
    assert lp[0] > lp[1] > lp[2] and ps[0] < ps[1] < ps[2]
    assert rows[0]["bytes"] < rows[2]["bytes"]
    q = apps.compression_quality(img, img, metric)
    assert q["lpips"] == pytest.approx(0.0, abs=1e-6) and q["ssim"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="1..100"):
        apps.jpeg_quality_curve(img, qualities=(0,), metric=metric)


def test_jpeg_curve_scores_each_quality_as_compression_quality_does(metric):
    """The curve scores all versions against one pass of the original; each row must equal
    the single-pair scores of ``compression_quality`` on Pillow's round trip at that quality."""
    img = photo("coffee")[:96, :112].copy()
    qualities = (3, 20, 60, 95)
    rows = apps.jpeg_quality_curve(img, qualities=qualities, metric=metric)
    assert [r["quality"] for r in rows] == list(qualities)
    for q, row in zip(qualities, rows):
        decoded, n_bytes = apps.jpeg_roundtrip(img, q)
        single = apps.compression_quality(img, decoded, metric)
        assert row["bytes"] == n_bytes and row["bits_per_pixel"] == 8 * n_bytes / (96 * 112)
        assert row["lpips"] == pytest.approx(single["lpips"], abs=path_tol(single["lpips"]))
        # torchmetrics on a batch and on one pair: the same arithmetic per image, up to float32 rounding
        assert row["psnr"] == pytest.approx(single["psnr"], rel=1e-6)
        assert row["ssim"] == pytest.approx(single["ssim"], rel=1e-5)


def test_augmentation_distances(metric):
    img = _crops(1, size=96, seed=4)[0]
    out = apps.augmentation_distances(img, metric=metric)
    assert list(out) == list(apps.default_augmentations())
    assert all(v > 0 for v in out.values())
    # a given list of augmented images is scored as single calls would score them
    flipped = img[:, ::-1].copy()
    got = apps.augmentation_distances(img, [flipped, img], metric=metric)
    # batched and single calls are two of our float32 paths; d(x, x) is 0 up to the
    # roundings of a batch it shares with another image (1e-13 seen)
    tol = path_tol(got["0"], "alex")
    assert got["0"] == pytest.approx(metric(img, flipped), abs=tol) and got["1"] == pytest.approx(0, abs=1e-6)
    assert got["0"] == pytest.approx(out["horizontal flip"], abs=tol)
    with pytest.raises(ValueError, match="changed the size"):
        apps.augmentation_distances(img, {"half": lambda x: x[..., :48, :48]}, metric=metric)


@needs_shared
def test_live_jpeg_pair_from_files(metric):
    """File paths of a real rated pair go straight in; the worst-rated JPEG of a reference is the farthest."""
    import csv

    root = SHARED / "data" / "live_jpeg"
    rows = [r for r in csv.DictReader(open(root / "dmos.csv")) if r["reference"] == "refs/parrots.png"]
    if len(rows) < 2:
        pytest.skip("parrots not in the table")
    rows.sort(key=lambda r: float(r["dmos_realigned"]))
    best, worst = rows[0], rows[-1]
    d_best = metric(root / best["reference"], root / best["distorted"])
    d_worst = metric(root / worst["reference"], root / worst["distorted"])
    assert d_worst > d_best


def test_in_unit_range_maps_to_unit_and_back_with_clamping():
    """Hand-computed: x in [-1, 1] -> (x + 1) / 2 -> fn -> clamp to [0, 1] -> 2 u - 1."""
    shift = apps.in_unit_range(lambda u: u + 0.25)
    assert shift(torch.tensor([-1.0, 0.0, 0.5])).tolist() == [-0.5, 0.5, 1.0]  # 0.75 + 0.25 clamps at 1
    darker = apps.in_unit_range(lambda u: u - 0.75)
    assert darker(torch.tensor([-1.0, 1.0])).tolist() == [-1.0, -0.5]  # 0 - 0.75 clamps at 0


def test_jpeg_roundtrip_decodes_what_pillow_wrote():
    """A flat grey image survives quality 95 exactly; a noisy one comes back changed but close,
    and the byte count is that of Pillow's file written independently."""
    import io

    from PIL import Image

    flat = np.full((16, 16, 3), 128, np.uint8)
    decoded, n_bytes = apps.jpeg_roundtrip(flat, 95)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, flat)
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    low, low_bytes = apps.jpeg_roundtrip(noisy, 5)
    high, high_bytes = apps.jpeg_roundtrip(noisy, 95)
    assert low.shape == noisy.shape and not np.array_equal(low, noisy)

    def err(x):
        return np.abs(x.astype(int) - noisy).mean()

    assert err(high) < err(low) and low_bytes < high_bytes
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="JPEG", quality=5)
    assert low_bytes == len(buf.getvalue())
