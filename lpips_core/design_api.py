"""The original design document's API, as thin aliases and adapters of ``lpips_core``.

The project was specified by a design document whose README showed a Python API
and a ``main.py`` command line. Readers of that document type those lines, so
every name works here, mapped onto the package's own classes (never a second
implementation). The book page "Coming from the design document"
(``book/design_document.md``) has the full table.

======================================  ===================================================
design-document name                    lpips_core name
======================================  ===================================================
``create_lpips_model(backbone)``        ``LPIPS(net=backbone)``
``LPIPS``                               ``lpips_core.LPIPS`` (the same class)
``LPIPSFeatureExtractor``               :class:`lpips_core.model.Trunk`
``LPIPSLinearLayers``                   the model's ``lins`` (:class:`~lpips_core.model.NetLinLayer`)
``LPIPSLoss``                           :class:`lpips_core.train.BCERankingLoss`
``JNDDataset`` (here: 2AFC triplets)    :class:`lpips_core.data.TwoAFCDataset`
``LPIPSDataModule(data_dir, ...)``      :class:`lpips_core.data.LPIPSDataModule`
``create_lpips_trainer``,               :class:`lpips_core.train.Trainer` and
``LPIPSTrainer``                        :class:`~lpips_core.train.TrainConfig`
``LPIPSEvaluator``                      :func:`lpips_core.eval.collect_2afc`,
                                        :func:`lpips_core.eval.score_2afc`,
                                        :func:`lpips_core.eval.stats.correlations`
``LPIPSVisualizer``                     :func:`lpips_core.eval.plots.plot_correlation_bars`
``TraditionalMetrics``                  :class:`lpips_core.eval.TraditionalMetrics`, callable on the class
``ProductionLPIPS(model_path, device)`` :class:`lpips_core.apps.ProductionLPIPS` (``checkpoint=``)
``python main.py --mode ...``           ``lpips-core train|evaluate|compare-models|demo|analyze``
======================================  ===================================================

These names live here only; the package's top level exports its own API, where two
of them mean something else:

* ``JNDDataset``: the design document used it for its 2AFC *triplet* dataset.
  ``lpips_core.JNDDataset`` is BAPPS's real JND set (pairs and "same"
  judgments, scored by mAP), so here ``JNDDataset`` is a
  :class:`~lpips_core.data.TwoAFCDataset` and ``lpips_core.JNDDataset`` stays the
  JND loader.
* ``LPIPSDataModule`` and ``ProductionLPIPS`` take the design document's
  arguments here (``data_dir, batch_size, train_split, val_split,
  augment_training``; ``model_path, device``) and the package's own arguments at
  the top level (``root, batch_size, val_split, test_split, seed, augment``;
  ``net, version, checkpoint, device``).

Example:
    >>> from lpips_core.design_api import create_lpips_model
    >>> import torch
    >>> model = create_lpips_model('alexnet')                       # doctest: +SKIP
    >>> model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), normalize=True).shape  # doctest: +SKIP
    torch.Size([1, 1, 1, 1])
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from . import apps as _apps
from . import data as _data
from .cli import main as cli_main
from .eval import (
    LPIPSDistance,
    collect_2afc,
    judgment_correlations,
    make_distance,
    score_2afc,
    score_2afc_results,
    twoafc_scores,
)
from .eval.baselines import TraditionalMetrics as _CoreTraditionalMetrics
from .eval.plots import plot_correlation_bars
from .eval.stats import bootstrap_ci
from .model import LPIPS, NetLinLayer, Trunk, canonical_net
from .train import BCERankingLoss, TrainConfig, Trainer, clamp_linear_weights

__all__ = [
    "create_lpips_model",
    "LPIPS",
    "LPIPSFeatureExtractor",
    "LPIPSLinearLayers",
    "LPIPSLoss",
    "JNDDataset",
    "LPIPSDataModule",
    "create_lpips_trainer",
    "LPIPSTrainer",
    "LPIPSEvaluator",
    "LPIPSVisualizer",
    "TraditionalMetrics",
    "ProductionLPIPS",
    "main_argv",
    "main",
]


class _ClassOrInstanceMethod:
    """A method that works on an instance and, as the design document's ``@staticmethod``, on the class.

    ``TraditionalMetrics.psnr(a, b)`` binds to one shared instance with the document's
    conventions (images in [0, 1]); ``TraditionalMetrics(...).psnr(a, b)`` to that instance.
    """

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        target = obj if obj is not None else _document_metrics()
        return getattr(_CoreTraditionalMetrics, self.name).__get__(target, owner)


class TraditionalMetrics(_CoreTraditionalMetrics):
    """The design document's ``TraditionalMetrics``: the core class, whose metrics can also be called
    on the class itself (``TraditionalMetrics.psnr(img1, img2)``, images in [0, 1], as the
    document's ``torch.rand(3, 224, 224)`` examples).

    Example:
        >>> import torch
        >>> img1, img2 = torch.rand(3, 224, 224), torch.rand(3, 224, 224)
        >>> isinstance(TraditionalMetrics.psnr(img1, img2), float)  # the design document's call
        True
    """

    psnr = _ClassOrInstanceMethod("psnr")
    ssim = _ClassOrInstanceMethod("ssim")
    ms_ssim = _ClassOrInstanceMethod("ms_ssim")
    lpnorm = _ClassOrInstanceMethod("lpnorm")
    l2_lab = _ClassOrInstanceMethod("l2_lab")
    dists = _ClassOrInstanceMethod("dists")
    compute_all_metrics = _ClassOrInstanceMethod("compute_all_metrics")


@functools.cache
def _document_metrics() -> _CoreTraditionalMetrics:
    return _CoreTraditionalMetrics(input_range=(0.0, 1.0))


#: The 2AFC loss module of the design document: the paper's ranking network G + BCE against h.
#: ``LPIPSLoss()(d0, d1, judge)`` with d0, d1 (N, 1, 1, 1) distances and judge the
#: fraction of judges preferring p1, in [0, 1].
LPIPSLoss = BCERankingLoss


# =========================================================================== model
def create_lpips_model(
    backbone: str = "alexnet", pretrained: bool = True, version: str = "0.1", **kwargs: Any
) -> LPIPS:
    """An LPIPS model for ``backbone``: the package's :class:`~lpips_core.LPIPS`.

    Args:
        backbone: 'alexnet', 'vgg' (or 'vgg16'), 'squeezenet', or the short names
            'alex', 'squeeze'.
        pretrained: True: the calibrated linear weights of ``version`` (the official
            LPIPS metric). False: ImageNet trunk with untrained linear layers (the
            reference's ``lpips.LPIPS(pretrained=False)``, where lin training starts).
        kwargs: any other :class:`~lpips_core.LPIPS` argument (``spatial``, ``lpips``,
            ``pnet_tune``, ``model_path``, ``dtype``, ...).
    Returns:
        an ``LPIPS`` in eval mode; ``model(img1, img2)`` on (N, 3, H, W) images in
        [-1, 1] gives (N, 1, 1, 1) distances; pass ``normalize=True`` for [0, 1] images.
    """
    return LPIPS(pretrained=pretrained, net=canonical_net(backbone), version=version, **kwargs)


class LPIPSFeatureExtractor(Trunk):
    """The trunk with its taps: :class:`lpips_core.model.Trunk` under the design's name.

    ``extractor(x)`` takes (N, 3, H, W) images already shifted and scaled to the
    ImageNet statistics (``lpips_core.model.ScalingLayer`` does that for [-1, 1]
    images) and returns one (N, C_k, H_k, W_k) activation per tap; the taps are
    named in ``tap_names`` and their widths are ``channels``.

    Args:
        backbone: 'alexnet', 'vgg', 'squeezenet' (or the short names).
        pretrained: ImageNet weights (offline sources) or torchvision's random init.
        requires_grad: make the trunk trainable.
    """

    def __init__(self, backbone: str = "alexnet", pretrained: bool = True, requires_grad: bool = False):
        super().__init__(canonical_net(backbone), pretrained=pretrained, requires_grad=requires_grad)


class LPIPSLinearLayers(nn.ModuleList):
    """The learned non-negative 1x1 weights, one :class:`~lpips_core.model.NetLinLayer` per tap.

    The same modules an :class:`~lpips_core.LPIPS` model holds in ``model.lins``
    (dropout in training, then a bias-free 1x1 convolution to one channel);
    :meth:`from_model` wraps a model's own layers (shared, not copied).

    Args:
        channels: width of each tap, e.g. ``LPIPSFeatureExtractor('alex').channels``.
        use_dropout: dropout before each layer, active in training mode (as the reference).

    ``forward(diffs)`` maps a list of (N, C_k, H_k, W_k) squared differences of
    unit-normalised features to a list of (N, 1, H_k, W_k) weighted maps; the
    LPIPS distance is the sum over layers of their spatial means.
    """

    def __init__(self, channels: Sequence[int] = (), use_dropout: bool = True):
        super().__init__([NetLinLayer(int(c), use_dropout=use_dropout) for c in channels])

    @classmethod
    def from_model(cls, model: LPIPS) -> LPIPSLinearLayers:
        """The linear layers of ``model`` (the same modules: training one trains the other)."""
        if not model.lpips:
            raise ValueError("this model has no linear layers (lpips=False, the 'net' baseline)")
        layers = cls()
        layers.extend(model.lins)
        return layers

    @classmethod
    def pretrained(cls, backbone: str = "alexnet", version: str = "0.1", use_dropout: bool = True) -> LPIPSLinearLayers:
        """The calibrated weights shipped for ``backbone`` (loaded by :class:`~lpips_core.LPIPS`)."""
        model = LPIPS(net=canonical_net(backbone), version=version, pnet_rand=True, use_dropout=use_dropout)
        return cls.from_model(model)

    @property
    def lins(self) -> LPIPSLinearLayers:
        # lets lpips_core.train.clamp_linear_weights (which reads ``model.lins``) clamp these layers
        return self

    @property
    def weights(self) -> list[torch.Tensor]:
        """(C_k,) channel weights of each layer."""
        return [lin.conv.weight.view(-1) for lin in self]

    def clamp_(self) -> LPIPSLinearLayers:
        """Clamp every weight to >= 0, as training does after each step."""
        clamp_linear_weights(self)
        return self

    def forward(self, diffs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(diffs) != len(self):
            raise ValueError(f"expected {len(self)} per-layer differences, got {len(diffs)}")
        return [lin(d) for lin, d in zip(self, diffs)]


# =========================================================================== data
class JNDDataset(_data.TwoAFCDataset):
    """The design document's name for its 2AFC **triplet** dataset: a :class:`~lpips_core.data.TwoAFCDataset`.

    Items are ``{'ref', 'p0', 'p1': (3, H, W) in [-1, 1], 'judge': (1,) fraction of
    judges preferring p1, 'subset', 'id'}``. BAPPS's real JND data (pairs with
    "same" judgments) is :class:`lpips_core.JNDDataset`, unchanged.

    Args:
        data_dir: anything ``TwoAFCDataset`` reads (BAPPS folder, split folder, CSV/JSON,
            per-sample folders).
        split: 'train' or 'val' when ``data_dir`` holds both.
        kwargs: ``subsets``, ``load_size``, ``on_error``, ... as ``TwoAFCDataset``.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str | None = None, **kwargs: Any):
        super().__init__(data_dir, split=split, **kwargs)


class LPIPSDataModule(_data.LPIPSDataModule):
    """:class:`lpips_core.data.LPIPSDataModule` with the design document's arguments.

    ``train_split`` and ``val_split`` are fractions; what they split depends on the data:

    * a BAPPS-style folder with official ``2afc/train`` and ``2afc/val``: the test
      set is the official val split (where the paper reports its scores), and the
      official train split is cut into train and validation in the ratio
      ``train_split : val_split``;
    * anything else: the items are cut into ``train_split``, ``val_split`` and the
      rest, ``1 - train_split - val_split``, as the test set.

    Args:
        data_dir: dataset location (see :class:`lpips_core.data.TwoAFCDataset`).
        batch_size: items per batch.
        train_split, val_split: fractions, together at most 1.
        augment_training: mirror training triplets left-right (all three images together).
        kwargs: ``seed``, ``kind``, ``load_size``, ``subsets``, ``num_workers``, ... of the package's class.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        batch_size: int = 50,
        train_split: float = 0.8,
        val_split: float = 0.1,
        augment_training: bool = True,
        **kwargs: Any,
    ):
        if not (0 < train_split <= 1 and 0 <= val_split < 1 and train_split + val_split <= 1 + 1e-9):
            raise ValueError(
                f"train_split={train_split}, val_split={val_split}: train_split must be in (0, 1], "
                f"val_split in [0, 1), and together at most 1 (the rest is the test set)"
            )
        kind = kwargs.get("kind", "2afc")
        root = Path(data_dir)
        official = kwargs.get("split") is None and (root / kind / "train").is_dir() and (root / kind / "val").is_dir()
        rest = 1.0 - train_split - val_split
        if official:  # test = the official val split; train/val share the official train split
            val, test = val_split / (train_split + val_split), None
        else:
            val, test = val_split, (rest if rest > 1e-9 else None)
        self.train_split = train_split
        super().__init__(
            data_dir, batch_size=batch_size, val_split=val, test_split=test, augment=augment_training, **kwargs
        )


# =========================================================================== training
_SCHEDULES = {
    None: "constant",
    "none": "constant",
    "constant": "constant",
    "linear": "linear",
    "cosine": "cosine",
    "step": "step",
    "plateau": "plateau",
    "reduce_on_plateau": "plateau",
}


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class LPIPSTrainer:
    """The design document's trainer: :class:`lpips_core.train.Trainer` under its arguments.

    The run is a :class:`~lpips_core.train.TrainConfig` read off the model (net,
    version, mode, dropout) and these arguments; each :meth:`train` call is one
    ``Trainer.fit()`` that starts from ``model``'s current weights and writes the
    trained weights back into ``model``.

    Args:
        model: an :class:`~lpips_core.LPIPS` with linear layers. Its trunk decides the mode:
            frozen ImageNet trunk -> 'lin', ``pnet_tune=True`` -> 'tune', ``pnet_rand=True``
            -> 'scratch'.
        data_module: an ``LPIPSDataModule`` (this module's or the package's) of 2AFC data.
            Training uses its train set (its flips become ``TrainConfig.flip``), validation
            its val set, :meth:`evaluate` its test set.
        learning_rate: base learning rate (reference: 1e-4).
        weight_decay: L2 penalty of the optimiser.
        optimizer_type: 'adam' (reference, beta1 0.5), 'adamw' or 'sgd'.
        scheduler_type: 'linear' (reference: constant, then linear decay over the last
            half), 'cosine', 'step', 'plateau' or None/'constant'.
        out_dir: run folder for checkpoints, history and TensorBoard logs (None: nothing on disk).
        config: any other :class:`~lpips_core.train.TrainConfig` field (``fast``, ``seed``,
            ``device``, ``cache_dir``, ``progress``, ``loss``, ...). ``fast`` defaults to True
            in lin mode (the exact feature-cached path).
    """

    def __init__(
        self,
        model: LPIPS,
        data_module: _data.LPIPSDataModule,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.0,
        optimizer_type: str = "adam",
        scheduler_type: str | None = "linear",
        out_dir: str | os.PathLike | None = None,
        **config: Any,
    ):
        if not getattr(model, "lpips", False):
            raise ValueError("LPIPSTrainer needs a model with linear layers (lpips=True)")
        if str(scheduler_type).lower() not in {str(k).lower() for k in _SCHEDULES}:
            raise ValueError(f"scheduler_type={scheduler_type!r}: choose linear, cosine, step, plateau or None")
        self.model = model
        self.data_module = data_module
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.optimizer_type = str(optimizer_type).lower()
        self.scheduler_type = _SCHEDULES[None if scheduler_type is None else str(scheduler_type).lower()]
        self.config = dict(config)
        self.trainer = None  # the lpips_core.train.Trainer of the last train() call
        self.history: dict[str, list] = {}

    # ------------------------------------------------------------------ pieces
    def _mode(self) -> str:
        return "scratch" if self.model.pnet_rand else "tune" if self.model.pnet_tune else "lin"

    def _datasets(self):
        dm = self.data_module.setup()
        train, flip = dm.train_dataset, False
        if isinstance(train, _data.FlipAugment):  # the trainer flips whole triplets itself (and caches both)
            train, flip = train.dataset, True
        val = dm.val_dataset if dm.val_dataset is not None and len(dm.val_dataset) else None
        return train, val, flip

    def _build(self, epochs: int, val_every: int = 1, patience: int | None = None) -> Trainer:
        train, val, flip = self._datasets()
        mode = self._mode()
        fields = dict(
            net=self.model.pnet_type,
            version=self.model.version,
            mode=mode,
            use_dropout=any(isinstance(m, nn.Dropout) for m in self.model.lins.modules()),
            optimizer=self.optimizer_type,
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            schedule=self.scheduler_type,
            batch_size=self.data_module.batch_size,
            epochs=epochs,
            val_every=val_every,
            patience=patience,
            flip=flip,
            fast=mode == "lin",
            seed=getattr(self.data_module, "seed", 0),
            device=str(_model_device(self.model)),
        )
        fields.update(self.config)
        trainer = Trainer(TrainConfig(**fields), train, val, out_dir=self.out_dir)
        trainer.model.load_state_dict(self.model.state_dict())  # start from the given model's weights
        return trainer

    # ------------------------------------------------------------------ the design's methods
    def train(
        self,
        num_epochs: int = 10,
        validate_every: int = 1,
        save_every: int = 1,
        early_stopping_patience: int | None = None,
    ) -> dict[str, list]:
        """Train ``num_epochs`` epochs (fewer with early stopping); ``model`` ends with the final weights.

        Args:
            num_epochs: epochs (with the 'linear' schedule the last half decay to 0).
            validate_every: validation 2AFC every N epochs (and after the last).
            save_every: accepted for the design's signature; ``latest.pt`` is written after
                every epoch anyway (and ``best.pt`` at each improvement) when ``out_dir`` is set.
            early_stopping_patience: stop after this many validations without improvement
                (None: never).
        Returns:
            the history, one list per column: ``epoch``, ``train_loss``, ``train_accuracy``
            and ``val_accuracy`` (2AFC agreement in [0, 1]; None where not validated),
            ``lr``, ``seconds`` (cumulative).
        """
        if save_every < 1:
            raise ValueError(f"save_every={save_every}: must be >= 1")
        self.trainer = self._build(num_epochs, validate_every, early_stopping_patience)
        rows = self.trainer.fit()
        self.model.load_state_dict(self.trainer.model.state_dict())
        names = {"train_2afc": "train_accuracy", "val_2afc": "val_accuracy"}
        self.history = {names.get(k, k): [r[k] for r in rows] for k in (rows[0] if rows else [])}
        return self.history

    def evaluate(self, dataset=None) -> dict:
        """2AFC agreement of ``model`` on the data module's test set (its val set when there is no test set).

        Returns:
            {'accuracy': 2AFC score in [0, 1], 'split': 'test' or 'val', 'n_triplets',
            'd0', 'd1', 'judge': (N,) arrays in dataset order}.
        """
        split = "given"
        if dataset is None:
            dm = self.data_module.setup()
            dataset, split = dm.test_dataset, "test"
            if dataset is None or len(dataset) == 0:
                dataset, split = dm.val_dataset, "val"
            if dataset is None or len(dataset) == 0:
                raise ValueError("the data module has neither a test nor a validation set to evaluate on")
        out = self._build(1).evaluate(dataset)
        return {
            "accuracy": out["score"],
            "split": split,
            "n_triplets": int(len(out["judge"])),
            "d0": out["d0"],
            "d1": out["d1"],
            "judge": out["judge"],
        }


def create_lpips_trainer(
    backbone: str = "alexnet",
    data_dir: str | os.PathLike = "data/mini_bapps",
    batch_size: int = 50,
    learning_rate: float = 1e-4,
    experiment_name: str = "lpips_experiment",
    runs_dir: str | os.PathLike = "runs",
    **config: Any,
) -> LPIPSTrainer:
    """A lin-mode :class:`LPIPSTrainer` for ``backbone`` on ``data_dir``, writing to ``runs/<experiment_name>``.

    The model starts as the reference's training does: ImageNet trunk, randomly
    initialised linear layers (``create_lpips_model(backbone, pretrained=False)``).
    ``config`` passes :class:`~lpips_core.train.TrainConfig` fields (and
    ``weight_decay``, ``optimizer_type``, ``scheduler_type``) on to the trainer.
    """
    model = create_lpips_model(backbone, pretrained=False)
    dm = LPIPSDataModule(data_dir, batch_size=batch_size)
    return LPIPSTrainer(model, dm, learning_rate=learning_rate, out_dir=Path(runs_dir) / experiment_name, **config)


# =========================================================================== evaluation
def _flat_correlations(c: Mapping) -> dict:
    """{'pearson': {'r', 'p'}, ...} -> {'pearson_r', 'pearson_p', ..., 'n'}."""
    out = {f"{kind}_{k}": c[kind][k] for kind in ("pearson", "spearman", "kendall") for k in ("r", "p")}
    out["n"] = c.get("n")
    return out


def _nested_correlations(c: Mapping) -> dict:
    """Either correlation layout -> {'pearson': {'r'}, 'spearman': {'r'}, 'kendall': {'r'}}."""
    if "pearson" in c:
        return {k: dict(c[k]) for k in ("pearson", "spearman", "kendall")}
    return {k: {"r": c[f"{k}_r"], "p": c.get(f"{k}_p")} for k in ("pearson", "spearman", "kendall")}


class LPIPSEvaluator:
    """Score a model (and the traditional metrics beside it) on 2AFC judgments.

    Args:
        model: an :class:`~lpips_core.LPIPS` model (left as it was: mode and
            ``requires_grad`` are restored after each evaluation).
        traditional: other metrics scored in the same pass (names of
            :func:`lpips_core.eval.make_distance`).
        n_resamples: bootstrap resamples for the 95% intervals.
        device: where to compute (default: the model's device).
    """

    def __init__(
        self,
        model: LPIPS,
        traditional: Sequence[str] = ("l2", "l1", "ssim", "psnr"),
        n_resamples: int = 1000,
        device: str | torch.device | None = None,
    ):
        self.model = model
        self.traditional = tuple(traditional)
        self.n_resamples = n_resamples
        self.device = torch.device(device) if device is not None else _model_device(model)

    def evaluate_2afc_dataset(self, loader, progress: bool = True) -> dict:
        """2AFC accuracy and judgment correlations of the model and the traditional metrics.

        Args:
            loader: a DataLoader (or dataset) of 2AFC items ``{'ref','p0','p1','judge',...}``.
        Returns:
            ``accuracy`` (the model's 2AFC score over all triplets, in [0, 1]),
            ``accuracy_ci`` (95% bootstrap interval), ``n_triplets``,
            ``scores`` ({metric: 2AFC score}; the model is 'lpips'),
            ``per_subset`` ({metric: {subset: {'score', 'ci', 'n'}, 'mean': ...}}),
            ``correlations`` ({metric: {'pearson_r', 'pearson_p', 'spearman_r',
            'spearman_p', 'kendall_r', 'kendall_p', 'n'}}: correlation of ``d0 - d1``
            with the judgment, positive when the metric agrees; PSNR and SSIM enter
            as distances, -PSNR and 1 - SSIM), and ``distances`` (the
            :class:`lpips_core.eval.TwoAFCDistances`).
        """
        grads = [p.requires_grad for p in self.model.parameters()]
        was_training = self.model.training
        try:
            fns = {"lpips": LPIPSDistance(self.model, name="lpips", device=self.device)}
            fns.update({m: make_distance(m, device=self.device) for m in self.traditional})
            res = collect_2afc(fns, loader, device=self.device, progress=progress)
        finally:
            for p, g in zip(self.model.parameters(), grads):
                p.requires_grad_(g)
            self.model.train(was_training)
        per = score_2afc_results(res, n_resamples=self.n_resamples)
        scores = {m: score_2afc(res.d0[m], res.d1[m], res.judge) for m in res.metrics}
        ci = bootstrap_ci(twoafc_scores(res.d0["lpips"], res.d1["lpips"], res.judge), n_resamples=self.n_resamples)
        corrs = {m: _flat_correlations(c) for m, c in judgment_correlations(res).items()}
        return {
            "accuracy": scores["lpips"],
            "accuracy_ci": tuple(float(v) for v in ci),
            "n_triplets": int(len(res.judge)),
            "scores": scores,
            "per_subset": per,
            "correlations": corrs,
            "distances": res,
        }


class LPIPSVisualizer:
    """The design document's plotting helper, drawing with :mod:`lpips_core.eval.plots`."""

    def plot_correlation_comparison(
        self,
        results: Mapping,
        save_path: str | os.PathLike = "correlation_comparison.png",
        title: str = "Correlation of d0 - d1 with the judgment",
        note: str = "",
    ) -> Path:
        """Pearson, Spearman and Kendall correlation per metric, as grouped bars.

        Args:
            results: the output of :meth:`LPIPSEvaluator.evaluate_2afc_dataset`, or its
                ``correlations`` ({metric: {'pearson_r', ...}}), or
                :func:`lpips_core.eval.judgment_correlations` output.
            save_path: PNG to write (atomically).
            note: footnote (say where the judgments come from).
        Returns:
            the path written.
        """
        corrs = results.get("correlations", results)
        nested = {m: _nested_correlations(c) for m, c in corrs.items()}
        plot_correlation_bars(nested, save_path, note=note, title=title)
        return Path(save_path)


# =========================================================================== production
class ProductionLPIPS(_apps.ProductionLPIPS):
    """:class:`lpips_core.apps.ProductionLPIPS` with the design document's arguments.

    Args:
        model_path: trained checkpoint or linear-weights file (``.pth``/``.pt``/``.safetensors``,
            see :func:`lpips_core.model.load_lpips_checkpoint`); None: official weights of ``net``.
        device: 'auto' (GPU when available), 'cpu', 'cuda', ...
        net, version, batch_size: as the package's class.

    ``metric(img1, img2)`` on tensors ((3, H, W) or (N, 3, H, W) in [-1, 1];
    ``normalize=True`` for [0, 1]), paths, uint8 arrays or PIL images.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        device: str | torch.device | None = "auto",
        net: str = "alex",
        version: str = "0.1",
        batch_size: int = 32,
    ):
        super().__init__(net=net, version=version, checkpoint=model_path, device=device, batch_size=batch_size)


# =========================================================================== main.py
MODES = ("train", "evaluate", "compare", "demo", "analyze")
DEFAULT_OUTPUT = {
    "train": "runs/{backbone}_lin",
    "evaluate": "eval_results",
    "compare": "compare_results",
    "demo": "demo_results",
    "analyze": "analysis",
}


def _design_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py",
        description="The design document's command line; "
        "forwards to lpips-core (printed before it runs). Unknown options are "
        "passed on to the lpips-core command.",
    )
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--data_dir", default=None, help="dataset folder (BAPPS layout, e.g. data/mini_bapps)")
    p.add_argument("--backbone", default="alexnet", help="alexnet|vgg|squeezenet (or alex, vgg16, squeeze)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (train, demo)")
    p.add_argument("--model_path", default=None, help="trained weights (evaluate, compare)")
    p.add_argument("--output_dir", default=None, help="output folder (default depends on --mode)")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--learning_rate", type=float, default=None, help="train only")
    return p


def main_argv(argv: Sequence[str] | None = None) -> list[str]:
    """Translate a design-document command line (``main.py`` options) into ``lpips-core`` arguments.

    ======================  ==============================================================
    ``--mode``              ``lpips-core`` command
    ======================  ==============================================================
    train                   ``train --data DATA --net NET [--epochs N] --out OUTPUT``
    evaluate                ``evaluate --data DATA --model official|MODEL_PATH --net NET -o OUTPUT``
    compare                 ``compare-models --data DATA [--checkpoint MODEL_PATH] -o OUTPUT``
    demo                    ``demo -o OUTPUT [--data DATA] --net NET [--epochs N]``
    analyze                 ``analyze DATA -o OUTPUT``
    ======================  ==============================================================

    Raises:
        SystemExit (status 2, argparse's message) for a missing ``--data_dir`` or a bad option.
    """
    parser = _design_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        net = canonical_net(args.backbone)
    except ValueError as exc:
        parser.error(f"--backbone: {exc}")
    if args.data_dir is None and args.mode != "demo":
        parser.error(f"--mode {args.mode} needs --data_dir (a dataset folder such as data/mini_bapps)")
    out = args.output_dir or DEFAULT_OUTPUT[args.mode].format(backbone=net)
    batch = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    epochs = ["--epochs", str(args.epochs)] if args.epochs else []
    if args.learning_rate is not None and args.mode != "train":
        parser.error("--learning_rate applies to --mode train only")
    if args.mode == "train":
        cmd = ["train", "--data", args.data_dir, "--net", net, *epochs, *batch, "--out", out]
        if args.learning_rate is not None:
            cmd += ["--lr", str(args.learning_rate)]
    elif args.mode == "evaluate":
        cmd = [
            "evaluate",
            "--data",
            args.data_dir,
            "--model",
            args.model_path or "official",
            "--net",
            net,
            *batch,
            "-o",
            out,
        ]
    elif args.mode == "compare":
        cmd = ["compare-models", "--data", args.data_dir, *batch, "-o", out]
        if args.model_path:
            cmd += ["--checkpoint", args.model_path]
    elif args.mode == "demo":
        cmd = ["demo", "-o", out, "--net", net, *epochs] + (["--data", args.data_dir] if args.data_dir else [])
    else:
        cmd = ["analyze", args.data_dir, "-o", out]
    return cmd + list(extra)


def main(argv: Sequence[str] | None = None) -> int:
    """``python main.py --mode ...``: print the ``lpips-core`` command, then run it."""
    cmd = main_argv(argv)
    print("lpips-core " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
    return cli_main(cmd)
