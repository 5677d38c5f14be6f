"""Whole batches computed inside DataLoader workers: a CPU's cores shared by processes.

On a CPU, one batch on all T cores leaves cores waiting at every layer's barrier,
and decoding the next batch then competes with the trunk for the same cores.
:func:`distance_loader` instead gives each DataLoader worker whole batches to decode
*and* run through the metric on ``threads // workers`` torch threads; the main
process only collects the distances, and decoding fills whatever the trunk leaves
idle. On 2 cores, 400 pairs of 512x512 took 64-65 ms a pair this way against 66-69 ms
computed in the main process with decoding in between; ``benchmarks/bench_dirs.py``
puts the whole command at 1.12x the trunk alone.

Processes, not threads: two Python threads running the same model for the first
time gave different float32 distances for the same pair (up to 7e-4; oneDNN's lazy
set-up is not safe to race), while separate processes share nothing. A batch always
runs on ``threads_per_worker`` threads, whichever worker takes it, so its numbers do
not depend on scheduling.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.pairs import collate_items, to_model_range

#: Most worker processes chosen automatically: each holds one batch's activations.
MAX_AUTO_WORKERS = 4


def auto_workers(threads: int | None = None) -> int:
    """Computing workers for a CPU with ``threads`` torch threads: one per thread (at most 4), none for 1."""
    threads = torch.get_num_threads() if threads is None else threads
    return 0 if threads <= 1 else min(threads, MAX_AUTO_WORKERS)


def default_workers(device: torch.device, threads: int | None = None) -> int:
    """``dirs``'s DataLoader workers: computing ones on a CPU (:func:`auto_workers`), 2 decoding ones on a GPU."""
    return auto_workers(threads) if device.type == "cpu" else 2


def pair_distances(model: torch.nn.Module, images: torch.Tensor, input_range: str = "-1,1") -> torch.Tensor:
    """(B, 2, H, W, 3) uint8 pairs (as the pair datasets give them, any device) -> (B,) distances."""
    x = to_model_range(images, input_range).permute(0, 1, 4, 2, 3)  # (B, 2, 3, H, W), channels-last memory
    return model(x[:, 0], x[:, 1], input_range=input_range).flatten()


class BatchDistances(Dataset):
    """Item ``idx`` (a list of pair indices) -> that batch's distances, computed when the item is loaded.

    Args:
        pairs: a dataset of {'index': i, 'images': (2, H, W, 3) uint8} items (or {'index', 'error'}),
            e.g. :class:`~lpips_core.data.pairs.PairDataset`.
        model: an LPIPS model on the CPU.
        input_range: '-1,1' or '0,1', what the 8-bit images are converted to.
    Returns (per item):
        {'index': (B,) pair indices, 'distances': B floats (float32 values), 'errors': [text]};
        a batch with an unreadable file has no distances and its errors named.
    """

    def __init__(self, pairs: Dataset, model: torch.nn.Module, input_range: str = "-1,1"):
        self.pairs, self.model, self.input_range = pairs, model, input_range

    def __getitem__(self, idx: Sequence[int]) -> dict:
        batch = collate_items([self.pairs[i] for i in idx])
        if batch["errors"]:
            return {"index": batch["index"], "errors": batch["errors"]}
        with torch.inference_mode():
            d = pair_distances(self.model, batch["images"], self.input_range)
        return {"index": batch["index"], "distances": d.tolist(), "errors": []}


def _set_threads(threads: int, worker_id: int) -> None:
    torch.set_num_threads(threads)  # after DataLoader's own set_num_threads(1) in each worker


def _as_is(item: dict) -> dict:
    return item


def distance_loader(
    dataset: Dataset,
    batches: Sequence[Sequence[int]],
    workers: int,
    threads_per_worker: int = 1,
    persistent: bool = False,
) -> DataLoader:
    """A DataLoader yielding :class:`BatchDistances` items for ``batches``, computed in ``workers`` processes.

    ``workers=0`` computes every batch in the calling process, on its own torch threads.
    ``batches`` is used as it is (not copied); ``persistent`` keeps the workers between passes.
    """
    return DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        worker_init_fn=functools.partial(_set_threads, threads_per_worker) if workers else None,
        persistent_workers=persistent and workers > 0,
    )
