"""lpips_core: an exact, offline, fast implementation of LPIPS (Zhang et al., CVPR 2018).

Layers, each importing only from itself and the ones below it::

    cli, design_api          the command line; the design document's names (lpips_core.design_api)
    apps, demo               applications: ProductionLPIPS, compression, diversity; the demo run
    train                    TrainConfig, Trainer, the fast path, checkpoints, torchrun
    eval                     distance functions, collection, scores, statistics, reports, plots
    data                     images, judgment datasets and formats, the mini set, BAPPS
    model                    the network table, trunks, weights, checks, kernels, LPIPS, export
    files, progress          atomic file writing; the progress bar
"""
from .apps import ProductionLPIPS
from .data import JNDDataset, LPIPSDataModule, TwoAFCDataset, im2tensor, load_image, load_tensor, tensor2im
from .eval import TraditionalMetrics
from .model import LPIPS, Trunk, distance, normalize_tensor
from .train import TrainConfig, Trainer
from .version import __version__

__all__ = ["LPIPS", "Trunk", "distance", "normalize_tensor", "load_image", "load_tensor", "im2tensor",
           "tensor2im", "__version__", "TwoAFCDataset", "JNDDataset", "LPIPSDataModule",
           "ProductionLPIPS", "TraditionalMetrics", "TrainConfig", "Trainer"]
