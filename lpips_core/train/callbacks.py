"""What a training run records: checkpoints, TensorBoard scalars, history.csv, history.png.

A callback is any object with some of these methods, called by :class:`~.trainer.Trainer`
in list order::

    on_step_end(trainer)          after each optimiser step (``trainer.last_step`` holds its numbers)
    on_epoch_end(trainer, row)    after an epoch's row is in ``trainer.history``
    on_fit_end(trainer)           when ``fit`` returns

The trainer's list is ``[EpochCheckpoints, TensorBoardLog, HistoryCSV, HistoryPlot,
*yours, StepCheckpoints]``: a caller's ``on_epoch_end`` sees the epoch's checkpoints
written, and a step checkpoint is written after a caller's ``on_step_end`` (so a run
stopped there resumes at that step). Only rank 0 writes, and nothing is written
without ``out_dir``; the checkpoint callbacks run on every rank because saving is
collective under DDP.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..files import write_dict_csv
from .checkpoint import TrainState

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class TrainerView(Protocol):
    """What a callback reads of the :class:`~.trainer.Trainer` it is called by.

    A Protocol, so that this module sits below ``trainer.py`` (which builds the callbacks).
    """

    state: TrainState  # where the loop is (global_step, step_in_epoch, best_epoch, ...)
    history: list[dict[str, Any]]  # one row per finished epoch
    last_step: tuple[float, int]  # (loss sum, triplets) of the latest optimiser step
    epoch_steps: int  # this rank's steps in the current epoch

    def save_checkpoint(self, name: str = "latest") -> Path | None: ...


class EpochCheckpoints:
    """``latest.pt`` at every epoch's end, and ``best.pt`` when validation improved in it."""

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        trainer.save_checkpoint("latest")
        if trainer.state["best_epoch"] == row["epoch"]:
            trainer.save_checkpoint("best")


class StepCheckpoints:
    """``latest.pt`` every ``every`` optimiser steps inside an epoch (0: never; the epoch's end writes its own)."""

    def __init__(self, every: int):
        self.every = every

    def on_step_end(self, trainer: TrainerView) -> None:
        state = trainer.state
        if self.every and state["global_step"] % self.every == 0 and state["step_in_epoch"] < trainer.epoch_steps:
            trainer.save_checkpoint("latest")


class TensorBoardLog:
    """``train/loss`` every ``log_every`` steps and the epoch's scalars into ``<out_dir>/tensorboard``.

    The writer opens at the first step (purging events of a crashed run from that step on).
    """

    def __init__(self, out_dir: Path | None, log_every: int, enabled: bool = True):
        self.out_dir, self.log_every = out_dir, log_every
        self.writer: SummaryWriter | Literal[False] | None = None if (enabled and out_dir is not None) else False

    def _open(self, global_step: int) -> SummaryWriter | None:
        if self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is a training requirement
                warnings.warn("tensorboard is not installed; TensorBoard logs are skipped", stacklevel=3)
                self.writer = False
                return None
            assert self.out_dir is not None  # the writer starts as None only with an out_dir
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=global_step + 1)
        return self.writer or None

    def on_step_end(self, trainer: TrainerView) -> None:
        writer = self._open(trainer.state["global_step"])
        loss_sum, n = trainer.last_step
        if writer is not None and trainer.state["global_step"] % self.log_every == 0:
            writer.add_scalar("train/loss", loss_sum / max(n, 1), trainer.state["global_step"])

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        writer = self._open(trainer.state["global_step"])
        if writer is None:
            return
        step = trainer.state["global_step"]
        writer.add_scalar("epoch/train_loss", row["train_loss"], step)
        writer.add_scalar("epoch/train_2afc", row["train_2afc"], step)
        writer.add_scalar("epoch/lr", row["lr"], step)
        if row["val_2afc"] is not None:
            writer.add_scalar("epoch/val_2afc", row["val_2afc"], step)
        writer.flush()

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self.writer:
            self.writer.flush()


class HistoryCSV:
    """``<out_dir>/history.csv``: one row per epoch, rewritten (atomically) after every epoch."""

    def __init__(self, out_dir: Path | None, enabled: bool = True):
        self.path = out_dir / "history.csv" if (enabled and out_dir is not None) else None

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        if self.path is not None:
            write_dict_csv(self.path, trainer.history)


class HistoryPlot:
    """``<out_dir>/history.png``: loss, 2AFC agreement and learning rate per epoch, when the run ends."""

    def __init__(self, out_dir: Path | None, enabled: bool = True):
        self.path = out_dir / "history.png" if (enabled and out_dir is not None) else None

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self.path is not None and trainer.history:
            # imported here: matplotlib and scipy add about 1 s to the start of every training process
            from ..eval.plots import plot_training_history

            plot_training_history(trainer.history, self.path)
