"""ImageNet trunks (AlexNet, VGG16, SqueezeNet 1.1) cut into the stages LPIPS taps, and their input.

:func:`scale_input` is the one input scaling of every route (the eager model's reference
and fast paths, its TorchScript twin and the reference-compatible ``ScalingLayer``).
Each trunk is torchvision's ``features`` Sequential split at the ReLU outputs the
LPIPS paper uses (:data:`lpips_core.model.nets.NETS`). Module names (``slice1.0.weight``,
...) match the reference ``lpips`` package, so state dicts move between the two unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Optional

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


def scale_input(
    x: torch.Tensor,
    normalize: bool,
    shift: Optional[torch.Tensor],
    scale: Optional[torch.Tensor],
    in_place: bool = False,
) -> torch.Tensor:
    """Images -> trunk input: ``2x - 1`` when ``normalize``, then ``(x - shift) / scale`` (v0.1).

    TorchScript compiles this (the twin of :mod:`.scriptable` calls it), hence ``Optional``.

    Args:
        x: (N, 3, H, W) float images in [-1, 1] ([0, 1] with ``normalize``).
        normalize: map [0, 1] to [-1, 1] first.
        shift, scale: (1, 3, 1, 1) ImageNet statistics (``ScalingLayer``'s buffers), or None
            for v0.0 (no scaling).
        in_place: overwrite ``x``, a buffer the caller owns, outside autograd: the same
            element-wise operations, so the same values, without new tensors.
    Returns:
        (N, 3, H, W): about [-2.1, 2.6] with the statistics, [-1, 1] without.
    """
    if not in_place:
        if normalize:  # [0, 1] -> [-1, 1]
            x = 2 * x - 1
        if shift is not None and scale is not None:
            x = (x - shift) / scale
        return x
    if normalize:
        x.mul_(2).sub_(1)
    if shift is not None and scale is not None:
        if K.is_channels_last(x) and x.shape[1] > 1:
            # NHWC memory is N*H rows of W*C values: a (1, C, 1, 1) broadcast there has an inner
            # loop of C = 3 elements (6x slower on a CPU); per-row tiled constants give the same
            # element-wise operations on long contiguous rows.
            n, c, h, w = x.shape
            rows = x.permute(0, 2, 3, 1).view(n * h, w * c)
            rows.sub_(shift.view(c).repeat(w)).div_(scale.view(c).repeat(w))
        else:
            x.sub_(shift).div_(scale)
    return x


class ScalingLayer(nn.Module):
    """Map [-1, 1] images to the statistics the ImageNet trunks were trained on (v0.1)."""

    shift: torch.Tensor  # (1, 3, 1, 1) buffers, registered in __init__
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale_input(x, False, self.shift, self.scale)


def trunk_input(
    images: Sequence[torch.Tensor],
    normalize: bool,
    stats: tuple[torch.Tensor, torch.Tensor] | None,
    dtype: torch.dtype,
    channels_last: bool,
    in_place: bool = False,
) -> torch.Tensor:
    """Image batches -> one trunk input: concatenated along the batch, in ``dtype``, scaled.

    Args:
        images: (N_i, 3, H, W) batches in [-1, 1] ([0, 1] with ``normalize``); any float dtype.
        normalize, stats: as :func:`scale_input` (``stats``: (shift, scale), or None for v0.0).
        dtype: the trunk's input dtype (the scaling buffers' dtype).
        channels_last: the result's memory format.
        in_place: copy the batches into one fresh buffer and scale it there (no autograd):
            no ``cat`` copy and no intermediate tensors; a plain ``copy_`` (which also
            converts dtype and expands grayscale) is ~8x faster than ``sub(..., out=slice)``.
    Returns:
        (sum N_i, 3, H, W) trunk input.
    """
    shift, scale = stats if stats is not None else (None, None)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if not in_place:
        scaled = [scale_input(im.to(dtype), normalize, shift, scale) for im in images]
        return (torch.cat(scaled) if len(scaled) > 1 else scaled[0]).contiguous(memory_format=fmt)
    first = images[0]
    n = sum(im.shape[0] for im in images)
    buf = torch.empty((n, *first.shape[1:]), device=first.device, dtype=dtype, memory_format=fmt)
    start = 0
    for im in images:
        buf[start : start + im.shape[0]].copy_(im)
        start += im.shape[0]
    return scale_input(buf, normalize, shift, scale, in_place=True)


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
