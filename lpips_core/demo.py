"""``lpips-core demo``: the whole course in one command, data -> training -> evaluation -> tables and plots."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .eval import CompareConfig, DistanceFunction, LPIPSDistance, build_metrics, compare_models
from .files import write_json
from .model import load_lpips_checkpoint
from .studies import mini_bapps
from .train import TrainConfig, run_training

DEMO_BASELINES = ("lpips-alex", "net-alex", "lpips-squeeze", "l2_lab", "ssim", "psnr")


def run_demo(
    out_dir: str | Path = "demo_results",
    data: str | Path | None = None,
    net: str = "alex",
    epochs: int = 5,
    n_resamples: int = 1000,
    batch_size: int = 50,
    device: str = "cpu",
    baselines: Sequence[str] = DEMO_BASELINES,
    progress: bool = True,
    verbose: bool = True,
) -> dict:
    """The whole course in one command: data -> training -> evaluation -> tables and plots.

    1. builds the mini set (:mod:`lpips_core.studies.mini_bapps`) unless ``data`` is given or it exists;
    2. trains a ``lin`` model on its 2afc/train split (feature-cached fast path);
    3. compares it on 2afc/val and jnd/val with the official weights, the "net"
       baseline and the traditional metrics (:func:`lpips_core.eval.compare_models`).

    Writes ``out_dir/train/`` (checkpoints, history, exported weights) and
    ``out_dir/`` results.json, results.md and the figures. About 5-10 minutes on 2 CPU
    cores, most of it building the mini set the first time.

    Returns:
        the comparison results, with 'training' (the training summary) added.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    if data is None:
        print("[demo 1/3] mini-BAPPS (simulated observer): building or reusing data/mini_bapps", file=sys.stderr)
        data = mini_bapps.ensure_mini_bapps()
    data = Path(data)
    print(f"[demo 2/3] training a lin {net} model on {data}/2afc/train ({epochs} epochs, fast path)", file=sys.stderr)
    config = TrainConfig(
        net=net, mode="lin", epochs=epochs, fast=True, device=device, progress=progress, batch_size=batch_size
    )
    summary = run_training(data, out_dir / "train", config, baselines=False)
    trained_path = next(p for p in summary["exported"] if p.endswith(".pth"))
    print(f"[demo 3/3] evaluating {trained_path} against the official weights and traditional metrics", file=sys.stderr)
    fns: dict[str, DistanceFunction] = {
        f"trained-{net}": LPIPSDistance(
            load_lpips_checkpoint(trained_path), name=f"trained-{net}", kind="checkpoint", device=device
        )
    }
    more, _ = build_metrics(baselines, device=device)
    fns.update(more)
    config = CompareConfig(
        data,
        out_dir,
        n_resamples=n_resamples,
        batch_size=batch_size,
        device=device,
        progress=progress,
        baseline=f"lpips-{net}",
        verbose=verbose,
        title=f"Demo: a lin {net} model trained for {epochs} epochs",
    )
    comparison = compare_models(config, fns=fns)
    results = {**comparison.to_dict(), "training": summary, "demo_seconds": time.perf_counter() - t_start}
    write_json(out_dir / "results.json", results)
    print(f"demo finished in {results['demo_seconds']:.0f} s; results in {out_dir}", file=sys.stderr)
    return results
