"""lpips_core: an exact, offline, fast implementation of LPIPS (Zhang et al., CVPR 2018).

Layers, each importing only from itself and the ones below it (``make check`` runs the
import-linter contract in ``pyproject.toml`` that keeps it so)::

    cli, design_api          the command line; the design document's names (lpips_core.design_api)
    course, studies          the course's helpers and studies (calibration on LIVE, ...)
    apps, demo               applications: ProductionLPIPS, compression, diversity; the demo run
    train                    TrainConfig, Trainer, the fast path, checkpoints, torchrun
    eval                     distance functions, collection, scores, statistics, reports, plots
    data                     images, judgment datasets and formats, the mini set, BAPPS
    model                    the network table, trunks, weights, checks, kernels, LPIPS, export
    files, progress          atomic file writing; the progress bar

The names below are loaded on first use (PEP 562): ``import lpips_core`` costs little
more than ``import torch``, and a process that computes a distance never loads the
training, evaluation or plotting stacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from .version import __version__

#: Public name -> the module that owns it.
_EXPORTS = {
    "LPIPS": ".model",
    "Trunk": ".model",
    "distance": ".model",
    "normalize_tensor": ".model",
    "load_image": ".data",
    "load_tensor": ".data",
    "im2tensor": ".data",
    "tensor2im": ".data",
    "TwoAFCDataset": ".data",
    "JNDDataset": ".data",
    "LPIPSDataModule": ".data",
    "ProductionLPIPS": ".apps",
    "TraditionalMetrics": ".eval",
    "TrainConfig": ".train",
    "Trainer": ".train",
}

__all__ = [
    "LPIPS",
    "Trunk",
    "distance",
    "normalize_tensor",
    "load_image",
    "load_tensor",
    "im2tensor",
    "tensor2im",
    "__version__",
    "TwoAFCDataset",
    "JNDDataset",
    "LPIPSDataModule",
    "ProductionLPIPS",
    "TraditionalMetrics",
    "TrainConfig",
    "Trainer",
]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ loads them
    from .apps import ProductionLPIPS
    from .data import JNDDataset, LPIPSDataModule, TwoAFCDataset, im2tensor, load_image, load_tensor, tensor2im
    from .eval import TraditionalMetrics
    from .model import LPIPS, Trunk, distance, normalize_tensor
    from .train import TrainConfig, Trainer


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
