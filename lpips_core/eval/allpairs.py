"""LPIPS between all pairs of a folder's images, for thousands of images (``lpips-core allpairs``).

Memory stays bounded by a block, not by the number of images:

1. every image goes through the trunk once, in batches decoded by DataLoader workers,
   and its LPIPS embedding (:meth:`~lpips_core.model.LPIPS.embed`: squared distances of
   embeddings are the LPIPS distances) is written to a temporary ``.npy`` memmap;
2. the N x N matrix is filled block by block (``|e_i|^2 + |e_j|^2 - 2 e_i.e_j`` of
   centred embeddings, as :func:`lpips_core.model.reuse.pairwise`) into a ``.npy``
   memmap, each off-diagonal block computed once and mirrored;
3. summary statistics (mean, spread, the closest pair, each image's mean distance and
   nearest neighbour) are accumulated over the blocks.

Outputs next to ``output`` (``out.npy``): ``out.files.txt`` (row order),
``out.summary.json``, ``out.images.csv`` and, on request, a CSV of all pairs. They are
one result: all are written to temporary files and renamed into place together at the
end (:func:`lpips_core.files.atomic_paths`), so a failure never leaves a new matrix
beside old row names; the options (when the :class:`AllPairsConfig` is built) and the
output paths are checked before any image is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.images import ImageLoadError
from ..data.pairs import (
    SIZE_POLICIES,
    ImageDataset,
    PairSizeError,
    check_input_range,
    collate_items,
    fit_max_side,
    header_size,
    list_images_recursive,
    to_model_range,
)
from ..devices import resolve_device
from ..files import atomic_paths, write_csv, write_json, write_text
from ..model import LPIPS
from ..progress import progress_bar
from .folders import FOLDER_ACCELERATORS, check_run_options, metric_signature, value_text

__all__ = ["MEDIAN_MAX_PAIRS", "AllPairsResult", "AllPairsConfig", "allpairs", "output_files"]

#: Pairs up to which the exact median of all distances is computed (it needs them all in memory).
MEDIAN_MAX_PAIRS = 20_000_000


@dataclass
class AllPairsResult:
    """Files written by :func:`allpairs` and its summary.

    Attributes:
        matrix: path of the (N, N) float32 ``.npy`` (open with ``np.load(path, mmap_mode='r')``).
        files: relative paths of the images, in row order.
        summary: see :func:`allpairs`.
    """

    matrix: Path
    files: list[str]
    summary: dict

    def load(self, mmap: bool = True) -> np.ndarray:
        return np.load(self.matrix, mmap_mode="r" if mmap else None)


def _target_size(folder: Path, files: list[str], policy: str, max_side: int | None) -> tuple[int, int]:
    sizes = [header_size(folder / f) for f in files]
    if policy == "crop":
        size = (min(s[0] for s in sizes), min(s[1] for s in sizes))
    else:
        size = sizes[0]
        if policy == "error":
            odd = next((f for f, s in zip(files, sizes) if s != size), None)
            if odd is not None:
                s = sizes[files.index(odd)]
                raise PairSizeError(
                    f"{folder / odd} is {s[1]}x{s[0]} but {folder / files[0]} is "
                    f"{size[1]}x{size[0]}; allpairs needs one size: use --size-mismatch "
                    f"resize or crop"
                )
    return fit_max_side(size, max_side)


def _embed_all(
    model: LPIPS,
    dataset: ImageDataset,
    emb_path: Path,
    batch_size: int,
    workers: int,
    device: torch.device,
    input_range: str,
    progress: bool,
) -> tuple[np.memmap, np.ndarray]:
    """Embeddings of every image into a (N, D) float32 memmap; returns it and their float64 mean."""
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_items, pin_memory=device.type == "cuda"
    )
    emb, total, n = None, None, len(dataset)
    bar = progress_bar(total=n, desc="features", unit="img", enabled=progress)
    with torch.inference_mode():
        for batch in loader:
            if batch["errors"]:
                raise ImageLoadError(batch["errors"][0])
            x = to_model_range(batch["image"].to(device, non_blocking=True), input_range)  # (B, H, W, 3)
            x = x.permute(0, 3, 1, 2)  # (B, 3, H, W), channels-last memory
            e = model.embed(x, normalize=input_range == "0,1", chunk_size=batch_size).cpu().numpy()  # (B, D)
            if emb is None:
                emb = np.lib.format.open_memmap(emb_path, mode="w+", dtype=np.float32, shape=(n, e.shape[1]))
                total = np.zeros(e.shape[1], np.float64)
            idx = batch["index"].numpy()
            emb[idx[0] : idx[-1] + 1] = e
            total += e.sum(0, dtype=np.float64)
            bar.update(len(idx))
    bar.close()
    emb.flush()
    return emb, total / n


def _block(
    emb: np.ndarray, mean: torch.Tensor, s: int, e: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows s..e of the embeddings, centred, on ``device``, and their squared norms: (b, D), (b,)."""
    x = torch.from_numpy(np.ascontiguousarray(emb[s:e])).to(device).sub_(mean)  # (b, D) centred
    return x, x.pow(2).sum(1)


def _nearest(d: np.ndarray, row0: int, col0: int, nn: np.ndarray, nn_d: np.ndarray) -> None:
    """Update each row's nearest neighbour (index, distance) with the block ``d`` (rows from ``row0``)."""
    j = d.argmin(1)
    best = d[np.arange(d.shape[0]), j]
    better = best < nn_d[row0 : row0 + d.shape[0]]
    nn_d[row0 : row0 + d.shape[0]][better] = best[better]
    nn[row0 : row0 + d.shape[0]][better] = col0 + j[better]


@dataclass
class AllPairsConfig:
    """What ``lpips-core allpairs`` runs: a folder, the model, the memory bound and the outputs.

    Files:
        folder: the images (``recursive`` for subfolders too); at least 2.
        output: the ``.npy`` to write; ``<stem>.files.txt``, ``<stem>.summary.json`` and
            ``<stem>.images.csv`` (per image: mean distance, nearest neighbour) go beside it.
        pairs_csv: also write ``image0,image1,distance`` for every pair i < j (None: not).
    Metric:
        net, version: the official LPIPS model, unless :func:`allpairs` is given a ``model``.
        input_range: '-1,1' (files mapped as the reference does) or '0,1' (``normalize=True``).
        size_mismatch: images of another size than the first: 'error', 'resize' to it,
            or 'crop' (all to the smallest height and width, centre crop then resize).
        max_side: downscale so the longer side is at most this many pixels (None: never).
        precision: 'fp32' (exact), 'bf16' or 'int8' (None: the given model's own, else 'fp32');
            the embeddings come from the trunk in that precision, the matrix is float32.
    Running:
        batch_size: images per trunk call (>= 1).
        block_mb: memory in MiB for one block of embeddings (bounds the block's rows; >= 1).
        workers: DataLoader processes decoding images (>= 0).
        device: 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1'.
        progress: progress bars on stderr.
    """

    folder: str | os.PathLike
    output: str | os.PathLike
    net: str = "alex"
    version: str = "0.1"
    recursive: bool = False
    batch_size: int = 16
    block_mb: int = 256
    workers: int = 0
    device: str | torch.device = "auto"
    size_mismatch: str = "error"
    max_side: int | None = None
    input_range: str = "-1,1"
    pairs_csv: str | os.PathLike | None = None
    progress: bool = True
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.size_mismatch not in SIZE_POLICIES:
            raise ValueError(f"size_mismatch={self.size_mismatch!r}; choose one of {', '.join(SIZE_POLICIES)}")
        check_input_range(self.input_range)
        check_run_options(workers=self.workers, batch_size=self.batch_size, max_side=self.max_side)
        if self.block_mb < 1:
            raise ValueError(f"block_mb={self.block_mb} (--block-mb); use 1 or more")


def allpairs(config: AllPairsConfig, *, model: LPIPS | None = None) -> AllPairsResult:
    """The (N, N) LPIPS matrix of a folder's images, written as a ``.npy`` memmap.

    Args:
        config: the folder, the model, the memory bound and the outputs (see :class:`AllPairsConfig`).
        model: an LPIPS model to use instead of the official ``config.net``/``config.version``.
    Returns:
        an :class:`AllPairsResult`; its summary holds 'n_images', 'n_pairs', 'mean', 'std',
        'min', 'max', 'median' (None above :data:`MEDIAN_MAX_PAIRS`), 'closest_pair',
        'farthest_pair' and 'signature'.
    """
    folder, output, pairs_csv = Path(config.folder), Path(config.output), config.pairs_csv
    size_mismatch, max_side, input_range = config.size_mismatch, config.max_side, config.input_range
    targets = output_files(output, pairs_csv)
    _check_targets(targets)
    files = list_images_recursive(folder, config.recursive)
    if len(files) < 2:
        raise ImageLoadError(f"{folder} holds {len(files)} image(s); allpairs needs at least 2")
    size = _target_size(folder, files, size_mismatch, max_side)
    device = resolve_device(config.device, accelerators=FOLDER_ACCELERATORS)
    if model is None:  # the files' range is known, never guessed
        model = LPIPS(net=config.net, version=config.version, input_range=input_range)
    model = model.to(device).eval().requires_grad_(False)
    if config.precision is not None:
        model.set_precision(config.precision)
    model.prepare_precision(device)
    dataset = ImageDataset([folder / f for f in files], size, size_mismatch)
    n = len(files)
    emb_path = output.with_name(f".{output.name}.emb.tmp")
    # every output of the run is written to a temporary file first and all are renamed together
    with atomic_paths(list(targets.values())) as tmps:
        tmp = dict(zip(targets, tmps))
        try:
            emb, mean = _embed_all(
                model, dataset, emb_path, config.batch_size, config.workers, device, input_range, config.progress
            )
            summary = _fill_matrix(emb, mean, tmp["matrix"], n, config.block_mb, device, config.progress)
        finally:
            if emb_path.exists():
                emb_path.unlink()
        summary.update(
            {
                "closest_pair": [files[i] for i in summary.pop("argmin")],
                "farthest_pair": [files[i] for i in summary.pop("argmax")],
                "image_size": list(size),
                "folder": str(folder),
                "size_mismatch": size_mismatch,
                "signature": metric_signature(model, input_range, max_side),
            }
        )
        # file names are written as the file system gave them (undecodable bytes included)
        write_text(tmp["files"], "".join(f + "\n" for f in files), errors="surrogateescape")
        per_image = summary.pop("per_image")
        write_csv(
            tmp["images"],
            ["image", "mean_distance", "nearest", "nearest_distance"],
            [
                (
                    files[i],
                    value_text(per_image["mean"][i]),
                    files[per_image["nn"][i]],
                    value_text(per_image["nn_d"][i]),
                )
                for i in range(n)
            ],
            errors="surrogateescape",
        )
        write_json(tmp["summary"], summary)
        if pairs_csv is not None:
            m = np.load(tmp["matrix"], mmap_mode="r")
            write_csv(
                tmp["pairs"],
                ["image0", "image1", "distance"],
                ((files[i], files[j], value_text(m[i, j])) for i in range(n) for j in range(i + 1, n)),
                errors="surrogateescape",
            )
            del m
    return AllPairsResult(output, files, summary)


def output_files(output: Path, pairs_csv: str | os.PathLike | None = None) -> dict[str, Path]:
    """The files one :func:`allpairs` run writes, by role: matrix, files, images, summary[, pairs]."""
    stem = output.with_suffix("")
    files = {
        "matrix": output,
        "files": stem.with_name(stem.name + ".files.txt"),
        "images": stem.with_name(stem.name + ".images.csv"),
        "summary": stem.with_name(stem.name + ".summary.json"),
    }
    if pairs_csv is not None:
        files["pairs"] = Path(pairs_csv)
    return files


def _check_targets(targets: dict[str, Path]) -> None:
    """Before any image is read: no output is a folder, and the output folders can be created."""
    for path in targets.values():
        if path.is_dir():
            raise ValueError(f"{path} is a folder; name the file to write (e.g. {path / 'lpips.npy'})")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot create the output folder {path.parent} ({exc.strerror or exc})") from None
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise ValueError(f"{path.parent} is not writable; choose another output")


def _fill_matrix(
    emb: np.ndarray, mean64: np.ndarray, output: Path, n: int, block_mb: int, device: torch.device, progress: bool
) -> dict:
    """Write the matrix block by block; return the statistics accumulated on the way."""
    rows = max(1, min(n, block_mb * 2**20 // (4 * emb.shape[1])))
    mean = torch.from_numpy(mean64.astype(np.float32)).to(device)
    total = total_sq = 0.0
    lo, hi, argmin, argmax = np.inf, -np.inf, (0, 1), (0, 1)
    row_sum = np.zeros(n, np.float64)
    nn_d, nn = np.full(n, np.inf), np.zeros(n, np.int64)
    starts = list(range(0, n, rows))
    bar = progress_bar(total=len(starts) * (len(starts) + 1) // 2, desc="blocks", unit="block", enabled=progress)
    with torch.inference_mode():  # ``output`` is a temporary file of the run (see allpairs)
        out = np.lib.format.open_memmap(output, mode="w+", dtype=np.float32, shape=(n, n))
        for bi, s0 in enumerate(starts):
            e0 = min(n, s0 + rows)
            x0, sq0 = _block(emb, mean, s0, e0, device)
            for s1 in starts[bi:]:
                e1 = min(n, s1 + rows)
                x1, sq1 = (x0, sq0) if s1 == s0 else _block(emb, mean, s1, e1, device)
                d = (sq0[:, None] + sq1[None, :]).sub_(x0 @ x1.T, alpha=2)  # (b0, b1)
                if s1 == s0:
                    d = (d + d.T).mul_(0.5)
                    d.fill_diagonal_(0)
                d = d.clamp_(min=0).cpu().numpy()
                out[s0:e0, s1:e1] = d
                if s1 != s0:
                    out[s1:e1, s0:e0] = d.T
                # statistics over the pairs i < j of this block
                iu = np.triu_indices(e0 - s0, 1) if s1 == s0 else np.nonzero(np.ones_like(d, dtype=bool))
                v = d[iu].astype(np.float64)
                total += v.sum()
                total_sq += (v * v).sum()
                k = int(v.argmin()), int(v.argmax())
                if v[k[0]] < lo:
                    lo, argmin = v[k[0]], (s0 + int(iu[0][k[0]]), s1 + int(iu[1][k[0]]))
                if v[k[1]] > hi:
                    hi, argmax = v[k[1]], (s0 + int(iu[0][k[1]]), s1 + int(iu[1][k[1]]))
                row_sum[s0:e0] += d.sum(1)
                masked = d.astype(np.float64)
                if s1 == s0:
                    np.fill_diagonal(masked, np.inf)  # an image is not its own neighbour
                else:
                    row_sum[s1:e1] += d.sum(0)
                    _nearest(masked.T, s1, s0, nn, nn_d)
                _nearest(masked, s0, s1, nn, nn_d)
                bar.update(1)
        out.flush()
        median = None
        n_pairs = n * (n - 1) // 2
        if n_pairs <= MEDIAN_MAX_PAIRS:
            median = float(np.median(np.concatenate([out[i, i + 1 :] for i in range(n - 1)])))
        del out
    bar.close()
    mean_d = total / n_pairs
    return {
        "n_images": n,
        "n_pairs": n_pairs,
        "mean": mean_d,
        "std": float(np.sqrt(max(total_sq / n_pairs - mean_d**2, 0.0) * n_pairs / max(n_pairs - 1, 1))),
        "min": float(lo),
        "max": float(hi),
        "median": median,
        "argmin": argmin,
        "argmax": argmax,
        "per_image": {"mean": row_sum / (n - 1), "nn": nn, "nn_d": nn_d},
    }
