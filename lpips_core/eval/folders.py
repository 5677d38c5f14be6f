"""LPIPS between two folders of images: batched, resumable, sharded over ranks (``lpips-core dirs``).

:func:`evaluate_folders` pairs the files of two folders by relative path, decodes
them in DataLoader workers, runs same-size pairs through the metric in batches, and
returns a :class:`FolderResult` (one row per pair, plus a summary with a bootstrap
interval and per-subfolder means). With an ``output`` CSV it is resumable: every
finished batch is appended to a part file (see :mod:`.resumable`) and ``resume=True``
computes only the missing pairs. Under ``torchrun`` (a process group initialised by
the caller) rank ``r`` takes batches ``r, r + W, r + 2W, ...`` of one fixed batch
plan, rank 0 gathers the rows and writes the CSV: every pair is computed in the same
batch as in one process, so the CSV is the same, byte for byte.

The run is described by a :class:`FolderConfig` (the command's options, checked on
construction); a ready model may be passed beside it.

Example:
    >>> from lpips_core.eval.folders import FolderConfig, evaluate_folders   # doctest: +SKIP
    >>> res = evaluate_folders(FolderConfig("renders", "gt", "lpips.csv", recursive=True))  # doctest: +SKIP
    >>> res.summary["mean"], res.summary["ci95"]                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.images import ImageLoadError
from ..data.pairs import (
    PairDataset,
    PairList,
    SizePlan,
    check_input_range,
    collate_items,
    header_size,
    match_pairs,
    plan_size,
    size_batches,
)
from ..devices import resolve_device
from ..files import printable, write_csv, write_json
from ..model import LPIPS, MIN_INPUT_SIZE
from ..progress import progress_bar
from ..version import __version__
from . import plots, resumable
from .batch_workers import BatchDistances, default_workers, distance_loader, pair_distances
from .stats import bootstrap_ci

__all__ = [
    "HEADER",
    "FOLDER_ACCELERATORS",
    "value_text",
    "metric_signature",
    "summarize",
    "summary_text",
    "summary_path",
    "plot_path",
    "FolderResult",
    "check_run_options",
    "FolderConfig",
    "check_outputs",
    "evaluate_folders",
]

HEADER = ("path", "distance")


def value_text(d: float) -> str:
    """A float32 distance as text that reads back to the same float32 ('%.9g')."""
    return f"{d:.9g}"


#: 'auto' in folder runs means CUDA, else the CPU (the folder paths have not been tested on MPS).
FOLDER_ACCELERATORS = ("cuda",)


def metric_signature(model: LPIPS, input_range: str, max_side: int | None = None) -> dict:
    """What the distances depend on, stored in the summary and in part files.

    ``signature`` is the model's own :meth:`LPIPS.signature` for 8-bit image files
    (``range:0,255``; ``size:native`` or the ``--max-side`` bound), the string the
    command line prints; the other fields are kept for reading them without parsing.
    """
    size = "native" if max_side is None else f"max-side-{max_side}"
    return {
        "lpips": model.signature(size=size, input_range="0,255"),
        "net": model.pnet_type,
        "version": model.version,
        "input_range": input_range,
        "lpips_core": __version__,
    }


# --------------------------------------------------------------------------- ranks
def _group():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _rank_world() -> tuple[int, int]:
    g = _group()
    return (g.get_rank(), g.get_world_size()) if g else (0, 1)


def _broadcast(obj, device: torch.device):
    g = _group()
    if g is None:
        return obj
    box = [obj]
    g.broadcast_object_list(box, src=0, device=device if g.get_backend() == "nccl" else None)
    return box[0]


def _gather(obj, device: torch.device) -> list:
    g = _group()
    if g is None:
        return [obj]
    out = [None] * g.get_world_size()
    g.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------- summary
def summarize(rows: Sequence[tuple[str, float]], level: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Mean, median, spread and a percentile-bootstrap interval of the mean; means per subfolder.

    Args:
        rows: (relative path, distance) pairs.
    Returns:
        {'n_pairs', 'mean', 'median', 'std', 'min', 'max', 'ci95': [low, high],
        'ci_level', 'n_resamples', 'by_folder': {folder: {'n', 'mean'}}} ('.' is the top folder).
    """
    d = np.array([v for _, v in rows], dtype=np.float64)
    lo, hi = bootstrap_ci(d, np.mean, level=level, n_resamples=n_resamples, seed=seed)
    folders: dict[str, list[float]] = {}
    for key, v in rows:
        folders.setdefault(str(PurePosixPath(key).parent), []).append(v)
    return {
        "n_pairs": int(d.size),
        "mean": float(d.mean()),
        "median": float(np.median(d)),
        "std": float(d.std(ddof=1)) if d.size > 1 else 0.0,
        "min": float(d.min()),
        "max": float(d.max()),
        "ci95": [lo, hi],
        "ci_level": level,
        "n_resamples": n_resamples,
        "by_folder": {k: {"n": len(v), "mean": float(np.mean(v))} for k, v in sorted(folders.items())},
    }


def summary_text(summary: dict) -> str:
    """The summary as a few lines for the terminal."""
    lines = [
        f"{summary['n_pairs']} pairs  mean {summary['mean']:.4f}  median {summary['median']:.4f}  "
        f"{100 * summary['ci_level']:.0f}% CI [{summary['ci95'][0]:.4f}, {summary['ci95'][1]:.4f}]  "
        f"min {summary['min']:.4f}  max {summary['max']:.4f}"
    ]
    folders = {printable(k): v for k, v in summary["by_folder"].items()}
    if len(folders) > 1:
        width = max(len(k) for k in folders)
        lines += [f"  {k:{width}s}  n={v['n']:<6d} mean {v['mean']:.4f}" for k, v in folders.items()]
    return "\n".join(lines)


def summary_path(output: str | os.PathLike) -> Path:
    """``out.csv`` -> ``out.summary.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".summary.json")


def plot_path(output: str | os.PathLike) -> Path:
    """``out.csv`` -> ``out.png`` (the histogram)."""
    output = Path(output)
    return output.with_name(output.stem + ".png")


@dataclass
class FolderResult:
    """What :func:`evaluate_folders` returns.

    Attributes:
        rows: (relative path, distance) per pair, sorted by path.
        summary: see :func:`summarize`, plus 'signature', the folders, the size policy
            and the unmatched counts.
        pairs: the matching (with the unmatched files).
        output, summary_file, plot_file: the files written (None without ``output``).
    """

    rows: list[tuple[str, float]]
    summary: dict
    pairs: PairList
    output: Path | None = None
    summary_file: Path | None = None
    plot_file: Path | None = None
    computed: int = field(default=0)

    def table(self):
        """The rows as a pandas DataFrame (columns path, distance)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(HEADER))


# --------------------------------------------------------------------------- the run
def check_run_options(
    workers: int | None = None, batch_size: int = 1, max_side: int | None = None, n_resamples: int = 1
) -> None:
    """The numeric options of ``dirs``/``allpairs``, checked before anything is computed.

    Raises:
        ValueError: naming the option and the values it takes.
    """
    if workers is not None and workers < 0:
        raise ValueError(f"workers={workers}; use 0 (this process) or more")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} (--batch-size); use 1 or more")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side={max_side} (--max-side); use 1 or more pixels, or leave it out")
    if n_resamples < 1:
        raise ValueError(
            f"n_resamples={n_resamples} (--resamples); the bootstrap interval needs 1 or more (1000 is the default)"
        )


@dataclass
class FolderConfig:
    """What ``lpips-core dirs`` runs: two folders, the model, the batching and the outputs.

    Files:
        dir0, dir1: the folders (e.g. ground truth and renders), matched by relative path;
            ``dir0``'s image sets the size under ``size_mismatch='resize'``.
        output: CSV to write (``path,distance``, sorted by path) and, beside it,
            ``<stem>.summary.json``; None computes in memory only.
        recursive: match files in subfolders too.
        plot: with ``output``, also draw ``<stem>.png`` (histogram, mean and interval, subfolder means).
        resume: keep the rows of an earlier, interrupted run with the same settings.
    Metric:
        net, version: the official LPIPS model (alex | vgg | squeeze; '0.1' | '0.0'), unless
            :func:`evaluate_folders` is given a ``model``.
        input_range: '-1,1' (files mapped as the reference does) or '0,1' (``normalize=True``).
        size_mismatch: 'error', 'resize' or 'crop' (see :func:`~lpips_core.data.pairs.plan_size`).
        max_side: downscale pairs whose longer side exceeds this many pixels (None: never).
        precision: 'fp32' (exact), 'bf16' or 'int8' (see :mod:`lpips_core.model.precision`);
            None: the given model's own, 'fp32' for the model built here. The summary's
            signature says what ran (a mode this device cannot run fast warns once and runs fp32).
    Running:
        batch_size: pairs per metric call (same-size pairs only; >= 1).
        workers: DataLoader worker processes (>= 0). On a CPU they decode and compute whole
            batches, each on its share of the torch threads (see :mod:`.batch_workers`;
            0: this process does both); on a GPU they decode. None: on a CPU one per
            torch thread (at most 4, none for one thread), on a GPU 2. The numbers do
            not depend on it beyond float32 rounding.
        device: 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1'.
        n_resamples: bootstrap resamples of the interval (>= 1).
        progress: show a progress bar (pairs/s) on stderr.
    """

    dir0: str | os.PathLike
    dir1: str | os.PathLike
    output: str | os.PathLike | None = None
    net: str = "alex"
    version: str = "0.1"
    recursive: bool = False
    batch_size: int = 16
    workers: int | None = None
    device: str | torch.device = "auto"
    size_mismatch: str = "error"
    max_side: int | None = None
    input_range: str = "-1,1"
    resume: bool = False
    n_resamples: int = 1000
    plot: bool = True
    progress: bool = True
    precision: str | None = None

    def __post_init__(self) -> None:
        check_input_range(self.input_range)
        check_run_options(
            workers=self.workers, batch_size=self.batch_size, max_side=self.max_side, n_resamples=self.n_resamples
        )


@dataclass
class _Plan:
    pairs: PairList
    sizes: list[SizePlan]  # per pair
    batches: list[list[int]]  # every batch of the run, in order
    todo: list[int]  # indices into batches still to compute
    done: dict[str, str]  # rows found from earlier runs


def check_outputs(output: Path, plot: bool) -> None:
    """Everything about the output files that can be checked before the first pair is computed.

    Raises:
        ResumeError: naming the file: the CSV, its summary or its figure is a folder; the folder
            cannot be created or written; a ``<stem>.png`` that ``dirs`` did not draw is in the way.
    """
    targets = [output, summary_path(output)] + ([plot_path(output)] if plot else [])
    for target in targets:
        if target.is_dir():
            raise resumable.ResumeError(
                f"{target} is a folder; --output names the CSV file to write (e.g. {target / 'lpips.csv'})"
            )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise resumable.ResumeError(
            f"cannot create the output folder {output.parent} ({exc.strerror or exc}); choose another --output"
        ) from None
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise resumable.ResumeError(f"{output.parent} is not writable; choose another --output")
    if plot and plot_path(output).exists() and not plots.is_folder_plot(plot_path(output)):
        raise resumable.ResumeError(
            f"{plot_path(output)} exists and was not drawn by lpips-core dirs; it is not "
            f"replaced: move it, choose another --output, or pass --no-plot"
        )


def _refuse_unfinished_work(output: Path, settings: dict) -> None:
    """A run without ``resume`` must not silently delete the rows an interrupted run left.

    Part files without a finished row are removed; otherwise this raises, saying how many
    rows there are, whether ``--resume`` can use them, and how to start over instead.
    """
    n, parts = resumable.finished_rows(output)
    if not parts:
        return
    if n == 0:
        for part in parts:
            part.unlink(missing_ok=True)
        return
    names = ", ".join(str(p) for p in parts)
    diffs = [
        resumable.settings_difference(found, settings) if found is not None else "not a part file"
        for found in map(resumable.part_settings, parts)
    ]
    diff = next((d for d in diffs if d), "")
    how = (
        f"they were computed with other options ({diff}): resume with those"
        if diff
        else "add --resume to keep them and compute only the rest"
    )
    raise resumable.ResumeError(
        f"{n} distance(s) from an interrupted run are in {names}: {how}; or delete "
        f"{'it' if len(parts) == 1 else 'them'} to start over (nothing was computed "
        f"or deleted now)"
    )


def _make_plan(config: FolderConfig, output: Path | None, settings: dict) -> _Plan:
    max_side, resume = config.max_side, config.resume
    pairs = match_pairs(config.dir0, config.dir1, config.recursive)
    low = MIN_INPUT_SIZE[settings["net"]]
    plans = []
    for i in range(len(pairs)):
        p0, p1 = pairs.paths(i)
        plans.append(plan_size(header_size(p0), header_size(p1), config.size_mismatch, max_side, (str(p0), str(p1))))
        if min(plans[-1].size) < low:
            h, w = plans[-1].size
            fix = "a larger --max-side" if max_side else "larger images or another --net"
            raise ImageLoadError(
                f"{p0} and {p1} compare at {w}x{h} pixels, too small for net="
                f"'{settings['net']}' (each side at least {low}); use {fix}"
            )
    batches = size_batches([p.size for p in plans], config.batch_size)
    done: dict[str, str] = {}
    if output is not None:
        check_outputs(output, config.plot)
    if output is not None and resume:
        if output.is_file():  # a finished table: its summary says which settings made it
            summary_file = summary_path(output)
            if not summary_file.is_file():
                raise resumable.ResumeError(
                    f"{output} has no {summary_file.name} to tell its settings; run without --resume to recompute it"
                )
            found = json.loads(summary_file.read_text()).get("settings", {})
            resumable.check_same_settings(summary_file, found, settings)
            done.update(resumable.read_table(output, HEADER))
        for part in resumable.part_files(output):
            done.update(resumable.read_part(part, settings))
    elif output is not None:
        _refuse_unfinished_work(output, settings)
    keys = pairs.keys
    todo = [b for b, idx in enumerate(batches) if any(keys[i] not in done for i in idx)]
    return _Plan(pairs, plans, batches, todo, {k: v for k, v in done.items() if k in set(keys)})


def evaluate_folders(config: FolderConfig, *, model: LPIPS | None = None) -> FolderResult:
    """LPIPS of every pair of two folders matched by relative path.

    Args:
        config: the folders, the model, the batching and the outputs (see :class:`FolderConfig`).
        model: an LPIPS model to use instead of the official ``config.net``/``config.version``.
    Returns:
        a :class:`FolderResult` (on every rank when distributed).
    Raises:
        ImageLoadError: a missing folder, no matching file, an unreadable image, or
            sizes that differ under ``size_mismatch='error'`` (naming the files).
        ResumeError: ``resume`` with an earlier run's files of other settings.
    """
    rank, world = _rank_world()
    device = resolve_device(config.device, accelerators=FOLDER_ACCELERATORS)
    workers = default_workers(device) if config.workers is None else config.workers
    if device.type == "cuda":
        torch.cuda.set_device(device)  # nccl's object collectives run on the current device
    output = Path(config.output) if config.output is not None else None
    if model is None:  # the files' range is known, never guessed
        model = LPIPS(net=config.net, version=config.version, input_range=config.input_range)
    model = model.to(device).eval().requires_grad_(False)
    if config.precision is not None:
        model.set_precision(config.precision)
    model.prepare_precision(device)  # warns once here; int8: quantised before the workers start
    settings = {
        **metric_signature(model, config.input_range, config.max_side),
        "size_mismatch": config.size_mismatch,
        "max_side": config.max_side,
        "batch_size": config.batch_size,
    }
    try:
        plan = _make_plan(config, output, settings) if rank == 0 else None
        error = None
    except (ImageLoadError, resumable.ResumeError, ValueError) as exc:
        plan, error = None, exc
    plan, error = _broadcast((plan, error), device) if world > 1 else (plan, error)
    if error is not None:
        raise error
    mine = plan.todo[rank::world]
    try:
        rows, error = (
            _compute(model, plan, mine, config, output, settings, workers, device),
            None,
        )
    except (ImageLoadError, ValueError) as exc:  # every rank must reach the gather, or the others would wait
        rows, error = {}, exc
    gathered = _gather((rows, error), device)
    errors = [e for _, e in gathered if e is not None]
    if errors:
        raise errors[0]
    result = None
    if rank == 0:
        try:
            result = _finish(plan, [r for r, _ in gathered], config, output, settings)
        except (OSError, RuntimeError) as exc:  # e.g. a full disk: passed on so no rank waits
            result = exc
    result = _broadcast(result, device) if world > 1 else result
    if isinstance(result, Exception):
        raise result
    if output is not None:  # the CSV is written: every rank removes its own part, rank 0 any other
        resumable.part_path(output, rank).unlink(missing_ok=True)
        if rank == 0:  # parts of ranks this run did not have (a two-rank run resumed in one process)
            for part in resumable.part_files(output):
                part.unlink(missing_ok=True)
    return result


def _compute(
    model: LPIPS,
    plan: _Plan,
    mine: list[int],
    config: FolderConfig,
    output: Path | None,
    settings: dict,
    workers: int,
    device: torch.device,
) -> dict[str, str]:
    """This rank's batches -> {key: value text}, each batch appended to the part file as it finishes."""
    rank, world = _rank_world()
    input_range = config.input_range
    dataset = PairDataset(plan.pairs, plan.sizes)
    my_batches = [plan.batches[b] for b in mine]

    def rows_of(index: torch.Tensor, distances: list[float]) -> list[tuple[str, str]]:
        return [(plan.pairs.keys[i], value_text(v)) for i, v in zip(index.tolist(), distances)]

    def on_cpu():  # the workers decode and compute whole batches (none: this process does)
        threads = max(1, torch.get_num_threads() // max(1, workers))
        for item in distance_loader(BatchDistances(dataset, model, input_range), my_batches, workers, threads):
            if item["errors"]:
                raise ImageLoadError(item["errors"][0])
            yield rows_of(item["index"], item["distances"])

    def on_gpu():  # the workers decode, this process runs the model
        loader = DataLoader(
            dataset, batch_sampler=my_batches, num_workers=workers, collate_fn=collate_items, pin_memory=True
        )
        with torch.inference_mode():
            for batch in loader:
                if batch["errors"]:
                    raise ImageLoadError(batch["errors"][0])
                d = pair_distances(model, batch["images"].to(device, non_blocking=True), input_range)
                yield rows_of(batch["index"], d.tolist())

    writer = resumable.PartWriter(resumable.part_path(output, rank), settings, config.resume) if output else None
    n_todo = sum(len(idx) for idx in my_batches)
    desc = "pairs" if world == 1 else f"pairs (rank 0 of {world})"
    bar = progress_bar(total=n_todo, desc=desc, unit="pair", enabled=config.progress and rank == 0)
    rows: dict[str, str] = {}
    try:
        for new in on_cpu() if device.type == "cpu" else on_gpu():
            if writer is not None:  # appended as soon as it is done, so a killed run keeps it
                writer.write(new)
            rows.update(new)
            bar.update(len(new))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return rows


def _finish(
    plan: _Plan, gathered: list[dict[str, str]], config: FolderConfig, output: Path | None, settings: dict
) -> FolderResult:
    """Rank 0: merge the earlier rows with every rank's new rows, write the CSV and the summary."""
    texts = dict(plan.done)
    for part in gathered:
        texts.update(part)
    keys = plan.pairs.keys
    missing = [k for k in keys if k not in texts]
    if missing:  # cannot happen unless a rank lost rows: never write an incomplete table silently
        raise RuntimeError(f"{len(missing)} pair(s) have no distance after the run (first: {missing[0]})")
    rows = [(k, float(np.float32(texts[k]))) for k in keys]  # the float32 each text was written from
    summary = summarize(rows, n_resamples=config.n_resamples)
    summary.update(
        {
            "signature": {k: v for k, v in settings.items() if k not in ("size_mismatch", "max_side", "batch_size")},
            "dir0": str(plan.pairs.dir0),
            "dir1": str(plan.pairs.dir1),
            "size_mismatch": config.size_mismatch,
            "max_side": config.max_side,
            "settings": settings,
            "only_in_dir0": len(plan.pairs.only0),
            "only_in_dir1": len(plan.pairs.only1),
        }
    )
    result = FolderResult(rows, summary, plan.pairs, computed=sum(len(g) for g in gathered))
    if output is not None:
        write_csv(output, HEADER, [(k, texts[k]) for k in keys], errors="surrogateescape")  # names as on disk
        result.output = output
        result.summary_file = write_json(summary_path(output), summary)
        if config.plot:
            result.plot_file = plot_path(output)
            sig = summary["signature"]
            plots.plot_folder_distances(
                [v for _, v in rows],
                summary,
                result.plot_file,
                f"LPIPS {sig['net']} v{sig['version']}: {plan.pairs.dir0.name} vs "
                f"{plan.pairs.dir1.name}, {len(rows)} pairs",
            )
    return result
