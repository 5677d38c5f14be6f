"""The data order of a training run: a pure function of (seed, epoch), so a checkpoint needs no sampler state."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, cast

import torch
from torch.utils.data import Dataset


def epoch_order(n: int, seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The data order and flip coins of one epoch: a pure function of (seed, epoch).

    Because of this, ``(epoch, step_in_epoch)`` is the whole sampler state a
    checkpoint needs: a resumed run recomputes the permutation and skips the
    batches already seen.

    Returns:
        (perm, flips): (n,) permutation of range(n) and (n,) bool, indexed by item.
    """
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) + 1)
    perm = torch.randperm(n, generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    return perm, flips


def global_batches(perm: torch.Tensor, batch_size: int, world: int = 1) -> list[torch.Tensor]:
    """Split an epoch's permutation into global batches; under DDP drop a last batch
    smaller than the number of ranks (some rank would get nothing)."""
    batches = list(torch.split(perm, batch_size))
    if world > 1 and batches and len(batches[-1]) < world:
        batches = batches[:-1]
    return batches


class Indexed(Dataset[dict[str, Any]]):
    """Wrap a dataset so each item also carries its index (for flips and ordering)."""

    def __init__(self, dataset: Dataset[dict[str, Any]]):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))  # torch's Dataset declares no __len__; map-style ones have it

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.dataset[i])
        item["index"] = i
        return item
