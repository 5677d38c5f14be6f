"""Training LPIPS on 2AFC judgments: the paper's recipe, resumable, with an exact fast path.

The pieces, in the order data flows through them::

    triplet (ref, p0, p1, h)              h = fraction of judges preferring p1, in [0, 1]
    -> d0 = LPIPS(ref, p0), d1 = LPIPS(ref, p1)          (N, 1, 1, 1)
    -> ranking network G(d0, d1) in (0, 1)               estimate of h
    -> binary cross-entropy against h                    the loss
    -> Adam step, then linear weights clamped to >= 0

Modes (as in the paper): ``lin`` (ImageNet trunk frozen, learn the linear
weights), ``tune`` (trunk trained too), ``scratch`` (random trunk, trained).
In ``lin`` mode ``fast=True`` trains on cached per-channel feature means
(:mod:`.fastpath`), exactly equivalent without dropout. The recipe's pieces are in
:mod:`.recipe`, checkpoints in :mod:`.checkpoint`, a run on a folder in :mod:`.run`.

Example:
    >>> from lpips_core.train import TrainConfig, Trainer
    >>> trainer = Trainer(TrainConfig(net="alex", mode="lin", epochs=10), train_set, val_set,
    ...                   out_dir="runs/alex_lin")                        # doctest: +SKIP
    >>> history = trainer.fit()                                          # doctest: +SKIP
    >>> trainer.export("runs/alex_lin/alex.pth")                         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import score_2afc, twoafc_scores
from ..eval import LPIPSDistance, collect_2afc
from ..progress import progress_bar
from . import distributed as ddp
from . import fastpath
from .callbacks import EpochCheckpoints, HistoryCSV, HistoryPlot, StepCheckpoints, TensorBoardLog, TrainerView
from .checkpoint import (
    CHECKPOINT_FORMAT,
    RESUME_MUST_MATCH,
    TrainState,
    read_checkpoint,
    resume_source,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from .config import TrainConfig
from .objective import RankingObjective
from .recipe import (
    build_model,
    build_optimizer,
    build_rank_loss,
    build_scheduler,
    clamp_linear_weights,
    export_linear_weights,
    trainable_parameters,
)
from .sampling import Indexed, epoch_order, global_batches

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from ..model.lpips import NetLinLayer


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily use ``n`` intra-op threads (None: leave as is).

    The fast path's epochs work on (batch, ~1000) matrices: a step takes a few
    milliseconds on one thread, while OpenMP synchronisation on shared or busy
    cores can make the same step a hundred times slower with two threads.
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Trainer:
    """Train an LPIPS model on a 2AFC dataset: a loop of steps, epochs, validation and checkpoints.

    Args:
        config: a :class:`~.config.TrainConfig`.
        train_set: 2AFC items ``{'ref','p0','p1': (3,H,W) in [-1,1], 'judge': (1,) in [0,1], ...}``.
        val_set: same format; needed for validation scores, ``best``, early
            stopping and the plateau schedule.
        out_dir: where ``latest.pt``, ``best.pt``, ``history.csv``,
            ``history.png`` and ``tensorboard/`` go (None: keep nothing on disk).
        callbacks: objects with optional ``on_step_end(trainer)``,
            ``on_epoch_end(trainer, row)`` and ``on_fit_end(trainer)`` methods
            (:mod:`.callbacks`), called after the built-in ones.

    The loop only trains, validates and keeps ``state``; what a run records is done
    by callbacks (:mod:`.callbacks`): checkpoints (``latest`` at every epoch's end and
    every ``checkpoint_every`` steps, ``best`` at every improvement; written and read
    by :mod:`.checkpoint`, so ``fit(resume=True)`` continues exactly), TensorBoard,
    ``history.csv`` and ``history.png``.

    Under ``torchrun`` (process group initialised, see :mod:`.distributed`) every rank
    must build the same Trainer; the global batch is split across ranks, gradients are
    averaged by DistributedDataParallel, validation distances are gathered, and only
    rank 0 writes files.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_set: Dataset[dict[str, Any]],
        val_set: Dataset[dict[str, Any]] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Any] = (),
    ):
        config.validate()
        needs_val = [
            n
            for n, on in (
                ("patience", config.patience is not None),
                ("schedule='plateau'", config.schedule == "plateau"),
            )
            if on
        ]
        if needs_val and val_set is None:
            raise ValueError(f"{', '.join(needs_val)} needs a validation set (val_set=...)")
        if len(cast(Sized, train_set)) == 0:  # torch's Dataset declares no __len__
            raise ValueError("the training set is empty")
        self.config = config
        self.train_set, self.val_set = train_set, val_set
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.rank, self.world = ddp.rank(), ddp.world_size()
        self.device = ddp.local_device(config.device)
        writes = self.rank == 0
        self._tensorboard = TensorBoardLog(self.out_dir, config.log_every, enabled=writes)
        self.callbacks = [
            EpochCheckpoints(),
            self._tensorboard,
            HistoryCSV(self.out_dir, writes),
            HistoryPlot(self.out_dir, writes),
            *callbacks,
            StepCheckpoints(config.checkpoint_every),
        ]

        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        self.model = build_model(config).to(self.device)
        self.rank_loss = build_rank_loss(config).to(self.device)
        # Dropout stream: own seed, distinct per rank (the model init above is shared).
        torch.manual_seed(config.seed * 1000 + 1 + self.rank)

        self.objective = RankingObjective(self.model, self.rank_loss)
        self._step_module: nn.Module = self.objective
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._step_module = DistributedDataParallel(self.objective, device_ids=ids)
        self.params = trainable_parameters(self.model, self.rank_loss)
        self.optimizer = build_optimizer(config, self.params)
        self.scheduler = build_scheduler(config, self.optimizer)
        self.state: TrainState = {
            "epoch": 0,
            "step_in_epoch": 0,
            "global_step": 0,
            "best_score": None,
            "best_epoch": None,
            "epochs_since_best": 0,
            "stopped_early": False,
            "seconds": 0.0,
        }
        self._sums = self._fresh_sums()
        self.history: list[dict[str, Any]] = []
        self.last_step: tuple[float, int] = (0.0, 0)  # (loss sum, triplets) of the latest step
        self.epoch_steps = 0  # this rank's steps in the current epoch
        self.train_cache: fastpath.FeatureCache | None = None
        self.val_cache: fastpath.FeatureCache | None = None
        self._clock: float | None = None  # start of the training time not yet in state['seconds']

    @staticmethod
    def _fresh_sums() -> dict[str, float]:
        return {"loss": 0.0, "agree": 0.0, "items": 0.0}

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def _writer(self) -> SummaryWriter | None:
        """The TensorBoard writer (None until the first step, or without out_dir)."""
        return self._tensorboard.writer or None

    def _callback(self, event: str, *args: object) -> None:
        view: TrainerView = self  # what callbacks may read; mypy checks that the Trainer provides it
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(view, *args)

    def _take_time(self) -> None:
        """Add the training time since the clock last started to ``state['seconds']`` (validation not counted)."""
        if self._clock is not None:
            now = time.perf_counter()
            self.state["seconds"] += now - self._clock
            self._clock = now

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs (or until early stopping).

        Args:
            resume: continue from the newest usable checkpoint in ``out_dir``
                (``latest.pt``, else ``latest.prev.pt`` or ``best.pt`` when it is
                damaged) if there is one (data order, dropout draws, optimiser and
                schedule included, so the result equals an uninterrupted run).
        Returns:
            the history: one dict per epoch (epoch, global_step, train_loss,
            train_2afc, val_2afc, lr, seconds).
        """
        cfg = self.config
        self._sums = self._fresh_sums()
        if resume:
            if self.out_dir is None:
                raise ValueError("resume=True needs out_dir (where latest.pt is)")
            if self.rank == 0:  # temporary files of writes a crash interrupted
                for stale in self.out_dir.glob(".*.pt.*.tmp"):
                    stale.unlink(missing_ok=True)
            source = resume_source(self.out_dir) if self.out_dir.is_dir() else None
            if source is not None:
                self.load_checkpoint(source)
            elif self.rank == 0:
                print(f"no checkpoint in {self.out_dir}; starting a new run", flush=True)
        if cfg.fast:
            self._caches()
        while self.state["epoch"] < cfg.epochs and not self.state["stopped_early"]:
            epoch, lr_used = self.state["epoch"], self.lr
            with _torch_threads(1 if cfg.fast and self.device.type == "cpu" else None):
                self._train_epoch(epoch)
            self._end_epoch(epoch, lr_used)
        self._callback("on_fit_end")
        return self.history

    def _train_epoch(self, epoch: int) -> None:
        """Run the remaining steps of ``epoch`` (from ``state['step_in_epoch']`` on)."""
        cfg = self.config
        self._clock = time.perf_counter()
        local, n_global, flips = self._epoch_plan(epoch)
        self.epoch_steps = len(local)
        start = self.state["step_in_epoch"]
        images = None if cfg.fast else self._image_batches(local[start:])
        bar = progress_bar(
            total=len(local),
            initial=start,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="step",
            enabled=cfg.progress and self.rank == 0,
        )
        for s in range(start, len(local)):
            batch = (
                self._cached_batch(local[s], flips)
                if cfg.fast  # images is None only when cfg.fast
                else self._to_device_images(next(cast("Iterator[dict[str, Any]]", images)), flips)
            )
            loss_sum, agree, n = self._step(batch, n_global[s])
            self._sums["loss"] += loss_sum
            self._sums["agree"] += agree
            self._sums["items"] += n
            self.state["step_in_epoch"] = s + 1
            self.state["global_step"] += 1
            self.last_step = (loss_sum, n)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / max(n, 1):.4f}")
            self._callback("on_step_end")
        bar.close()
        self._take_time()
        self._clock = None

    def _step(self, batch: dict[str, torch.Tensor], n_global: int) -> tuple[float, float, int]:
        """One optimiser step on this rank's share of a global batch; returns (loss sum, agreement sum, triplets)."""
        if not (self.model.training and self.rank_loss.training):  # cheap check; .train() walks all modules
            self.model.train()
            self.rank_loss.train()
        loss_sum, d0, d1 = self._step_module(batch)
        # DDP averages gradients over ranks: scale so the result is the global-batch mean.
        loss = loss_sum * (self.world / n_global)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        clamp_linear_weights(self.model)
        agree = float(twoafc_scores(d0, d1, batch["judge"]).sum())
        return float(loss_sum.detach()), agree, int(d0.shape[0])

    def _end_epoch(self, epoch: int, lr_used: float) -> None:
        """Validate, step the schedule, append the history row, decide early stopping."""
        cfg = self.config
        loss, agree, items = ddp.all_reduce_sum(
            [self._sums["loss"], self._sums["agree"], self._sums["items"]], self.device
        )
        last = epoch + 1 == cfg.epochs
        val: float | None = None
        if self.val_set is not None and ((epoch + 1) % cfg.val_every == 0 or last or cfg.patience):
            val = self.evaluate()["score"]
        if cfg.schedule == "plateau":
            if val is not None:
                cast(torch.optim.lr_scheduler.ReduceLROnPlateau, self.scheduler).step(val)  # schedule='plateau'
        else:
            self.scheduler.step()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "global_step": self.state["global_step"],
            "train_loss": loss / max(items, 1),
            "train_2afc": agree / max(items, 1),
            "val_2afc": val,
            "lr": lr_used,
            "seconds": round(self.state["seconds"], 3),
        }
        self.history.append(row)
        improved = val is not None and (self.state["best_score"] is None or val > self.state["best_score"])
        if improved:
            self.state.update({"best_score": val, "best_epoch": epoch + 1, "epochs_since_best": 0})
        elif val is not None:
            self.state["epochs_since_best"] += 1
            if cfg.patience is not None and self.state["epochs_since_best"] >= cfg.patience:
                self.state["stopped_early"] = True
        self.state["epoch"] = epoch + 1
        self.state["step_in_epoch"] = 0
        self._sums = self._fresh_sums()
        self._callback("on_epoch_end", row)

    # ------------------------------------------------------------------ data
    def _caches(self) -> None:
        """Build or load the fast-path caches (train with flips if asked; val without)."""
        cfg = self.config
        if self.train_cache is None:
            self.train_cache = fastpath.load_or_build(
                self.model,
                self.train_set,
                cfg.cache_dir,
                flip=cfg.flip,
                batch_size=cfg.eval_batch_size,
                num_workers=cfg.num_workers,
                progress=cfg.progress,
            ).to(self.device)
        if self.val_set is not None and self.val_cache is None:
            self.val_cache = fastpath.load_or_build(
                self.model,
                self.val_set,
                cfg.cache_dir,
                flip=False,
                batch_size=cfg.eval_batch_size,
                num_workers=cfg.num_workers,
                progress=cfg.progress,
            ).to(self.device)

    def _epoch_plan(self, epoch: int) -> tuple[list[torch.Tensor], list[int], torch.Tensor]:
        """This rank's index batches for ``epoch``, the global batch sizes, and the flip coins."""
        perm, flips = epoch_order(len(cast(Sized, self.train_set)), self.config.seed, epoch)
        batches = global_batches(perm, self.config.batch_size, self.world)
        local = [b[self.rank :: self.world] for b in batches]
        return local, [len(b) for b in batches], flips

    def _image_batches(self, local: list[torch.Tensor]) -> Iterator[dict[str, Any]]:
        loader = DataLoader(
            Indexed(self.train_set),
            batch_sampler=[b.tolist() for b in local],
            num_workers=self.config.num_workers,
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        return iter(loader)

    def _to_device_images(self, batch: dict[str, Any], flips: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {k: batch[k].to(self.device) for k in ("ref", "p0", "p1", "judge")}
        if self.config.flip:
            f = flips[batch["index"]].to(self.device).view(-1, 1, 1, 1)
            for k in ("ref", "p0", "p1"):
                out[k] = torch.where(f, torch.flip(out[k], dims=[-1]), out[k])
        return out

    def _cached_batch(self, idx: torch.Tensor, flips: torch.Tensor) -> dict[str, torch.Tensor]:
        cache = cast(fastpath.FeatureCache, self.train_cache)  # fit() built it (_caches) before a fast run's steps
        m0, m1, judge = cache.select(idx.to(self.device), flips[idx].to(self.device) if self.config.flip else None)
        return {"m0": m0, "m1": m1, "judge": judge}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, dataset: Dataset[dict[str, Any]] | None = None) -> dict[str, Any]:
        """2AFC agreement of the current model on ``dataset`` (default: the validation set).

        Returns:
            {'score': float in [0, 1], 'd0', 'd1', 'judge': (N,) float32 numpy arrays in dataset order}.
        """
        self.model.eval()
        if dataset is None or dataset is self.val_set:
            if self.val_set is None:
                raise ValueError("no dataset given and the trainer has no validation set")
            dataset = self.val_set
            if self.config.fast:
                self._caches()
                c = self.val_cache
                assert c is not None  # _caches() just built it: val_set is not None
                d0 = fastpath.cached_distance(self.model, c.m0).view(-1).cpu().numpy()
                d1 = fastpath.cached_distance(self.model, c.m1).view(-1).cpu().numpy()
                judge = c.judge.cpu().numpy()
                return {"score": score_2afc(d0, d1, judge), "d0": d0, "d1": d1, "judge": judge}
        mine = list(range(self.rank, len(cast(Sized, dataset)), self.world))
        local = (mine, *(np.zeros(0, np.float32) for _ in range(3)))
        if mine:
            fn = LPIPSDistance(self.model, name="model", device=self.device, freeze=False)
            res = collect_2afc(
                {"model": fn},
                Subset(dataset, mine),
                batch_size=self.config.eval_batch_size,
                num_workers=self.config.num_workers,
                device=self.device,
                progress=False,
            )
            local = (mine, res.d0["model"], res.d1["model"], res.judge)
        parts = ddp.all_gather_object(local)
        order = np.argsort(np.array([i for p in parts for i in p[0]]), kind="stable")
        d0, d1, judge = (np.concatenate([p[j] for p in parts]).astype(np.float32)[order] for j in (1, 2, 3))
        return {"score": score_2afc(d0, d1, judge), "d0": d0, "d1": d1, "judge": judge}

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (collective under DDP: every rank must call)."""
        rank_states = ddp.all_gather_object({"rng": rng_state(), "sums": dict(self._sums)})
        if self.model.pnet_tune:
            weights = self.model.state_dict()
        else:  # frozen trunk: it is fully determined by the config
            weights = self.model.linear_state_dict()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "model": weights,
            "rank_loss": self.rank_loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": dict(self.state),
            "history": list(self.history),
            "world_size": self.world,
            "ranks": rank_states,
        }

    def save_checkpoint(self, name: str = "latest") -> Path | None:
        """Write ``<out_dir>/<name>.pt`` (rank 0 only; collective under DDP; see :func:`.checkpoint.write_checkpoint`).

        ``latest`` keeps the checkpoint it replaces as ``latest.prev.pt``. A failed
        write (full disk, ...) raises OSError and leaves the previous checkpoint untouched.
        """
        self._take_time()
        payload = self.checkpoint_state()
        path = None
        if self.out_dir is not None and self.rank == 0:
            path = self.out_dir / f"{name}.pt"
            write_checkpoint(payload, path, self.out_dir / f"{name}.prev.pt" if name == "latest" else None)
        ddp.barrier()
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (``weights_only`` load).

        Raises:
            CheckpointError: the file is truncated, damaged or not a checkpoint.
            ValueError: it comes from a run with another configuration (the field is named).
        """
        path = Path(path)
        ckpt = read_checkpoint(path)
        saved = ckpt["config"]
        for name in RESUME_MUST_MATCH:
            if saved.get(name) != getattr(self.config, name):
                raise ValueError(
                    f"{path} was trained with {name}={saved.get(name)!r} but this run has "
                    f"{name}={getattr(self.config, name)!r}; use the same value or a new --out"
                )
        self._load_weights(ckpt)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = cast(TrainState, dict(ckpt["state"]))  # written from a TrainState by checkpoint_state
        self.history = list(ckpt["history"])
        ranks = ckpt["ranks"]
        if len(ranks) == self.world:
            set_rng_state(ranks[self.rank]["rng"])
            self._sums = dict(ranks[self.rank]["sums"])
        else:
            warnings.warn(
                f"{path} was written by {len(ranks)} process(es), this run has {self.world}: "
                f"data order is kept but dropout draws will differ",
                stacklevel=2,
            )
            self._sums = {k: sum(r["sums"][k] for r in ranks) / self.world for k in ranks[0]["sums"]}

    def _load_weights(self, ckpt: dict[str, Any]) -> None:
        """Model weights (all of them when the trunk is tuned, else the linear layers) and G's."""
        if self.model.pnet_tune:
            self.model.load_state_dict(ckpt["model"])
        else:
            with torch.no_grad():
                for k, lin in enumerate(cast("Iterable[NetLinLayer]", self.model.lins)):  # a ModuleList
                    lin.conv.weight.copy_(ckpt["model"][f"lin{k}.model.1.weight"])
        self.rank_loss.load_state_dict(ckpt["rank_loss"])

    def load_best(self) -> None:
        """Load the linear (and, when tuned, trunk) weights of ``best.pt`` into the model."""
        self._load_weights(read_checkpoint(cast(Path, self.out_dir) / "best.pt"))  # needs out_dir, as before

    # ------------------------------------------------------------------ results
    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the current linear weights (``.pth`` reference format or ``.safetensors``)."""
        return export_linear_weights(self.model, path)
