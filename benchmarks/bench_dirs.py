"""Folder evaluation as whole commands: ``lpips-core dirs`` against a plain reference loop and torchmetrics.

Makes ``--pairs`` pairs of ``--size`` x ``--size`` PNG files (crops of the course
photographs, scikit-image's, and distorted versions from
:mod:`lpips_core.data.distortions`), then times, in the same run, each of these as
its own process (imports, model construction and writing the results included):

* ``ours``: ``lpips-core dirs a b -o out.csv --no-plot`` at its defaults (on a CPU one
  batch per torch thread, each thread decoding and running whole batches, see
  :mod:`lpips_core.eval.streams`; same-size pairs batched; the fast path of
  :mod:`lpips_core.model.fast`; the summary with its bootstrap interval is computed,
  the plot is left out as the others draw none);
* ``reference``: the reference package's ``lpips_2dirs.py`` way: for each file, load,
  ``lpips.im2tensor``, one ``forward`` per pair, a line written per pair (Pillow loads
  the files: the reference's OpenCV is not installed here; same pixels for 8-bit PNG);
* ``torchmetrics``: ``LearnedPerceptualImagePatchSimilarity`` updated pair by pair.

All three use the same trunk weights (copied from ours, as tests/conftest.py does).
Beside them: ``decode`` (every pair decoded, one thread, no model) and the trunk
alone on pre-decoded pairs in memory, in batches of ``--batch-size``, no files: one
batch at a time on all threads (``trunk``) and, on a CPU, one batch per thread
(``trunk-streams``). The faster of the two is the trunk-only bound: no folder
evaluation can beat it on this machine.

Targets (issue 15): ours >= 1.5x the reference loop and within 20% of the trunk-only
bound on 2 CPU cores; on a GPU >= 10x the reference loop on the same GPU.

Usage::

    python benchmarks/bench_dirs.py                   # 1,000 pairs of 512x512 (run it on an idle machine)
    python benchmarks/bench_dirs.py --reps 3          # each contender 3 times, rotated order, medians
    python benchmarks/bench_dirs.py --pairs 40        # a quick check that everything runs
    python benchmarks/bench_dirs.py --device cuda

Writes ``benchmarks/results/bench_dirs.{json,md,png}``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"
TARGET_VS_REFERENCE = {"cpu": 1.5, "cuda": 10.0}
TARGET_VS_TRUNK = 1.2  # ours' time at most 20% above the trunk-only bound (CPU target)


# --------------------------------------------------------------------------- data
def make_pairs(root: Path, n: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """``root/a/<i>.png`` photograph crops and ``root/b/<i>.png`` distorted versions (kept between runs)."""
    from PIL import Image

    from lpips_core.data.distortions import DISTORTIONS, apply
    from lpips_core.data.mini_bapps import TRAIN_PHOTOS, VAL_PHOTOS, load_photo

    a, b = root / "a", root / "b"
    stamp = root / "made.json"
    want = {"n": n, "size": size, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return a, b
    a.mkdir(parents=True, exist_ok=True)
    b.mkdir(parents=True, exist_ok=True)
    for old in list(a.glob("*.png")) + list(b.glob("*.png")):
        old.unlink()
    rng = np.random.default_rng(seed)
    names = VAL_PHOTOS + TRAIN_PHOTOS
    photos = {name: load_photo(name) for name in names}
    kinds = sorted(DISTORTIONS)
    for i in range(n):
        img = photos[names[i % len(names)]]
        scale = rng.uniform(1.0, 1.5) * size / min(img.shape[:2])  # a crop spans 67-100% of the short side
        h, w = (max(size, int(round(d * scale))) for d in img.shape[:2])
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crop = np.ascontiguousarray(img[y:y + size, x:x + size])
        steps = [(kinds[rng.integers(len(kinds))], float(rng.uniform(0.1, 0.9)))]
        Image.fromarray(crop).save(a / f"{i:05d}.png")
        Image.fromarray(apply(crop, steps, rng)).save(b / f"{i:05d}.png")
    stamp.write_text(json.dumps(want))
    return a, b


# --------------------------------------------------------------------------- children (one process each)
def _reference_model(net: str, device: str):
    import lpips

    import lpips_core

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    ref.net.load_state_dict(lpips_core.LPIPS(net=net).net.state_dict())
    return ref.to(device).eval()


def _torchmetrics_model(net: str, device: str):
    import torchmetrics.functional.image.lpips as tm_lpips
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    import lpips_core

    real = tm_lpips._get_tv_model_features
    tm_lpips._get_tv_model_features = lambda name, pretrained=False: real(name, pretrained=False)  # offline
    try:
        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="mean")
    finally:
        tm_lpips._get_tv_model_features = real
    metric.net.net.load_state_dict(lpips_core.LPIPS(net=net).net.state_dict())
    return metric.to(device)


def _pil_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def child(kind: str, a: Path, b: Path, out: Path, net: str, device: str, batch_size: int, workers: str,
          streams: str, trunk_pairs: int) -> dict:
    """Run one contender; returns {'setup_s', 'loop_s', ...} measured inside the process."""
    import torch

    t0 = time.perf_counter()
    names = sorted(p.name for p in a.glob("*.png"))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    info: dict = {}
    if kind == "ours":
        from lpips_core.cli import main

        t1 = time.perf_counter()
        chosen = [f"--{name}={value}" for name, value in (("workers", workers), ("streams", streams))
                  if value != "auto"]  # otherwise the command's defaults
        rc = main(["dirs", str(a), str(b), "-o", str(out), "--net", net, "--device", device, "-q",
                   "--batch-size", str(batch_size), "--no-plot", *chosen])
        assert rc == 0
    elif kind == "reference":
        import lpips

        model = _reference_model(net, device)
        t1 = time.perf_counter()
        with open(out, "w") as f, torch.no_grad():  # lpips_2dirs.py: a line per pair as it goes
            f.write("path,distance\n")
            for name in names:
                img0 = lpips.im2tensor(_pil_rgb(a / name)).to(device)
                img1 = lpips.im2tensor(_pil_rgb(b / name)).to(device)
                f.write(f"{name},{model.forward(img0, img1).item():.9g}\n")
    elif kind == "torchmetrics":
        import lpips

        metric = _torchmetrics_model(net, device)
        t1 = time.perf_counter()
        with torch.no_grad():
            for name in names:
                metric.update(lpips.im2tensor(_pil_rgb(a / name)).to(device),
                              lpips.im2tensor(_pil_rgb(b / name)).to(device))
            info["mean"] = float(metric.compute())
    elif kind == "decode":
        from lpips_core.data.images import load_image

        t1 = time.perf_counter()
        for name in names:
            load_image(a / name), load_image(b / name)
    elif kind in ("trunk", "trunk-streams"):
        import lpips_core
        from lpips_core.data.images import load_image
        from lpips_core.data.pairs import to_model_range
        from lpips_core.eval.streams import auto_streams, run_in_streams

        model = lpips_core.LPIPS(net=net).to(device).eval()
        m = min(trunk_pairs, len(names))
        u8 = torch.stack([torch.stack([torch.from_numpy(load_image(d / n)).permute(2, 0, 1) for d in (a, b)])
                          for n in names[:m]]).to(device)  # (m, 2, 3, H, W)
        x = to_model_range(u8)  # converted before the clock starts: only the metric is timed
        starts = list(range(0, m, batch_size))
        streams = auto_streams(torch.device(device)) if kind == "trunk-streams" else 1

        def run(s: int):
            return model(x[s:s + batch_size, 0], x[s:s + batch_size, 1])

        def each(shared):  # the streams' "loader": batch starts taken from the shared list
            return (idx[0] for idx in shared)

        def run_all(todo: list[int]) -> None:
            if streams == 1:  # one batch at a time on every thread
                for s in todo:
                    run(s)
            else:  # as lpips-core dirs on a CPU: one batch per thread, each on its own core(s)
                list(run_in_streams([[s] for s in todo], each, run, streams,
                                    max(1, torch.get_num_threads() // streams)))

        with torch.inference_mode():
            run_all(starts[:streams])  # warm-up (oneDNN primitives of each thread, CUDA kernels)
            sync()
            t1 = time.perf_counter()
            run_all(starts)
            sync()
        info.update(pairs_timed=m, streams=streams)
    else:
        raise ValueError(kind)
    sync()
    t2 = time.perf_counter()
    return {"setup_s": t1 - t0, "loop_s": t2 - t1, **info}


# --------------------------------------------------------------------------- parent
def ours_setup(args) -> str:
    """How ``lpips-core dirs`` was run, for the table: batch size, streams, workers."""
    import torch

    from lpips_core.eval.streams import auto_streams

    streams = auto_streams(torch.device(args.device), args.threads) if args.streams == "auto" else int(args.streams)
    workers = (0 if streams > 1 else 2) if args.workers == "auto" else int(args.workers)
    return f"b{args.batch_size}, {streams} stream{'s' * (streams != 1)}, {workers} worker{'s' * (workers != 1)}"


def run_child(kind: str, args, a: Path, b: Path, out: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--data", str(args.data),
           "--net", args.net, "--device", args.device, "--batch-size", str(args.batch_size),
           "--workers", args.workers, "--streams", args.streams, "--out", str(out),
           "--trunk-pairs", str(args.trunk_pairs)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_s"] = wall
    return res


def _read(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {r["path"]: float(r["distance"]) for r in csv.DictReader(f)}


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "load_1min": os.getloadavg()[0],
            "avx512": bool(torch.cpu._is_avx512_supported()), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def plot(rows: list[dict], path: Path, title: str) -> None:
    from lpips_core.files import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [r["name"] for r in rows]
    vals = [r["loop_pairs_per_s"] for r in rows]
    colors = ["#888888" if r["name"].startswith(("decode only", "trunk only")) else
              "#1f77b4" if r["name"].startswith("lpips-core") else "#d62728" for r in rows]
    ax.barh(names, vals, color=colors)
    for i, (v, r) in enumerate(zip(vals, rows)):
        whole = f" (whole command {r['pairs_per_s']:.2f})" if r["wall_s"] is not None else ""
        ax.text(v, i, f" {v:.2f}{whole}", va="center", fontsize=8)
    ax.set_xscale("log")  # decoding alone is an order of magnitude faster than the metric
    ax.set_xlim(min(vals) / 1.5, max(vals) * 8)
    ax.set_xlabel("pairs per second inside the command (imports and model set-up left out; higher is faster)")
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    save_figure(fig, path)
    plt.close(fig)


def write_report(summary: dict, results: Path) -> str:
    """bench_dirs.md (the table and the ratios) and bench_dirs.png from a summary; returns the Markdown."""
    from lpips_core.files import write_text

    n, m = summary["pairs"], summary["machine"]
    rows = [{**r, "loop_pairs_per_s": r.get("loop_pairs_per_s", n / r["loop_s"])} for r in summary["rows"]]
    threads = summary["threads"]
    md = [f"{n} pairs of {summary['size']}x{summary['size']} PNG, {summary['net']}, {summary['device']}, "
          f"{threads} torch thread(s), median of {summary.get('reps', 1)} run(s) each; "
          f"{m['cpu']} ({m['cores']} cores, 1-minute load {m['load_1min']:.1f} at the end)",
          "", "| command | whole command s | pairs/s | inside the command s | pairs/s inside |",
          "|---|---:|---:|---:|---:|"]
    for r in rows:
        wall, rate = (f"{r['wall_s']:.1f}", f"{r['pairs_per_s']:.2f}") if r["wall_s"] is not None else ("-", "-")
        md.append(f"| {r['name']} | {wall} | {rate} | {r['loop_s']:.1f} | {r['loop_pairs_per_s']:.2f} |")
    md.append("")
    if "speedup_vs_reference" in summary:
        md.append(f"ours vs the reference loop: {summary['speedup_vs_reference']:.2f}x as whole commands "
                  f"(target {summary['target_vs_reference']}x); max |ours - reference| "
                  f"{summary['max_abs_diff_vs_reference']:.1e}  ")
    if "speedup_vs_torchmetrics" in summary:
        md.append(f"ours vs torchmetrics pair by pair: {summary['speedup_vs_torchmetrics']:.2f}x  ")
    if "ours_loop_over_trunk" in summary:
        how = "1 batch per thread" if summary.get("trunk_bound_streams", 1) > 1 else "1 batch at a time"
        md.append(f"ours inside the command / trunk-only bound ({how}, the faster): "
                  f"{summary['ours_loop_over_trunk']:.2f} (whole command {summary['ours_wall_over_trunk']:.2f}; "
                  f"target <= {TARGET_VS_TRUNK})  ")
    if "decode_s_per_pair" in summary:
        md.append(f"where the time goes, per pair: decode {1000 * summary['decode_s_per_pair']:.1f} ms "
                  f"(one thread), trunk {1000 * summary['trunk_s_per_pair']:.1f} ms")
    text = "\n".join(md) + "\n"
    write_text(results / "bench_dirs.md", text)
    plot(rows, results / "bench_dirs.png",
         f"LPIPS over {n} pairs of {summary['size']}x{summary['size']} PNG ({summary['net']}, {summary['device']}, "
         f"{threads} torch thread{'s' if threads != 1 else ''})")
    return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--net", default="alex", choices=["alex", "vgg", "squeeze"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", default="auto", help="DataLoader workers of ours (default: the command's)")
    p.add_argument("--streams", default="auto", help="--streams of ours (default: the command's)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of every contender")
    p.add_argument("--trunk-pairs", type=int, default=200, help="pairs the trunk-only bound is timed on")
    p.add_argument("--reps", type=int, default=1, help="repetitions of every contender (medians reported)")
    p.add_argument("--data", type=Path, default=REPO / "runs" / "bench_dirs_data")
    p.add_argument("--skip", nargs="*", default=[], help="contenders to leave out (e.g. torchmetrics)")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--replot", action="store_true", help="redraw bench_dirs.{md,png} from bench_dirs.json")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        res = child(args.child, args.data / "a", args.data / "b", args.out, args.net, args.device,
                    args.batch_size, args.workers, args.streams, args.trunk_pairs)
        print(json.dumps(res))
        return
    if args.replot:
        print(write_report(json.loads((args.results / "bench_dirs.json").read_text()), args.results))
        return

    t = time.perf_counter()
    a, b = make_pairs(args.data, args.pairs, args.size)
    print(f"{args.pairs} pairs of {args.size}x{args.size} PNG in {args.data} ({time.perf_counter() - t:.1f} s)",
          file=sys.stderr)
    work = args.data / "outputs"
    work.mkdir(exist_ok=True)
    kinds = [k for k in ("decode", "trunk", "trunk-streams", "reference", "torchmetrics", "ours")
             if k not in args.skip and not (k == "trunk-streams" and args.device != "cpu")]
    res = {}
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for rep in range(args.reps):  # rotated order, so a busy spell of the machine hits each contender in turn
        order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
        for kind in order:
            print(f"rep {rep + 1}/{args.reps}: running {kind} ...", file=sys.stderr)
            r = run_child(kind, args, a, b, work / f"{kind}.csv")
            runs[kind].append(r)
            print(f"  {kind}: wall {r['wall_s']:.1f} s (setup {r['setup_s']:.1f} s, loop {r['loop_s']:.1f} s)",
                  file=sys.stderr)
    res = {k: {**v[0], **{f: statistics.median(r[f] for r in v) for f in ("wall_s", "setup_s", "loop_s")}}
           for k, v in runs.items()}  # medians over the repetitions
    n = args.pairs
    rows = []
    labels = {"reference": "reference loop (lpips)", "torchmetrics": "torchmetrics, pair by pair",
              "ours": f"lpips-core dirs ({ours_setup(args)})", "decode": "decode only (lpips_core.load_image)",
              "trunk": "trunk only, 1 batch at a time", "trunk-streams": "trunk only, 1 batch per thread"}
    for kind in kinds:
        r = res[kind]
        if kind.startswith("trunk"):  # timed on trunk_pairs pairs, no files: its rate is a bound on the loop
            rate = r["pairs_timed"] / r["loop_s"]
            rows.append({"name": labels[kind], "pairs_per_s": rate, "loop_s": n / rate, "wall_s": None,
                         "loop_pairs_per_s": rate})
        else:
            rows.append({"name": labels[kind], "pairs_per_s": n / r["wall_s"], "loop_s": r["loop_s"],
                         "wall_s": r["wall_s"], "loop_pairs_per_s": n / r["loop_s"]})
    summary: dict = {"pairs": n, "size": args.size, "net": args.net, "device": args.device,
                     "batch_size": args.batch_size, "workers": args.workers, "streams": args.streams,
                     "threads": args.threads,
                     "reps": args.reps, "machine": machine(), "rows": rows, "raw": runs}
    if "ours" in res and "reference" in res:
        ours, ref = _read(work / "ours.csv"), _read(work / "reference.csv")
        summary["max_abs_diff_vs_reference"] = max(abs(ours[k] - ref[k]) for k in ref)
        summary["speedup_vs_reference"] = res["reference"]["wall_s"] / res["ours"]["wall_s"]
        summary["target_vs_reference"] = TARGET_VS_REFERENCE["cuda" if args.device.startswith("cuda") else "cpu"]
    if "ours" in res and "torchmetrics" in res:
        summary["speedup_vs_torchmetrics"] = res["torchmetrics"]["wall_s"] / res["ours"]["wall_s"]
    trunks = [res[k] for k in ("trunk", "trunk-streams") if k in res]
    if trunks:  # the bound: the faster way of running the trunk alone
        best = min(trunks, key=lambda r: r["loop_s"] / r["pairs_timed"])
        summary["trunk_bound_streams"] = best["streams"]
    if "ours" in res and trunks:
        bound = n * best["loop_s"] / best["pairs_timed"]
        summary["trunk_bound_s"] = bound
        summary["ours_loop_over_trunk"] = res["ours"]["loop_s"] / bound
        summary["ours_wall_over_trunk"] = res["ours"]["wall_s"] / bound
    if "decode" in res and trunks:
        summary["decode_s_per_pair"] = res["decode"]["loop_s"] / n
        summary["trunk_s_per_pair"] = best["loop_s"] / best["pairs_timed"]

    from lpips_core.files import write_json

    args.results.mkdir(parents=True, exist_ok=True)
    write_json(args.results / "bench_dirs.json", summary)
    print(write_report(summary, args.results))


if __name__ == "__main__":
    main()
