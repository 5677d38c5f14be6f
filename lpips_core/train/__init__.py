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
from .checkpoint import CheckpointError, read_checkpoint
from .config import TrainConfig, config_fields
from .losses import BCERankingLoss, Dist2LogitLayer, LogisticRankingLoss
from .objective import RankingObjective
from .recipe import (build_model, build_optimizer, build_rank_loss, build_scheduler, clamp_linear_weights,
                     export_linear_weights, linear_decay_factor, trainable_parameters)
from .run import compare_on, open_split, run_training
from .sampling import epoch_order, global_batches
from .trainer import Trainer

__all__ = ["CheckpointError", "read_checkpoint", "TrainConfig", "config_fields", "BCERankingLoss",
           "Dist2LogitLayer", "LogisticRankingLoss", "RankingObjective", "build_model", "build_optimizer",
           "build_rank_loss", "build_scheduler", "clamp_linear_weights", "export_linear_weights",
           "linear_decay_factor", "trainable_parameters", "compare_on", "open_split", "run_training",
           "epoch_order", "global_batches", "Trainer"]
