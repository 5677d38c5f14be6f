"""The model layer: the network table, trunks, weights, input checks, kernels, LPIPS and its export.

Imports point one way inside it (each module uses only those above it)::

    nets, kernels, ranges           the network table; the distance's functional kernels; input ranges
    weights, checks                 weight sources; input checks
    trunk                           the trunk and its taps
    scriptable, fast, reuse, masks  TorchScript twin; inference routes; feature reuse; masked LPIPS
    lpips                           LPIPS (forward, the reference route)
    functional, loading, export     distance(); models from files; ONNX and int8
"""

from .checks import InputRangeWarning, ZeroOneRangeWarning
from .functional import distance
from .kernels import normalize_tensor
from .loading import load_lpips_checkpoint
from .lpips import LPIPS, NetLinLayer
from .masks import MaskedLayerWarning
from .nets import MIN_INPUT_SIZE, NETS, canonical_net
from .ranges import InputRange, parse_input_range
from .trunk import ScalingLayer, Trunk
from .weights import WeightsError

__all__ = [
    "LPIPS",
    "NetLinLayer",
    "ScalingLayer",
    "Trunk",
    "distance",
    "normalize_tensor",
    "load_lpips_checkpoint",
    "InputRangeWarning",
    "ZeroOneRangeWarning",
    "MaskedLayerWarning",
    "InputRange",
    "parse_input_range",
    "WeightsError",
    "NETS",
    "MIN_INPUT_SIZE",
    "canonical_net",
]
