"""ImageNet trunks (AlexNet, VGG16, SqueezeNet 1.1) cut into the stages LPIPS taps.

Each trunk is torchvision's ``features`` Sequential split at the ReLU outputs the
LPIPS paper uses (:data:`lpips_core.model.nets.NETS`). Module names (``slice1.0.weight``,
...) match the reference ``lpips`` package, so state dicts move between the two unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from . import kernels as K
from .nets import NETS, canonical_net
from .weights import load_backbone_state

#: A trunk stage whose input map has fewer pixels than this runs in NCHW even on the
#: channels-last path: oneDNN's channels-last convolutions lose on maps a few pixels
#: across. The rule reads the stage's *input*: alex at 64x64 feeds stage 3 a 7x7 map
#: (its max-pool then makes the 3x3 its convolution sees), so stages 4-5 run in NCHW;
#: a 128-image trunk call took 40.3 ms all channels-last, 36.2 ms with NCHW on small
#: maps, on 2 CPU cores.
SMALL_MAP_PIXELS = 16


def stage_format(x: torch.Tensor) -> torch.memory_format:
    """Memory format a trunk stage should run in, given its input ``x`` (N, C, h, w)."""
    if K.is_channels_last(x) and x.shape[2] * x.shape[3] >= SMALL_MAP_PIXELS:
        return torch.channels_last
    return torch.contiguous_format


def match_stage_layout(stage: nn.Module, fmt: torch.memory_format) -> None:
    """Store a frozen stage's convolution weights in memory format ``fmt``.

    oneDNN otherwise copies every weight into the activations' layout on every
    call (about 1 ms per alex forward on CPU). Values are unchanged; the
    state dict's keys and values are the same. A trainable trunk is left alone.
    """
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    if all(c.weight.is_contiguous(memory_format=fmt) for c in convs):
        return
    if any(c.weight.requires_grad for c in convs):
        return
    with torch.inference_mode(False), torch.no_grad():
        for c in convs:
            c.weight.data = c.weight.data.contiguous(memory_format=fmt)


class Trunk(nn.Module):
    """A backbone that returns its activations at the LPIPS taps.

    Args:
        net: 'alex', 'vgg' or 'squeeze' (or 'alexnet', 'vgg16', 'squeezenet').
        pretrained: load ImageNet weights (offline sources, see ``lpips_core.model.weights``);
            False leaves torchvision's random initialisation.
        requires_grad: train the trunk (``pnet_tune`` / scratch training).

    Shapes:
        input (N, 3, H, W), already shifted/scaled; output: a list of
        (N, C_k, H_k, W_k) tensors, one per tap (5 for alex/vgg, 7 for squeeze).
    """

    def __init__(self, net: str = "alex", pretrained: bool = True, requires_grad: bool = False):
        super().__init__()
        self.net = canonical_net(net)
        spec = NETS[self.net]
        # pretrained: every parameter is overwritten by the loaded weights, so none is initialised
        features = spec.features(initialise=not pretrained)
        if pretrained:
            features.load_state_dict(load_backbone_state(self.net))
        self.channels: list[int] = list(spec.channels)
        self.tap_names: list[str] = list(spec.taps)
        self.N_slices = len(spec.channels)
        for k in range(self.N_slices):
            stage = nn.Sequential()
            for idx in range(spec.bounds[k], spec.bounds[k + 1]):
                stage.add_module(str(idx), features[idx])
            self.add_module(f"slice{k + 1}", stage)
        for p in self.parameters():
            p.requires_grad_(requires_grad)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"slice{k + 1}") for k in range(self.N_slices)]

    def iter_taps(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> Iterator[torch.Tensor]:
        """Yield the taps one stage at a time, each stage in the memory format it runs fastest in.

        A caller that uses each tap before asking for the next (the LPIPS
        forward computes that layer's distance) never holds more than one
        stage's activations, which is what keeps large images in memory.
        A channels-last input stays channels-last while the maps are large
        (:data:`SMALL_MAP_PIXELS`); ``dtype`` other than float32 runs each stage
        under autocast (so the arithmetic between stages stays in float32).

        Args:
            x: (N, 3, H, W) trunk input (already shifted/scaled); any memory format.
        Yields:
            (N, C_k, H_k, W_k) activations at tap k.
        """
        if K.is_traced() or x.dim() != 4:  # a traced graph gets the plain computation
            for stage in self.stages:
                x = stage(x)
                yield x
            return
        for stage in self.stages:
            fmt = stage_format(x)
            match_stage_layout(stage, fmt)
            x = x.contiguous(memory_format=fmt)
            if dtype == torch.float32:
                x = stage(x)
            else:
                with torch.autocast(x.device.type, dtype=dtype):
                    x = stage(x)
            yield x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for stage in self.stages:
            x = stage(x)
            taps.append(x)
        return taps
