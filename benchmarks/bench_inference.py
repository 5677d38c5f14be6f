"""Inference speed and memory of lpips_core against the reference ``lpips`` package.

Same process, same weights (the reference is built with ``pnet_rand=True`` and
given our trunk's weights, as in tests/conftest.py), real photographs, runs of
the two implementations interleaved (A B, then B A, ...), medians of the times
and of the per-repetition ratios (reference time / ours: > 1 means we are
faster). The thread count is set with ``torch.set_num_threads`` and printed.

Usage::

    python benchmarks/bench_inference.py               # full run, CPU (about 15 min on 2 cores)
    python benchmarks/bench_inference.py --quick       # fewer repetitions, smaller all-pairs/memory cases
    python benchmarks/bench_inference.py --device cuda --quick

Writes ``benchmarks/results/inference_<device>.{csv,json,png}``.

Columns: ours/ref ms (medians), ratio, max |ours - ref|, trunk convolution
GFLOP/s (convolution FLOPs counted from the layer shapes, divided by the whole
call's time; the fp32 peak of the machine is printed beside them), peak memory
of one call (CPU: sampled resident-set growth; GPU: allocator peak).
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lpips_core  # noqa: E402
from lpips_core.files import write_csv, write_text  # noqa: E402
from lpips_core.model.safe_load import weights_only_loads  # noqa: E402

#: case -> minimum ratio (reference time / ours) asked for in issue 7.
TARGETS = {
    "alex 64x64 b64": 1.25,
    "alex 256x256 b8": 1.2,
    "vgg 64x64 b64": 1.15,
    "squeeze 64x64 b64": 1.3,
    "alex 64x64 b64 bf16": 2.0,
    "alex all-pairs 32x256x256": 10.0,
    "alex 1-vs-64 256x256": 1.8,
}


@dataclass
class Row:
    case: str
    ours_ms: float | None = None
    ref_ms: float | None = None
    ratio: float | None = None
    target: float | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    ours_gflops: float | None = None
    ref_gflops: float | None = None
    ours_peak_mb: float | None = None
    ref_peak_mb: float | None = None
    reps: int = 0
    note: str = ""
    ratios: list = field(default_factory=list)


# --------------------------------------------------------------------------- inputs
PHOTOS = [
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "cat",
    "colorwheel",
]


def photo_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` random crops of scikit-image photographs, in [-1, 1].

    Each photograph is resized so that a crop spans 50-100% of its short side.
    """
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()[:, :, :3]
        scale = rng.uniform(1.0, 2.0) * size / min(img.shape[:2])  # crop = 50-100% of the short side
        h, w = (max(size, int(round(d * scale))) for d in img.shape[:2])
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out.append(lpips_core.im2tensor(img[y : y + size, x : x + size]))
    return torch.cat(out)


def distorted(images: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Noise, blur or JPEG versions of ``images`` (cycled), in [-1, 1]."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    out = []
    for i, t in enumerate(images):
        img = lpips_core.tensor2im(t[None])
        kind = i % 3
        if kind == 0:
            d = np.clip(img + rng.normal(0, rng.uniform(4, 20), img.shape), 0, 255).astype(np.uint8)
        elif kind == 1:
            d = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))))
        else:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=int(rng.integers(10, 60)))
            d = np.asarray(Image.open(buf).convert("RGB"))
        out.append(lpips_core.im2tensor(d))
    return torch.cat(out)


# --------------------------------------------------------------------------- models
def build_models(net: str, device: str, **kwargs):
    """(ours, reference) with identical trunk weights, eval mode, on ``device``."""
    import lpips

    ours = lpips_core.LPIPS(net=net, **kwargs).to(device).eval()
    with warnings.catch_warnings(), weights_only_loads():  # its .pth, restricted
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    ref.net.load_state_dict(ours.net.state_dict())
    return ours, ref.to(device).eval()


def conv_flops(model: lpips_core.LPIPS, hw: tuple[int, int]) -> float:
    """FLOPs (2 per multiply-add) of the trunk's convolutions for ONE image of size ``hw``."""
    total = [0.0]

    def hook(mod, inp, out):
        cin = mod.in_channels // mod.groups
        total[0] += 2.0 * out.shape[1] * cin * mod.kernel_size[0] * mod.kernel_size[1] * out.shape[2] * out.shape[3]

    hooks = [m.register_forward_hook(hook) for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.inference_mode():
            model.net(torch.zeros(1, 3, *hw, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return total[0]


# --------------------------------------------------------------------------- machine
def fp32_peak(device: str, threads: int) -> dict:
    """Measured sgemm throughput (a practical peak) and, on CPU, the nominal AVX-512 FMA peak."""
    n = 4096 if device == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    info = {"sgemm_gflops": 2 * n**3 / best / 1e9}
    if device == "cpu":
        mhz = None
        try:
            mhz = max(float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz"))
        except (OSError, ValueError):
            pass
        if mhz and torch.cpu._is_avx512_supported():
            # 2 AVX-512 FMA units x 16 float32 lanes x 2 FLOPs = 64 FLOP/cycle/core (Xeon Scalable)
            info["nominal_gflops"] = 64 * mhz / 1000 * threads
            info["cpu_mhz"] = mhz
    return info


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), or the platform's word for it."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def bf16_support(device: str) -> tuple[bool, str]:
    if device == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "" if ok else "this GPU has no bf16 support"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return native, "" if native else (
        "this CPU exposes neither AVX512_BF16 nor AMX (see lscpu flags), so "
        "oneDNN emulates bf16 in fp32 and it is slower than fp32"
    )


def machine_load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


# --------------------------------------------------------------------------- measuring
def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return vals[3] + vals[4], sum(vals)  # idle + iowait, total (jiffies)


#: Wait for a quiet machine before each repetition (set from --wait-quiet), seconds at most.
WAIT_QUIET = 0.0
QUIET_STATS = {"waited_s": 0.0, "busy_reps": 0, "reps": 0}


def wait_quiet(max_wait: float, busy_limit: float = 0.1, window: float = 0.3) -> bool:
    """Block until the whole machine was at least 90% idle over ``window`` s (other users share
    these cores), for at most ``max_wait`` s. Returns True when it was quiet."""
    if max_wait <= 0 or not os.path.exists("/proc/stat"):
        return True
    start = time.perf_counter()
    while True:
        i0, t0 = _cpu_times()
        time.sleep(window)
        i1, t1 = _cpu_times()
        busy = 1 - (i1 - i0) / max(1, t1 - t0)
        if busy <= busy_limit:
            QUIET_STATS["waited_s"] += time.perf_counter() - start
            return True
        if time.perf_counter() - start > max_wait:
            QUIET_STATS["waited_s"] += time.perf_counter() - start
            return False


def _own_jiffies() -> int:
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime of this process (all threads)


def interleaved(fa: Callable, fb: Callable, reps: int, sync: Callable, warmup: int = 1):
    """Times of ``fa`` and ``fb`` run alternately (a b, b a, a b, ...), seconds, and their last outputs.

    With ``--wait-quiet`` each a/b pair starts once the machine looks idle, and a pair
    during which other processes used more than 10% of the CPUs is measured again
    (at most 3 extra attempts per repetition, none for pairs longer than 5 s; a pair kept
    although busy is counted in QUIET_STATS)."""
    for _ in range(warmup):
        fa(), fb()
    sync()
    ta, tb, last = [], [], {}
    quiet_mode = WAIT_QUIET > 0 and os.path.exists("/proc/stat")
    for i in range(reps):
        QUIET_STATS["reps"] += 1
        order = ((fa, ta), (fb, tb)) if i % 2 == 0 else ((fb, tb), (fa, ta))
        for _attempt in range(4 if quiet_mode else 1):
            wait_quiet(WAIT_QUIET)
            if quiet_mode:
                i0, t0 = _cpu_times()
                own0 = _own_jiffies()
            times = []
            for f, store in order:
                sync()
                t = time.perf_counter()
                last[id(store)] = f()
                sync()
                times.append(time.perf_counter() - t)
            if not quiet_mode:
                break
            i1, t1 = _cpu_times()
            others = (t1 - t0) - (i1 - i0) - (_own_jiffies() - own0)
            clean = others <= 0.1 * max(1, t1 - t0)
            if clean or sum(times) > 5.0:  # long cases (minutes) are kept: they cannot wait for quiet
                QUIET_STATS["busy_reps"] += 0 if clean else 1
                break
        else:
            QUIET_STATS["busy_reps"] += 1
        for (_f, store), dt in zip(order, times):
            store.append(dt)
    return ta, tb, last.get(id(ta)), last.get(id(tb))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def peak_memory_mb(fn: Callable, device: str) -> float:
    """Peak extra memory of one call: allocator peak on GPU; sampled RSS growth on CPU."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    _trim()
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        fn()
    finally:
        done.set()
        th.join()
    peak[0] = max(peak[0], _rss_bytes())
    return (peak[0] - base) / 2**20


def compare(
    case: str,
    ours_fn: Callable,
    ref_fn: Callable,
    reps: int,
    device: str,
    flops: float | None = None,
    note: str = "",
    ref_memory: bool = True,
    warmup: int = 1,
) -> Row:
    """Run one case: interleaved timings, exactness from the last timed outputs, peak memory."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    row = Row(case=case, target=TARGETS.get(case), note=note)
    with torch.inference_mode():
        ta, tb, out_a, out_b = interleaved(ours_fn, ref_fn, reps, sync, warmup)
        row.max_abs_diff, row.max_rel_diff = diff_of(out_a, out_b)
        row.ours_peak_mb = peak_memory_mb(ours_fn, device)
        row.ref_peak_mb = peak_memory_mb(ref_fn, device) if ref_memory else None
    row.reps = reps
    row.ours_ms, row.ref_ms = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
    row.ratios = [b / a for a, b in zip(ta, tb)]
    row.ratio = statistics.median(row.ratios)
    if flops:
        row.ours_gflops, row.ref_gflops = flops / row.ours_ms / 1e6, flops / row.ref_ms / 1e6
    return row


def diff_of(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    a, b = a.float().flatten(), b.float().flatten()
    return (a - b).abs().max().item(), ((a - b).abs() / b.abs().clamp_min(1e-12)).max().item()


# --------------------------------------------------------------------------- cases
def pair_case(net, size, batch, reps, device, images, dtype=torch.float32, name=None, compile=False, extra_note=""):
    ours, ref = build_models(net, device, dtype=dtype, compile=compile)
    x = images[0][:batch].to(device)
    y = images[1][:batch].to(device)
    case = name or f"{net} {size}x{size} b{batch}"
    flops = 2 * batch * conv_flops(ours, (size, size))
    if compile:
        t = time.perf_counter()
        with torch.inference_mode():
            ours(x, y)
        note = f"torch.compile; first call (compilation) {time.perf_counter() - t:.0f} s"
    else:
        note = "" if dtype == torch.float32 else f"dtype={dtype}: error relative to the fp32 reference"
    note = "; ".join(filter(None, [note, extra_note]))
    return compare(case, lambda: ours(x, y), lambda: ref(x, y), reps, device, flops, note=note)


def pairwise_case(n, size, reps, device, images):
    ours, ref = build_models("alex", device)
    x = images.to(device)
    i, j = torch.triu_indices(n, n, offset=1)

    def reference_matrix():
        out = torch.zeros(n, n, device=device)
        for a, b in zip(i.tolist(), j.tolist()):  # one reference call per pair
            out[a, b] = out[b, a] = ref(x[a : a + 1], x[b : b + 1]).item()
        return out

    flops = n * conv_flops(ours, (size, size))
    return compare(
        f"alex all-pairs {n}x{size}x{size}",
        lambda: ours.pairwise(x)[i, j],
        lambda: reference_matrix()[i, j],
        reps,
        device,
        flops,
        note=f"{len(i)} pairs; reference: one call per pair (i < j)",
        ref_memory=False,
        warmup=0,
    )


def one_to_many_case(n, size, reps, device, images):
    ours, ref = build_models("alex", device)
    r, x = images[:1].to(device), images[1 : n + 1].to(device)
    flops = (n + 1) * conv_flops(ours, (size, size))
    row = compare(
        f"alex 1-vs-{n} {size}x{size}",
        lambda: ours.one_to_many(r, x),
        lambda: ref(r.expand_as(x), x),
        reps,
        device,
        flops,
        note="reference: the reference image repeated N times",
    )
    # Honest extra: the reference package also broadcasts a batch of 1 (trunk once on the reference).
    bcast = compare(
        f"alex 1-vs-{n} {size}x{size} (ref broadcasts)",
        lambda: ours.one_to_many(r, x),
        lambda: ref(r, x),
        reps,
        device,
        flops,
        note="reference called as ref(r, images) with a batch of 1 (not in the issue's table)",
    )
    return [row, bcast]


def export_rows(reps, images, threads) -> list[Row]:
    """TorchScript, ONNX Runtime (fp32 and int8) and PyTorch int8 against the eager model (CPU)."""
    import tempfile

    from lpips_core.model import export as E

    ours, ref = build_models("alex", "cpu")
    x, y = images[0][:64], images[1][:64]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(ours)
        with tempfile.TemporaryDirectory() as tmp:
            path = E.export_onnx(ours, Path(tmp) / "alex.onnx")
            qpath = E.quantize_onnx(path, Path(tmp) / "alex_int8.onnx")
            sess, qsess = E.onnx_session(path, threads), E.onnx_session(qpath, threads)
            qtorch = E.quantize_dynamic(ours)
            variants = [
                ("TorchScript (script)", lambda: scripted(x, y)),
                ("ONNX Runtime fp32", lambda: E.onnx_distance(sess, x, y)),
                ("ONNX Runtime int8 (dynamic)", lambda: E.onnx_distance(qsess, x, y)),
                ("PyTorch int8 (dynamic)", lambda: qtorch(x, y)),
            ]
            for name, fn in variants:
                rows.append(
                    compare(
                        f"alex 64x64 b64 {name}",
                        fn,
                        lambda: ref(x, y),
                        reps,
                        "cpu",
                        note="ratio and error vs the reference (eager fp32)",
                    )
                )
    return rows


def memory_child(impl: str, net: str, size: int, device: str) -> None:
    """Subprocess body: one pair at ``size``; prints JSON with the peak memory and the distance."""
    ours, ref = build_models(net, device)
    model = ours if impl == "ours" else ref
    if impl == "ours":
        del ref
    else:
        del ours
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, size, size, generator=gen) * 2 - 1).to(device)
    y = (x + 0.1 * torch.randn(1, 3, size, size, generator=gen).to(device)).clamp(-1, 1)
    _trim()
    base = _rss_bytes()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        gbase = torch.cuda.memory_allocated()
    t = time.perf_counter()
    with torch.no_grad():
        d = model(x, y).item()
    seconds = time.perf_counter() - t
    out = {
        "impl": impl,
        "distance": d,
        "seconds": seconds,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": base / 2**20,
    }
    if device == "cuda":
        out["gpu_peak_extra_mb"] = (torch.cuda.max_memory_allocated() - gbase) / 2**20
    print("RESULT " + json.dumps(out))


def memory_rows(net: str, size: int, device: str, threads: int) -> list[dict]:
    results = []
    for impl in ("ours", "ref"):
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            impl,
            "--net",
            net,
            "--size",
            str(size),
            "--device",
            device,
            "--threads",
            str(threads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            results.append({"impl": impl, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
        else:
            results.append(json.loads(line[len("RESULT ") :]))
    return results


# --------------------------------------------------------------------------- report
def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def print_table(rows: list[Row], peak: dict) -> None:
    head = (
        f"{'case':44s} {'ours ms':>9s} {'ref ms':>9s} {'ratio':>6s} {'target':>6s} {'max|diff|':>9s} "
        f"{'GFLOP/s':>9s} {'ref GF/s':>8s} {'peak MB':>8s} {'ref MB':>8s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.ours_ms is None:
            print(f"{r.case:44s} skipped: {r.note}")
            continue
        met = "" if r.target is None else (" ok" if r.ratio >= r.target else " MISS")
        print(
            f"{r.case:44s} {fmt(r.ours_ms):>9s} {fmt(r.ref_ms):>9s} {fmt(r.ratio, '.2f'):>6s} "
            f"{fmt(r.target, '.2f'):>6s} {fmt(r.max_abs_diff, '.1e'):>9s} {fmt(r.ours_gflops):>9s} "
            f"{fmt(r.ref_gflops):>8s} {fmt(r.ours_peak_mb, '.0f'):>8s} {fmt(r.ref_peak_mb, '.0f'):>8s}{met}"
        )
        if r.note:
            print(f"{'':44s}   ({r.note})")
    print(
        "fp32 peak of this machine: measured sgemm "
        f"{peak['sgemm_gflops']:.0f} GFLOP/s"
        + (
            f", nominal {peak['nominal_gflops']:.0f} GFLOP/s ({peak['cpu_mhz']:.0f} MHz x 64 FLOP/cycle x cores)"
            if "nominal_gflops" in peak
            else ""
        )
    )


def plot(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lpips_core.files import save_figure

    shown = [r for r in rows if r.ratio is not None and r.target is not None]
    if not shown:
        return
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(shown) + 1.5))
    ys = np.arange(len(shown))
    ax.barh(ys, [r.ratio for r in shown], color=["tab:green" if r.ratio >= r.target else "tab:red" for r in shown])
    ax.scatter([r.target for r in shown], ys, marker="|", s=300, color="black", label="target", zorder=3)
    ax.set_yticks(ys, [r.case for r in shown])
    ax.set_xscale("log")
    ax.set_xlabel("speed-up over the reference lpips package (reference time / ours), log scale")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller all-pairs and memory cases")
    ap.add_argument("--reps", type=int, default=None, help="interleaved repetitions per case")
    ap.add_argument(
        "--only", default="", help="comma-separated case groups: exact,bf16,pairs,one,export,memory,compile"
    )
    ap.add_argument("--compile", action="store_true", help="also time compile=True (compiles for tens of seconds)")
    ap.add_argument("--force-bf16", action="store_true", help="time bf16 even where the hardware lacks it")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each repetition wait up to SECONDS for the machine to be idle (shared machines)",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--memory-child", choices=["ours", "ref"], help=argparse.SUPPRESS)
    ap.add_argument("--net", default="vgg", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=2048, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    global WAIT_QUIET
    WAIT_QUIET = args.wait_quiet
    if args.memory_child:
        memory_child(args.memory_child, args.net, args.size, args.device)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available here")
    from tqdm.auto import tqdm

    groups = set(filter(None, args.only.split(","))) or {"exact", "bf16", "pairs", "one", "export", "memory"}
    if args.compile:
        groups.add("compile")
    reps = args.reps or (5 if args.quick else 15)
    dev = args.device
    if dev == "cuda":  # exact fp32 on both sides: no TF32 (it would cost ~1e-3 of accuracy)
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    print(
        f"torch {torch.__version__}, device {dev}"
        + (
            f" ({torch.cuda.get_device_name()})"
            if dev == "cuda"
            else f" ({platform.processor() or platform.machine()})"
        )
        + f", torch.set_num_threads({args.threads}) -> torch.get_num_threads() = {torch.get_num_threads()}, "
        f"{reps} interleaved repetitions per case, load average at start {machine_load()}"
    )
    peak = fp32_peak(dev, args.threads)

    small = (photo_crops(64, 64, seed=0), None)
    small = (small[0], distorted(small[0]))
    big = photo_crops(8, 256, seed=2)
    big = (big, distorted(big, seed=3))
    n_all = 8 if args.quick else 32
    n_many = 16 if args.quick else 64
    rows: list[Row] = []
    plan = []
    if "exact" in groups:
        plan += [
            ("alex 64x64 b64", lambda: pair_case("alex", 64, 64, reps, dev, small)),
            ("alex 256x256 b8", lambda: pair_case("alex", 256, 8, reps, dev, big)),
            ("vgg 64x64 b64", lambda: pair_case("vgg", 64, 64, reps, dev, small)),
            ("squeeze 64x64 b64", lambda: pair_case("squeeze", 64, 64, reps, dev, small)),
        ]
    if "bf16" in groups:
        ok, why = bf16_support(dev)
        if ok or args.force_bf16:
            forced = "" if ok else f"timed with --force-bf16 although {why}"
            plan.append(
                (
                    "alex 64x64 b64 bf16",
                    lambda: pair_case(
                        "alex", 64, 64, reps, dev, small, torch.bfloat16, name="alex 64x64 b64 bf16", extra_note=forced
                    ),
                )
            )
        else:
            rows.append(
                Row(
                    case="alex 64x64 b64 bf16",
                    target=TARGETS["alex 64x64 b64 bf16"],
                    note=f"skipped: {why}; run with --force-bf16 to time it anyway",
                )
            )
    if "compile" in groups:
        plan.append(
            (
                "alex 64x64 b64 compile",
                lambda: pair_case("alex", 64, 64, reps, dev, small, name="alex 64x64 b64 compile=True", compile=True),
            )
        )
    if "pairs" in groups:
        plan.append(
            ("all pairs", lambda: pairwise_case(n_all, 256, max(3, reps // 4), dev, photo_crops(n_all, 256, seed=4)))
        )
    if "one" in groups:
        plan.append(
            (
                "one to many",
                lambda: one_to_many_case(n_many, 256, max(3, reps // 2), dev, photo_crops(n_many + 1, 256, seed=5)),
            )
        )
    if "export" in groups and dev == "cpu":
        plan.append(("exports", lambda: export_rows(max(3, reps // 2), small, args.threads)))
    for _name, run in tqdm(plan, desc="cases", unit="case", file=sys.stderr):
        out = run()
        rows.extend(out if isinstance(out, list) else [out])

    memory = None
    if "memory" in groups:
        size = 1024 if args.quick else 2048
        print(
            f"peak memory, one vgg pair at {size}x{size} (each implementation in its own process) ...", file=sys.stderr
        )
        memory = {"net": "vgg", "size": size, "results": memory_rows("vgg", size, dev, args.threads)}

    print()
    print_table(rows, peak)
    if memory:
        print(f"\nPeak memory, one vgg pair at {memory['size']}x{memory['size']}:")
        for r in memory["results"]:
            if "error" in r:
                print(f"  {r['impl']:5s} failed: {r['error']}")
            else:
                extra = f", GPU peak +{r['gpu_peak_extra_mb']:.0f} MB" if "gpu_peak_extra_mb" in r else ""
                print(
                    f"  {r['impl']:5s} peak RSS {r['rss_peak_mb']:.0f} MB (RSS before the call "
                    f"{r['rss_before_mb']:.0f} MB){extra}, {r['seconds']:.1f} s, d = {r['distance']:.6f}"
                )
    print(f"load average at end {machine_load()}")
    if WAIT_QUIET > 0:
        print(
            f"--wait-quiet {WAIT_QUIET:g}: {QUIET_STATS['reps'] - QUIET_STATS['busy_reps']} of {QUIET_STATS['reps']} "
            f"repetitions ran with other processes using <= 10% of the CPUs, "
            f"{QUIET_STATS['waited_s']:.0f} s spent waiting for quiet"
        )

    out = Path(args.out)
    stem = f"inference_{dev}"
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "device": dev,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "reps": reps,
        "quick": args.quick,
        "fp32_peak": peak,
        "bf16_native": bf16_support(dev)[0],
        "load_average_end": machine_load(),
        "wait_quiet_s": WAIT_QUIET,
        "quiet_stats": QUIET_STATS,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_text(
        out / f"{stem}.json", json.dumps({"meta": meta, "rows": [asdict(r) for r in rows], "memory": memory}, indent=1)
    )
    cols = [
        "case",
        "ours_ms",
        "ref_ms",
        "ratio",
        "target",
        "max_abs_diff",
        "max_rel_diff",
        "ours_gflops",
        "ref_gflops",
        "ours_peak_mb",
        "ref_peak_mb",
        "reps",
        "note",
    ]
    write_csv(out / f"{stem}.csv", cols, [[getattr(r, c) for c in cols] for r in rows])
    plot(
        rows,
        out / f"{stem}.png",
        f"lpips_core vs lpips 0.1.4, {dev}, {torch.get_num_threads()} threads, medians of {reps} interleaved runs",
    )
    print(f"wrote {out / stem}.csv/.json/.png")


if __name__ == "__main__":
    main()
