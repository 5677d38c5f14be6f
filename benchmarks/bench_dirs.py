"""Folder evaluation as whole commands: ``lpips-core dirs`` against a plain reference loop and torchmetrics.

Makes ``--pairs`` pairs of ``--size`` x ``--size`` PNG files (crops of the course
photographs, scikit-image's, and distorted versions from
:mod:`lpips_core.data.distortions`), then times, in the same run, each of these as
its own process (imports, model construction and writing the results included):

* ``ours``: ``lpips-core dirs a b -o out.csv --no-plot`` at its defaults (on a CPU one
  DataLoader worker per torch thread, each decoding and running whole batches, see
  :mod:`lpips_core.eval.batch_workers`; same-size pairs batched; the fast path of
  :mod:`lpips_core.model.fast`; the summary with its bootstrap interval is computed,
  the plot is left out as the others draw none);
* ``reference``: the reference package's ``lpips_2dirs.py`` way: for each file, load,
  ``lpips.im2tensor``, one ``forward`` per pair, a line written per pair (Pillow loads
  the files: the reference's OpenCV is not installed here; same pixels for 8-bit PNG);
* ``torchmetrics``: ``LearnedPerceptualImagePatchSimilarity`` updated pair by pair.

All three use the same trunk weights (copied from ours, as tests/conftest.py does).
Beside them: ``decode`` (every pair decoded, one thread, no model) and the trunk
alone on pre-decoded pairs in memory, in batches of ``--batch-size``, no files: one
batch at a time on all threads (``trunk``) and, on a CPU, one batch per worker process
as ``dirs`` runs them (``trunk-workers``, warmed up before the clock starts). The
faster of the two is the trunk-only bound: no folder evaluation can beat it here.

Repetitions run the contenders forward, then backward (ours stays next to the trunk-only
runs and the reference loop), and every ratio is taken within one repetition: on a shared
machine whose speed drifts over minutes, a ratio of medians from different minutes is not
a ratio. The reports give the median of the repetitions' ratios and each one.

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
    from lpips_core.data.photos import TRAIN_PHOTOS, VAL_PHOTOS, load_photo

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
        crop = np.ascontiguousarray(img[y : y + size, x : x + size])
        steps = [(kinds[rng.integers(len(kinds))], float(rng.uniform(0.1, 0.9)))]
        Image.fromarray(crop).save(a / f"{i:05d}.png")
        Image.fromarray(apply(crop, steps, rng)).save(b / f"{i:05d}.png")
    stamp.write_text(json.dumps(want))
    return a, b


# --------------------------------------------------------------------------- children (one process each)
def _reference_model(net: str, device: str):
    import lpips

    import lpips_core
    from lpips_core.model.safe_load import weights_only_loads

    with warnings.catch_warnings(), weights_only_loads():  # its .pth, restricted
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    ref.net.load_state_dict(lpips_core.LPIPS(net=net).net.state_dict())
    return ref.to(device).eval()


def _torchmetrics_model(net: str, device: str):
    import torchmetrics.functional.image.lpips as tm_lpips
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    import lpips_core
    from lpips_core.model.safe_load import weights_only_loads

    real = tm_lpips._get_tv_model_features
    tm_lpips._get_tv_model_features = lambda name, pretrained=False: real(name, pretrained=False)  # offline
    try:
        with weights_only_loads():  # its linear weights' .pth, restricted
            metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="mean")
    finally:
        tm_lpips._get_tv_model_features = real
    metric.net.net.load_state_dict(lpips_core.LPIPS(net=net).net.state_dict())
    return metric.to(device)


def _pil_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def child(
    kind: str, a: Path, b: Path, out: Path, net: str, device: str, batch_size: int, workers: str, trunk_pairs: int
) -> dict:
    """Run one contender; returns {'setup_s', 'loop_s', ...} measured inside the process.

    ``kind@precision`` (``ours@int8``, ``trunk-workers@int8``) runs ours or the trunk-only bound
    in that precision (issue 27).
    """
    import torch

    kind, _, precision = kind.partition("@")
    precision = precision or "fp32"
    t0 = time.perf_counter()
    names = sorted(p.name for p in a.glob("*.png"))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    info: dict = {}
    if kind == "ours":
        from lpips_core.cli import main

        t1 = time.perf_counter()
        chosen = [f"--workers={workers}"] if workers != "auto" else []  # otherwise the command's default
        rc = main(
            [
                "dirs",
                str(a),
                str(b),
                "-o",
                str(out),
                "--net",
                net,
                "--device",
                device,
                "-q",
                "--batch-size",
                str(batch_size),
                "--no-plot",
                "--precision",
                precision,
                *chosen,
            ]
        )
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
                metric.update(
                    lpips.im2tensor(_pil_rgb(a / name)).to(device), lpips.im2tensor(_pil_rgb(b / name)).to(device)
                )
            info["mean"] = float(metric.compute())
    elif kind == "decode":
        from lpips_core.data.images import load_image

        t1 = time.perf_counter()
        for name in names:
            load_image(a / name), load_image(b / name)
    elif kind in ("trunk", "trunk-workers"):
        import lpips_core
        from lpips_core.data.images import load_image
        from lpips_core.data.pairs import to_model_range
        from lpips_core.eval.batch_workers import BatchDistances, auto_workers, distance_loader

        model = lpips_core.LPIPS(net=net, precision=precision).to(device).eval()
        model.prepare_precision(device)  # int8: quantised before the workers fork, as dirs does
        m = min(trunk_pairs, len(names))
        u8 = torch.stack(
            [torch.stack([torch.from_numpy(load_image(d / n)) for d in (a, b)]) for n in names[:m]]
        )  # (m, 2, H, W, 3), as the pair datasets give them
        starts = list(range(0, m, batch_size))
        if kind == "trunk":  # one batch at a time in this process, on every thread; converted beforehand
            x = to_model_range(u8.to(device)).permute(0, 1, 4, 2, 3)
            with torch.inference_mode():
                model(x[:batch_size, 0], x[:batch_size, 1])  # warm-up (oneDNN primitives, CUDA kernels)
                sync()
                t1 = time.perf_counter()
                for s in starts:
                    model(x[s : s + batch_size, 0], x[s : s + batch_size, 1])
                sync()
            info.update(pairs_timed=m, workers=0)
        else:  # as lpips-core dirs on a CPU: whole batches in worker processes, pairs read from memory
            workers = auto_workers()
            items = [{"index": i, "images": u8[i]} for i in range(m)]
            todo = [list(range(s, min(s + batch_size, m))) for s in starts]
            batches = todo[:workers]  # the sampler's list, refilled: first one warm-up batch per worker
            loader = distance_loader(
                BatchDistances(items, model),
                batches,
                workers,
                max(1, torch.get_num_threads() // max(1, workers)),
                persistent=True,
            )
            list(loader)  # the timed pass below reuses these warmed-up workers
            batches[:] = todo
            t1 = time.perf_counter()
            list(loader)
            info.update(pairs_timed=m, workers=workers)
    else:
        raise ValueError(kind)
    sync()
    t2 = time.perf_counter()
    return {"setup_s": t1 - t0, "loop_s": t2 - t1, **info}


# --------------------------------------------------------------------------- parent
def ours_setup(args) -> str:
    """How ``lpips-core dirs`` was run, for the table: batch size and workers."""
    import torch

    from lpips_core.eval.batch_workers import default_workers

    device = torch.device(args.device)
    workers = default_workers(device, args.threads) if args.workers == "auto" else int(args.workers)
    what = "computing" if device.type == "cpu" else "decoding"
    return f"b{args.batch_size}, {workers} {what} worker{'s' * (workers != 1)}"


def run_child(kind: str, args, a: Path, b: Path, out: Path) -> dict:
    if kind == "ours-fp32":  # exact dirs beside the lower-precision one, in the same rotation
        kind = "ours@fp32"
    elif kind in ("ours", "trunk", "trunk-workers") and args.precision != "fp32":
        kind = f"{kind}@{args.precision}"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--data",
        str(args.data),
        "--net",
        args.net,
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--workers",
        args.workers,
        "--out",
        str(out),
        "--trunk-pairs",
        str(args.trunk_pairs),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
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

    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
        "avx512": bool(torch.cpu._is_avx512_supported()),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def plot(rows: list[dict], path: Path, title: str) -> None:
    from lpips_core.files import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [r["name"] for r in rows]
    vals = [r["loop_pairs_per_s"] for r in rows]
    colors = [
        "#888888"
        if r["name"].startswith(("decode only", "trunk only"))
        else "#1f77b4"
        if r["name"].startswith("lpips-core")
        else "#d62728"
        for r in rows
    ]
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


def write_report(summary: dict, results: Path, tag: str = "") -> str:
    """bench_dirs.md (the table and the ratios) and bench_dirs.png from a summary; returns the Markdown."""
    from lpips_core.files import write_text

    n, m = summary["pairs"], summary["machine"]
    rows = [{**r, "loop_pairs_per_s": r.get("loop_pairs_per_s", n / r["loop_s"])} for r in summary["rows"]]
    threads = summary["threads"]
    md = [
        f"{n} pairs of {summary['size']}x{summary['size']} PNG, {summary['net']}, {summary['device']}, "
        f"{threads} torch thread(s), median of {summary.get('reps', 1)} run(s) each (ratios: median of "
        f"each repetition's own ratio); "
        f"{m['cpu']} ({m['cores']} cores, 1-minute load {m['load_1min']:.1f} at the end)",
        "",
        "| command | whole command s | pairs/s | inside the command s | pairs/s inside |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        wall, rate = (f"{r['wall_s']:.1f}", f"{r['pairs_per_s']:.2f}") if r["wall_s"] is not None else ("-", "-")
        md.append(f"| {r['name']} | {wall} | {rate} | {r['loop_s']:.1f} | {r['loop_pairs_per_s']:.2f} |")
    md.append("")

    def reps(key: str) -> str:  # each repetition's own ratio, when there are several
        values = summary.get(key, [])
        return f" (by repetition: {', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""

    if "speedup_vs_reference" in summary:
        md.append(
            f"ours vs the reference loop: {summary['speedup_vs_reference']:.2f}x as whole commands"
            f"{reps('speedups_vs_reference')}; target {summary['target_vs_reference']}x; "
            f"max |ours - reference| {summary['max_abs_diff_vs_reference']:.1e}  "
        )
    if "speedup_vs_torchmetrics" in summary:
        md.append(
            f"ours vs torchmetrics pair by pair: {summary['speedup_vs_torchmetrics']:.2f}x"
            f"{reps('speedups_vs_torchmetrics')}  "
        )
    if "speedup_vs_fp32" in summary:
        md.append(
            f"ours in {summary['precision']} vs ours in exact fp32: {summary['speedup_vs_fp32']:.2f}x as whole "
            f"commands{reps('speedups_vs_fp32')}; relative error of the distances max "
            f"{summary['rel_err_vs_fp32']['max']:.2%}, median {summary['rel_err_vs_fp32']['median']:.2%}  "
        )
    if "ours_loop_over_trunk" in summary:
        how = "1 batch per worker" if summary.get("trunk_bound_workers", 0) else "1 batch at a time"
        md.append(
            f"ours inside the command / trunk-only bound ({how}, the faster): "
            f"{summary['ours_loop_over_trunk']:.2f}{reps('ours_loop_over_trunk_by_rep')}; whole command "
            f"{summary['ours_wall_over_trunk']:.2f}; target <= {TARGET_VS_TRUNK}  "
        )
    if "decode_s_per_pair" in summary:
        md.append(
            f"where the time goes, per pair: decode {1000 * summary['decode_s_per_pair']:.1f} ms "
            f"(one thread), trunk {1000 * summary['trunk_s_per_pair']:.1f} ms"
        )
    text = "\n".join(md) + "\n"
    write_text(results / f"bench_dirs{tag}.md", text)
    plot(
        rows,
        results / f"bench_dirs{tag}.png",
        f"LPIPS over {n} pairs of {summary['size']}x{summary['size']} PNG ({summary['net']}, {summary['device']}, "
        f"{threads} torch thread{'s' if threads != 1 else ''})",
    )
    return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--net", default="alex", choices=["alex", "vgg", "squeeze"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", default="auto", help="DataLoader workers of ours (default: the command's)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of every contender")
    p.add_argument("--trunk-pairs", type=int, default=200, help="pairs the trunk-only bound is timed on")
    p.add_argument("--reps", type=int, default=1, help="repetitions of every contender (medians reported)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "int8"],
        help="ours and the trunk-only bound in this precision; exact dirs then runs beside them",
    )
    p.add_argument("--tag", default="", help="suffix of the result files (bench_dirs<tag>.*)")
    p.add_argument("--data", type=Path, default=REPO / "runs" / "bench_dirs_data")
    p.add_argument("--skip", nargs="*", default=[], help="contenders to leave out (e.g. torchmetrics)")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--replot", action="store_true", help="redraw bench_dirs.{md,png} from bench_dirs.json")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        res = child(
            args.child,
            args.data / "a",
            args.data / "b",
            args.out,
            args.net,
            args.device,
            args.batch_size,
            args.workers,
            args.trunk_pairs,
        )
        print(json.dumps(res))
        return
    if args.replot:
        print(
            write_report(json.loads((args.results / f"bench_dirs{args.tag}.json").read_text()), args.results, args.tag)
        )
        return

    t = time.perf_counter()
    a, b = make_pairs(args.data, args.pairs, args.size)
    print(
        f"{args.pairs} pairs of {args.size}x{args.size} PNG in {args.data} ({time.perf_counter() - t:.1f} s)",
        file=sys.stderr,
    )
    work = args.data / "outputs"
    work.mkdir(exist_ok=True)
    # ours sits between the trunk-only runs and the reference loop it is divided by
    kinds = [
        k
        for k in ("decode", "trunk", "trunk-workers", "ours", "ours-fp32", "reference", "torchmetrics")
        if k not in args.skip
        and not (k == "trunk-workers" and args.device != "cpu")
        and not (k == "ours-fp32" and args.precision == "fp32")
    ]
    res = {}
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for rep in range(args.reps):  # forward, then backward, ...: ours stays next to what it is compared with
        order = kinds if rep % 2 == 0 else kinds[::-1]
        for kind in order:
            print(f"rep {rep + 1}/{args.reps}: running {kind} ...", file=sys.stderr)
            r = run_child(kind, args, a, b, work / f"{kind}.csv")
            runs[kind].append(r)
            print(
                f"  {kind}: wall {r['wall_s']:.1f} s (setup {r['setup_s']:.1f} s, loop {r['loop_s']:.1f} s)",
                file=sys.stderr,
            )
    res = {
        k: {**v[0], **{f: statistics.median(r[f] for r in v) for f in ("wall_s", "setup_s", "loop_s")}}
        for k, v in runs.items()
    }  # medians over the repetitions
    n = args.pairs
    rows = []
    labels = {
        "reference": "reference loop (lpips)",
        "torchmetrics": "torchmetrics, pair by pair",
        "ours": f"lpips-core dirs ({ours_setup(args)}{', ' + args.precision if args.precision != 'fp32' else ''})",
        "ours-fp32": f"lpips-core dirs ({ours_setup(args)}, exact fp32)",
        "decode": "decode only (lpips_core.load_image)",
        "trunk": "trunk only, 1 batch at a time",
        "trunk-workers": "trunk only, 1 batch per worker",
    }
    for kind in kinds:
        r = res[kind]
        if kind.startswith("trunk"):  # timed on trunk_pairs pairs, no files: its rate is a bound on the loop
            rate = r["pairs_timed"] / r["loop_s"]
            rows.append(
                {
                    "name": labels[kind],
                    "pairs_per_s": rate,
                    "loop_s": n / rate,
                    "wall_s": None,
                    "loop_pairs_per_s": rate,
                }
            )
        else:
            rows.append(
                {
                    "name": labels[kind],
                    "pairs_per_s": n / r["wall_s"],
                    "loop_s": r["loop_s"],
                    "wall_s": r["wall_s"],
                    "loop_pairs_per_s": n / r["loop_s"],
                }
            )
    summary: dict = {
        "pairs": n,
        "size": args.size,
        "net": args.net,
        "device": args.device,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "threads": args.threads,
        "reps": args.reps,
        "machine": machine(),
        "rows": rows,
        "raw": runs,
    }

    # Ratios are taken within each repetition (contenders run minutes apart, and this shared
    # machine's speed drifts by tens of percent over a run), then the median over repetitions.
    def per_rep(ratio) -> list[float]:
        return [ratio(rep) for rep in range(args.reps)]

    def bound_s(rep: int) -> tuple[float, int]:  # the faster trunk-only run of this repetition, for n pairs
        r = min(
            (runs[k][rep] for k in ("trunk", "trunk-workers") if k in runs),
            key=lambda r: r["loop_s"] / r["pairs_timed"],
        )
        return n * r["loop_s"] / r["pairs_timed"], r["workers"]

    if "ours" in res and "reference" in res:
        ours, ref = _read(work / "ours.csv"), _read(work / "reference.csv")
        summary["max_abs_diff_vs_reference"] = max(abs(ours[k] - ref[k]) for k in ref)
        summary["speedups_vs_reference"] = per_rep(lambda i: runs["reference"][i]["wall_s"] / runs["ours"][i]["wall_s"])
        summary["speedup_vs_reference"] = statistics.median(summary["speedups_vs_reference"])
        summary["target_vs_reference"] = TARGET_VS_REFERENCE["cuda" if args.device.startswith("cuda") else "cpu"]
        if args.precision != "fp32" and not args.device.startswith("cuda"):
            summary["target_vs_reference"] = 2.0  # issue 27: dirs in its fastest mode within the error targets
    if "ours" in res and "ours-fp32" in res:
        summary["precision"] = args.precision
        summary["speedups_vs_fp32"] = per_rep(lambda i: runs["ours-fp32"][i]["wall_s"] / runs["ours"][i]["wall_s"])
        summary["speedup_vs_fp32"] = statistics.median(summary["speedups_vs_fp32"])
        ours, exact = _read(work / "ours.csv"), _read(work / "ours-fp32.csv")
        rel = [abs(ours[k] - exact[k]) / exact[k] for k in exact if exact[k] > 0]  # identical pairs: 0 in both
        summary["rel_err_vs_fp32"] = {"max": max(rel), "median": statistics.median(rel)}
    if "ours" in res and "torchmetrics" in res:
        summary["speedups_vs_torchmetrics"] = per_rep(
            lambda i: runs["torchmetrics"][i]["wall_s"] / runs["ours"][i]["wall_s"]
        )
        summary["speedup_vs_torchmetrics"] = statistics.median(summary["speedups_vs_torchmetrics"])
    trunks = [res[k] for k in ("trunk", "trunk-workers") if k in res]
    if trunks:  # the bound: the faster way of running the trunk alone
        best = min(trunks, key=lambda r: r["loop_s"] / r["pairs_timed"])
        summary["trunk_bound_workers"] = best["workers"]
    if "ours" in res and trunks:
        summary["trunk_bound_s"] = n * best["loop_s"] / best["pairs_timed"]
        summary["ours_loop_over_trunk_by_rep"] = per_rep(lambda i: runs["ours"][i]["loop_s"] / bound_s(i)[0])
        summary["ours_wall_over_trunk_by_rep"] = per_rep(lambda i: runs["ours"][i]["wall_s"] / bound_s(i)[0])
        summary["ours_loop_over_trunk"] = statistics.median(summary["ours_loop_over_trunk_by_rep"])
        summary["ours_wall_over_trunk"] = statistics.median(summary["ours_wall_over_trunk_by_rep"])
    if "decode" in res and trunks:
        summary["decode_s_per_pair"] = res["decode"]["loop_s"] / n
        summary["trunk_s_per_pair"] = best["loop_s"] / best["pairs_timed"]

    from lpips_core.files import write_json

    args.results.mkdir(parents=True, exist_ok=True)
    write_json(args.results / f"bench_dirs{args.tag}.json", summary)
    print(write_report(summary, args.results, args.tag))


if __name__ == "__main__":
    main()
