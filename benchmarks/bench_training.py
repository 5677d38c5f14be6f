"""Training cost: the feature-cached fast path vs the standard loop vs the reference recipe.

Lin training (frozen alex trunk, linear weights from the reference
initialisation, the reference recipe: Adam 1e-4, betas (0.5, 0.999), batch 50,
5 + 5 epochs, dropout) on the mini-BAPPS set, three ways:

* **fast**: ``TrainConfig(fast=True)``: one trunk pass over the training and
  validation triplets (cached on disk), then every epoch works on cached
  per-channel means. Timed cold (empty cache) and warm (cache already built).
* **standard**: ``TrainConfig(fast=False)``: every epoch reads the images and
  runs the trunk on ref, p0, p1 (3 trunk passes per triplet), dropout on the
  difference maps as in the reference.
* **reference recipe**: the reference ``lpips.Trainer`` makes 4 trunk passes per
  triplet per epoch (ref twice). Estimated, not run: the median time of its
  ``optimize_parameters`` on one batch of 50 training triplets, times the number
  of batches and epochs. Data loading is not included in this estimate.

Training times exclude validation; validation is run once, at the end, on the
whole validation set for each trained model, together with the baselines
("net" = all channel weights 1, L2 in Lab, the official v0.1 weights). The
mini set's judgments come from a SIMULATED observer (LPIPS-VGG through a
logistic function), not from people.

Usage::

    python benchmarks/bench_training.py --data data/mini_bapps [--standard-epochs 10] [--threads 2]

Writes ``benchmarks/results/bench_training.{json,csv,png}``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lpips_core.train import TrainConfig, Trainer, compare_on, open_split  # noqa: E402


def time_fit(cfg: TrainConfig, train_set, val_set) -> tuple[Trainer, dict]:
    """Fit once; return the trainer and its timings (cache building, training epochs, total)."""
    trainer = Trainer(cfg, train_set, val_set)
    t0 = time.perf_counter()
    if cfg.fast:
        trainer._caches()  # the one trunk pass (or a cache hit), timed on its own
    t_cache = time.perf_counter() - t0
    trainer.fit()
    total = time.perf_counter() - t0
    return trainer, {"cache_s": t_cache, "train_epochs_s": trainer.state["seconds"], "total_s": total,
                     "epochs": len(trainer.history)}


def reference_step_seconds(train_set, net: str, batch: int, reps: int) -> float:
    """Median seconds of one reference ``optimize_parameters`` call on a batch of ``batch`` triplets."""
    import lpips

    from lpips_core import LPIPS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.Trainer()
        ref.initialize(model="lpips", net=net, pnet_rand=True, use_gpu=False, is_train=True)
    ref.net.net.load_state_dict(LPIPS(net=net).net.state_dict())
    items = [train_set[i] for i in range(batch)]
    ref.set_input({k: torch.stack([it[k] for it in items]) for k in ("ref", "p0", "p1", "judge")})
    ref.optimize_parameters()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ref.optimize_parameters()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plot(rows: list[dict], scores: dict, path: Path) -> None:
    from lpips_core.plots import _pyplot, save_figure

    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    names = [r["run"] for r in rows]
    a.barh(names, [r["seconds_10_epochs"] for r in rows], color=["C2", "C2", "C0", "C7"][:len(rows)])
    a.set_xscale("log")
    a.set_xlabel("seconds for the training run (log scale)")
    a.invert_yaxis()
    for i, r in enumerate(rows):
        a.text(r["seconds_10_epochs"], i, f" {r['seconds_10_epochs']:.1f} s", va="center")
    keys = list(scores)
    b.barh(keys, [100 * scores[k] for k in keys], color="C1")
    b.set_xlim(min(100 * v for v in scores.values()) - 5, 100)
    b.set_xlabel("validation 2AFC agreement with the simulated observer (%)")
    b.invert_yaxis()
    for i, k in enumerate(keys):
        b.text(100 * scores[k], i, f" {100 * scores[k]:.1f}", va="center")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO / "data" / "mini_bapps"))
    parser.add_argument("--net", default="alex")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--standard-epochs", type=int, default=None,
                        help="epochs of the standard loop actually run (default: --epochs); fewer are "
                             "scaled per epoch and its 2AFC is then not comparable")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--reference-reps", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    std_epochs = args.standard_epochs or args.epochs

    train_set = open_split(args.data, "train")
    val_set = open_split(args.data, "val")
    if train_set is None or val_set is None:
        raise SystemExit(f"{args.data} needs 2afc/train and 2afc/val (build it: python data_scripts/make_mini_bapps.py)")
    print(f"data {args.data}: {len(train_set)} train / {len(val_set)} val triplets; net {args.net}; "
          f"{threads} torch threads; {os.cpu_count()} CPUs visible", flush=True)
    base = dict(net=args.net, mode="lin", init="reference", epochs=args.epochs, seed=args.seed,
                val_every=args.epochs, progress=True)

    with tempfile.TemporaryDirectory() as cache_dir:
        fast_cfg = TrainConfig(**base, fast=True, cache_dir=cache_dir)
        fast, t_cold = time_fit(fast_cfg, train_set, val_set)
        _, t_warm = time_fit(fast_cfg, train_set, val_set)
    std_cfg = TrainConfig(**dict(base, epochs=std_epochs, val_every=std_epochs,
                                 decay_epochs=args.epochs // 2 if std_epochs == args.epochs else std_epochs // 2),
                          fast=False)
    std, t_std = time_fit(std_cfg, train_set, val_set)
    std_epoch_s = t_std["train_epochs_s"] / std_epochs
    ref_step = reference_step_seconds(train_set, args.net, 50, args.reference_reps)
    steps_per_epoch = -(-len(train_set) // 50)
    ref_epoch_s = ref_step * steps_per_epoch

    scores = compare_on(val_set, fast.model, "trained, fast path", batch_size=64)
    scores.update(compare_on(val_set, std.model, "trained, standard loop", baselines=False, batch_size=64))
    fast_2afc, std_2afc = scores["trained, fast path"], scores["trained, standard loop"]

    cold_total = t_cold["cache_s"] + t_cold["train_epochs_s"]
    warm_total = t_warm["cache_s"] + t_warm["train_epochs_s"]
    std_total = std_epoch_s * args.epochs
    rows = [
        {"run": "fast, cold cache", "measured_epochs": args.epochs, "feature_pass_s": t_cold["cache_s"],
         "epoch_s": t_cold["train_epochs_s"] / args.epochs, "seconds_10_epochs": cold_total,
         "how": "measured: train+val feature pass, then epochs on cached means"},
        {"run": "fast, warm cache", "measured_epochs": args.epochs, "feature_pass_s": t_warm["cache_s"],
         "epoch_s": t_warm["train_epochs_s"] / args.epochs, "seconds_10_epochs": warm_total,
         "how": "measured: cache read from disk, then epochs on cached means"},
        {"run": "standard loop", "measured_epochs": std_epochs, "feature_pass_s": 0.0, "epoch_s": std_epoch_s,
         "seconds_10_epochs": std_total,
         "how": "measured" if std_epochs == args.epochs else f"measured {std_epochs} epochs, scaled per epoch"},
        {"run": "reference recipe", "measured_epochs": 0, "feature_pass_s": 0.0, "epoch_s": ref_epoch_s,
         "seconds_10_epochs": ref_epoch_s * args.epochs,
         "how": f"estimated: {ref_step:.3f} s per reference optimize_parameters (batch 50, median of "
                f"{args.reference_reps}) x {steps_per_epoch} batches x {args.epochs} epochs"},
    ]
    for r in rows:
        r["speedup_of_fast_cold"] = r["seconds_10_epochs"] / cold_total
    ratio_cold = std_total / cold_total
    ratio_warm = std_total / warm_total
    result = {
        "data": args.data, "train_triplets": len(train_set), "val_triplets": len(val_set), "net": args.net,
        "epochs": args.epochs, "threads": threads, "cpus": os.cpu_count(), "rows": rows,
        "speedup_vs_standard_cold": ratio_cold, "speedup_vs_standard_warm": ratio_warm,
        "speedup_vs_reference_cold": ref_epoch_s * args.epochs / cold_total,
        "val_2afc": scores, "val_2afc_gap_points": 100 * (fast_2afc - std_2afc),
        "val_2afc_comparable": std_epochs == args.epochs,
        "note": "judgments of the mini set come from a SIMULATED observer (LPIPS-VGG + logistic), not people; "
                "the fast path trains on the dropout expectation (no dropout noise), the standard loop with "
                "dropout as the reference",
    }

    print()
    print(f"{'run':22s} {'feature pass s':>14s} {'s/epoch':>9s} {f'{args.epochs} epochs s':>13s} {'x fast cold':>11s}  how")
    for r in rows:
        print(f"{r['run']:22s} {r['feature_pass_s']:14.1f} {r['epoch_s']:9.2f} {r['seconds_10_epochs']:13.1f} "
              f"{r['speedup_of_fast_cold']:11.1f}  {r['how']}")
    print(f"\nfast vs standard: {ratio_cold:.1f}x (cold cache), {ratio_warm:.1f}x (warm cache)")
    print("\nvalidation 2AFC (simulated observer):")
    for k, v in scores.items():
        print(f"  {k:24s} {100 * v:6.2f}")
    print(f"fast - standard: {result['val_2afc_gap_points']:+.2f} points"
          + ("" if result["val_2afc_comparable"] else " (standard run shorter: not comparable)"))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".bench_training.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out / "bench_training.json")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    tmp = out / ".bench_training.csv.tmp"
    tmp.write_text(buf.getvalue())
    os.replace(tmp, out / "bench_training.csv")
    plot(rows, scores, out / "bench_training.png")
    print(f"\nwritten: {out / 'bench_training.json'}, .csv, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
