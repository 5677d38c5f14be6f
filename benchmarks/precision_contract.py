"""The error contract of each lower precision, measured on human data: ``results/precision/contract.{json,md}``.

For every trunk (alex, vgg, squeeze) and mode (bf16, int8) against exact fp32:

* **LIVE, three types** (237 distorted images of LIVE Release 2 against their references,
  full size, ``$LPIPS_CORE_HUMAN_DATA/live_three_types.csv``): max and median relative error
  of the distances, SROCC against the fp32 distances, SROCC with the realigned DMOS and its
  change (paired, whole reference scenes resampled), and whether it stays inside fp32's 95%
  interval;
* **LIVE-derived 2AFC triplets** (every pair of versions of one reference, 1,076 triplets, h
  from Thurstone case III; :mod:`lpips_core.data.live_2afc`): the fraction of 2AFC choices
  that flip and the change of the 2AFC score (points);
* **the mini set's val triplets** (``data/mini_bapps``, 64x64, simulated observer): the same
  error metrics on every d(ref, p) and the choices.

Targets (issue 27): SROCC vs fp32 >= 0.999, <= 1% of the choices flipped, 2AFC within 0.2
points of fp32, SROCC with DMOS inside fp32's interval.

bf16 on a CPU without bf16 units is measured with its *numerics* emulated at fp32 speed
(:func:`bf16_emulated`: every convolution's input, weight and bias rounded to bf16, the
product accumulated in float32, the output rounded to bf16, which is what oneDNN's bf16
convolutions compute on AMX); the script checks the emulation against the library's forced
bf16 path (``dtype=torch.bfloat16``) on real pairs and stores the difference.

fp32 distances of LIVE come from ``results/live_three_types/distance_cache.json`` (the stored
``evaluate-mos`` run) after three rows per trunk are recomputed and agree to 1e-5. Distances
already computed are kept in ``results/precision/distances.json`` (the run resumes).

Usage::

    python benchmarks/precision_contract.py                       # all trunks (vgg takes longest)
    python benchmarks/precision_contract.py --nets alex --ablation  # + int8 variants (first layer int8, 7-bit weights)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lpips_core  # noqa: E402
from lpips_core.data.photos import CALIBRATION_PHOTOS  # noqa: E402
from lpips_core.files import write_json, write_text  # noqa: E402
from lpips_core.model import precision as P  # noqa: E402

OUT = REPO / "results" / "precision"
HUMAN = Path(os.environ.get("LPIPS_CORE_HUMAN_DATA", REPO.parent / "shared" / "data"))
TARGETS = {"srocc_vs_fp32": 0.999, "flipped": 0.01, "twoafc_points": 0.2}

#: mode name -> (precision, Int8Config or None): the shipped modes and the int8 ablation
MODES = {"bf16": ("bf16", None), "int8": ("int8", P.DEFAULT_INT8)}
ABLATION = {
    "int8, first layer fp32": ("int8", P.Int8Config(first_layer="fp32")),
    "int8, first layer fp32, 8-bit weights": ("int8", P.Int8Config(first_layer="fp32", weight_bits=8)),
}


# --------------------------------------------------------------------------- bf16 numerics
def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


class BF16Conv(nn.Module):
    """A convolution with bf16 operands and output, float32 accumulation (oneDNN's bf16 numerics)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.w = _bf16(conv.weight.detach())
        self.b = _bf16(conv.bias.detach()) if conv.bias is not None else None

    def forward(self, x):
        c = self.conv
        return _bf16(
            F.conv2d(
                _bf16(x),
                self.w.contiguous(memory_format=torch.channels_last)
                if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
                else self.w,
                self.b,
                c.stride,
                c.padding,
                c.dilation,
                c.groups,
            )
        )


def bf16_emulated(model: lpips_core.LPIPS) -> lpips_core.LPIPS:
    """A copy of ``model`` whose trunk computes bf16 numerics at fp32 speed (see the module docstring)."""
    emu = copy.deepcopy(model)

    def swap(module: nn.Module):
        for name, child in module.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(module, name, BF16Conv(child))
            else:
                swap(child)

    swap(emu.net)
    return emu


# --------------------------------------------------------------------------- data
def live_rows():
    from lpips_core.data.live_2afc import read_rated_table

    return read_rated_table(HUMAN / "live_three_types.csv")


def live_scenes(rows) -> list[str]:
    from lpips_core.eval.mos_cache import file_digest

    return [file_digest(r.reference) for r in rows]


def mini_val(root: Path):
    """The mini set's val triplets as uint8-derived tensors: (ref, p0, p1) (N, 3, 64, 64) and h (N,)."""
    from lpips_core.data import TwoAFCDataset

    ds = TwoAFCDataset(str(root), split="val")
    refs, p0s, p1s, hs = [], [], [], []
    for i in range(len(ds)):
        item = ds[i]
        refs.append(item["ref"]), p0s.append(item["p0"]), p1s.append(item["p1"]), hs.append(float(item["judge"]))
    return torch.stack(refs), torch.stack(p0s), torch.stack(p1s), np.array(hs)


# --------------------------------------------------------------------------- distances
def live_distances(model, rows, progress: str = "") -> list[float]:
    from lpips_core.data.images import load_tensor

    out = []
    t = time.perf_counter()
    with torch.inference_mode():
        for i, r in enumerate(rows):
            out.append(float(model(load_tensor(r.distorted), load_tensor(r.reference), input_range="-1,1")))
            if progress and (i + 1) % 40 == 0:
                print(f"  {progress}: {i + 1}/{len(rows)} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    return out


def mini_distances(model, ref, p0, p1, batch: int = 64) -> tuple[list[float], list[float]]:
    d0, d1 = [], []
    with torch.inference_mode():
        for s in range(0, ref.shape[0], batch):
            r = ref[s : s + batch]
            d0 += model(r, p0[s : s + batch], input_range="-1,1").flatten().tolist()
            d1 += model(r, p1[s : s + batch], input_range="-1,1").flatten().tolist()
    return d0, d1


def build(net: str, mode: str):
    base = lpips_core.LPIPS(net=net)
    if mode == "fp32":
        return base
    if mode == "bf16":
        if P.bf16_native(torch.device("cpu")):
            return base.set_precision("bf16")
        return bf16_emulated(base)
    precision, config = {**MODES, **ABLATION}[mode]
    return base.set_precision(precision, config)


# --------------------------------------------------------------------------- metrics
def error_metrics(d: np.ndarray, ref: np.ndarray) -> dict:
    from scipy import stats

    rel = np.abs(d - ref) / np.maximum(np.abs(ref), 1e-12)
    return {
        "max_rel_err": float(rel.max()),
        "median_rel_err": float(np.median(rel)),
        "srocc_vs_fp32": float(stats.spearmanr(d, ref).statistic),
        "n": int(d.size),
    }


def choice_metrics(d0, d1, f0, f1, h) -> dict:
    from lpips_core.data.judgments import score_2afc

    d0, d1, f0, f1, h = map(np.asarray, (d0, d1, f0, f1, h))
    flipped = np.sign(d0 - d1) != np.sign(f0 - f1)
    return {
        "flipped": float(flipped.mean()),
        "n_flipped": int(flipped.sum()),
        "n_triplets": int(h.size),
        "twoafc": 100 * score_2afc(d0, d1, h),
        "twoafc_fp32": 100 * score_2afc(f0, f1, h),
        "twoafc_change": 100 * (score_2afc(d0, d1, h) - score_2afc(f0, f1, h)),
    }


def dmos_metrics(d, f, dmos, scenes, resamples: int) -> dict:
    from scipy import stats

    from lpips_core.eval.stats import cluster_bootstrap_ci, cluster_correlation_test

    def srocc(a, b):
        return stats.spearmanr(a, b).statistic

    ci = cluster_bootstrap_ci(f, srocc, scenes, n_resamples=resamples, paired_with=dmos)
    test = cluster_correlation_test(d, f, dmos, scenes, n_resamples=resamples)
    value = float(srocc(d, dmos))
    return {
        "srocc_dmos": value,
        "srocc_dmos_fp32": float(srocc(f, dmos)),
        "srocc_dmos_fp32_ci": list(ci),
        "srocc_dmos_change": test["difference"],
        "srocc_dmos_change_ci": list(test["ci"]),
        "within_fp32_ci": bool(ci[0] <= value <= ci[1]),
    }


def live_triplets(rows, d: dict[str, float]):
    from lpips_core.data.live_2afc import derive_triplets

    trips = derive_triplets(rows)
    return (
        [d[t.p0.name] for t in trips],
        [d[t.p1.name] for t in trips],
        [t.h for t in trips],
        [t.subset for t in trips],
    )


def verdict(c: dict) -> dict:
    ok = {
        "srocc_vs_fp32": all(c[k]["srocc_vs_fp32"] >= TARGETS["srocc_vs_fp32"] for k in ("live", "mini")),
        "flipped": all(c[k]["flipped"] <= TARGETS["flipped"] for k in ("live_2afc", "mini")),
        "twoafc": all(abs(c[k]["twoafc_change"]) <= TARGETS["twoafc_points"] for k in ("live_2afc", "mini")),
        "dmos": c["live"]["within_fp32_ci"],
    }
    return {**ok, "all": all(ok.values())}


# --------------------------------------------------------------------------- report
def markdown(contract: dict) -> str:
    m = contract["meta"]
    lines = [
        "# Precision contract: bf16 and int8 against exact fp32",
        "",
        f"Measured {m['date']} on {m['cpu']} ({m['threads']} threads), torch {m['torch']}; bf16 "
        f"{'native' if m['bf16_native'] else 'numerics emulated (no bf16 units here; see the script)'}; "
        f"int8 {m['int8_kernels']}. Calibration: {m['calibration']}.",
        "",
        "Targets: SROCC vs fp32 >= 0.999, <= 1% of 2AFC choices flipped, 2AFC within 0.2 points of fp32, "
        "SROCC with DMOS inside fp32's 95% interval (whole scenes resampled).",
        "",
        "| trunk | mode | LIVE max / median rel. err | LIVE SROCC vs fp32 | SROCC with DMOS (fp32 [95% CI]) "
        "| change [95% CI] | LIVE 2AFC flipped | LIVE 2AFC change | mini max / median rel. err "
        "| mini SROCC vs fp32 | mini flipped | mini 2AFC change | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in contract["rows"]:
        lv, l2, mn = row["live"], row["live_2afc"], row["mini"]
        v = row["verdict"]
        miss = [k for k in ("srocc_vs_fp32", "flipped", "twoafc", "dmos") if not v[k]]
        lines.append(
            f"| {row['net']} | {row['mode']} | {lv['max_rel_err']:.2%} / {lv['median_rel_err']:.2%} "
            f"| {lv['srocc_vs_fp32']:.5f} | {lv['srocc_dmos']:.4f} ({lv['srocc_dmos_fp32']:.4f} "
            f"[{lv['srocc_dmos_fp32_ci'][0]:.3f}, {lv['srocc_dmos_fp32_ci'][1]:.3f}]) "
            f"| {lv['srocc_dmos_change']:+.4f} [{lv['srocc_dmos_change_ci'][0]:+.4f}, "
            f"{lv['srocc_dmos_change_ci'][1]:+.4f}] | {l2['flipped']:.2%} ({l2['n_flipped']}/{l2['n_triplets']}) "
            f"| {l2['twoafc_change']:+.2f} | {mn['max_rel_err']:.2%} / {mn['median_rel_err']:.2%} "
            f"| {mn['srocc_vs_fp32']:.5f} | {mn['flipped']:.2%} ({mn['n_flipped']}/{mn['n_triplets']}) "
            f"| {mn['twoafc_change']:+.2f} | {'met' if v['all'] else 'missed: ' + ', '.join(miss)} |"
        )
    if contract.get("bf16_emulation_check"):
        e = contract["bf16_emulation_check"]
        lines += [
            "",
            f"bf16 emulation vs the library's forced bf16 path (`dtype=torch.bfloat16`), {e['pairs']} LIVE "
            f"pairs, alex: max |difference| {e['max_abs_diff']:.1e} (distances {e['range'][0]:.3f}-"
            f"{e['range'][1]:.3f}), max relative {e['max_rel_diff']:.2e}.",
        ]
    lines += [
        "",
        "LIVE: 237 images (175 JPEG, 31 blur, 31 white noise), full size, human DMOS; LIVE 2AFC: 1,076 "
        "triplets derived from the DMOS (Thurstone case III), not people's choices; mini set: val triplets "
        "of 64x64 patches with a simulated observer's judgments. Relative error = |d - d_fp32| / d_fp32 "
        "per distance.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="alex,squeeze,vgg")
    ap.add_argument("--modes", default="bf16,int8")
    ap.add_argument(
        "--ablation", action="store_true", help="also the int8 variants (alex): first layer int8, 7-bit weights"
    )
    ap.add_argument("--mini", type=Path, default=REPO / "data" / "mini_bapps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--write-ranges",
        action="store_true",
        help="(re)write lpips_core/model/int8_ranges.json, the official trunks' calibrated ranges, and stop",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.write_ranges:
        print(P.write_shipped_ranges())
        return
    warnings.simplefilter("ignore", P.PrecisionFallbackWarning)
    if not (HUMAN / "live_three_types.csv").is_file():
        raise SystemExit(
            f"{HUMAN}/live_three_types.csv is missing: the contract is measured on LIVE (set LPIPS_CORE_HUMAN_DATA)"
        )
    have_mini = (args.mini / ".complete").exists()
    if not have_mini:
        print(
            f"{args.mini} is not a complete mini set (python data_scripts/make_mini_bapps.py): its rows wait "
            f"for a later run",
            file=sys.stderr,
        )
    from lpips_core.eval.mos_cache import DistanceCache

    args.out.mkdir(parents=True, exist_ok=True)
    store_path = args.out / "distances.json"
    store = json.loads(store_path.read_text()) if store_path.is_file() else {}
    rows = live_rows()
    names = [r.name for r in rows]
    dmos = np.array([r.dmos for r in rows])
    scenes = live_scenes(rows)
    ref, p0, p1, h = mini_val(args.mini) if have_mini else (None, None, None, None)
    cache = DistanceCache(REPO / "results" / "live_three_types" / "distance_cache.json")
    nets = args.nets.split(",")
    modes = args.modes.split(",") + (list(ABLATION) if args.ablation else [])

    def save():
        write_json(store_path, store)

    for net in nets:
        entry = store.setdefault(net, {})
        if "live" not in entry.get("fp32", {}):
            model = build(net, "fp32")
            live = [cache.get(f"lpips-{net}", r.distorted, r.reference, None) for r in rows]
            missing = [i for i, v in enumerate(live) if v is None]
            check = (missing + [0, len(rows) // 2, len(rows) - 1])[: max(3, len(missing))]
            fresh = live_distances(model, [rows[i] for i in check])
            for i, v in zip(check, fresh):
                if live[i] is not None and abs(live[i] - v) > 1e-5:
                    raise SystemExit(f"stored fp32 distance of {names[i]} ({net}) is {live[i]}, recomputed {v}")
                live[i] = v
            entry.setdefault("fp32", {})["live"] = dict(zip(names, live))
            save()
        for mode in ["fp32", *modes]:
            if mode in ABLATION and net != "alex":
                continue
            e = entry.setdefault(mode, {})
            if "live" not in e:
                print(f"{net} {mode} ...", file=sys.stderr)
                t = time.perf_counter()
                e["live"] = dict(zip(names, live_distances(build(net, mode), rows, progress=f"{net} {mode}")))
                e["seconds"] = time.perf_counter() - t
                save()
                print(f"  {net} {mode}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
            if "mini_d0" not in e and have_mini:
                e["mini_d0"], e["mini_d1"] = mini_distances(build(net, mode), ref, p0, p1)
                save()

    emulation = None
    if "bf16" in modes and "alex" in nets and not P.bf16_native(torch.device("cpu")):
        # the emulation against the library's own (forced, slow) bf16 path, on 8 real LIVE pairs
        forced = lpips_core.LPIPS(net="alex", dtype=torch.bfloat16)
        sub = rows[::30]
        a, b = np.array(live_distances(forced, sub)), np.array(live_distances(bf16_emulated(lpips_core.LPIPS()), sub))
        emulation = {
            "pairs": len(sub),
            "max_abs_diff": float(np.abs(a - b).max()),
            "max_rel_diff": float((np.abs(a - b) / a).max()),
            "range": [float(a.min()), float(a.max())],
        }

    out_rows = []
    for net in [n for n in ("alex", "squeeze", "vgg") if n in store]:  # every trunk measured so far
        entry = store[net]
        if "mini_d0" not in entry["fp32"] or not have_mini:
            continue  # the contract needs both data sets
        f_live = np.array([entry["fp32"]["live"][n] for n in names])
        f0, f1 = np.array(entry["fp32"]["mini_d0"]), np.array(entry["fp32"]["mini_d1"])
        fl0, fl1, hl, _ = live_triplets(rows, entry["fp32"]["live"])
        for mode in [m for m in [*MODES, *ABLATION] if "mini_d0" in entry.get(m, {}) and "live" in entry[m]]:
            e = entry[mode]
            d_live = np.array([e["live"][n] for n in names])
            m0, m1 = np.array(e["mini_d0"]), np.array(e["mini_d1"])
            l0, l1, _, _ = live_triplets(rows, e["live"])
            row = {
                "net": net,
                "mode": mode,
                "live": {**error_metrics(d_live, f_live), **dmos_metrics(d_live, f_live, dmos, scenes, args.resamples)},
                "live_2afc": choice_metrics(l0, l1, fl0, fl1, hl),
                "mini": {
                    **error_metrics(np.concatenate([m0, m1]), np.concatenate([f0, f1])),
                    **choice_metrics(m0, m1, f0, f1, h),
                },
                "seconds": e.get("seconds"),
            }
            row["verdict"] = verdict(row)
            out_rows.append(row)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"),
        "threads": torch.get_num_threads(),
        "bf16_native": P.bf16_native(torch.device("cpu")),
        "int8_kernels": f"oneDNN int8 convolutions (torch.ops.onednn.qconv_pointwise), per-channel "
        f"{P.weight_bits(P.DEFAULT_INT8)}-bit weights, uint8 activations with HistogramObserver "
        f"ranges, the first convolution on the image's 8-bit grid",
        "calibration": f"{P.DEFAULT_INT8.n_images} crops of {P.DEFAULT_INT8.size}x{P.DEFAULT_INT8.size} from "
        f"scikit-image's {', '.join(CALIBRATION_PHOTOS)}, every other one distorted",
        "targets": TARGETS,
        "load_average": os.getloadavg(),
    }
    contract = {"meta": meta, "rows": out_rows, "bf16_emulation_check": emulation}
    old = args.out / "contract.json"
    if old.is_file() and emulation is None:  # keep the earlier check when this run did not repeat it
        contract["bf16_emulation_check"] = json.loads(old.read_text()).get("bf16_emulation_check")
    write_json(args.out / "contract.json", contract)
    text = markdown(contract)
    write_text(args.out / "contract.md", text)
    print(text)


if __name__ == "__main__":
    main()
