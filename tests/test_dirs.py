"""``lpips-core dirs`` / ``allpairs`` over datasets: matching, size policy, resume after SIGKILL, torchrun shards.

Oracles: the reference ``lpips`` package (one forward per pair, PARITY_TOL), hand-built
folder trees and sizes, PIL for the resize/crop policies, numpy for the summaries, and
an uninterrupted single-process run for the resumed and the sharded runs (byte-equal CSV).
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import forked
import numpy as np
import pytest
import torch
from conftest import REPO, photo, reference, require_backbone
from PIL import Image
from tolerances import PARITY_TOL, assert_paths_agree

import lpips_core
from lpips_core.cli import main
from lpips_core.data.images import ImageLoadError
from lpips_core.data.pairs import PairSizeError, match_pairs, plan_size, size_batches, to_model_range
from lpips_core.eval import resumable
from lpips_core.eval.allpairs import AllPairsConfig, allpairs
from lpips_core.eval.batch_workers import auto_workers
from lpips_core.eval.folders import FolderConfig, evaluate_folders

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_folders(
    root: Path, keys: list[str], sizes: list[tuple[int, int]] | None = None, seed: int = 0
) -> tuple[Path, Path]:
    """Photograph crops in ``root/a`` and noisy versions in ``root/b``, one per relative path in ``keys``."""
    rng = np.random.default_rng(seed)
    base = photo("astronaut")
    for i, key in enumerate(keys):
        h, w = sizes[i] if sizes else (64, 64)
        y, x = rng.integers(0, base.shape[0] - h), rng.integers(0, base.shape[1] - w)
        crop = base[y : y + h, x : x + w]
        save(root / "a" / key, crop)
        save(root / "b" / key, np.clip(crop + rng.normal(0, rng.uniform(5, 30), crop.shape), 0, 255).astype(np.uint8))
    return root / "a", root / "b"


def ref_distance(img0: np.ndarray | Path, img1: np.ndarray | Path, net: str = "alex") -> float:
    """The reference package's distance of two files or uint8 arrays (the reference's im2tensor)."""
    import lpips

    t = [lpips.im2tensor(np.asarray(Image.open(p).convert("RGB")) if isinstance(p, Path) else p) for p in (img0, img1)]
    with torch.no_grad():
        return reference(net)(*t).item()


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module", autouse=True)
def _alex(one_thread):
    require_backbone("alex")


# --------------------------------------------------------------------------- matching and sizes
def test_match_by_relative_path_reports_unmatched(tmp_path):
    a, b = make_folders(tmp_path, ["x.png", "s/y.png", "s/t/z.png"])
    save(a / "only_a.png", photo("coffee")[:64, :64])
    save(b / "s" / "only_b.png", photo("coffee")[:64, :64])
    (a / ".hidden.png").write_bytes(b"")  # hidden files are not images of the set
    flat = match_pairs(a, b)
    assert flat.keys == ["x.png"] and flat.only0 == ["only_a.png"] and flat.only1 == []
    deep = match_pairs(a, b, recursive=True)
    assert deep.keys == ["s/t/z.png", "s/y.png", "x.png"]
    assert deep.only0 == ["only_a.png"] and deep.only1 == ["s/only_b.png"]
    assert "1 file(s) only in" in deep.report() and "s/only_b.png" in deep.report()
    with pytest.raises(ImageLoadError, match="--recursive"):  # nothing of a/s/t (z.png) is at b's top
        match_pairs(a / "s" / "t", b)


def test_size_policy_by_hand():
    assert plan_size((64, 80), (64, 80)).size == (64, 80)
    with pytest.raises(PairSizeError, match=r"g\.png is 80x64 but r\.png is 70x60; use --size-mismatch"):
        plan_size((64, 80), (60, 70), "error", names=("g.png", "r.png"))
    assert plan_size((64, 80), (60, 70), "resize") == plan_size((64, 80), (60, 70), "resize")
    r = plan_size((64, 80), (60, 70), "resize")
    assert r.size == (64, 80) and r.resize1 == (64, 80) and r.crop is None
    c = plan_size((64, 80), (60, 90), "crop")
    assert c.size == (60, 80) and c.crop == (60, 80)
    m = plan_size((100, 200), (100, 200), "error", max_side=50)
    assert m.size == (25, 50) and m.out == (25, 50)
    assert plan_size((40, 30), (40, 30), max_side=50).out is None  # never upscaled
    # batches: grouped by size in order of first appearance, each group cut at batch_size
    assert size_batches([(1, 1), (2, 2), (1, 1), (1, 1), (2, 2)], 2) == [[0, 2], [3], [1, 4]]


def test_header_size_follows_exif_rotation(tmp_path):
    """Sizes are planned from headers alone: an EXIF orientation of 6 (rotate 90) swaps them."""
    from lpips_core.data.pairs import header_size

    exif = Image.Exif()
    exif[0x0112] = 6
    for suffix in ("png", "jpg"):
        path = tmp_path / f"rot.{suffix}"
        Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(path, exif=exif.tobytes())
        assert header_size(path) == (40, 20)  # stored 40 wide, 20 high; shown 20 wide, 40 high
    plain = save(tmp_path / "plain.png", np.zeros((20, 40, 3), np.uint8))
    assert header_size(plain) == (20, 40)


# --------------------------------------------------------------------------- values and summary
def test_folder_distances_match_reference_and_summary(tmp_path):
    keys = ["p0.png", "p1.png", "sub/q0.png", "sub/q1.png", "sub/q2.png", "sub/deep/r0.png"]
    sizes = [(64, 64), (48, 80), (64, 64), (48, 80), (64, 64), (64, 64)]  # two sizes: two kinds of batch
    a, b = make_folders(tmp_path, keys, sizes)
    res = evaluate_folders(
        FolderConfig(a, b, tmp_path / "out.csv", recursive=True, batch_size=2, device="cpu", progress=False)
    )
    rows = read_rows(tmp_path / "out.csv")
    assert list(rows[0]) == ["path", "distance"]
    assert [r["path"] for r in rows] == sorted(keys)
    expected = {k: ref_distance(a / k, b / k) for k in keys}
    for r in rows:
        assert abs(float(r["distance"]) - expected[r["path"]]) <= PARITY_TOL, r
        assert "{:.9g}".format(np.float32(r["distance"])) == r["distance"]  # the text reads back to its float32
    d = np.array([float(r["distance"]) for r in rows])
    s = json.loads((tmp_path / "out.summary.json").read_text())
    assert s["n_pairs"] == 6 and s["mean"] == pytest.approx(d.mean()) and s["median"] == pytest.approx(np.median(d))
    assert s["ci95"][0] < s["mean"] < s["ci95"][1]
    assert s["by_folder"]["."]["n"] == 2 and s["by_folder"]["sub/deep"]["n"] == 1
    sub = [expected[k] for k in ("sub/q0.png", "sub/q1.png", "sub/q2.png")]
    assert abs(s["by_folder"]["sub"]["mean"] - np.mean(sub)) <= PARITY_TOL
    assert s["signature"]["net"] == "alex" and s["signature"]["input_range"] == "-1,1"
    assert res.table()["distance"].tolist() == pytest.approx(d.tolist())
    assert res.plot_file == tmp_path / "out.png" and Image.open(res.plot_file).size[0] > 400
    # the same pairs fed in [0, 1] with normalize=True: another route to the same numbers
    other = evaluate_folders(
        FolderConfig(a, b, None, recursive=True, batch_size=2, input_range="0,1", device="cpu", progress=False)
    )
    assert_paths_agree(torch.tensor([v for _, v in other.rows]), torch.tensor(d), "alex", "input_range 0,1")


def test_size_mismatch_policies_cli(tmp_path, capsys):
    a, b = make_folders(tmp_path, ["im.png"])
    big = np.asarray(Image.open(b / "im.png").convert("RGB").resize((80, 72), Image.BICUBIC))
    save(b / "im.png", big)
    assert main(["dirs", str(a), str(b), "-o", str(tmp_path / "e.csv"), "-q", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "64x64" in err[0] and "80x72" in err[0] and "--size-mismatch" in err[0]
    assert not (tmp_path / "e.csv").exists()
    img0 = np.asarray(Image.open(a / "im.png").convert("RGB"))
    resized = np.asarray(Image.fromarray(big).resize((64, 64), Image.BICUBIC))
    cropped0, cropped1 = img0, big[4:68, 8:72]  # centre 64x64 of 72x80: offsets (72-64)//2, (80-64)//2
    for policy, expected in (("resize", ref_distance(img0, resized)), ("crop", ref_distance(cropped0, cropped1))):
        out = tmp_path / f"{policy}.csv"
        assert main(["dirs", str(a), str(b), "-o", str(out), "-q", "--size-mismatch", policy, "--workers", "0"]) == 0
        assert abs(float(read_rows(out)[0]["distance"]) - expected) <= PARITY_TOL, policy
    out = tmp_path / "max.csv"  # --max-side: both images downscaled (bicubic) before the comparison
    capsys.readouterr()
    assert main(["dirs", str(a), str(a), "-o", str(out), "-q", "--max-side", "40", "--workers", "0"]) == 0
    assert float(read_rows(out)[0]["distance"]) == 0.0
    # Every number carries how it was computed: 8-bit files, resized to at most 40 pixels.
    expected = f"lpips|net:alex|v:0.1|range:0,255|size:max-side-40|lpips_core:{lpips_core.__version__}"
    assert f"signature: {expected}" in capsys.readouterr().err
    summary = json.loads((tmp_path / "max.summary.json").read_text())
    assert summary["signature"]["lpips"] == expected


def test_unreadable_image_in_a_worker_is_one_line(tmp_path, capsys):
    a, b = make_folders(tmp_path, ["i0.png", "i1.png"])
    data = (b / "i1.png").read_bytes()
    (b / "i1.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut: fails in the worker
    assert (
        main(["dirs", str(a), str(b), "-o", str(tmp_path / "o.csv"), "-q", "--workers", "1", "--batch-size", "1"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "i1.png" in err[0] and not (tmp_path / "o.csv").exists()


def test_uint8_conversion_is_the_references_im2tensor_for_every_value():
    """All 256 8-bit values: to_model_range's float32 arithmetic equals the reference's im2tensor
    (float64 ``v / 127.5 - 1``, then float32) and ``v / 255`` in float64 then float32, bit for bit."""
    import lpips

    v = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, axis=2)  # (1, 256, 3): one image
    ref = lpips.im2tensor(v)  # (1, 3, 1, 256)
    ours = to_model_range(torch.from_numpy(v).permute(2, 0, 1)[None])
    assert ours.dtype == torch.float32 and torch.equal(ours, ref)
    zero_one = torch.from_numpy((np.arange(256, dtype=np.float64) / 255).astype(np.float32))
    assert torch.equal(to_model_range(torch.arange(256, dtype=torch.uint8), "0,1"), zero_one)


# --------------------------------------------------------------------------- computing workers
def test_computing_workers_give_the_same_csv_as_this_process(tmp_path):
    """On a CPU the DataLoader workers decode and compute whole batches: 1 or 2 of them write the
    same CSV, byte for byte, as this process alone; and the distances are the reference's."""
    keys = [f"s{i % 2}/im{i:02d}.png" for i in range(9)]
    a, b = make_folders(tmp_path, keys, [(64, 64) if i % 3 else (48, 80) for i in range(len(keys))])
    outs = {}
    for workers in (0, 1, 2):
        outs[workers] = tmp_path / f"w{workers}.csv"
        evaluate_folders(
            FolderConfig(
                a,
                b,
                outs[workers],
                recursive=True,
                batch_size=2,
                workers=workers,
                device="cpu",
                progress=False,
                plot=False,
            )
        )
    assert outs[1].read_bytes() == outs[0].read_bytes() == outs[2].read_bytes()
    for r in read_rows(outs[2]):
        assert abs(float(r["distance"]) - ref_distance(a / r["path"], b / r["path"])) <= PARITY_TOL, r
    with pytest.raises(ValueError, match="workers=-1"):
        evaluate_folders(FolderConfig(a, b, workers=-1))


def test_folder_and_allpairs_configs_name_a_bad_value_and_how_to_fix_it(tmp_path):
    """FolderConfig and AllPairsConfig check their options on construction, before any file is read."""
    with pytest.raises(ValueError, match=r"batch_size=0 \(--batch-size\); use 1 or more"):
        FolderConfig(tmp_path / "a", tmp_path / "b", batch_size=0)
    with pytest.raises(ValueError, match=r"n_resamples=0 \(--resamples\); the bootstrap interval needs 1 or more"):
        FolderConfig(tmp_path / "a", tmp_path / "b", n_resamples=0)
    with pytest.raises(ValueError, match=r"block_mb=0 \(--block-mb\); use 1 or more"):
        AllPairsConfig(tmp_path, tmp_path / "m.npy", block_mb=0)
    with pytest.raises(ValueError, match=r"size_mismatch='stretch'; choose one of error, resize, crop"):
        AllPairsConfig(tmp_path, tmp_path / "m.npy", size_mismatch="stretch")
    with pytest.raises(ValueError, match=r"max_side=0 \(--max-side\); use 1 or more pixels, or leave it out"):
        AllPairsConfig(tmp_path, tmp_path / "m.npy", max_side=0)
    assert not (tmp_path / "m.npy").exists()


def test_unreadable_image_in_a_computing_worker_is_one_error(tmp_path):
    keys = [f"im{i}.png" for i in range(8)]
    a, b = make_folders(tmp_path, keys)
    data = (b / "im5.png").read_bytes()
    (b / "im5.png").write_bytes(data[: len(data) // 2])  # header intact: fails while decoding, in a worker
    with pytest.raises(ImageLoadError, match="im5.png"):
        evaluate_folders(FolderConfig(a, b, tmp_path / "o.csv", batch_size=1, workers=2, device="cpu", progress=False))
    assert not (tmp_path / "o.csv").exists()


def test_auto_workers_one_per_thread_up_to_four():
    assert [auto_workers(t) for t in (1, 2, 3, 4, 16)] == [0, 2, 3, 4, 4]


# --------------------------------------------------------------------------- resume
class _Interrupting(lpips_core.LPIPS):
    """LPIPS that stops the run (as a kill would) after ``limit`` batches, counting the pairs it computed."""

    def __init__(self, limit: int | None = None):
        super().__init__(net="alex")
        self.limit, self.calls, self.pairs = limit, 0, 0

    def forward(self, in0, in1, *args, **kwargs):
        if self.limit is not None and self.calls >= self.limit:
            raise KeyboardInterrupt
        self.calls += 1
        self.pairs += in0.shape[0]
        return super().forward(in0, in1, *args, **kwargs)


def test_resume_after_torn_part_file_gives_the_same_csv(tmp_path):
    keys = [f"s{i % 3}/im{i}.png" for i in range(10)]
    a, b = make_folders(tmp_path, keys)
    whole = tmp_path / "whole.csv"
    evaluate_folders(FolderConfig(a, b, whole, recursive=True, batch_size=2, device="cpu", progress=False))
    expected = whole.read_bytes()
    rng = random.Random(0)
    out = tmp_path / "out.csv"
    for trial in range(3):
        with pytest.raises(KeyboardInterrupt):
            evaluate_folders(
                FolderConfig(a, b, out, recursive=True, batch_size=2, device="cpu", progress=False),
                model=_Interrupting(limit=3),
            )
        part = resumable.part_path(out, 0)
        text = part.read_bytes()
        cut = rng.randrange(text.index(b"\n") + 1, len(text))  # a kill anywhere after the settings line
        part.write_bytes(text[:cut])
        complete = text[:cut].count(b"\n") - 1
        model = _Interrupting()
        res = evaluate_folders(
            FolderConfig(a, b, out, recursive=True, batch_size=2, device="cpu", progress=False, resume=True),
            model=model,
        )
        assert out.read_bytes() == expected, f"trial {trial}: cut at byte {cut}"
        assert res.computed == model.pairs <= len(keys) - complete + 1  # whole batches; at most one pair redone
        assert not part.exists()
        out.unlink()


def test_resume_refuses_other_settings(tmp_path, capsys):
    a, b = make_folders(tmp_path, ["i0.png", "i1.png", "i2.png"])
    out = tmp_path / "o.csv"
    with pytest.raises(KeyboardInterrupt):
        evaluate_folders(
            FolderConfig(a, b, out, batch_size=1, device="cpu", progress=False), model=_Interrupting(limit=1)
        )
    assert main(["dirs", str(a), str(b), "-o", str(out), "--resume", "-q", "--batch-size", "2", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch_size=1 there, 2 now" in err[0]
    # without --resume the stale part is not deleted silently: the run says what it holds (issue 24) ...
    assert main(["dirs", str(a), str(b), "-o", str(out), "-q", "--batch-size", "2", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "from an interrupted run" in err[0] and "batch_size=1 there, 2 now" in err[0]
    # ... and once the user deletes it, the run starts over
    for part in resumable.part_files(out):
        part.unlink()
    assert main(["dirs", str(a), str(b), "-o", str(out), "-q", "--batch-size", "2", "--workers", "0"]) == 0
    assert len(read_rows(out)) == 3 and not resumable.part_files(out)
    finished = out.read_bytes()
    capsys.readouterr()
    # --resume of a finished run computes nothing and writes the same table
    assert main(["dirs", str(a), str(b), "-o", str(out), "-q", "--batch-size", "2", "--workers", "0", "--resume"]) == 0
    assert out.read_bytes() == finished and "(0 computed now, 3 from the earlier run)" in capsys.readouterr().err
    # ... and refuses to extend a finished table made with other settings
    assert (
        main(
            [
                "dirs",
                str(a),
                str(b),
                "-o",
                str(out),
                "-q",
                "--version",
                "0.0",
                "--workers",
                "0",
                "--batch-size",
                "2",
                "--resume",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "version='0.1' there, '0.0' now" in err[0]


def _dirs_args(a: Path, b: Path, out: Path, *extra: str) -> list[str]:
    """``lpips-core dirs`` arguments: one pair per batch, no workers, no plot."""
    return [
        "dirs",
        str(a),
        str(b),
        "-o",
        str(out),
        "-r",
        "-q",
        "--batch-size",
        "1",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-plot",
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path):
    """A real process killed with SIGKILL while it writes; ``--resume`` until done; the CSV is unchanged."""
    keys = [f"d{i % 2}/im{i:02d}.png" for i in range(40)]
    a, b = make_folders(tmp_path, keys, [(96, 96)] * len(keys))
    whole = tmp_path / "whole.csv"
    model = lpips_core.LPIPS(net="alex")
    start = time.perf_counter()
    evaluate_folders(
        FolderConfig(a, b, whole, recursive=True, batch_size=1, device="cpu", progress=False, plot=False), model=model
    )
    compute_s = time.perf_counter() - start  # how long the pairs take here: kills land inside that span
    out, part = tmp_path / "out.csv", resumable.part_path(tmp_path / "out.csv", 0)
    rng = random.Random(1)
    mid_run_kills = 0
    for attempt in range(2):  # two real processes killed at random points (the second one resumed)
        before = part.read_bytes().count(b"\n") - 1 if part.exists() else 0
        args = _dirs_args(a, b, out, *(["--resume"] if attempt else []))
        proc = forked.ForkedProcess(None, *args, env=ENV, cwd=REPO, log=tmp_path / f"run{attempt}")
        start = time.monotonic()
        while proc.poll() is None and time.monotonic() - start < 120:
            if part.exists() and part.read_bytes().count(b"\n") - 1 > before:  # this run wrote a row
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4) * compute_s)
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr()
            break
        proc.kill()
        proc.wait()
        if out.exists():  # it finished (the CSV in place, the part file gone) between the poll and the kill
            break
        rows = part.read_bytes().count(b"\n") - 1
        mid_run_kills += before < rows < len(keys)
    if not out.exists():  # the last resume in this process (the same code as the command)
        evaluate_folders(
            FolderConfig(a, b, out, recursive=True, batch_size=1, device="cpu", progress=False, resume=True, plot=False)
        )
    assert mid_run_kills >= 1, "no kill landed while the run was writing"
    assert out.read_bytes() == whole.read_bytes()
    assert not part.exists()


# --------------------------------------------------------------------------- torchrun
@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    keys = [f"g{i % 3}/im{i}.png" for i in range(11)]  # 11 pairs, batches of 2: uneven shards
    a, b = make_folders(tmp_path, keys, [(64, 64) if i % 4 else (48, 72) for i in range(len(keys))])
    single = tmp_path / "single.csv"
    evaluate_folders(FolderConfig(a, b, single, recursive=True, batch_size=2, device="cpu", progress=False))
    multi = tmp_path / "multi.csv"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lpips_core.cli",
        "dirs",
        str(a),
        str(b),
        "-o",
        str(multi),
        "-r",
        "-q",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-plot",
    ]
    run = subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert multi.read_bytes() == single.read_bytes()
    s1, s2 = (json.loads(p.with_name(p.stem + ".summary.json").read_text()) for p in (single, multi))
    assert s1 == {**s2, "dir0": s1["dir0"], "dir1": s1["dir1"]}
    assert not list(tmp_path.glob("*.part*"))


# --------------------------------------------------------------------------- allpairs
def test_allpairs_blocks_match_reference(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "set"
    names = []
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket", "astronaut", "coffee", "chelsea")):
        img = photo(name)
        y, x = rng.integers(0, img.shape[0] - 64), rng.integers(0, img.shape[1] - 64)
        names.append(f"{'sub/' if i % 2 else ''}img{i}.png")
        save(folder / names[-1], img[y : y + 64, x : x + 64])
    # block_mb=1 holds 8 embeddings of 64x64 alex (32 k floats each): force several blocks with 7 images
    out = tmp_path / "m.npy"
    res = allpairs(
        AllPairsConfig(
            folder,
            out,
            recursive=True,
            batch_size=3,
            block_mb=1,
            device="cpu",
            progress=False,
            pairs_csv=tmp_path / "pairs.csv",
        )
    )
    files = (tmp_path / "m.files.txt").read_text().split()
    assert files == sorted(names) == res.files
    m = np.load(out, mmap_mode="r")
    assert m.shape == (7, 7) and np.array_equal(m, m.T) and np.all(np.diag(m) == 0)
    expected = np.zeros((7, 7))
    for i in range(7):
        for j in range(i + 1, 7):
            expected[i, j] = expected[j, i] = ref_distance(folder / files[i], folder / files[j])
    assert np.abs(m - expected).max() <= PARITY_TOL
    iu = np.triu_indices(7, 1)
    s = json.loads((tmp_path / "m.summary.json").read_text())
    assert s["n_pairs"] == 21 and abs(s["mean"] - expected[iu].mean()) <= PARITY_TOL
    assert abs(s["median"] - np.median(expected[iu])) <= PARITY_TOL
    assert abs(s["std"] - expected[iu].std(ddof=1)) <= PARITY_TOL
    i, j = np.unravel_index(np.where(np.eye(7, dtype=bool), np.inf, expected).argmin(), (7, 7))
    assert sorted(s["closest_pair"]) == sorted([files[i], files[j]])
    per_image = read_rows(tmp_path / "m.images.csv")
    nn = np.where(np.eye(7, dtype=bool), np.inf, expected).argmin(1)
    assert [r["nearest"] for r in per_image] == [files[k] for k in nn]
    pairs = read_rows(tmp_path / "pairs.csv")
    assert len(pairs) == 21 and abs(float(pairs[0]["distance"]) - expected[0, 1]) <= PARITY_TOL
    # the block size changes nothing but the order of the work
    one_block = allpairs(AllPairsConfig(folder, tmp_path / "one.npy", recursive=True, device="cpu", progress=False))
    assert_paths_agree(
        torch.from_numpy(one_block.load(mmap=False)), torch.from_numpy(np.array(m)), "alex", "block sizes"
    )
