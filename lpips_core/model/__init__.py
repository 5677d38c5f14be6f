"""The model layer: the network table, trunks, weights, input checks, kernels, LPIPS and its export.

Imports point one way inside it::

    nets -> weights -> trunk ----------------.
    nets -> checks                            \\
    kernels -> scriptable, fast -> reuse ----> lpips -> functional, loading, export
"""
from .checks import InputRangeWarning
from .kernels import normalize_tensor
from .lpips import LPIPS, NetLinLayer, ScalingLayer
from .functional import distance
from .loading import load_lpips_checkpoint
from .nets import MIN_INPUT_SIZE, NETS, canonical_net
from .trunk import Trunk
from .weights import WeightsError

__all__ = ["LPIPS", "NetLinLayer", "ScalingLayer", "Trunk", "distance", "normalize_tensor",
           "load_lpips_checkpoint", "InputRangeWarning", "WeightsError", "NETS", "MIN_INPUT_SIZE",
           "canonical_net"]
