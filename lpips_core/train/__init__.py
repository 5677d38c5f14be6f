"""The training layer: LPIPS calibrated on 2AFC judgments, resumable, with an exact fast path.

Modules, in the order a run uses them::

    config      TrainConfig: everything that defines a run
    losses      the ranking losses (the paper's G + BCE, the logistic form)
    recipe      model, optimiser, schedule, clamp, export of the linear weights
    sampling    the data order of each epoch (a pure function of seed and epoch)
    objective   one step's distances and loss (what DDP wraps)
    fastpath    the feature-cached lin-mode path
    checkpoint  writing, reading and choosing checkpoints to resume from
    callbacks   TensorBoard, history.csv, history.png
    trainer     the loop
    run         a run on a dataset folder (``lpips-core train``)
    distributed torchrun helpers
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

#: Public name -> the module that defines it; loaded on first use (see lpips_core._lazy).
_EXPORTS = {
    "CheckpointError": ".checkpoint",
    "read_checkpoint": ".checkpoint",
    "TrainConfig": ".config",
    "BCERankingLoss": ".losses",
    "Dist2LogitLayer": ".losses",
    "LogisticRankingLoss": ".losses",
    "RankingObjective": ".objective",
    "build_model": ".recipe",
    "build_optimizer": ".recipe",
    "build_rank_loss": ".recipe",
    "build_scheduler": ".recipe",
    "clamp_linear_weights": ".recipe",
    "export_linear_weights": ".recipe",
    "linear_decay_factor": ".recipe",
    "trainable_parameters": ".recipe",
    "compare_on": ".run",
    "open_split": ".run",
    "run_training": ".run",
    "epoch_order": ".sampling",
    "global_batches": ".sampling",
    "Trainer": ".trainer",
}

__all__ = [
    "CheckpointError",
    "read_checkpoint",
    "TrainConfig",
    "BCERankingLoss",
    "Dist2LogitLayer",
    "LogisticRankingLoss",
    "RankingObjective",
    "build_model",
    "build_optimizer",
    "build_rank_loss",
    "build_scheduler",
    "clamp_linear_weights",
    "export_linear_weights",
    "linear_decay_factor",
    "trainable_parameters",
    "compare_on",
    "open_split",
    "run_training",
    "epoch_order",
    "global_batches",
    "Trainer",
]

if TYPE_CHECKING:  # what static tools see
    from .checkpoint import CheckpointError, read_checkpoint
    from .config import TrainConfig
    from .losses import BCERankingLoss, Dist2LogitLayer, LogisticRankingLoss
    from .objective import RankingObjective
    from .recipe import (
        build_model,
        build_optimizer,
        build_rank_loss,
        build_scheduler,
        clamp_linear_weights,
        export_linear_weights,
        linear_decay_factor,
        trainable_parameters,
    )
    from .run import compare_on, open_split, run_training
    from .sampling import epoch_order, global_batches
    from .trainer import Trainer

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
