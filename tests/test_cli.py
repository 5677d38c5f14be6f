"""The command line: compare, dirs, allpairs, weights; errors exit 2 with one line."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED, needs_shared, photo, reference
from PIL import Image

import lpips_core
from lpips_core.cli import main

EX = SHARED / "fixtures" / "bapps_examples"


def save(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    base = photo("astronaut")
    for i in range(3):
        crop = base[i * 64 : (i + 1) * 64, 100:164]
        save(a / f"im{i}.png", crop)
        save(b / f"im{i}.png", np.clip(crop + rng.normal(0, 20, crop.shape), 0, 255).astype(np.uint8))
    return a, b


@needs_shared
def test_compare_prints_published_value(capsys):
    assert main(["compare", str(EX / "ex_ref.png"), str(EX / "ex_p0.png"), "--net", "alex"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert round(float(last), 3) == 0.722
    assert len(last.split(".")[1]) == 6


def test_console_script_runs(image_dir):
    a, _ = image_dir
    exe = Path(sys.executable).parent / "lpips-core"
    out = subprocess.run(
        [str(exe), "compare", str(a / "im0.png"), str(a / "im1.png")], capture_output=True, text=True, check=True
    ).stdout
    img0, img1 = lpips_core.load_tensor(a / "im0.png"), lpips_core.load_tensor(a / "im1.png")
    with torch.no_grad():
        expected = reference("alex")(img0, img1).item()
    assert abs(float(out.strip().splitlines()[-1]) - expected) < 1e-5


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D boolean array."""
    edges = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def read_heat_map(path: Path, shape: tuple[int, int], cmap: str = "magma") -> np.ndarray:
    """Recover the normalised values (0 = map minimum, 1 = maximum) of a matplotlib heat map PNG.

    Each pixel is matched to the nearest of the colour map's 256 colours; the map is the
    widest block of columns made of colour-map colours (the colour bar is the narrow one to
    its right) and, inside it, the rows made of them (the title above is white and black
    text). Each of the ``shape`` cells is read at its centre (matplotlib draws a map
    upsampled by more than 3x with nearest-neighbour interpolation).
    """
    import matplotlib

    lut = matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255
    png = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    dist2 = ((png[:, :, None, :] - lut[None, None]) ** 2).sum(-1)
    index, colour_err = dist2.argmin(-1), np.sqrt(dist2.min(-1))
    in_map = colour_err < 3  # within PNG rounding of a colour-map colour
    x0, x1 = max(_runs(in_map.mean(0) > 0.5), key=lambda r: r[1] - r[0])
    y0, y1 = max(_runs(in_map[:, x0:x1].mean(1) > 0.9), key=lambda r: r[1] - r[0])
    h, w = shape
    assert (x1 - x0) / w > 3 and (y1 - y0) / h > 3, "map drawn too small to read back"
    ys = (y0 + (np.arange(h) + 0.5) * (y1 - y0) / h).astype(int)
    xs = (x0 + (np.arange(w) + 0.5) * (x1 - x0) / w).astype(int)
    assert colour_err[np.ix_(ys, xs)].max() < 3, "a map cell is not a colour-map colour"
    # matplotlib colours v in [0, 1] with entry floor(256 v): the bin centre is (i + 0.5) / 256
    return (index[np.ix_(ys, xs)] + 0.5) / 256


def test_compare_spatial_map(image_dir, tmp_path, capsys):
    """The PNG shows the reference's spatial map: read back through the colour map, each pixel's
    value equals the reference map, normalised to [min, max], within the colour quantisation."""
    from scipy.stats import spearmanr

    a, b = image_dir
    out = tmp_path / "map.png"
    assert main(["compare", str(a / "im0.png"), str(b / "im0.png"), "--spatial-map", str(out)]) == 0
    captured = capsys.readouterr()
    assert Image.open(out).size[0] > 64
    img0, img1 = lpips_core.load_tensor(a / "im0.png"), lpips_core.load_tensor(b / "im0.png")
    with torch.no_grad():
        expected = reference("alex", spatial=True)(img0, img1)[0, 0].double().numpy()
        scalar = reference("alex")(img0, img1).item()
    assert expected.shape == (64, 64)
    assert abs(float(captured.out.strip().splitlines()[-1]) - scalar) < 1e-5  # the distance is printed too
    assert "spatial map written to" in captured.err
    shown = read_heat_map(out, expected.shape)
    normalised = (expected - expected.min()) / (expected.max() - expected.min())
    # bin centre vs value: <= 0.5/256; 8-bit PNG colours can make neighbouring colour-map
    # entries indistinguishable: +1/256; matplotlib's float32 normalisation: well below that.
    # A flipped, transposed or wrong map is off by > 0.25 somewhere.
    err = np.abs(shown - normalised).max()
    assert err <= 2 / 256, f"the PNG's map is {err:.3f} from the reference map (normalised), > 2/256"
    assert spearmanr(shown.ravel(), expected.ravel()).statistic > 0.999  # brighter where farther


@pytest.mark.parametrize("case", ["missing", "unreadable", "size"])
def test_compare_errors_exit_2_with_one_line(case, image_dir, tmp_path, capsys):
    a, _ = image_dir
    other = {
        "missing": tmp_path / "nope.png",
        "unreadable": tmp_path / "bad.png",
        "size": save(tmp_path / "big.png", photo("coffee")[:80, :80]),
    }[case]
    if case == "unreadable":
        other.write_bytes(b"not an image")
    assert main(["compare", str(a / "im0.png"), str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(other.name) in err[0]


def test_dirs_writes_csv_matching_reference(image_dir, tmp_path):
    a, b = image_dir
    out = tmp_path / "out.csv"
    assert main(["dirs", str(a), str(b), "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["path"] for r in rows] == ["im0.png", "im1.png", "im2.png"]
    for r in rows:
        with torch.no_grad():
            expected = reference("alex")(
                lpips_core.load_tensor(a / r["path"]), lpips_core.load_tensor(b / r["path"])
            ).item()
        assert abs(float(r["distance"]) - expected) < 1e-5


def test_dirs_leaves_no_partial_csv_on_bad_image(image_dir, tmp_path, capsys):
    a, b = image_dir
    (b / "im2.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "out.csv"
    assert main(["dirs", str(a), str(b), "-o", str(out)]) == 2
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".out.csv*"))
    assert "im2.png" in capsys.readouterr().err


def test_allpairs(image_dir, tmp_path):
    a, _ = image_dir
    out = tmp_path / "pairs.csv"
    assert main(["allpairs", str(a), "-o", str(out), "--net", "alex"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3
    r = rows[0]
    with torch.no_grad():
        expected = reference("alex")(
            lpips_core.load_tensor(a / r["image0"]), lpips_core.load_tensor(a / r["image1"])
        ).item()
    assert abs(float(r["distance"]) - expected) < 1e-5


def test_allpairs_size_mismatch_exits_2(image_dir, tmp_path):
    a, _ = image_dir
    save(a / "odd.png", photo("coffee")[:70, :70])
    assert main(["allpairs", str(a), "-o", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "x.csv").exists()


def test_weights_command_reports_sources(capsys):
    assert main(["weights", "--net", "alex"]) == 0
    out = capsys.readouterr().out
    assert "alex" in out and "linear v0.1" in out
