"""ImageNet trunks (AlexNet, VGG16, SqueezeNet 1.1) cut into the stages LPIPS taps.

Each trunk is torchvision's ``features`` Sequential split at the ReLU outputs the
LPIPS paper uses. Module names (``slice1.0.weight``, ...) match the reference
``lpips`` package, so state dicts move between the two unchanged.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn
import torchvision.models as tvm

from .weights import load_backbone_state

#: net -> (torchvision constructor, stage boundaries inside ``features``, channels per tap)
TRUNKS: dict[str, tuple] = {
    "alex": (tvm.alexnet, [0, 2, 5, 8, 10, 12], [64, 192, 384, 256, 256]),
    "vgg": (tvm.vgg16, [0, 4, 9, 16, 23, 30], [64, 128, 256, 512, 512]),
    "squeeze": (tvm.squeezenet1_1, [0, 2, 5, 8, 10, 11, 12, 13], [64, 128, 256, 384, 384, 512, 512]),
}

#: Tap names, as in the paper and the reference package.
TAP_NAMES = {
    "alex": ["relu1", "relu2", "relu3", "relu4", "relu5"],
    "vgg": ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"],
    "squeeze": ["relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7"],
}

#: Smallest square input (pixels per side) each trunk accepts; smaller inputs
#: shrink a feature map to nothing. Checked by tests/test_checks.py.
MIN_INPUT_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}


def canonical_net(net: str) -> str:
    """Map accepted spellings ('alexnet', 'vgg16', 'squeezenet', ...) to alex/vgg/squeeze."""
    aliases = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg",
               "squeeze": "squeeze", "squeezenet": "squeeze", "squeezenet1_1": "squeeze"}
    key = str(net).lower()
    if key not in aliases:
        raise ValueError(f"net={net!r} is not supported; choose 'alex', 'vgg' or 'squeeze'")
    return aliases[key]


class Trunk(nn.Module):
    """A backbone that returns its activations at the LPIPS taps.

    Args:
        net: 'alex', 'vgg' or 'squeeze'.
        pretrained: load ImageNet weights (offline sources, see ``lpips_core.weights``);
            False leaves torchvision's random initialisation.
        requires_grad: train the trunk (``pnet_tune`` / scratch training).

    Shapes:
        input (N, 3, H, W), already shifted/scaled; output: a list of
        (N, C_k, H_k, W_k) tensors, one per tap (5 for alex/vgg, 7 for squeeze).
    """

    def __init__(self, net: str = "alex", pretrained: bool = True, requires_grad: bool = False):
        super().__init__()
        self.net = canonical_net(net)
        build, bounds, chns = TRUNKS[self.net]
        features = build(weights=None).features
        if pretrained:
            features.load_state_dict(load_backbone_state(self.net))
        self.channels: list[int] = list(chns)
        self.tap_names: list[str] = TAP_NAMES[self.net]
        self.N_slices = len(chns)
        for k in range(self.N_slices):
            stage = nn.Sequential()
            for idx in range(bounds[k], bounds[k + 1]):
                stage.add_module(str(idx), features[idx])
            self.add_module(f"slice{k + 1}", stage)
        for p in self.parameters():
            p.requires_grad_(requires_grad)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"slice{k + 1}") for k in range(self.N_slices)]

    def iter_taps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield the taps one stage at a time.

        A caller that uses each tap before asking for the next (the LPIPS
        forward computes that layer's distance) never holds more than one
        stage's activations, which is what keeps large images in memory.

        Args:
            x: (N, 3, H, W) trunk input (already shifted/scaled); any memory format.
        Yields:
            (N, C_k, H_k, W_k) activations at tap k, in the memory format of the
            computation (channels-last stays channels-last).
        """
        for stage in self.stages:
            x = stage(x)
            yield x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for stage in self.stages:
            x = stage(x)
            taps.append(x)
        return taps
