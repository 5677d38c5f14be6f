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

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lpips_core.data import twoafc_scores  # noqa: E402
from lpips_core.train import TrainConfig, Trainer, compare_on, open_split  # noqa: E402
from lpips_core.train.fastpath import load_or_build  # noqa: E402


def time_fast(cfg: TrainConfig, train_set, val_set) -> tuple[Trainer, dict]:
    """Fast-path run: the training and validation feature passes (or cache reads) timed apart, then fit."""
    trainer = Trainer(cfg, train_set, val_set)
    t0 = time.perf_counter()
    trainer.train_cache = load_or_build(trainer.model, train_set, cfg.cache_dir, batch_size=cfg.eval_batch_size)
    t1 = time.perf_counter()
    trainer.val_cache = load_or_build(trainer.model, val_set, cfg.cache_dir, batch_size=cfg.eval_batch_size)
    t2 = time.perf_counter()
    trainer.fit()
    return trainer, {"train_pass_s": t1 - t0, "val_pass_s": t2 - t1, "epochs_s": trainer.state["seconds"]}


def time_standard(cfg: TrainConfig, train_set, val_set) -> tuple[Trainer, dict, dict]:
    """Image-loop run, then one timed validation pass over the images."""
    trainer = Trainer(cfg, train_set, val_set)
    trainer.fit()
    t0 = time.perf_counter()
    val = trainer.evaluate(val_set)
    return trainer, {"epochs_s": trainer.state["seconds"], "val_pass_s": time.perf_counter() - t0}, val


def reference_step_seconds(train_set, net: str, batch: int, reps: int) -> float:
    """Median seconds of one reference ``optimize_parameters`` call on a batch of ``batch`` triplets."""
    import lpips

    from lpips_core import LPIPS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.Trainer()
        ref.initialize(model="lpips", net=net, pnet_rand=True, use_gpu=False, is_train=True)
    ref.net.net.load_state_dict(LPIPS(net=net).net.state_dict())
    items = [train_set[i % len(train_set)] for i in range(batch)]
    ref.set_input({k: torch.stack([it[k] for it in items]) for k in ("ref", "p0", "p1", "judge")})
    ref.optimize_parameters()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ref.optimize_parameters()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def json_safe(obj):
    """NaN (no value, e.g. the reference's validation time) -> null, so the file is strict JSON."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def plot(rows: list[dict], scores: dict, path: Path, epochs: int = 10) -> None:
    from lpips_core.files import pyplot, save_figure

    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    names = [r["run"] for r in rows]
    a.barh(names, [r["training_s"] for r in rows], color=["C2", "C2", "C0", "C7"][: len(rows)])
    a.set_xscale("log")
    a.set_xlabel(f"seconds for {epochs} epochs of lin training (log scale)")
    a.invert_yaxis()
    for i, r in enumerate(rows):
        v = r["training_s"]
        a.text(v, i, f" {v:,.0f} s" if v >= 10 else f" {v:.2g} s", va="center")
    a.set_xlim(right=4 * max(r["training_s"] for r in rows))
    keys = list(scores)
    b.barh(keys, [100 * scores[k] for k in keys], color="C1")
    b.set_xlim(min(100 * v for v in scores.values()) - 5, 100)
    b.set_xlabel("validation 2AFC agreement with the simulated observer (%)")
    b.invert_yaxis()
    for i, k in enumerate(keys):
        b.text(100 * scores[k], i, f" {100 * scores[k]:.2f}", va="center")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO / "data" / "mini_bapps"))
    parser.add_argument("--net", default="alex")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--standard-epochs",
        type=int,
        default=None,
        help="epochs of the standard loop actually run (default: --epochs); fewer are "
        "scaled per epoch and its 2AFC is then not comparable",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--reference-reps", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replot", action="store_true", help="only redraw the figure from the saved JSON")
    args = parser.parse_args(argv)
    if args.replot:
        saved = json.loads((Path(args.out) / "bench_training.json").read_text())
        plot(saved["rows"], saved["val_2afc"], Path(args.out) / "bench_training.png", saved["epochs"])
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    std_epochs = args.standard_epochs or args.epochs

    train_set = open_split(args.data, "train")
    val_set = open_split(args.data, "val")
    if train_set is None or val_set is None:
        raise SystemExit(
            f"{args.data} needs 2afc/train and 2afc/val (build it: python data_scripts/make_mini_bapps.py)"
        )
    print(
        f"data {args.data}: {len(train_set)} train / {len(val_set)} val triplets; net {args.net}; "
        f"{threads} torch threads; {os.cpu_count()} CPUs visible; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    base = dict(
        net=args.net,
        mode="lin",
        init="reference",
        epochs=args.epochs,
        seed=args.seed,
        val_every=args.epochs,
        progress=True,
    )

    with tempfile.TemporaryDirectory() as cache_dir:
        fast_cfg = TrainConfig(**base, fast=True, cache_dir=cache_dir)
        fast, cold = time_fast(fast_cfg, train_set, val_set)
        _, warm = time_fast(fast_cfg, train_set, val_set)
    std_cfg = TrainConfig(
        **dict(
            base,
            epochs=std_epochs,
            val_every=std_epochs,
            decay_epochs=args.epochs // 2 if std_epochs == args.epochs else std_epochs // 2,
        ),
        fast=False,
    )
    std, std_t, std_val = time_standard(std_cfg, train_set, val_set)
    std_epoch_s = std_t["epochs_s"] / std_epochs
    ref_step = reference_step_seconds(train_set, args.net, 50, args.reference_reps)
    steps_per_epoch = -(-len(train_set) // 50)
    ref_epoch_s = ref_step * steps_per_epoch

    # paired noise of the fast - standard difference: per-triplet agreements on the same triplets
    fast_val = fast.evaluate()
    a_fast = twoafc_scores(fast_val["d0"], fast_val["d1"], fast_val["judge"])
    a_std = twoafc_scores(std_val["d0"], std_val["d1"], std_val["judge"])
    diff_se = float(np.std(a_fast - a_std, ddof=1) / np.sqrt(len(a_fast)))
    differ = int((np.sign(fast_val["d0"] - fast_val["d1"]) != np.sign(std_val["d0"] - std_val["d1"])).sum())
    # how far apart the two trained models are, beside how far training moved them (dropout is active
    # in the standard loop only, so they differ; the question is whether it matters for 2AFC)
    w_fast, w_std = (torch.cat([lin.conv.weight.detach().flatten() for lin in t.model.lins]) for t in (fast, std))
    w_init = torch.cat([lin.conv.weight.detach().flatten() for lin in Trainer(fast_cfg, train_set).model.lins])
    w_init = w_init.clamp(min=0)
    scores = compare_on(val_set, fast.model, "trained, fast path", batch_size=64)
    scores.update(compare_on(val_set, std.model, "trained, standard loop", baselines=False, batch_size=64))
    fast_2afc, std_2afc = scores["trained, fast path"], scores["trained, standard loop"]

    E = args.epochs
    rows = []
    for name, t, how in (
        ("fast, cold cache", cold, "measured: one trunk pass over train (and val), then epochs on cached means"),
        ("fast, warm cache", warm, "measured: caches read from disk, then epochs on cached means"),
    ):
        train_s = t["train_pass_s"] + t["epochs_s"]
        rows.append(
            {
                "run": name,
                "train_pass_s": t["train_pass_s"],
                "val_pass_s": t["val_pass_s"],
                "epoch_s": t["epochs_s"] / E,
                "training_s": train_s,
                "training_and_val_each_epoch_s": train_s + t["val_pass_s"],
                "how": how,
            }
        )
    std_train = std_epoch_s * E
    rows.append(
        {
            "run": "standard loop",
            "train_pass_s": 0.0,
            "val_pass_s": std_t["val_pass_s"],
            "epoch_s": std_epoch_s,
            "training_s": std_train,
            "training_and_val_each_epoch_s": std_train + E * std_t["val_pass_s"],
            "how": ("measured" if std_epochs == E else f"measured {std_epochs} epochs, scaled per epoch")
            + "; validation = one measured pass over the val images, x epochs",
        }
    )
    rows.append(
        {
            "run": "reference recipe",
            "train_pass_s": 0.0,
            "val_pass_s": float("nan"),
            "epoch_s": ref_epoch_s,
            "training_s": ref_epoch_s * E,
            "training_and_val_each_epoch_s": float("nan"),
            "how": f"estimated: {ref_step:.3f} s per reference optimize_parameters (batch 50, median of "
            f"{args.reference_reps}) x {steps_per_epoch} batches x {E} epochs; no data loading",
        }
    )
    cold_row, warm_row, std_row, ref_row = rows
    for r in rows:
        r["x_slower_than_fast_cold"] = r["training_s"] / cold_row["training_s"]
    result = {
        "data": args.data,
        "train_triplets": len(train_set),
        "val_triplets": len(val_set),
        "net": args.net,
        "epochs": E,
        "threads": threads,
        "cpus": os.cpu_count(),
        "rows": rows,
        "speedup_training_cold": std_row["training_s"] / cold_row["training_s"],
        "speedup_training_warm": std_row["training_s"] / warm_row["training_s"],
        "speedup_with_val_each_epoch_cold": std_row["training_and_val_each_epoch_s"]
        / cold_row["training_and_val_each_epoch_s"],
        "speedup_vs_reference_cold": ref_row["training_s"] / cold_row["training_s"],
        "val_2afc": scores,
        "val_2afc_gap_points": 100 * (fast_2afc - std_2afc),
        "val_2afc_gap_se_points": 100 * diff_se,
        "val_triplets_ranked_differently": differ,
        "lin_weights_mean_abs_diff_fast_vs_standard": float((w_fast - w_std).abs().mean()),
        "lin_weights_mean_abs_change_in_training": float((w_std - w_init).abs().mean()),
        "val_2afc_comparable": std_epochs == E,
        "load_average_at_end": os.getloadavg()[0],
        "note": "judgments of the mini set come from a SIMULATED observer (LPIPS-VGG + logistic), not people; "
        "the fast path trains on the dropout expectation (no dropout noise), the standard loop with "
        "dropout as the reference",
    }

    print()
    print(
        f"{'run':18s} {'train pass':>10s} {'val pass':>9s} {'s/epoch':>8s} {f'training {E} ep':>14s} "
        f"{'+ val/epoch':>11s} {'x fast':>7s}  how"
    )
    for r in rows:
        print(
            f"{r['run']:18s} {r['train_pass_s']:10.1f} {r['val_pass_s']:9.1f} {r['epoch_s']:8.2f} "
            f"{r['training_s']:14.1f} {r['training_and_val_each_epoch_s']:11.1f} "
            f"{r['x_slower_than_fast_cold']:7.1f}  {r['how']}"
        )
    print(
        f"\nfast vs standard, training: {result['speedup_training_cold']:.1f}x cold cache, "
        f"{result['speedup_training_warm']:.1f}x warm cache; with validation after every epoch: "
        f"{result['speedup_with_val_each_epoch_cold']:.1f}x cold"
    )
    print(f"fast (cold) vs reference recipe (estimated): {result['speedup_vs_reference_cold']:.1f}x")
    print("\nvalidation 2AFC (simulated observer):")
    for k, v in scores.items():
        print(f"  {k:24s} {100 * v:6.2f}")
    print(
        f"fast - standard: {result['val_2afc_gap_points']:+.2f} points "
        f"(paired standard error {result['val_2afc_gap_se_points']:.2f})"
        + ("" if result["val_2afc_comparable"] else " (standard run shorter: not comparable)")
    )
    print(
        f"val triplets the two trained models rank differently: {differ} of {len(a_fast)}; linear weights: "
        f"mean |fast - standard| {result['lin_weights_mean_abs_diff_fast_vs_standard']:.2e}, mean change "
        f"in training {result['lin_weights_mean_abs_change_in_training']:.2e}"
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".bench_training.json.tmp"
    tmp.write_text(json.dumps(json_safe(result), indent=2, allow_nan=False))
    os.replace(tmp, out / "bench_training.json")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    tmp = out / ".bench_training.csv.tmp"
    tmp.write_text(buf.getvalue())
    os.replace(tmp, out / "bench_training.csv")
    plot(rows, scores, out / "bench_training.png", E)
    print(f"\nwritten: {out / 'bench_training.json'}, .csv, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
