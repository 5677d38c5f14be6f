"""The paper's training recipe: the model to train, the ranking loss, optimiser, schedule, clamp, export.

Defaults follow the reference trainer (``lpips/trainer.py``): linear layers from
PyTorch's default 1x1-conv initialisation, Adam with beta1 0.5, a constant rate
then a linear decay, and the linear weights clamped to >= 0 after every step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
import torch.nn as nn
from safetensors.torch import save_file

from ..files import atomic_path, save_torch
from ..model import LPIPS
from ..model.weights import linear_weights_path
from .config import TrainConfig
from .losses import BCERankingLoss, LogisticRankingLoss

if TYPE_CHECKING:
    from ..model.lpips import NetLinLayer


def build_rank_loss(config: TrainConfig) -> BCERankingLoss | LogisticRankingLoss:
    """The paper's ranking network G + BCE (``loss='ranking'``) or the logistic form."""
    return BCERankingLoss() if config.loss == "ranking" else LogisticRankingLoss()


def build_model(config: TrainConfig) -> LPIPS:
    """The LPIPS model to train, its linear layers initialised as ``config.init`` says.

    ``init='reference'`` keeps PyTorch's default 1x1-conv initialisation, which
    is what the reference trainer starts from (``lpips.LPIPS(pretrained=False)``;
    some weights are negative until the first clamp).
    """
    model = LPIPS(
        pretrained=False,
        net=config.net,
        version=config.version,
        lpips=True,
        pnet_rand=config.mode == "scratch",
        pnet_tune=config.mode != "lin",
        use_dropout=config.use_dropout,
        eval_mode=False,
    )
    if config.init == "ones":
        with torch.no_grad():
            for lin in cast("Iterable[NetLinLayer]", model.lins):  # an nn.ModuleList of NetLinLayer
                lin.conv.weight.fill_(1.0)
    elif config.init in ("v0.1", "v0.0"):
        model.load_linear_weights(linear_weights_path(model.pnet_type, config.init[1:]))
    elif config.init != "reference":
        model.load_linear_weights(config.init)
    return model


def trainable_parameters(model: LPIPS, rank_loss: nn.Module) -> list[nn.Parameter]:
    """Linear weights, ranking-network weights and (tune/scratch) trunk weights, in a fixed order."""
    params = list(model.lins.parameters()) + list(rank_loss.parameters())
    if model.pnet_tune:
        params += list(model.net.parameters())
    return [p for p in params if p.requires_grad]


def build_optimizer(config: TrainConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam / AdamW (betas ``(beta1, 0.999)``) or SGD with momentum, as ``config.optimizer`` says."""
    params = list(params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, 0.999), weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=(config.beta1, 0.999), weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def linear_decay_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """LR factor in (0-based) ``epoch`` of the reference schedule.

    The reference runs ``nepoch = epochs - decay_epochs`` epochs at the base
    rate and, after each epoch ``E`` (1-based) with ``E > nepoch``, lowers the
    rate by ``lr / decay_epochs``. So epoch index ``e`` trains at
    ``1 - max(0, e - nepoch) / decay_epochs``: for 5 + 5 that is
    1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2 (and 0 after the last epoch).
    """
    if decay_epochs <= 0:
        return 1.0
    return 1.0 - max(0, epoch - (epochs - decay_epochs)) / decay_epochs


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch LR schedule (stepped once at the end of every epoch)."""
    if config.schedule == "linear":
        e, d = config.epochs, cast(int, config.decay_epochs)  # TrainConfig.__post_init__ replaced None
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: linear_decay_factor(k, e, d))
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.gamma, patience=config.plateau_patience
    )


@torch.no_grad()
def clamp_linear_weights(model: LPIPS) -> None:
    """Clamp the LPIPS linear weights to >= 0 (after every step, as the reference).

    The reference clamps every module with a 1x1 kernel inside the LPIPS
    network, which also catches SqueezeNet's own 1x1 "squeeze"/"expand"
    convolutions when the trunk is tuned; only the linear layers are meant.
    """
    for lin in cast("Iterable[NetLinLayer]", model.lins):  # an nn.ModuleList of NetLinLayer
        lin.conv.weight.clamp_(min=0)


def export_linear_weights(model: LPIPS, path: str | os.PathLike[str]) -> Path:
    """Write the linear weights in the reference format (``lin<k>.model.1.weight``).

    ``.pth``/``.pt``: ``torch.save`` of the state dict, loadable by
    ``lpips.LPIPS(model_path=...)`` and ``lpips_core.LPIPS(model_path=...)``;
    ``.safetensors``: the same tensors in safetensors format (lpips_core only).
    Written atomically.
    """
    path = Path(path)
    state = {k: v.contiguous().cpu() for k, v in model.linear_state_dict().items()}
    if path.suffix == ".safetensors":
        with atomic_path(path) as tmp:
            save_file(state, tmp)
    elif path.suffix in (".pth", ".pt"):
        save_torch(state, path)
    else:
        raise ValueError(f"{path}: use a .pth (reference format) or .safetensors file name")
    return path
