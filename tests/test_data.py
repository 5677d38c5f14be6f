"""Datasets: BAPPS layout, CSV/JSON/per-sample formats, bad data, the reference resize, the DataModule."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lpips_core.data import (DataError, JNDDataset, TwoAFCDataset, detect_format, load_patch)
from lpips_core.images import ImageLoadError


# --------------------------------------------------------------------------- helpers
def _png(path: Path, value, size: int = 8) -> Path:
    """A flat RGB image of ``value`` (int or 3-tuple), size x size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size, size, 3), np.uint8) + np.asarray(value, np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _bapps_2afc(root: Path, split: str, subset: str, judges: list[float], size: int = 8) -> Path:
    """A tiny BAPPS 2afc subset: triplet i has ref value 10*i, p0 +1, p1 +2, judge judges[i]."""
    folder = root / "2afc" / split / subset
    for i, h in enumerate(judges):
        stem = f"{i:06d}"
        _png(folder / "ref" / f"{stem}.png", 10 * i, size)
        _png(folder / "p0" / f"{stem}.png", 10 * i + 1, size)
        _png(folder / "p1" / f"{stem}.png", 10 * i + 2, size)
        (folder / "judge").mkdir(parents=True, exist_ok=True)
        np.save(folder / "judge" / f"{stem}.npy", np.array([h]))
    return folder


def _bapps_jnd(root: Path, subset: str, sames: list[float], size: int = 8) -> Path:
    folder = root / "jnd" / "val" / subset
    for i, s in enumerate(sames):
        stem = f"{i:06d}"
        _png(folder / "p0" / f"{stem}.png", 10 * i, size)
        _png(folder / "p1" / f"{stem}.png", 10 * i + 5, size)
        (folder / "same").mkdir(parents=True, exist_ok=True)
        np.save(folder / "same" / f"{stem}.npy", np.array([s]))
    return folder


def _value(x: torch.Tensor) -> float:
    """The [-1, 1] value of a flat image -> its uint8 value."""
    return round((float(x.mean()) + 1) * 127.5)


# --------------------------------------------------------------------------- reference resize
def test_load_patch_matches_hand_computed_bilinear_resize(tmp_path):
    """128 -> 64 with PIL bilinear: support 2 source pixels, weights 1/8, 3/8, 3/8, 1/8.

    A single bright column (value 200) at x=10 lands in output column 4 (through
    source pixels 7..10, weight 1/8 -> 25) and output column 5 (source 9..12, weight
    3/8 -> 75); every other output column is 0. Then ToTensor + Normalize(0.5, 0.5):
    v -> v / 255 * 2 - 1.
    """
    img = np.zeros((128, 128, 3), np.uint8)
    img[:, 10] = 200
    Image.fromarray(img).save(tmp_path / "impulse.png")
    x = load_patch(tmp_path / "impulse.png", load_size=64)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    expected = torch.full((3, 64, 64), -1.0)
    expected[:, :, 4] = 25 / 255 * 2 - 1
    expected[:, :, 5] = 75 / 255 * 2 - 1
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)


def test_load_patch_without_resize_is_exact_scaling(tmp_path):
    arr = np.arange(64 * 64 * 3, dtype=np.int64).reshape(64, 64, 3) % 256
    Image.fromarray(arr.astype(np.uint8)).save(tmp_path / "ramp.png")
    x = load_patch(tmp_path / "ramp.png", load_size=64)
    expected = torch.from_numpy(arr).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(x, expected, atol=1e-6, rtol=0)
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0


def test_load_patch_equals_torchvision_reference_transform(tmp_path):
    """The reference loader's pipeline, run by torchvision itself, on a photo-like image."""
    from torchvision import transforms

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    reference = transforms.Compose([transforms.Resize(64), transforms.ToTensor(),
                                    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    with Image.open(tmp_path / "noise.png") as im:
        expected = reference(im.convert("RGB"))
    torch.testing.assert_close(load_patch(tmp_path / "noise.png", 64), expected, atol=0, rtol=0)


def test_load_patch_grey_becomes_rgb(tmp_path):
    Image.fromarray(np.full((16, 16), 51, np.uint8), mode="L").save(tmp_path / "grey.png")
    x = load_patch(tmp_path / "grey.png", load_size=None)
    assert x.shape == (3, 16, 16)
    assert torch.allclose(x, torch.full_like(x, 51 / 127.5 - 1))


# --------------------------------------------------------------------------- BAPPS layout
def test_twoafc_bapps_root_split_and_subset_folders(tmp_path):
    _bapps_2afc(tmp_path, "val", "traditional", [0.0, 0.4, 1.0])
    _bapps_2afc(tmp_path, "val", "cnn", [0.2, 0.8])
    _bapps_2afc(tmp_path, "train", "traditional", [0.5])
    assert detect_format(tmp_path) == "bapps"

    ds = TwoAFCDataset(tmp_path, split="val", load_size=8)
    assert len(ds) == 5 and ds.subsets == ["cnn", "traditional"]
    np.testing.assert_allclose(ds.judges, [0.2, 0.8, 0.0, 0.4, 1.0])

    item = ds[3]  # traditional/000001
    assert item["subset"] == "traditional" and item["id"] == "000001"
    assert item["judge"].shape == (1,) and item["judge"].dtype == torch.float32
    assert item["judge"].item() == pytest.approx(0.4)
    assert [_value(item[k]) for k in ("ref", "p0", "p1")] == [10, 11, 12]
    for k in ("ref", "p0", "p1"):
        assert item[k].shape == (3, 8, 8) and item[k].dtype == torch.float32

    # same data through the split folder, one subset folder, and a subsets filter
    assert len(TwoAFCDataset(tmp_path / "2afc" / "val")) == 5
    one = TwoAFCDataset(tmp_path / "2afc" / "val" / "cnn")
    assert len(one) == 2 and one.subsets == ["cnn"]
    assert len(TwoAFCDataset(tmp_path, split="val", subsets=["traditional"])) == 3
    assert len(TwoAFCDataset(tmp_path, split="train")) == 1


def test_twoafc_default_collation_batches_items(tmp_path):
    _bapps_2afc(tmp_path, "val", "traditional", [0.0, 0.4, 1.0], size=12)
    loader = torch.utils.data.DataLoader(TwoAFCDataset(tmp_path, split="val", load_size=8), batch_size=3)
    batch = next(iter(loader))
    assert batch["ref"].shape == (3, 3, 8, 8) and batch["judge"].shape == (3, 1)
    assert batch["subset"] == ["traditional"] * 3 and batch["id"] == ["000000", "000001", "000002"]


def test_twoafc_split_must_be_named_when_several(tmp_path):
    _bapps_2afc(tmp_path, "val", "traditional", [0.0])
    _bapps_2afc(tmp_path, "train", "traditional", [0.5])
    with pytest.raises(DataError, match="split"):
        TwoAFCDataset(tmp_path)
    with pytest.raises(DataError, match="no 2afc split 'test'.*train, val"):
        TwoAFCDataset(tmp_path, split="test")
    with pytest.raises(DataError, match="no subset 'cnn'.*available: traditional"):
        TwoAFCDataset(tmp_path, split="val", subsets=["cnn"])


def test_jnd_bapps(tmp_path):
    _bapps_jnd(tmp_path, "traditional", [0.0, 1 / 3, 1.0])
    ds = JNDDataset(tmp_path, load_size=8)  # the only jnd split (val) is chosen
    assert len(ds) == 3
    np.testing.assert_allclose(ds.sames, [0, 1 / 3, 1])
    item = ds[1]
    assert set(item) == {"p0", "p1", "same", "subset", "id"}
    assert item["same"].shape == (1,) and [_value(item["p0"]), _value(item["p1"])] == [10, 15]
    assert len(JNDDataset(tmp_path / "jnd" / "val")) == 3


def test_bapps_bad_rows_listed_then_skipped(tmp_path):
    folder = _bapps_2afc(tmp_path, "val", "traditional", [0.0, 0.4, 1.0, 0.6])
    (folder / "p1" / "000001.png").unlink()                        # missing image
    (folder / "p0" / "000002.png").write_bytes(b"not a png at all")  # unreadable image
    np.save(folder / "judge" / "000003.npy", np.array([1.5]))       # outside [0, 1]
    with pytest.raises(DataError) as err:
        TwoAFCDataset(tmp_path, split="val")
    msg = str(err.value)
    assert "3 bad row(s) of 4" in msg
    assert "traditional/000001: missing image" in msg and "000001.png" in msg
    assert "traditional/000002: unreadable image" in msg
    assert "traditional/000003: judge" in msg and "outside [0, 1]" in msg
    with pytest.warns(UserWarning, match="skipped 3 bad row"):
        ds = TwoAFCDataset(tmp_path, split="val", on_error="skip")
    assert [r.id for r in ds.records] == ["000000"]


def test_unknown_layout_is_an_error(tmp_path):
    (tmp_path / "stuff").mkdir()
    _png(tmp_path / "stuff" / "a.png", 3)
    with pytest.raises(DataError, match="unknown 2afc layout"):
        TwoAFCDataset(tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        TwoAFCDataset(tmp_path / "nowhere")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DataError, match="unknown data file type"):
        TwoAFCDataset(tmp_path / "data.txt")
