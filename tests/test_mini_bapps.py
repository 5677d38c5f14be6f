"""The distortions and the mini-BAPPS builder: layout, determinism, the observer (checked
against the reference ``lpips`` package and scikit-image), atomic builds, and the built set."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import photo, reference, require_backbone
from tolerances import PARITY_TOL

from lpips_core.data import JNDDataset, TwoAFCDataset, photos
from lpips_core.data import distortions as D
from lpips_core.data.images import load_image
from lpips_core.studies import mini_bapps as M

#: metadata.csv stores distances with 6 decimals (rounding <= 5e-7), on top of the parity claim
CSV_TOL = PARITY_TOL + 5e-7

TINY = M.MiniBappsConfig(observer="lab-l2", train_refs=3, train_pool=3, val_refs=3, val_pool=3, compositions_refs=2)
SUBSETS_2AFC = ["2afc/train/traditional", "2afc/val/traditional", "2afc/val/compositions"]
SUBSETS_JND = ["jnd/val/traditional", "jnd/val/compositions"]


def _crop(name="astronaut", size=80):
    return np.ascontiguousarray(photo(name)[100 : 100 + size, 150 : 150 + size])


# --------------------------------------------------------------------------- distortions
@pytest.mark.parametrize("name", list(D.DISTORTIONS))
def test_each_distortion_is_seeded_uint8_and_grows_with_strength(name):
    img = _crop()
    out = D.DISTORTIONS[name](img, 0.7, np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, D.DISTORTIONS[name](img, 0.7, np.random.default_rng(1)))  # same seed, same image
    weak = np.abs(D.DISTORTIONS[name](img, 0.05, np.random.default_rng(1)).astype(float) - img).mean()
    strong = np.abs(D.DISTORTIONS[name](img, 1.0, np.random.default_rng(1)).astype(float) - img).mean()
    assert strong > weak and strong > 2.0, (weak, strong)


def test_gaussian_noise_has_the_documented_sigma():
    grey = np.full((200, 200, 3), 128, np.uint8)
    for s in (0.0, 0.5, 1.0):
        residual = D.gaussian_noise(grey, s, np.random.default_rng(0)).astype(float) - 128
        assert residual.std() == pytest.approx(2 + 38 * s, rel=0.03)


def test_gaussian_blur_matches_scikit_image():
    from skimage.filters import gaussian

    img = _crop()
    expected = gaussian(
        img.astype(np.float64), sigma=0.3 + 2.7 * 0.4, mode="reflect", channel_axis=-1, preserve_range=True
    )
    out = D.gaussian_blur(img, 0.4, np.random.default_rng(0))
    assert np.abs(out.astype(float) - expected).max() <= 1.0


def test_quantization_levels_and_gamma_value():
    ramp = np.repeat(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 4, 0), 3, 2)
    for s, levels in ((0.0, 32), (1.0, 3)):  # L = round(2 ** (5 - 3.4 s))
        assert len(np.unique(D.quantization(ramp, s, np.random.default_rng(0)))) == levels
    # gamma: 255 * (x / 255) ** g with g = exp(+-1.2 s); x = 64, s = 1 -> g = e^1.2 or e^-1.2
    out = D.gamma(np.full((2, 2, 3), 64, np.uint8), 1.0, np.random.default_rng(0))
    candidates = {round(255 * (64 / 255) ** np.exp(1.2)), round(255 * (64 / 255) ** np.exp(-1.2))}
    assert int(out[0, 0, 0]) in candidates


def test_motion_kernel_is_a_normalised_line():
    k = D.motion_kernel(9.0, 0.0)  # horizontal: all mass on the middle row, spread like a uniform segment
    assert k.sum() == pytest.approx(1.0)
    assert k[k.shape[0] // 2].sum() == pytest.approx(1.0, abs=1e-9)
    x = np.arange(k.shape[1]) - k.shape[1] // 2
    variance = (k.sum(0) * x**2).sum()
    assert variance == pytest.approx(9.0**2 / 12, rel=0.15)


def test_apply_composes_and_validates():
    img = _crop()
    rng = np.random.default_rng(3)
    both = D.apply(img, [("gaussian_blur", 0.5), ("jpeg", 0.9)], rng)
    blur_then_jpeg = D.jpeg(D.gaussian_blur(img, 0.5, None), 0.9, None)
    assert np.array_equal(both, blur_then_jpeg)
    with pytest.raises(ValueError, match="unknown distortion 'sepia'"):
        D.apply(img, [("sepia", 0.5)], rng)
    with pytest.raises(ValueError, match="outside"):
        D.apply(img, [("jpeg", 1.5)], rng)
    with pytest.raises(ValueError, match="uint8"):
        D.apply(img.astype(np.float32), [("jpeg", 0.5)], rng)


# --------------------------------------------------------------------------- observer pieces
def test_sample_judges_are_binomial_fractions():
    rng = np.random.default_rng(0)
    h = M.sample_judges(np.full(20000, 0.3), 5, rng)
    assert set(np.round(h * 5, 6)) <= {0, 1, 2, 3, 4, 5}
    assert h.mean() == pytest.approx(0.3, abs=0.01)
    assert h.var() == pytest.approx(0.3 * 0.7 / 5, rel=0.05)  # binomial variance / n^2
    assert M.psychometric(0.0) == 0.5 and M.psychometric(np.log(3)) == pytest.approx(0.75)


# --------------------------------------------------------------------------- tiny builds
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return M.build_mini_bapps(tmp_path_factory.mktemp("mini") / "mini_bapps", TINY)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in ("README.md", ".complete"):  # these hold the build time
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_tiny_build_layout_sizes_and_judge_values(tiny):
    marker = json.loads((tiny / ".complete").read_text())
    assert marker["fingerprint"] == M.fingerprint(TINY) and M.is_complete(tiny, TINY)
    expected = {
        "2afc/train/traditional": 3 * 3,
        "2afc/val/traditional": 3 * 3,
        "2afc/val/compositions": 2 * 3,
        "jnd/val/traditional": 3 * 3,
        "jnd/val/compositions": 2 * 3,
    }
    assert marker["sizes"] == expected

    train = TwoAFCDataset(tiny, split="train")
    val = TwoAFCDataset(tiny, split="val")
    jnd = JNDDataset(tiny)
    assert (len(train), len(val), len(jnd)) == (9, 15, 15)
    assert val.subsets == ["compositions", "traditional"]
    assert np.allclose(train.judges * 2, np.round(train.judges * 2))  # 2 judges per train triplet
    assert np.allclose(val.judges * 5, np.round(val.judges * 5), atol=1e-6)  # 5 per val triplet
    assert np.allclose(jnd.sames * 3, np.round(jnd.sames * 3), atol=1e-4)  # 3 per JND pair
    item = val[0]
    assert item["ref"].shape == (3, 64, 64) and item["judge"].shape == (1,)

    card = (tiny / "README.md").read_text()
    assert "**These judgments are NOT human judgments.**" in card
    assert "T = 2.0" in card and "astronaut" in card


def test_no_photograph_in_both_train_and_val(tiny):
    train = set(pd.read_csv(tiny / "2afc/train/traditional/metadata.csv").photo)
    val = set().union(*(set(pd.read_csv(tiny / s / "metadata.csv").photo) for s in SUBSETS_2AFC[1:] + SUBSETS_JND))
    assert train and val and not train & val
    assert train <= set(photos.TRAIN_PHOTOS) and val <= set(photos.VAL_PHOTOS)
    assert not set(photos.TRAIN_PHOTOS) & set(photos.VAL_PHOTOS)


def test_lab_observer_distances_and_probabilities_recomputed_independently(tiny):
    """d from the written PNGs with scikit-image's CIE76 formula; P from the documented logistic."""
    from skimage.color import deltaE_cie76, rgb2lab

    obs = M.OBSERVERS["lab-l2"]
    folder = tiny / "2afc/val/traditional"
    meta = pd.read_csv(folder / "metadata.csv", dtype={"id": str})
    for row in meta.itertuples():
        ref, p0, p1 = (rgb2lab(load_image(folder / k / f"{row.id}.png")) for k in ("ref", "p0", "p1"))
        assert deltaE_cie76(ref, p0).mean() == pytest.approx(row.d0, abs=1e-5)
        assert deltaE_cie76(ref, p1).mean() == pytest.approx(row.d1, abs=1e-5)
        assert row.p_prefer_p1 == pytest.approx(1 / (1 + np.exp(-(row.d0 - row.d1) / obs.temperature)), abs=1e-6)
        assert float(np.load(folder / "judge" / f"{row.id}.npy")[0]) == pytest.approx(row.judge, abs=1e-4)
    jmeta = pd.read_csv(tiny / "jnd/val/traditional/metadata.csv", dtype={"id": str})
    p = 1 / (1 + np.exp(-(obs.jnd_threshold - jmeta.distance) / obs.jnd_temperature))
    np.testing.assert_allclose(jmeta.p_same, p, atol=1e-6)
    assert (jmeta.p0_distortion.eq("none") ^ jmeta.p1_distortion.eq("none")).all()  # one side is the reference


def test_builds_are_deterministic_and_seeded(tiny, tmp_path):
    again = M.build_mini_bapps(tmp_path / "again", TINY)
    assert _tree_hash(again) == _tree_hash(tiny)
    other = M.build_mini_bapps(tmp_path / "other", dataclasses.replace(TINY, seed=1))
    assert _tree_hash(other) != _tree_hash(tiny)


def test_complete_build_is_kept_and_force_rebuilds(tmp_path):
    out = M.build_mini_bapps(tmp_path / "m", TINY)
    probe = out / "2afc/train/traditional/judge/000000.npy"
    inode = probe.stat().st_ino
    M.build_mini_bapps(out, TINY)
    assert probe.stat().st_ino == inode  # cached: nothing rewritten
    M.build_mini_bapps(out, TINY, force=True)
    assert probe.stat().st_ino != inode


def test_failed_build_leaves_nothing_half_written(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(M, "_write_card", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        M.build_mini_bapps(tmp_path / "fresh", TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fresh.lock"]  # no dataset, no temp folder

    monkeypatch.undo()
    good = M.build_mini_bapps(tmp_path / "kept", TINY)
    before = _tree_hash(good)
    monkeypatch.setattr(M, "_write_card", broken)
    with pytest.raises(RuntimeError):
        M.build_mini_bapps(good, TINY, force=True)
    assert _tree_hash(good) == before and M.is_complete(good, TINY)  # the old build survives


def test_shipped_observer_distances_replace_the_observer_and_give_the_same_build(tiny, tmp_path, monkeypatch):
    """Distances written by a live build are used by the next build of the same pools, whose
    files are then byte for byte those of the live build; other pools are observed live."""
    monkeypatch.setattr(M, "OBSERVED", tmp_path / "observed.npz")
    M.build_mini_bapps(tmp_path / "live", TINY, write_observed=True)
    with np.load(M.OBSERVED, allow_pickle=False) as stored:
        assert len(stored.files) == 3  # train, val, compositions

    def no_observer(name):
        raise AssertionError("the observer ran although its distances were shipped")

    monkeypatch.setattr(M, "make_distance", no_observer)
    shipped = M.build_mini_bapps(tmp_path / "shipped", TINY)
    assert _tree_hash(shipped) == _tree_hash(tiny)
    assert "shipped for 3 of 3" in json.loads((shipped / ".complete").read_text())["observer_distances"]
    with pytest.raises(AssertionError, match="observer ran"):  # other pools: no shipped distances
        M.build_mini_bapps(tmp_path / "other", dataclasses.replace(TINY, seed=1))


def test_stored_distances_need_the_exact_pools_and_shape(tmp_path, monkeypatch):
    pools = M._Pools(refs=[], recipes=[], ref_patches=np.zeros((2, 4, 4, 3), np.uint8),
                     pool_patches=np.zeros((2, 3, 4, 4, 3), np.uint8))  # fmt: skip
    key = M.pools_key("lpips-vgg", pools)
    monkeypatch.setattr(M, "OBSERVED", tmp_path / "observed.npz")
    np.savez_compressed(M.OBSERVED, **{key: np.arange(6.0).reshape(2, 3)})
    np.testing.assert_array_equal(M.stored_distances(key, (2, 3)), np.arange(6.0).reshape(2, 3))
    assert M.stored_distances(key, (3, 2)) is None
    pools.pool_patches[1, 2, 3, 3, 0] = 1  # one value of one pixel
    assert M.pools_key("lpips-vgg", pools) != key and M.pools_key("lab-l2", pools) != key
    (tmp_path / "observed.npz").write_bytes(b"damaged")
    assert M.stored_distances(key, (2, 3)) is None


def test_lpips_vgg_observer_matches_reference_package(tmp_path):
    """The default observer's distances, recomputed from the PNGs by the reference ``lpips``."""
    require_backbone("vgg")
    config = dataclasses.replace(
        TINY, observer="lpips-vgg", train_refs=1, train_pool=2, val_refs=2, val_pool=2, compositions_refs=1
    )
    out = M.build_mini_bapps(tmp_path / "vgg", config)
    ref_model = reference("vgg", "0.1")
    for subset in SUBSETS_2AFC:
        folder = out / subset
        meta = pd.read_csv(folder / "metadata.csv", dtype={"id": str})
        load = lambda k, folder=folder, meta=meta: torch.stack(  # noqa: E731
            [TwoAFCDataset(folder)[i][k] for i in range(len(meta))]
        )
        with torch.no_grad():
            d0 = ref_model(load("ref"), load("p0")).flatten().numpy()
            d1 = ref_model(load("ref"), load("p1")).flatten().numpy()
        np.testing.assert_allclose(meta.d0, d0, atol=CSV_TOL)
        np.testing.assert_allclose(meta.d1, d1, atol=CSV_TOL)


# --------------------------------------------------------------------------- the course's set (when built)
MINI = M.default_dir()
needs_mini = pytest.mark.skipif(not M.is_complete(MINI), reason="mini-BAPPS not built (make mini-bapps)")


@needs_mini
def test_built_mini_set_is_large_enough_for_two_point_confidence():
    marker = json.loads((MINI / ".complete").read_text())
    n_val = marker["sizes"]["2afc/val/traditional"]
    assert 1.96 * np.sqrt(0.25 / n_val) < 0.02  # worst-case 95% half-width of a 2AFC score, independent items
    assert marker["sizes"]["2afc/train/traditional"] >= 2000
    assert marker["sizes"]["jnd/val/traditional"] + marker["sizes"]["jnd/val/compositions"] >= 1000
    assert len(TwoAFCDataset(MINI, split="val", subsets="traditional", verify_images=False)) == n_val


@needs_mini
def test_built_mini_set_sample_matches_reference_lpips_vgg():
    require_backbone("vgg")
    folder = MINI / "2afc/val/traditional"
    meta = pd.read_csv(folder / "metadata.csv", dtype={"id": str}).sample(12, random_state=0)
    ds = TwoAFCDataset(folder, verify_images=False)
    index = {r.id: i for i, r in enumerate(ds.records)}
    items = [ds[index[i]] for i in meta.id]
    with torch.no_grad():
        ref_model = reference("vgg", "0.1")
        stack = lambda k: torch.stack([it[k] for it in items])  # noqa: E731
        d0 = ref_model(stack("ref"), stack("p0")).flatten().numpy()
        d1 = ref_model(stack("ref"), stack("p1")).flatten().numpy()
    np.testing.assert_allclose(meta.d0, d0, atol=CSV_TOL)
    np.testing.assert_allclose(meta.d1, d1, atol=CSV_TOL)
