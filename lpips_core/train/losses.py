"""The 2AFC ranking losses: how a pair of distances becomes a probability that p1 is preferred.

Given distances ``d0 = d(ref, p0)`` and ``d1 = d(ref, p1)`` (each (N, 1, 1, 1),
>= 0) and ``h`` in [0, 1], the fraction of judges preferring p1, each loss
predicts ``P(p1 preferred)`` and scores it with binary cross-entropy against h:

* :class:`BCERankingLoss`, the paper's: a small network G on
  ``[d0, d1, d0 - d1, d0 / (d1 + eps), d1 / (d0 + eps)]`` (:class:`Dist2LogitLayer`);
* :class:`LogisticRankingLoss`, the simpler textbook form ``sigmoid(s (d0 - d1))``.

Both offer ``probability(d0, d1)``, ``per_item(d0, d1, h)`` -> (N,) and
``forward(d0, d1, h)`` -> the batch mean. Training picks one with
:func:`lpips_core.train.recipe.build_rank_loss`.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F


class Dist2LogitLayer(nn.Module):
    """The paper's ranking network G: two distances -> probability that p1 is preferred.

    Same layers and state-dict keys as the reference ``lpips.Dist2LogitLayer``:
    1x1 convolutions 5 -> 32 -> 32 -> 1 with LeakyReLU(0.2), then a sigmoid,
    on the features ``[d0, d1, d0 - d1, d0 / (d1 + eps), d1 / (d0 + eps)]``.

    Args:
        chn_mid: hidden width (32).
        use_sigmoid: end with a sigmoid (probabilities) rather than logits.
    """

    def __init__(self, chn_mid: int = 32, use_sigmoid: bool = True):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(5, chn_mid, 1, stride=1, padding=0, bias=True),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(chn_mid, chn_mid, 1, stride=1, padding=0, bias=True),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(chn_mid, 1, 1, stride=1, padding=0, bias=True),
        ]
        if use_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, d0: torch.Tensor, d1: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
        """(N, 1, 1, 1) distances -> (N, 1, 1, 1) probability that p1 is the closer patch."""
        x = torch.cat((d0, d1, d0 - d1, d0 / (d1 + eps), d1 / (d0 + eps)), dim=1)  # (N, 5, 1, 1)
        return cast(torch.Tensor, self.model(x))  # nn.Module.__call__ is typed as returning Any


class BCERankingLoss(nn.Module):
    """Binary cross-entropy between G(d0, d1) and h, the fraction of judges preferring p1.

    The reference's ``BCERankingLoss.forward(d0, d1, judge)`` expects
    ``judge`` in [-1, 1] and maps it back with ``(judge + 1) / 2``; its trainer
    passes ``2h - 1``, so the target is h either way. This class takes h in
    [0, 1] directly (the dataset's convention) and computes the same value:
    ``BCERankingLoss()(d0, d1, h) == lpips.BCERankingLoss()(d0, d1, 2h - 1)``
    for the same network weights (state dicts are interchangeable).
    """

    def __init__(self, chn_mid: int = 32):
        super().__init__()
        self.net = Dist2LogitLayer(chn_mid=chn_mid)

    def probability(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        """(N, 1, 1, 1) estimate of h."""
        return cast(torch.Tensor, self.net(d0, d1))  # nn.Module.__call__ is typed as returning Any

    def per_item(self, d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> torch.Tensor:
        """(N,) loss of each triplet (``nn.BCELoss`` semantics, log clamped at -100)."""
        p = self.probability(d0, d1)
        return F.binary_cross_entropy(p, judge.reshape(p.shape).to(p.dtype), reduction="none").view(-1)

    def forward(self, d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> torch.Tensor:
        """Mean loss over the batch. d0, d1: (N, 1, 1, 1); judge: N values of h in [0, 1]."""
        return self.per_item(d0, d1, judge).mean()


class LogisticRankingLoss(nn.Module):
    """The simpler form: P(p1 preferred) = sigmoid(s * (d0 - d1)), BCE against h.

    A Bradley-Terry / logistic choice model with one learned positive scale
    ``s`` (distances are small numbers, so a fixed ``s = 1`` would make every
    probability close to 0.5). No bias: swapping p0 and p1 swaps the answer.

    Args:
        scale: initial s.
        learn_scale: train s along with the linear weights.
    """

    def __init__(self, scale: float = 10.0, learn_scale: bool = True):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)), requires_grad=learn_scale)

    def logit(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * (d0 - d1)

    def probability(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(d0, d1))

    def per_item(self, d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> torch.Tensor:
        z = self.logit(d0, d1)
        return F.binary_cross_entropy_with_logits(z, judge.reshape(z.shape).to(z.dtype), reduction="none").view(-1)

    def forward(self, d0: torch.Tensor, d1: torch.Tensor, judge: torch.Tensor) -> torch.Tensor:
        return self.per_item(d0, d1, judge).mean()
