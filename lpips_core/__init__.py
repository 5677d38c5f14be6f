"""lpips_core: an exact, offline, fast implementation of LPIPS (Zhang et al., CVPR 2018)."""
from .apps import ProductionLPIPS
from .backbones import Trunk
from .baselines import TraditionalMetrics
from .data import JNDDataset, LPIPSDataModule, TwoAFCDataset
# The design document's names (book/design_document.md). Its JNDDataset, LPIPSDataModule and
# ProductionLPIPS signatures live in lpips_core.design_api only: here those names keep their own meaning.
from .design_api import (LPIPSEvaluator, LPIPSFeatureExtractor, LPIPSLinearLayers, LPIPSLoss, LPIPSTrainer,
                         LPIPSVisualizer, create_lpips_model, create_lpips_trainer)
from .images import im2tensor, load_image, load_tensor, tensor2im
from .model import LPIPS, distance, normalize_tensor
from .train import TrainConfig, Trainer

__version__ = "0.1.0"
__all__ = ["LPIPS", "Trunk", "distance", "normalize_tensor", "load_image", "load_tensor", "im2tensor",
           "tensor2im", "__version__", "TwoAFCDataset", "JNDDataset", "LPIPSDataModule",
           "ProductionLPIPS", "TraditionalMetrics", "TrainConfig", "Trainer",
           "create_lpips_model", "LPIPSFeatureExtractor", "LPIPSLinearLayers", "LPIPSLoss",
           "create_lpips_trainer", "LPIPSTrainer", "LPIPSEvaluator", "LPIPSVisualizer"]
