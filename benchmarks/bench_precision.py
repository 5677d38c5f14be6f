"""Speed of the lower precisions against exact fp32 and the reference, same process, interleaved.

Every case runs its contenders in one process on the same inputs (crops of the course
photographs and distorted versions, as benchmarks/bench_inference.py), in a rotating
order (A B C, B C A, C A B, ...), and every ratio is taken within one repetition, then
the median over the repetitions: on a shared machine whose speed drifts over minutes,
that is the ratio that means something. The 1-minute load average is printed and stored
before and after every case.

Contenders: ``ref`` (the reference ``lpips`` 0.1.4, same trunk weights), ``fp32``
(lpips_core exact), and each requested precision: ``int8`` (x86 CPUs), ``bf16`` (where
native: AMX/AVX512_BF16, GPUs; ``--force-bf16`` times the emulation anyway), ``fp16``
(GPUs). On CUDA every model runs channels-last and TF32 is off.

Usage::

    python benchmarks/bench_precision.py                        # CPU: fp32, int8 (+ bf16 where native), ref
    python benchmarks/bench_precision.py --device cuda --batch-sweep 1,8,32,128 --memory
    python benchmarks/bench_precision.py --cases "alex 512x512 b2" --reps 9

Writes ``results/precision/speed_<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_inference import build_models, cpu_model, distorted, photo_crops, wait_quiet  # noqa: E402

import lpips_core  # noqa: E402
from lpips_core.files import write_json, write_text  # noqa: E402
from lpips_core.model import precision as P  # noqa: E402

#: case name -> (net, side, batch)
CASES = {
    "alex 64x64 b64": ("alex", 64, 64),
    "alex 256x256 b8": ("alex", 256, 8),
    "alex 512x512 b2": ("alex", 512, 2),
    "squeeze 64x64 b64": ("squeeze", 64, 64),
    "squeeze 256x256 b8": ("squeeze", 256, 8),
    "vgg 64x64 b64": ("vgg", 64, 64),
    "vgg 256x256 b4": ("vgg", 256, 4),
}
#: issue 27's speed targets: precision -> minimum speed-up over exact fp32 (by CPU kind)
TARGETS = {"int8": {"avx2": 1.8, "avx512_vnni": 2.5}, "bf16": {"amx": 3.0}}


def load1() -> float:
    return os.getloadavg()[0]


def cpu_kind() -> str:
    if torch.cpu._is_amx_tile_supported():
        return "amx"
    if torch.cpu._is_vnni_supported():
        return "avx512_vnni"
    if torch.cpu._is_avx512_supported():
        return "avx512"
    return "avx2" if torch.cpu._is_avx2_supported() else "other"


#: --wait-quiet: before each repetition wait up to this many seconds for an idle machine
WAIT_QUIET = 0.0


def rotate(fns: dict, reps: int, sync, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each function, run in a rotating order once per repetition."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    sync()
    times = {n: [] for n in names}
    for i in range(reps):
        order = names[i % len(names) :] + names[: i % len(names)]
        wait_quiet(WAIT_QUIET)
        for n in order:
            sync()
            t = time.perf_counter()
            fns[n]()
            sync()
            times[n].append(time.perf_counter() - t)
    return times


def make_models(net: str, device: str, modes: list[str], force_bf16: bool) -> dict:
    ours, ref = build_models(net, device)
    models = {"ref": ref, "fp32": ours}
    cl = device == "cuda"
    if cl:
        ours.channels_last = True
    for mode in modes:
        m = lpips_core.LPIPS(net=net).to(device).eval()
        if cl:
            m.channels_last = True
        if mode == "bf16" and force_bf16 and not P.bf16_native(torch.device(device)):
            m.dtype = torch.bfloat16  # emulated: numbers right, slower than fp32
        else:
            m.set_precision(mode)
            if m.prepare_precision(device) != mode:
                continue
        models[mode] = m
    return models


def run_case(
    name: str, net: str, side: int, batch: int, device: str, modes: list[str], reps: int, force_bf16: bool, images: dict
) -> dict:
    key = (side, batch)
    if key not in images:
        x = photo_crops(batch, side, seed=side)
        images[key] = (x, distorted(x, seed=side + 1))
    x, y = (t.to(device) for t in images[key])
    models = make_models(net, device, modes, force_bf16)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    before = load1()
    outs = {}
    with torch.inference_mode():
        fns = {n: (lambda m=m: outs.__setitem__(id(m), m(x, y))) for n, m in models.items()}
        times = rotate(fns, reps, sync)
        results = {n: models[n](x, y).flatten().float().cpu() for n in models}
    after = load1()
    exact = results["fp32"]
    row = {
        "case": name,
        "net": net,
        "side": side,
        "batch": batch,
        "reps": reps,
        "load_before": before,
        "load_after": after,
        "ms": {n: statistics.median(t) * 1e3 for n, t in times.items()},
        "max_rel_err_vs_fp32": {
            n: float(((r - exact).abs() / exact.abs().clamp_min(1e-12)).max()) for n, r in results.items()
        },
    }
    for n in models:
        if n in ("ref", "fp32"):
            continue
        row[f"{n}_vs_fp32"] = statistics.median(a / b for a, b in zip(times["fp32"], times[n]))
        row[f"{n}_vs_fp32_by_rep"] = [a / b for a, b in zip(times["fp32"], times[n])]
        row[f"{n}_vs_ref"] = statistics.median(a / b for a, b in zip(times["ref"], times[n]))
    row["fp32_vs_ref"] = statistics.median(a / b for a, b in zip(times["ref"], times["fp32"]))
    return row


def memory_child(net: str, side: int, device: str, precision: str) -> None:
    """Subprocess body: peak memory of one pair at side x side in ``precision`` ('ref' = reference)."""
    import resource

    ours, ref = build_models(net, device)
    if precision == "ref":
        model = ref
    else:
        model = ours.set_precision(precision)
        if device == "cuda":
            model.channels_last = True
        model.prepare_precision(device)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, side, side, generator=gen) * 2 - 1).to(device)
    y = (x + 0.1 * torch.randn(1, 3, side, side, generator=gen).to(device)).clamp(-1, 1)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t = time.perf_counter()
    with torch.no_grad():
        d = float(model(x, y))
    if device == "cuda":
        torch.cuda.synchronize()
    out = {
        "precision": precision,
        "distance": d,
        "seconds": time.perf_counter() - t,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device == "cuda":
        out["gpu_peak_extra_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    print("RESULT " + json.dumps(out))


def memory_rows(net: str, side: int, device: str, precisions: list[str]) -> list[dict]:
    rows = []
    for p in ["ref", "fp32", *precisions]:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", p, "--net", net, "--side", str(side), "--device", device],
            capture_output=True,
            text=True,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        rows.append(json.loads(line[7:]) if line else {"precision": p, "error": proc.stderr.strip()[-300:]})
    return rows


def markdown(meta: dict, rows: list[dict], memory: dict | None) -> str:
    modes = [m for m in ("int8", "bf16", "fp16") if any(f"{m}_vs_fp32" in r for r in rows)]
    head = (
        "| case | load 1-min (before/after) | ref ms | fp32 ms | "
        + " | ".join(f"{m} ms" for m in modes)
        + " | fp32 vs ref | "
        + " | ".join(f"{m} vs fp32 | {m} vs ref | {m} max rel. err" for m in modes)
        + " |"
    )
    lines = [
        f"Speed of the lower precisions, {meta['device']} ({meta['cpu']}, {meta['threads']} threads, "
        f"CPU kind {meta['cpu_kind']}), torch {meta['torch']}, {meta['date']}; medians of {meta['reps']} "
        f"repetitions, contenders in rotating order in one process, ratios taken within each repetition.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in rows:
        cells = [
            r["case"],
            f"{r['load_before']:.2f} / {r['load_after']:.2f}",
            f"{r['ms']['ref']:.1f}",
            f"{r['ms']['fp32']:.1f}",
        ]
        cells += [f"{r['ms'][m]:.1f}" if m in r["ms"] else "-" for m in modes]
        cells.append(f"{r['fp32_vs_ref']:.2f}x")
        for m in modes:
            if f"{m}_vs_fp32" in r:
                cells += [
                    f"**{r[f'{m}_vs_fp32']:.2f}x**",
                    f"{r[f'{m}_vs_ref']:.2f}x",
                    f"{r['max_rel_err_vs_fp32'][m]:.1%}",
                ]
            else:
                cells += ["-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    targets = TARGETS
    lines += [
        "",
        "Targets (issue 27): int8 >= 1.8x exact fp32 on AVX2, >= 2.5x with AVX-512 VNNI; bf16 >= 3x "
        "exact fp32 with AMX." + (f" This CPU: {meta['cpu_kind']}." if meta["device"] == "cpu" else ""),
    ]
    if memory:
        lines += [
            "",
            f"Peak memory, one {memory['net']} pair at {memory['side']}x{memory['side']}, each in its own process:",
            "",
            "| precision | seconds | distance | peak RSS MB | GPU peak extra MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in memory["rows"]:
            if "error" in m:
                lines.append(f"| {m['precision']} | failed: {m['error'][:80]} | | | |")
            else:
                lines.append(
                    f"| {m['precision']} | {m['seconds']:.2f} | {m['distance']:.6f} | {m['rss_peak_mb']:.0f} "
                    f"| {m.get('gpu_peak_extra_mb', float('nan')):.0f} |"
                )
    del targets
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument(
        "--cases",
        default="alex 64x64 b64,alex 256x256 b8,alex 512x512 b2,squeeze 64x64 b64,vgg 64x64 b64",
        help="comma-separated names of CASES",
    )
    ap.add_argument("--precisions", default=None, help="default: int8 (+bf16 where native) on CPU, bf16,fp16 on CUDA")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--force-bf16", action="store_true", help="time bf16 even where it is emulated")
    ap.add_argument("--batch-sweep", default="", help="also time alex 256x256 at these batch sizes, e.g. 1,8,32")
    ap.add_argument("--memory", action="store_true", help="peak memory of one vgg pair at --memory-side")
    ap.add_argument("--memory-side", type=int, default=2048)
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each repetition wait up to SECONDS for the machine to be idle (shared machines)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "results" / "precision")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--net", default="vgg", help=argparse.SUPPRESS)
    ap.add_argument("--side", type=int, default=2048, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    global WAIT_QUIET
    WAIT_QUIET = args.wait_quiet
    if args.memory_child:
        memory_child(args.net, args.side, args.device, args.memory_child)
        return
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device here")
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(args.device)
    if args.precisions is None:
        modes = (
            ["bf16", "fp16"]
            if args.device == "cuda"
            else ["int8"] + (["bf16"] if P.bf16_native(dev) or args.force_bf16 else [])
        )
    else:
        modes = [P.parse_precision(p) for p in args.precisions.split(",")]
    skipped = {
        m: P.support(m, dev)[1] for m in modes if not P.support(m, dev)[0] and not (m == "bf16" and args.force_bf16)
    }
    warnings.simplefilter("ignore", P.PrecisionFallbackWarning)
    cases = [(c, *CASES[c]) for c in args.cases.split(",") if c]
    for b in filter(None, args.batch_sweep.split(",")):
        cases.append((f"alex 256x256 b{b}", "alex", 256, int(b)))
    print(
        f"torch {torch.__version__}, {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else f" ({cpu_model()}, {cpu_kind()})")
        + f", {torch.get_num_threads()} threads, modes {modes}, load average {os.getloadavg()}",
        file=sys.stderr,
    )
    for m, why in skipped.items():
        print(f"{m}: not timed: {why}", file=sys.stderr)
    images: dict = {}
    rows = []
    for name, net, side, batch in cases:
        row = run_case(
            name,
            net,
            side,
            batch,
            args.device,
            [m for m in modes if m not in skipped],
            args.reps,
            args.force_bf16,
            images,
        )
        rows.append(row)
        extra = "  ".join(
            f"{m} {row[f'{m}_vs_fp32']:.2f}x fp32 ({row[f'{m}_vs_ref']:.2f}x ref)"
            for m in modes
            if f"{m}_vs_fp32" in row
        )
        print(
            f"{name:22s} load {row['load_before']:.2f}->{row['load_after']:.2f}  ref {row['ms']['ref']:8.1f} ms  "
            f"fp32 {row['ms']['fp32']:8.1f} ms ({row['fp32_vs_ref']:.2f}x ref)  {extra}",
            file=sys.stderr,
        )
    memory = None
    if args.memory:
        memory = {
            "net": "vgg",
            "side": args.memory_side,
            "rows": memory_rows("vgg", args.memory_side, args.device, [m for m in modes if m not in skipped]),
        }
    meta = {
        "device": args.device if args.device == "cpu" else f"cuda ({torch.cuda.get_device_name()})",
        "cpu": cpu_model(),
        "cpu_kind": cpu_kind(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "reps": args.reps,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "skipped": skipped,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"speed_{args.device}.json", {"meta": meta, "rows": rows, "memory": memory})
    text = markdown(meta, rows, memory)
    write_text(args.out / f"speed_{args.device}.md", text)
    print(text)


if __name__ == "__main__":
    main()
