"""What one training step minimises: LPIPS distances of a triplet, then the ranking loss against h."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ..model import LPIPS
from ..model.reuse import triplet_features
from . import fastpath

if TYPE_CHECKING:
    from .losses import BCERankingLoss, LogisticRankingLoss


class RankingObjective(nn.Module):
    """LPIPS + ranking loss as one module (what DistributedDataParallel wraps).

    ``forward(batch)`` takes either images (``ref``, ``p0``, ``p1``: (B, 3, H, W) in [-1, 1])
    or cached means (``m0``, ``m1``: (B, sum C)) plus ``judge`` ((B,) or (B, 1) in [0, 1])
    and returns the *sum* of per-triplet losses and the two (B, 1, 1, 1) distances
    (detached). The caller divides by the global batch size, so a batch split over
    ranks gives exactly the gradient of the single-process mean.
    """

    def __init__(self, model: LPIPS, rank_loss: BCERankingLoss | LogisticRankingLoss):
        super().__init__()
        self.model = model
        self.rank_loss = rank_loss

    def distances(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(d0, d1), each (B, 1, 1, 1), from images or from cached means."""
        if "m0" in batch:  # fast path: (B, sum C) means -> (B, 1, 1, 1)
            return (
                fastpath.cached_distance(self.model, batch["m0"]),
                fastpath.cached_distance(self.model, batch["m1"]),
            )
        # One trunk call for the 3 images of each triplet. With a frozen trunk nothing
        # here requires grad, so no graph is kept for it.
        f_ref, f0, f1 = triplet_features(self.model, batch["ref"], batch["p0"], batch["p1"])
        return self.model.distance_from_features(f_ref, f0), self.model.distance_from_features(f_ref, f1)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d0, d1 = self.distances(batch)
        losses = self.rank_loss.per_item(d0, d1, batch["judge"])  # (B,)
        return losses.sum(), d0.detach(), d1.detach()
