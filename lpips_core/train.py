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
(:mod:`lpips_core.fastpath`), exactly equivalent without dropout.

Example:
    >>> from lpips_core.train import TrainConfig, Trainer
    >>> trainer = Trainer(TrainConfig(net="alex", mode="lin", epochs=10), train_set, val_set,
    ...                   out_dir="runs/alex_lin")                        # doctest: +SKIP
    >>> history = trainer.fit()                                          # doctest: +SKIP
    >>> trainer.export("runs/alex_lin/alex.pth")                         # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from . import distributed as ddp
from . import fastpath
from .atomic import atomic_path, atomic_write_text
from .losses import BCERankingLoss, Dist2LogitLayer, LogisticRankingLoss  # noqa: F401 (public here too)
from .metrics import score_2afc, twoafc_scores
from .model import LPIPS
from .weights import linear_weights_path

CHECKPOINT_FORMAT = "lpips_core.train/1"
MODES = ("lin", "tune", "scratch")
LOSSES = ("ranking", "logistic")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("linear", "constant", "cosine", "step", "plateau")


# =========================================================================== config
@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every checkpoint.

    Defaults follow the reference recipe (``lpips/trainer.py`` and ``train.py``
    of the official repository): Adam, lr 1e-4, beta1 0.5, batch 50, 10
    epochs of which the last 5 decay linearly, dropout before the linear layers.
    """

    net: str = "alex"               # trunk: alex | vgg | squeeze
    version: str = "0.1"            # 0.1 scales inputs to ImageNet statistics; 0.0 does not
    mode: str = "lin"               # lin (frozen trunk) | tune (trunk trained) | scratch (random trunk)
    init: str = "reference"         # linear-layer start: reference (random conv init, as
                                    # lpips.LPIPS(pretrained=False)) | ones ("net" baseline) | v0.1 | v0.0 | a .pth path
    loss: str = "ranking"           # ranking (the paper's G network + BCE) | logistic (BCE of sigmoid(s*(d0-d1)))
    use_dropout: bool = True        # dropout before each linear layer, as the reference trains
    optimizer: str = "adam"         # adam | adamw | sgd
    lr: float = 1e-4
    beta1: float = 0.5              # Adam/AdamW first-moment decay (reference: 0.5)
    weight_decay: float = 0.0
    momentum: float = 0.9           # SGD only
    batch_size: int = 50            # global batch (split across ranks under torchrun)
    epochs: int = 10                # total epochs
    decay_epochs: int | None = None  # linear schedule: epochs of decay at the end (None: epochs // 2)
    schedule: str = "linear"        # linear (reference) | constant | cosine | step | plateau
    step_size: int = 3              # step schedule: epochs between decays
    gamma: float = 0.5              # step/plateau: lr factor
    plateau_patience: int = 1       # plateau: epochs without val improvement before a decay
    grad_clip: float | None = None  # max global gradient norm (None: no clipping)
    patience: int | None = None     # early stopping: epochs without val 2AFC improvement (None: off)
    seed: int = 0                   # initialisation, data order, flips and dropout
    flip: bool = False              # random horizontal flip of whole triplets (reference: off)
    fast: bool = False              # lin mode only: train on cached feature means (fastpath)
    checkpoint_every: int = 0       # also write `latest` every N steps inside an epoch (0: epoch ends only)
    val_every: int = 1              # validate every N epochs (and after the last)
    num_workers: int = 0            # DataLoader workers for the image path
    eval_batch_size: int = 64
    log_every: int = 10             # steps between TensorBoard loss points
    device: str = "cpu"
    cache_dir: str | None = None    # fast-path feature cache (None: ~/.cache/lpips_core/features)
    progress: bool = True           # tqdm bars

    def __post_init__(self):
        self.version = str(self.version).lstrip("v")
        if self.decay_epochs is None:
            self.decay_epochs = self.epochs // 2
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and its allowed values."""
        def bad(name, allowed):
            raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is not valid; {allowed}")
        from .backbones import canonical_net
        canonical_net(self.net)
        if self.version not in ("0.1", "0.0"):
            bad("version", "choose '0.1' or '0.0'")
        for name, allowed in (("mode", MODES), ("loss", LOSSES), ("optimizer", OPTIMIZERS),
                              ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                bad(name, f"choose one of {', '.join(allowed)}")
        for name in ("batch_size", "epochs", "val_every", "eval_batch_size", "log_every", "step_size"):
            if int(getattr(self, name)) < 1:
                bad(name, "it must be >= 1")
        if not 0 <= self.decay_epochs <= self.epochs:
            bad("decay_epochs", f"it must be between 0 and epochs={self.epochs}")
        if self.lr < 0:
            bad("lr", "it must be >= 0")
        if self.checkpoint_every < 0:
            bad("checkpoint_every", "use 0 (epoch ends only) or a positive number of steps")
        if self.patience is not None and self.patience < 1:
            bad("patience", "use None (no early stopping) or a positive number of epochs")
        if self.grad_clip is not None and self.grad_clip <= 0:
            bad("grad_clip", "use None (no clipping) or a positive norm")
        if self.fast and self.mode != "lin":
            bad("fast", f"the feature cache needs a frozen trunk (mode='lin'), not mode={self.mode!r}")
        if self.init not in ("reference", "ones", "v0.1", "v0.0") and not Path(self.init).is_file():
            bad("init", "choose reference, ones, v0.1, v0.0 or the path of an existing .pth/.safetensors file")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, damaged, or not a training checkpoint."""


#: What every checkpoint written by :meth:`Trainer.save_checkpoint` holds.
CHECKPOINT_KEYS = ("config", "model", "rank_loss", "optimizer", "scheduler", "state", "history", "ranks")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a training checkpoint (``weights_only``) and check that it is complete.

    Raises:
        CheckpointError: naming the file, when it is truncated, damaged or not a checkpoint.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bit flips, not a torch file, ...
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or truncated "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an lpips_core training checkpoint "
                              f"(format {ckpt.get('format') if isinstance(ckpt, dict) else '?'})")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    return ckpt


#: Checkpoints a resumed run may start from, newest kind first: the latest, the one it
#: replaced (kept as ``latest.prev.pt``), and the best epoch's.
RESUME_CANDIDATES = ("latest.pt", "latest.prev.pt", "best.pt")


#: Fields a resumed run must share with its checkpoint (others, like epochs or fast, may change).
RESUME_MUST_MATCH = ("net", "version", "mode", "loss", "use_dropout", "optimizer", "batch_size",
                     "schedule", "seed", "flip")


# =========================================================================== ranking losses
def build_rank_loss(config: TrainConfig) -> nn.Module:
    return BCERankingLoss() if config.loss == "ranking" else LogisticRankingLoss()


# =========================================================================== model, optimiser, schedule
def build_model(config: TrainConfig) -> LPIPS:
    """The LPIPS model to train, its linear layers initialised as ``config.init`` says.

    ``init='reference'`` keeps PyTorch's default 1x1-conv initialisation, which
    is what the reference trainer starts from (``lpips.LPIPS(pretrained=False)``;
    some weights are negative until the first clamp).
    """
    model = LPIPS(pretrained=False, net=config.net, version=config.version, lpips=True,
                  pnet_rand=config.mode == "scratch", pnet_tune=config.mode != "lin",
                  use_dropout=config.use_dropout, eval_mode=False)
    if config.init == "ones":
        with torch.no_grad():
            for lin in model.lins:
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
    params = list(params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, 0.999),
                                weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=(config.beta1, 0.999),
                                 weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


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


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    """Per-epoch LR schedule (stepped once at the end of every epoch)."""
    if config.schedule == "linear":
        e, d = config.epochs, config.decay_epochs
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: linear_decay_factor(k, e, d))
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.gamma,
                                                      patience=config.plateau_patience)


@torch.no_grad()
def clamp_linear_weights(model: LPIPS) -> None:
    """Clamp the LPIPS linear weights to >= 0 (after every step, as the reference).

    The reference clamps every module with a 1x1 kernel inside the LPIPS
    network, which also catches SqueezeNet's own 1x1 "squeeze"/"expand"
    convolutions when the trunk is tuned; only the linear layers are meant.
    """
    for lin in model.lins:
        lin.conv.weight.clamp_(min=0)


def export_linear_weights(model: LPIPS, path: str | os.PathLike) -> Path:
    """Write the linear weights in the reference format (``lin<k>.model.1.weight``).

    ``.pth``/``.pt``: ``torch.save`` of the state dict, loadable by
    ``lpips.LPIPS(model_path=...)`` and ``lpips_core.LPIPS(model_path=...)``;
    ``.safetensors``: the same tensors in safetensors format (lpips_core only).
    Written atomically.
    """
    path = Path(path)
    state = {k: v.contiguous().cpu() for k, v in model.linear_state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        with atomic_path(path) as tmp:
            save_file(state, tmp)
    elif path.suffix in (".pth", ".pt"):
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    else:
        raise ValueError(f"{path}: use a .pth (reference format) or .safetensors file name")
    return path


# =========================================================================== small helpers
def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


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


def _rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
             "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _torch_threads(n: int | None):
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


class _Indexed(Dataset):
    """Wrap a dataset so each item also carries its index (for flips and ordering)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        item["index"] = i
        return item


class RankingObjective(nn.Module):
    """LPIPS + ranking loss as one module (what DistributedDataParallel wraps).

    ``forward(batch)`` takes either images (``ref``, ``p0``, ``p1``) or cached
    means (``m0``, ``m1``) plus ``judge`` and returns the *sum* of per-triplet
    losses and the two distances (detached). The caller divides by the global
    batch size, so a batch split over ranks gives exactly the gradient of the
    single-process mean.
    """

    def __init__(self, model: LPIPS, rank_loss: nn.Module):
        super().__init__()
        self.model = model
        self.rank_loss = rank_loss

    def distances(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if "m0" in batch:  # fast path: (B, sum C) means -> (B, 1, 1, 1)
            return (fastpath.cached_distance(self.model, batch["m0"]),
                    fastpath.cached_distance(self.model, batch["m1"]))
        ref, p0, p1 = batch["ref"], batch["p0"], batch["p1"]
        n = ref.shape[0]
        # One trunk call for the 3 images of each triplet; the reference makes 4 (ref twice).
        # With a frozen trunk nothing here requires grad, so no graph is kept for it.
        feats = self.model.features(torch.cat([ref, p0, p1]))  # [(3N, C_k, H_k, W_k)]
        f_ref = [f[:n] for f in feats]
        d0 = self.model.distance_from_features(f_ref, [f[n:2 * n] for f in feats])
        d1 = self.model.distance_from_features(f_ref, [f[2 * n:] for f in feats])
        return d0, d1

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d0, d1 = self.distances(batch)
        losses = self.rank_loss.per_item(d0, d1, batch["judge"])  # (B,)
        return losses.sum(), d0.detach(), d1.detach()


# =========================================================================== the trainer
class Trainer:
    """Train an LPIPS model on a 2AFC dataset.

    Args:
        config: a :class:`TrainConfig`.
        train_set: 2AFC items ``{'ref','p0','p1': (3,H,W) in [-1,1], 'judge': (1,) in [0,1], ...}``.
        val_set: same format; needed for validation scores, ``best``, early
            stopping and the plateau schedule.
        out_dir: where ``latest.pt``, ``best.pt``, ``history.csv``,
            ``history.png`` and ``tensorboard/`` go (None: keep nothing on disk).
        callbacks: objects with optional ``on_step_end(trainer)`` and
            ``on_epoch_end(trainer, row)`` methods.

    Under ``torchrun`` (process group initialised, see
    :mod:`lpips_core.distributed`) every rank must build the same Trainer; the
    global batch is split across ranks, gradients are averaged by
    DistributedDataParallel, validation distances are gathered, and only rank 0
    writes files.
    """

    def __init__(self, config: TrainConfig, train_set: Dataset, val_set: Dataset | None = None,
                 out_dir: str | os.PathLike | None = None, callbacks: Sequence[Any] = ()):
        config.validate()
        needs_val = [n for n, on in (("patience", config.patience is not None),
                                     ("schedule='plateau'", config.schedule == "plateau")) if on]
        if needs_val and val_set is None:
            raise ValueError(f"{', '.join(needs_val)} needs a validation set (val_set=...)")
        if len(train_set) == 0:
            raise ValueError("the training set is empty")
        self.config = config
        self.train_set, self.val_set = train_set, val_set
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.rank, self.world = ddp.rank(), ddp.world_size()
        self.device = ddp.local_device(config.device)

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
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._step_module = DistributedDataParallel(self.objective, device_ids=ids)
        self.params = trainable_parameters(self.model, self.rank_loss)
        self.optimizer = build_optimizer(config, self.params)
        self.scheduler = build_scheduler(config, self.optimizer)
        self.state = self._fresh_state()
        self._sums = self._fresh_sums()
        self.history: list[dict] = []
        self.train_cache: fastpath.FeatureCache | None = None
        self.val_cache: fastpath.FeatureCache | None = None
        self._writer = None

    # ------------------------------------------------------------------ state
    @staticmethod
    def _fresh_state() -> dict:
        return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_score": None,
                "best_epoch": None, "epochs_since_best": 0, "stopped_early": False,
                "seconds": 0.0}

    def _fresh_sums(self) -> dict:
        return {"loss": 0.0, "agree": 0.0, "items": 0.0}

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ data
    def _caches(self) -> None:
        """Build or load the fast-path caches (train with flips if asked; val without)."""
        if self.train_cache is None:
            self.train_cache = fastpath.load_or_build(
                self.model, self.train_set, self.config.cache_dir, flip=self.config.flip,
                batch_size=self.config.eval_batch_size, num_workers=self.config.num_workers,
                progress=self.config.progress).to(self.device)
        if self.val_set is not None and self.val_cache is None:
            self.val_cache = fastpath.load_or_build(
                self.model, self.val_set, self.config.cache_dir, flip=False,
                batch_size=self.config.eval_batch_size, num_workers=self.config.num_workers,
                progress=self.config.progress).to(self.device)

    def _epoch_plan(self, epoch: int) -> tuple[list[torch.Tensor], list[int], torch.Tensor]:
        """This rank's index batches for ``epoch``, the global batch sizes, and the flip coins."""
        perm, flips = epoch_order(len(self.train_set), self.config.seed, epoch)
        batches = global_batches(perm, self.config.batch_size, self.world)
        local = [b[self.rank::self.world] for b in batches]
        return local, [len(b) for b in batches], flips

    def _image_batches(self, local: list[torch.Tensor]):
        loader = DataLoader(_Indexed(self.train_set), batch_sampler=[b.tolist() for b in local],
                            num_workers=self.config.num_workers,
                            generator=torch.Generator().manual_seed(self.config.seed))
        return iter(loader)

    def _to_device_images(self, batch: dict, flips: torch.Tensor) -> dict:
        out = {k: batch[k].to(self.device) for k in ("ref", "p0", "p1", "judge")}
        if self.config.flip:
            f = flips[batch["index"]].to(self.device).view(-1, 1, 1, 1)
            for k in ("ref", "p0", "p1"):
                out[k] = torch.where(f, torch.flip(out[k], dims=[-1]), out[k])
        return out

    # ------------------------------------------------------------------ one step
    def _step(self, batch: dict, n_global: int) -> tuple[float, float, int]:
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

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, dataset: Dataset | None = None) -> dict:
        """2AFC agreement of the current model on ``dataset`` (default: the validation set).

        Returns:
            {'score': float in [0, 1], 'd0', 'd1', 'judge': (N,) numpy arrays in dataset order}.
        """
        self.model.eval()
        if dataset is None or dataset is self.val_set:
            if self.val_set is None:
                raise ValueError("no dataset given and the trainer has no validation set")
            dataset = self.val_set
            if self.config.fast:
                self._caches()
                c = self.val_cache
                d0 = fastpath.cached_distance(self.model, c.m0).view(-1).cpu().numpy()
                d1 = fastpath.cached_distance(self.model, c.m1).view(-1).cpu().numpy()
                judge = c.judge.cpu().numpy()
                return {"score": score_2afc(d0, d1, judge), "d0": d0, "d1": d1, "judge": judge}
        mine = list(range(self.rank, len(dataset), self.world))
        loader = DataLoader(_Indexed(dataset), batch_size=self.config.eval_batch_size,
                            sampler=mine, num_workers=self.config.num_workers,
                            generator=torch.Generator())
        idx, d0s, d1s, hs = [], [], [], []
        for batch in loader:
            b = {k: batch[k].to(self.device) for k in ("ref", "p0", "p1")}
            d0, d1 = self.objective.distances(b)
            idx += batch["index"].tolist()
            d0s.append(d0.view(-1).cpu())
            d1s.append(d1.view(-1).cpu())
            hs.append(batch["judge"].reshape(-1).float())
        cat = (lambda xs: torch.cat(xs) if xs else torch.empty(0))
        parts = ddp.all_gather_object((idx, cat(d0s), cat(d1s), cat(hs)))
        order = np.argsort(np.array([i for p in parts for i in p[0]]), kind="stable")
        d0, d1, judge = (torch.cat([p[j] for p in parts]).numpy()[order] for j in (1, 2, 3))
        return {"score": score_2afc(d0, d1, judge), "d0": d0, "d1": d1, "judge": judge}

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict:
        """Everything needed to continue exactly (collective under DDP: every rank must call)."""
        rank_states = ddp.all_gather_object({"rng": _rng_state(), "sums": dict(self._sums)})
        if self.model.pnet_tune:
            weights = self.model.state_dict()
        else:  # frozen trunk: it is fully determined by the config
            weights = self.model.linear_state_dict()
        return {"format": CHECKPOINT_FORMAT, "config": asdict(self.config), "model": weights,
                "rank_loss": self.rank_loss.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "state": dict(self.state),
                "history": list(self.history), "world_size": self.world, "ranks": rank_states}

    def save_checkpoint(self, name: str = "latest") -> Path | None:
        """Write ``<out_dir>/<name>.pt`` atomically (rank 0 only; collective under DDP).

        The file is written beside its destination, flushed to disk and renamed
        into place; ``latest`` keeps the checkpoint it replaces as
        ``latest.prev.pt``. A failed write (full disk, ...) raises OSError and
        leaves the previous checkpoint untouched.
        """
        payload = self.checkpoint_state()
        path = None
        if self.out_dir is not None and self.rank == 0:
            path = self.out_dir / f"{name}.pt"
            previous = self.out_dir / f"{name}.prev.pt" if name == "latest" else None
            try:
                with atomic_path(path, fsync=True, keep_previous=previous) as tmp:
                    torch.save(payload, tmp)
            except Exception as exc:  # torch.save reports a full disk as a RuntimeError of its zip writer
                free = shutil.disk_usage(path.parent).free
                raise OSError(f"could not write checkpoint {path} ({type(exc).__name__}: {exc}); "
                              f"{free / 2**20:.1f} MiB free there. The previous checkpoint is unchanged; "
                              f"free some space and resume (--resume)") from exc
        ddp.barrier()
        return path

    def _resume_source(self) -> Path | None:
        """The newest usable checkpoint in ``out_dir`` (None: nothing to resume from).

        Damaged candidates (truncated by a crash of the disk, bit flips, ...) are
        reported by name, renamed to ``<name>.damaged`` and skipped, so resuming
        falls back to the last good checkpoint.

        Raises:
            CheckpointError: checkpoints exist but none is usable (each one and why).
        """
        found, damaged = [], []
        for name in RESUME_CANDIDATES:
            path = self.out_dir / name
            if not path.is_file():
                continue
            try:
                ckpt = read_checkpoint(path)
            except CheckpointError as exc:
                damaged.append((path, exc))
                continue
            found.append((int(ckpt["state"].get("global_step", 0)), -len(found), path))
        if damaged and not found:
            raise CheckpointError(f"no usable checkpoint in {self.out_dir}:\n  "
                                  + "\n  ".join(str(e) for _, e in damaged)
                                  + "\nmove them away to start a new run, or choose another output folder")
        chosen = max(found)[2] if found else None
        ddp.barrier()  # every rank has read the files before any is renamed
        for path, exc in damaged:
            if self.rank == 0:
                os.replace(path, path.with_name(path.name + ".damaged"))
            warnings.warn(f"{exc}; renamed to {path.name}.damaged, resuming from {chosen.name}", stacklevel=3)
        return chosen

    def load_checkpoint(self, path: str | os.PathLike) -> None:
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
                raise ValueError(f"{path} was trained with {name}={saved.get(name)!r} but this run has "
                                 f"{name}={getattr(self.config, name)!r}; use the same value or a new --out")
        self._load_weights(ckpt)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = dict(ckpt["state"])
        self.history = list(ckpt["history"])
        ranks = ckpt["ranks"]
        if len(ranks) == self.world:
            _set_rng_state(ranks[self.rank]["rng"])
            self._sums = dict(ranks[self.rank]["sums"])
        else:
            warnings.warn(f"{path} was written by {len(ranks)} process(es), this run has {self.world}: "
                          f"data order is kept but dropout draws will differ", stacklevel=2)
            self._sums = {k: sum(r["sums"][k] for r in ranks) / self.world for k in ranks[0]["sums"]}

    # ------------------------------------------------------------------ logging
    def _tb(self):
        if self._writer is None and self.out_dir is not None and self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is a training requirement
                warnings.warn("tensorboard is not installed; TensorBoard logs are skipped", stacklevel=2)
                self._writer = False
                return None
            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"),
                                         purge_step=self.state["global_step"] + 1)
        return self._writer or None

    def _write_history(self) -> None:
        if self.out_dir is None or self.rank != 0:
            return
        _write_csv(self.out_dir / "history.csv", self.history)

    def plot_history(self, path: str | os.PathLike | None = None) -> Path | None:
        """Loss, 2AFC agreement and learning rate per epoch, as a PNG."""
        if not self.history:
            return None
        from .plots import _pyplot, save_figure

        plt = _pyplot()
        path = Path(path) if path is not None else self.out_dir / "history.png"
        ep = [r["epoch"] for r in self.history]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        axes[0].plot(ep, [r["train_loss"] for r in self.history], marker="o")
        axes[0].set(title="training loss", xlabel="epoch")
        axes[1].plot(ep, [100 * r["train_2afc"] for r in self.history], marker="o", label="train")
        val = [(r["epoch"], 100 * r["val_2afc"]) for r in self.history if r["val_2afc"] is not None]
        if val:
            axes[1].plot(*zip(*val), marker="o", label="validation")
        axes[1].set(title="2AFC agreement (%)", xlabel="epoch")
        axes[1].legend()
        axes[2].plot(ep, [r["lr"] for r in self.history], marker="o")
        axes[2].set(title="learning rate", xlabel="epoch")
        fig.tight_layout()
        save_figure(fig, path)
        plt.close(fig)
        return path

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> list[dict]:
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
            source = self._resume_source() if self.out_dir.is_dir() else None
            if source is not None:
                self.load_checkpoint(source)
            elif self.rank == 0:
                print(f"no checkpoint in {self.out_dir}; starting a new run", flush=True)
        if cfg.fast:
            self._caches()
        while self.state["epoch"] < cfg.epochs and not self.state["stopped_early"]:
            epoch = self.state["epoch"]
            lr_used = self.lr
            with _torch_threads(1 if cfg.fast and self.device.type == "cpu" else None):
                seconds = self._train_epoch(epoch)
            self._end_epoch(epoch, lr_used, seconds)
        if self._writer:
            self._writer.flush()
        if self.out_dir is not None and self.rank == 0:
            self.plot_history()
        return self.history

    def _train_epoch(self, epoch: int) -> float:
        """Run the remaining steps of ``epoch``; return the seconds not yet added to the state."""
        from tqdm.auto import tqdm

        cfg = self.config
        t0 = time.perf_counter()
        local, n_global, flips = self._epoch_plan(epoch)
        start = self.state["step_in_epoch"]
        images = None if cfg.fast else self._image_batches(local[start:])
        bar = tqdm(total=len(local), initial=start, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="step", disable=not cfg.progress or self.rank != 0, dynamic_ncols=True)
        for s in range(start, len(local)):
            if cfg.fast:
                idx = local[s].to(self.device)
                m0, m1, judge = self.train_cache.select(idx, flips[local[s]].to(self.device) if cfg.flip else None)
                batch = {"m0": m0, "m1": m1, "judge": judge}
            else:
                batch = self._to_device_images(next(images), flips)
            loss_sum, agree, n = self._step(batch, n_global[s])
            self._sums["loss"] += loss_sum
            self._sums["agree"] += agree
            self._sums["items"] += n
            self.state["step_in_epoch"] = s + 1
            self.state["global_step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / max(n, 1):.4f}")
            writer = self._tb()
            if writer is not None and self.state["global_step"] % cfg.log_every == 0:
                writer.add_scalar("train/loss", loss_sum / max(n, 1), self.state["global_step"])
            for cb in self.callbacks:
                getattr(cb, "on_step_end", lambda t: None)(self)
            if cfg.checkpoint_every and self.state["global_step"] % cfg.checkpoint_every == 0 and s + 1 < len(local):
                self.state["seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save_checkpoint("latest")
        bar.close()
        return time.perf_counter() - t0

    def _end_epoch(self, epoch: int, lr_used: float, seconds: float) -> None:
        cfg = self.config
        loss, agree, items = ddp.all_reduce_sum(
            [self._sums["loss"], self._sums["agree"], self._sums["items"]], self.device)
        last = epoch + 1 == cfg.epochs
        val = None
        if self.val_set is not None and ((epoch + 1) % cfg.val_every == 0 or last or cfg.patience):
            val = self.evaluate()["score"]
        if cfg.schedule == "plateau":
            if val is not None:
                self.scheduler.step(val)
        else:
            self.scheduler.step()
        self.state["seconds"] += seconds
        row = {"epoch": epoch + 1, "global_step": self.state["global_step"],
               "train_loss": loss / max(items, 1), "train_2afc": agree / max(items, 1),
               "val_2afc": val, "lr": lr_used, "seconds": round(self.state["seconds"], 3)}
        self.history.append(row)
        improved = val is not None and (self.state["best_score"] is None or val > self.state["best_score"])
        if improved:
            self.state.update(best_score=val, best_epoch=epoch + 1, epochs_since_best=0)
        elif val is not None:
            self.state["epochs_since_best"] += 1
            if cfg.patience is not None and self.state["epochs_since_best"] >= cfg.patience:
                self.state["stopped_early"] = True
        self.state["epoch"] = epoch + 1
        self.state["step_in_epoch"] = 0
        self._sums = self._fresh_sums()
        self.save_checkpoint("latest")
        if improved:
            self.save_checkpoint("best")
        self._write_history()
        writer = self._tb()
        if writer is not None:
            step = self.state["global_step"]
            writer.add_scalar("epoch/train_loss", row["train_loss"], step)
            writer.add_scalar("epoch/train_2afc", row["train_2afc"], step)
            writer.add_scalar("epoch/lr", lr_used, step)
            if val is not None:
                writer.add_scalar("epoch/val_2afc", val, step)
            writer.flush()
        for cb in self.callbacks:
            getattr(cb, "on_epoch_end", lambda t, r: None)(self, row)

    # ------------------------------------------------------------------ results
    def export(self, path: str | os.PathLike) -> Path:
        """Write the current linear weights (``.pth`` reference format or ``.safetensors``)."""
        return export_linear_weights(self.model, path)

    def _load_weights(self, ckpt: dict) -> None:
        """Model weights (all of them when the trunk is tuned, else the linear layers) and G's."""
        if self.model.pnet_tune:
            self.model.load_state_dict(ckpt["model"])
        else:
            with torch.no_grad():
                for k, lin in enumerate(self.model.lins):
                    lin.conv.weight.copy_(ckpt["model"][f"lin{k}.model.1.weight"])
        self.rank_loss.load_state_dict(ckpt["rank_loss"])

    def load_best(self) -> None:
        """Load the linear (and, when tuned, trunk) weights of ``best.pt`` into the model."""
        ckpt = read_checkpoint(self.out_dir / "best.pt")
        self._load_weights(ckpt)


def config_fields() -> list[str]:
    """Names of the :class:`TrainConfig` fields (for command lines and docs)."""
    return [f.name for f in fields(TrainConfig)]


# =========================================================================== a run on a folder
def open_split(data: str | os.PathLike, split: str, subsets: Sequence[str] | None = None,
               load_size: int = 64) -> Dataset | None:
    """The 2AFC ``split`` ('train'/'val') of a BAPPS-style folder, or None if it has none.

    Args:
        data: folder holding ``2afc/train`` and ``2afc/val`` (e.g. ``data/mini_bapps``
            or a full BAPPS download).
    """
    from .data import TwoAFCDataset

    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such dataset folder (expected a BAPPS-style folder "
                                f"with 2afc/train and 2afc/val, e.g. data/mini_bapps)")
    if not (data / "2afc").is_dir():
        raise FileNotFoundError(f"{data}: no 2afc/ folder inside; --data must be the dataset root "
                                f"holding 2afc/train and 2afc/val (BAPPS layout)")
    if not (data / "2afc" / split).is_dir():
        return None
    return TwoAFCDataset(data, subsets=subsets, load_size=load_size, split=split)


@torch.no_grad()
def compare_on(dataset: Dataset, trained: LPIPS, name: str = "trained", baselines: bool = True,
               batch_size: int = 64, device: str | torch.device = "cpu", progress: bool = True
               ) -> dict[str, float]:
    """2AFC agreement of a trained model and of the usual baselines on one dataset, in one pass.

    Baselines: ``net-<net>`` (the untrained "net" distance, every channel
    weight 1), ``l2_lab`` (the paper's L2, :func:`lpips_core.baselines.l2_lab`)
    and ``lpips-<net>`` (the official v0.1 weights). With a frozen trunk the
    trained model and the LPIPS baselines share one trunk pass per triplet.

    Returns:
        {name: 2AFC score in [0, 1]} with ``name`` first.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    trained = trained.to(device).eval()
    heads: dict[str, LPIPS] = {name: trained}
    if baselines:
        net = trained.pnet_type
        heads[f"net-{net}"] = LPIPS(net=net, version=trained.version, lpips=False).to(device)
        heads[f"lpips-{net}"] = LPIPS(net=net, version=trained.version).to(device)
        from .baselines import l2_lab
    shared_trunk = not trained.pnet_tune and not trained.pnet_rand
    d0 = {k: [] for k in list(heads) + (["l2_lab"] if baselines else [])}
    d1 = {k: [] for k in d0}
    judge = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="compare", unit="batch", disable=not progress, dynamic_ncols=True):
        ref, p0, p1 = (batch[k].to(device) for k in ("ref", "p0", "p1"))
        n = ref.shape[0]
        images = torch.cat([ref, p0, p1])  # (3B, 3, H, W)
        feats = trained.features(images)
        for key, model in heads.items():
            f = feats if (model is trained or shared_trunk) else model.features(images)
            fr = [t[:n] for t in f]
            d0[key].append(model.distance_from_features(fr, [t[n:2 * n] for t in f]).flatten().cpu())
            d1[key].append(model.distance_from_features(fr, [t[2 * n:] for t in f]).flatten().cpu())
        if baselines:
            d0["l2_lab"].append(l2_lab(ref, p0).flatten().cpu())
            d1["l2_lab"].append(l2_lab(ref, p1).flatten().cpu())
        judge.append(batch["judge"].reshape(-1))
    h = torch.cat(judge)
    return {k: score_2afc(torch.cat(d0[k]), torch.cat(d1[k]), h) for k in d0}


def run_training(data: str | os.PathLike, out_dir: str | os.PathLike, config: TrainConfig,
                 resume: bool = False, train_subsets: Sequence[str] | None = None,
                 val_subsets: Sequence[str] | None = None, load_size: int = 64,
                 baselines: bool = True) -> dict:
    """Train on ``<data>/2afc/train``, validate on ``<data>/2afc/val``, export, and compare.

    What ``lpips-core train`` runs. Works under ``torchrun`` (joins the process
    group from the environment). Writes into ``out_dir``: ``latest.pt``,
    ``best.pt``, ``history.csv``, ``history.png``, ``tensorboard/``, the best
    linear weights as ``<net>_<mode>.pth`` (reference format) and
    ``.safetensors``, and ``summary.json``.

    Returns:
        the summary: config, best epoch, validation 2AFC of the trained model
        and (``baselines``) of the "net" baseline, L2 (Lab) and the official
        v0.1 weights, and the exported file names.
    """
    import json

    ddp.init_from_env(config.device)
    out_dir = Path(out_dir)
    train_set = open_split(data, "train", train_subsets, load_size)
    if train_set is None:
        raise FileNotFoundError(f"{Path(data) / '2afc' / 'train'}: no training split")
    val_set = open_split(data, "val", val_subsets, load_size)
    trainer = Trainer(config, train_set, val_set, out_dir=out_dir)
    history = trainer.fit(resume=resume)
    if val_set is not None and (out_dir / "best.pt").is_file():
        trainer.load_best()
    stem = f"{trainer.model.pnet_type}_{config.mode}"
    summary: dict[str, Any] = {
        "data": str(data), "train_triplets": len(train_set),
        "val_triplets": len(val_set) if val_set is not None else 0,
        "config": asdict(config), "epochs_run": len(history),
        "best_epoch": trainer.state["best_epoch"], "stopped_early": trainer.state["stopped_early"],
        "train_seconds": trainer.state["seconds"], "val_2afc": {}, "exported": [],
        "note": "2AFC agreement with the dataset's judgments (on the mini set: a SIMULATED observer)"}
    if ddp.is_main():
        summary["exported"] = [str(trainer.export(out_dir / f"{stem}.pth")),
                               str(trainer.export(out_dir / f"{stem}.safetensors"))]
        if val_set is not None:
            summary["val_2afc"] = compare_on(val_set, trainer.model, f"trained-{stem}", baselines,
                                             config.eval_batch_size, trainer.device, config.progress)
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    ddp.barrier()
    return summary
