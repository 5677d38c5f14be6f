"""Datasets: BAPPS layout, CSV/JSON/per-sample formats, bad data, the reference resize, the DataModule."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lpips_core.data import DataError, JNDDataset, LPIPSDataModule, TwoAFCDataset, detect_format, load_patch
from lpips_core.data.images import ImageLoadError


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
    reference = transforms.Compose(
        [transforms.Resize(64), transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
    )
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
    (folder / "p1" / "000001.png").unlink()  # missing image
    (folder / "p0" / "000002.png").write_bytes(b"not a png at all")  # unreadable image
    np.save(folder / "judge" / "000003.npy", np.array([1.5]))  # outside [0, 1]
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


# --------------------------------------------------------------------------- CSV, JSON, per-sample folders
def _seed_images(folder: Path, n: int) -> list[dict]:
    """n triplets of flat images under folder/images; rows with paths relative to ``folder``."""
    rows = []
    for i in range(n):
        for part, offset in (("ref", 0), ("img1", 1), ("img2", 2)):
            _png(folder / "images" / f"{part}_{i:03d}.png", 10 * i + offset)
        rows.append(
            {
                "ref_path": f"images/ref_{i:03d}.png",
                "img1_path": f"images/img1_{i:03d}.png",
                "img2_path": f"images/img2_{i:03d}.png",
                "judgment": [0, 1, 0.5, 0.8][i % 4],
                "category": "distortion" if i % 2 == 0 else "style",
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict], columns=("ref_path", "img1_path", "img2_path", "judgment", "category")):
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_relative_paths_resolve_against_the_file(tmp_path):
    rows = _seed_images(tmp_path / "set", 4)
    csv_path = _write_csv(tmp_path / "set" / "judgments.csv", rows)
    assert detect_format(csv_path) == "csv"
    ds = TwoAFCDataset(csv_path, load_size=8)  # resolved against set/, not the working directory
    assert len(ds) == 4 and ds.subsets == ["distortion", "style"]
    np.testing.assert_allclose(ds.judges, [0, 1, 0.5, 0.8])
    item = ds[2]
    assert [_value(item[k]) for k in ("ref", "p0", "p1")] == [20, 21, 22]  # img1 -> p0, img2 -> p1
    assert item["subset"] == "distortion" and item["id"] == "row4"  # line 4 of the file
    assert len(TwoAFCDataset(csv_path, subsets=["style"], load_size=8)) == 2


def test_json_list_of_objects(tmp_path):
    rows = _seed_images(tmp_path / "set", 3)
    rows[0]["ref_path"] = str((tmp_path / "set" / rows[0]["ref_path"]).resolve())  # absolute paths work too
    (tmp_path / "set" / "j.json").write_text(json.dumps(rows))
    ds = TwoAFCDataset(tmp_path / "set" / "j.json", load_size=8)
    assert detect_format(tmp_path / "set" / "j.json") == "json"
    assert len(ds) == 3 and ds[1]["id"] == "item1" and _value(ds[1]["p1"]) == 12
    (tmp_path / "set" / "bad.json").write_text('{"ref_path": "x"}')
    with pytest.raises(DataError, match="expected a JSON list of objects"):
        TwoAFCDataset(tmp_path / "set" / "bad.json")
    (tmp_path / "set" / "broken.json").write_text('[{"ref_path": ')
    with pytest.raises(DataError, match="not valid JSON"):
        TwoAFCDataset(tmp_path / "set" / "broken.json")


def test_per_sample_folders(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            folder = tmp_path / "LPIPS_Data" / split / ("category1" if i < 2 else "category2")
            for part, offset in (("ref", 0), ("img1", 1), ("img2", 2)):
                _png(folder / f"sample_{i:03d}_{part}.png", 10 * i + offset)
            (folder / f"sample_{i:03d}_judgment.txt").write_text(f"{i / 4}\n")
    root = tmp_path / "LPIPS_Data"
    assert detect_format(root) == "samples"
    train = TwoAFCDataset(root, split="train", load_size=8)
    assert len(train) == 3 and train.subsets == ["category1", "category2"]
    np.testing.assert_allclose(train.judges, [0, 0.25, 0.5])
    assert train[1]["id"] == "sample_001" and _value(train[1]["p0"]) == 11
    assert len(TwoAFCDataset(root / "val", load_size=8)) == 2  # a split folder directly
    with pytest.raises(DataError, match="pass split="):
        TwoAFCDataset(root)


def test_table_missing_columns_named(tmp_path):
    rows = _seed_images(tmp_path, 1)
    path = _write_csv(tmp_path / "t.csv", rows, columns=("ref_path", "img1_path", "judgment"))
    with pytest.raises(DataError, match="missing field.*img2_path"):
        TwoAFCDataset(path)


def test_csv_every_bad_row_is_listed_with_its_line(tmp_path):
    rows = _seed_images(tmp_path, 7)
    rows[1]["img1_path"] = "images/nope.png"  # line 3: missing image
    (tmp_path / "images" / "img2_002.png").write_bytes(b"\x89PNG garbage")  # line 4: unreadable image
    rows[3]["judgment"] = "left"  # line 5: not a number
    rows[4]["judgment"] = "1.2"  # line 6: outside [0, 1]
    rows[5]["judgment"] = "nan"  # line 7: not finite
    path = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError) as err:
        TwoAFCDataset(path)
    msg = str(err.value)
    assert str(path) in msg and "5 bad row(s) of 7" in msg
    assert "row 3: missing image" in msg and "nope.png" in msg
    assert "row 4: unreadable image" in msg and "img2_002.png" in msg
    assert "row 5: judgment 'left' is not a number" in msg
    assert "row 6: judgment 1.2 is outside [0, 1]" in msg
    assert "row 7: judgment nan is outside [0, 1]" in msg
    assert "on_error='skip'" in msg

    with pytest.raises(DataError) as err:
        TwoAFCDataset(path, max_errors=2)
    assert "... and 3 more" in str(err.value) and "row 5" not in str(err.value)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = TwoAFCDataset(path, on_error="skip", load_size=8)
    assert [r.id for r in ds.records] == ["row2", "row8"]
    assert len(caught) == 1 and "skipped 5 bad row(s) of 7, kept 2" in str(caught[0].message)


def test_all_rows_bad_is_an_error_even_when_skipping(tmp_path):
    rows = _seed_images(tmp_path, 2)
    for r in rows:
        r["judgment"] = "x"
    with pytest.raises(DataError, match="no usable rows"):
        TwoAFCDataset(_write_csv(tmp_path / "b.csv", rows), on_error="skip")


def test_image_damaged_after_indexing_names_item_and_file(tmp_path):
    rows = _seed_images(tmp_path, 2)
    ds = TwoAFCDataset(_write_csv(tmp_path / "ok.csv", rows), load_size=8)
    (tmp_path / "images" / "img2_001.png").write_bytes(b"broken later")
    with pytest.raises(ImageLoadError, match=r"item style/row3: .*img2_001.png"):
        ds[1]


def test_jnd_csv(tmp_path):
    for i in range(3):
        _png(tmp_path / f"a{i}.png", i)
        _png(tmp_path / f"b{i}.png", i + 9)
    (tmp_path / "jnd.csv").write_text(
        "p0_path,p1_path,same\n" + "".join(f"a{i}.png,b{i}.png,{i / 3}\n" for i in range(3))
    )
    ds = JNDDataset(tmp_path / "jnd.csv", load_size=8)
    assert len(ds) == 3 and ds.subsets == ["default"] and _value(ds[2]["p1"]) == 11


# --------------------------------------------------------------------------- LPIPSDataModule
def _asymmetric_bapps(root: Path, split: str, n: int) -> None:
    """Triplets whose left half is brighter than the right half, so a mirror shows."""
    folder = root / "2afc" / split / "traditional"
    for i in range(n):
        stem = f"{i:06d}"
        for key, v in (("ref", 10), ("p0", 20), ("p1", 30)):
            arr = np.zeros((8, 8, 3), np.uint8)
            arr[:, :4] = v + i
            (folder / key).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(folder / key / f"{stem}.png")
        (folder / "judge").mkdir(parents=True, exist_ok=True)
        np.save(folder / "judge" / f"{stem}.npy", np.array([i / n]))


def _ids(loader) -> list[str]:
    return [i for batch in loader for i in batch["id"]]


def test_datamodule_random_splits_are_disjoint_and_reproducible(tmp_path):
    _asymmetric_bapps(tmp_path, "val", 40)
    dm = LPIPSDataModule(
        tmp_path / "2afc" / "val", batch_size=8, val_split=0.2, test_split=0.1, seed=3, augment=False, load_size=8
    ).setup()
    train, val, test = _ids(dm.train_dataloader()), _ids(dm.val_dataloader()), _ids(dm.test_dataloader())
    assert (len(train), len(val), len(test)) == (28, 8, 4)
    assert sorted(train + val + test) == [f"{i:06d}" for i in range(40)]
    same = LPIPSDataModule(
        tmp_path / "2afc" / "val", batch_size=8, val_split=0.2, test_split=0.1, seed=3, augment=False, load_size=8
    )
    assert _ids(same.val_dataloader()) == val and _ids(same.train_dataloader()) == train  # same seed, same order
    other = LPIPSDataModule(
        tmp_path / "2afc" / "val", batch_size=8, val_split=0.2, test_split=0.1, seed=4, augment=False, load_size=8
    )
    assert _ids(other.val_dataloader()) != val
    batch = next(iter(dm.train_dataloader()))
    assert batch["ref"].shape == (8, 3, 8, 8) and batch["judge"].shape == (8, 1)


def test_datamodule_official_splits(tmp_path):
    _asymmetric_bapps(tmp_path, "train", 20)
    _asymmetric_bapps(tmp_path, "val", 6)
    dm = LPIPSDataModule(tmp_path, batch_size=4, val_split=0.25, seed=0, load_size=8).setup()
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (15, 5, 6)
    assert isinstance(dm.test_dataset, TwoAFCDataset) and dm.test_dataset.root == tmp_path


def test_flip_augmentation_mirrors_the_whole_triplet_together(tmp_path):
    _asymmetric_bapps(tmp_path, "val", 32)
    dm = LPIPSDataModule(tmp_path, batch_size=32, val_split=0.0, seed=0, augment=True, load_size=8)
    flips = []
    for batch in dm.train_dataloader():
        for b in range(len(batch["id"])):
            left_bright = [
                bool(batch[k][b, :, :, 0].mean() > batch[k][b, :, :, -1].mean()) for k in ("ref", "p0", "p1")
            ]
            assert len(set(left_bright)) == 1  # ref, p0, p1 flipped together or not at all
            flips.append(not left_bright[0])
    assert 4 < sum(flips) < 28  # about half are mirrored
    first, again = (
        LPIPSDataModule(tmp_path, batch_size=32, val_split=0.0, seed=0, augment=True, load_size=8) for _ in range(2)
    )
    epochs_a = [next(iter(first.train_dataloader()))["ref"] for _ in range(2)]
    epochs_b = [next(iter(again.train_dataloader()))["ref"] for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(epochs_a, epochs_b))  # reproducible from the seed
    assert not torch.equal(epochs_a[0], epochs_a[1])  # but each epoch differs
    plain = next(
        iter(LPIPSDataModule(tmp_path, batch_size=32, val_split=0.0, augment=False, load_size=8).train_dataloader())
    )
    assert all(plain["ref"][b, :, :, 0].mean() > plain["ref"][b, :, :, -1].mean() for b in range(32))


def test_datamodule_workers_load_the_same_items(tmp_path):
    _asymmetric_bapps(tmp_path, "val", 12)
    dm = LPIPSDataModule(tmp_path, batch_size=4, val_split=0.25, seed=1, augment=False, load_size=8, num_workers=2)
    assert sorted(_ids(dm.train_dataloader())) == sorted(
        _ids(
            LPIPSDataModule(
                tmp_path, batch_size=4, val_split=0.25, seed=1, augment=False, load_size=8
            ).train_dataloader()
        )
    )


def test_datamodule_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="val_split"):
        LPIPSDataModule(tmp_path, val_split=0.7, test_split=0.4)
    with pytest.raises(ValueError, match="kind"):
        LPIPSDataModule(tmp_path, kind="3afc")
    _asymmetric_bapps(tmp_path, "val", 2)
    with pytest.raises(DataError, match="nothing to train on"):
        LPIPSDataModule(tmp_path, val_split=0.5, test_split=0.49).setup()


# --------------------------------------------------------------------------- lpips-core analyze
def test_analyze_counts_distribution_sizes_problems_and_plot(tmp_path, capsys):
    from lpips_core.cli import main

    _bapps_2afc(tmp_path / "b", "val", "traditional", [0.0, 0.4, 1.0, 0.4])
    _bapps_2afc(tmp_path / "b", "train", "traditional", [0.5, 0.5])
    _bapps_jnd(tmp_path / "b", "traditional", [0.0, 1 / 3])
    folder = tmp_path / "b" / "2afc" / "val" / "traditional"
    _png(folder / "p1" / "000001.png", 3, size=16)  # a triplet of mixed sizes
    np.save(folder / "judge" / "000003.npy", np.array([2.0]))  # a bad judgment
    out = tmp_path / "report"
    assert main(["analyze", str(tmp_path / "b"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("2afc/", "jnd/"))}
    assert rows["2afc/val/traditional"].split()[1] == "3"  # the bad row is not counted
    assert "0:1 0.4:1 1:1" in rows["2afc/val/traditional"]
    assert "0.5:2" in rows["2afc/train/traditional"] and "8x8 (6)" in rows["2afc/train/traditional"]
    assert rows["jnd/val/traditional"].split()[1] == "2"
    assert "2 problem(s)" in text and "outside [0, 1]" in text and "images differ in size (8x8, 8x8, 16x16)" in text
    assert (out / "judgments.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2afc,val,traditional,3" in (out / "summary.csv").read_text()
    assert len((out / "problems.txt").read_text().splitlines()) == 2
    assert main(["analyze", str(tmp_path / "b"), "-o", str(out), "--strict"]) == 2


def test_analyze_tables_and_unknown_layout(tmp_path, capsys):
    from lpips_core.cli import main

    rows = _seed_images(tmp_path / "set", 4)
    _write_csv(tmp_path / "set" / "j.csv", rows)
    assert main(["analyze", str(tmp_path / "set" / "j.csv"), "-o", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "2afc/j/distortion" in text and "no problems found" in text
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty"), "-o", str(tmp_path / "r2")]) == 2
    assert "unknown 2afc layout" in capsys.readouterr().err
