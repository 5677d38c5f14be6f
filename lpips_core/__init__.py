"""lpips_core: an exact, offline, fast implementation of LPIPS (Zhang et al., CVPR 2018)."""
from .apps import ProductionLPIPS
from .backbones import Trunk
from .baselines import TraditionalMetrics
from .data import JNDDataset, LPIPSDataModule, TwoAFCDataset
from .images import im2tensor, load_image, load_tensor, tensor2im
from .model import LPIPS, distance, normalize_tensor
from .train import TrainConfig, Trainer

__version__ = "0.1.0"
__all__ = ["LPIPS", "Trunk", "distance", "normalize_tensor", "load_image", "load_tensor", "im2tensor",
           "tensor2im", "__version__", "TwoAFCDataset", "JNDDataset", "LPIPSDataModule",
           "ProductionLPIPS", "TraditionalMetrics", "TrainConfig", "Trainer"]
