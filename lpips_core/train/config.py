"""Everything that defines a training run, checked on construction and saved in every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, cast

from ..model.nets import canonical_net
from ..model.versions import VERSIONS, canonical_version

MODES = ("lin", "tune", "scratch")
LOSSES = ("ranking", "logistic")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("linear", "constant", "cosine", "step", "plateau")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every checkpoint.

    Defaults follow the reference recipe (``lpips/trainer.py`` and ``train.py``
    of the official repository): Adam, lr 1e-4, beta1 0.5, batch 50, 10
    epochs of which the last 5 decay linearly, dropout before the linear layers.
    """

    net: str = "alex"  # trunk: alex | vgg | squeeze
    version: str = "0.1"  # 0.1 scales inputs to ImageNet statistics; 0.0 does not
    mode: str = "lin"  # lin (frozen trunk) | tune (trunk trained) | scratch (random trunk)
    init: str = "reference"  # linear-layer start: reference (random conv init, as
    # lpips.LPIPS(pretrained=False)) | ones ("net" baseline) | v0.1 | v0.0 | a .pth path
    loss: str = "ranking"  # ranking (the paper's G network + BCE) | logistic (BCE of sigmoid(s*(d0-d1)))
    use_dropout: bool = True  # dropout before each linear layer, as the reference trains
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-4
    beta1: float = 0.5  # Adam/AdamW first-moment decay (reference: 0.5)
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    batch_size: int = 50  # global batch (split across ranks under torchrun)
    epochs: int = 10  # total epochs
    decay_epochs: int | None = None  # linear schedule: epochs of decay at the end (None: epochs // 2)
    schedule: str = "linear"  # linear (reference) | constant | cosine | step | plateau
    step_size: int = 3  # step schedule: epochs between decays
    gamma: float = 0.5  # step/plateau: lr factor
    plateau_patience: int = 1  # plateau: epochs without val improvement before a decay
    grad_clip: float | None = None  # max global gradient norm (None: no clipping)
    patience: int | None = None  # early stopping: epochs without val 2AFC improvement (None: off)
    seed: int = 0  # initialisation, data order, flips and dropout
    flip: bool = False  # random horizontal flip of whole triplets (reference: off)
    fast: bool = False  # lin mode only: train on cached feature means (fastpath)
    checkpoint_every: int = 0  # also write `latest` every N steps inside an epoch (0: epoch ends only)
    val_every: int = 1  # validate every N epochs (and after the last)
    num_workers: int = 0  # DataLoader workers for the image path
    eval_batch_size: int = 64
    log_every: int = 10  # steps between TensorBoard loss points
    device: str = "cpu"
    cache_dir: str | None = None  # fast-path feature cache (None: ~/.cache/lpips_core/features)
    progress: bool = True  # tqdm bars

    def __post_init__(self) -> None:
        try:
            self.version = canonical_version(self.version)
        except ValueError:
            pass  # validate() names the field
        if self.decay_epochs is None:
            self.decay_epochs = self.epochs // 2
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and its allowed values."""

        def bad(name: str, allowed: str) -> NoReturn:
            raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is not valid; {allowed}")

        canonical_net(self.net)
        if self.version not in VERSIONS:
            bad("version", "choose '0.1' or '0.0'")
        for name, allowed in (("mode", MODES), ("loss", LOSSES), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                bad(name, f"choose one of {', '.join(allowed)}")
        for name in ("batch_size", "epochs", "val_every", "eval_batch_size", "log_every", "step_size"):
            if int(getattr(self, name)) < 1:
                bad(name, "it must be >= 1")
        if not 0 <= cast(int, self.decay_epochs) <= self.epochs:  # __post_init__ replaced None
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
