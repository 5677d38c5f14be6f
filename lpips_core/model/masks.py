"""Masked LPIPS: the distance over a region of the image (inpainting, object edits).

Each layer's distance is a mean over the tap's positions. With a mask, the mean
is taken over the positions the mask allows, weighted::

    tap k          (N, C_k, h, w)   unit features of both images, squared difference
    weighted map   (N, h*w)         the 1x1 linear weights summed over channels
    weights        (N, h*w)         one weight per position, from the mask
    layer distance (N, 1, 1, 1)     sum(map * weights) / sum(weights)

``mode='hard'`` (default): a position's weight is the smallest mask value over
its receptive field (:attr:`.nets.Net.receptive_fields`, clipped to the image:
the zero padding holds no pixel). For a {0, 1} mask that keeps exactly the
positions whose receptive field lies entirely inside the mask, so pixels outside
the mask cannot change the distance at all. Deep layers see large windows
(alex relu5: 163 pixels), so a small mask leaves them no position: such a layer
is dropped for that image (it adds 0), with a warning, and the model's
:meth:`~.lpips.LPIPS.signature` lists it.

``mode='soft'``: a position's weight is the mask averaged over the pixels of its
cell (area downsampling to the tap's size). Simpler and never drops a layer,
but a position near the mask's border sees context outside it: the distance
leaks what lies outside the mask.

An all-ones mask gives the unmasked distance in both modes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

from . import kernels as K
from .checks import _user_stacklevel
from .nets import NETS, ReceptiveField
from .steps import LPIPSSteps

__all__ = [
    "MODES",
    "MaskedLayerWarning",
    "MaskReport",
    "check_mask",
    "position_weights",
    "layer_maps",
    "masked_distance",
]

MODES = ("hard", "soft")


class MaskedLayerWarning(UserWarning):
    """A layer had no position inside the mask and was left out of the distance."""


@dataclass(frozen=True)
class MaskReport:
    """What a masked call did: the mode and the taps dropped (for at least one image)."""

    mode: str
    dropped: tuple[str, ...] = ()

    def signature_fields(self) -> list[str]:
        fields = [f"mask:{self.mode}"]
        if self.dropped:
            fields.append(f"dropped:{','.join(self.dropped)}")
        return fields


def check_mask(mask: torch.Tensor, n: int, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """``mask`` as a float (N or 1, 1, H, W) tensor on ``device``, or a clear error.

    Accepts (H, W), (N, H, W), (N, 1, H, W) and (1, 1, H, W); bool, integer or float
    values in [0, 1].
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor of shape (N, 1, H, W), got {type(mask).__name__}")
    m = mask
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]  # (N, H, W) -> (N, 1, H, W)
    if m.dim() != 4 or m.shape[1] != 1 or tuple(m.shape[2:]) != tuple(hw) or m.shape[0] not in (1, n):
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}; expected (N, 1, H, W) = ({n}, 1, {hw[0]}, {hw[1]}) "
            f"or (1, 1, {hw[0]}, {hw[1]}), the images' size"
        )
    m = m.to(device=device, dtype=torch.float32)
    if m.numel() and (not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1):
        raise ValueError("mask values must lie in [0, 1] (1 = compare this pixel, 0 = ignore it)")
    return m


def position_weights(mask: torch.Tensor, rf: ReceptiveField, tap_hw: tuple[int, int], mode: str) -> torch.Tensor:
    """Weight of each tap position, from a (N, 1, H, W) mask in [0, 1].

    Args:
        mask: (N, 1, H, W) float mask.
        rf: the tap's receptive field.
        tap_hw: the tap's (h, w).
        mode: 'hard' (min of the mask over the receptive field, clipped to the image)
            or 'soft' (mask averaged over each cell).
    Returns:
        (N, 1, h, w) weights in [0, 1].
    """
    h, w = tap_hw
    if mode == "soft":
        return F.interpolate(mask, size=(h, w), mode="area")
    H, W = mask.shape[-2:]
    pad = -rf.offset  # >= 0: the first window starts in the padding
    right = max(0, (w - 1) * rf.jump + rf.size - W - pad)
    bottom = max(0, (h - 1) * rf.jump + rf.size - H - pad)
    padded = F.pad(mask, (pad, right, pad, bottom), value=1.0)  # padding is no pixel: never excludes
    eroded = -F.max_pool2d(-padded, kernel_size=rf.size, stride=rf.jump)  # min over each window
    return eroded[..., :h, :w]


def layer_maps(model: LPIPSSteps, in0: torch.Tensor, in1: torch.Tensor, normalize: bool) -> list[torch.Tensor]:
    """Per-layer weighted maps of two checked batches, before any spatial mean.

    The model's steps up to :meth:`~.lpips.LPIPS.weigh`: unit features of both batches,
    their squared difference, the learned 1x1 weights.

    Returns:
        one (N, 1, h_k, w_k) map per tap.
    """
    pairs = model.pair_features(in0, in1, normalize)
    return [model.weigh(k, K.squared_difference(f0, f1)) for k, (f0, f1) in enumerate(pairs)]


def masked_distance(
    model: LPIPSSteps, in0: torch.Tensor, in1: torch.Tensor, mask: torch.Tensor, mode: str, normalize: bool
) -> tuple[torch.Tensor, list[torch.Tensor], MaskReport]:
    """Masked LPIPS of two checked batches (see the module docstring).

    Args:
        model: an :class:`~.lpips.LPIPS` (spatial=False).
        in0, in1: checked (N, 3, H, W) batches (a batch of 1 broadcasts).
        mask: (N, 1, H, W) or (1, 1, H, W) in [0, 1].
        mode: 'hard' or 'soft'.
        normalize: inputs are in [0, 1].
    Returns:
        (total (N, 1, 1, 1), per-layer [(N, 1, 1, 1)], :class:`MaskReport`).
    """
    if mode not in MODES:
        raise ValueError(f"mask_mode={mode!r} is not supported; choose 'hard' (exact) or 'soft'")
    if model.spatial:
        raise ValueError(
            "mask needs spatial=False (a masked distance is one number per image); "
            "multiply the spatial map by the mask instead"
        )
    n = max(in0.shape[0], in1.shape[0])
    m = check_mask(mask, n, cast("tuple[int, int]", tuple(in0.shape[-2:])), in0.device)  # (H, W) of a 4-d batch
    spec = NETS[model.pnet_type]
    grad = torch.is_grad_enabled() and (
        in0.requires_grad or in1.requires_grad or any(p.requires_grad for p in model.parameters())
    )
    with torch.set_grad_enabled(grad):
        maps = layer_maps(model, in0, in1, normalize)
        layers, dropped = [], []
        for k, weighted in enumerate(maps):
            tap_hw = cast("tuple[int, int]", tuple(weighted.shape[-2:]))  # (h, w) of a 4-d map
            wts = position_weights(m, spec.receptive_fields[k], tap_hw, mode)
            wts = wts.expand(weighted.shape[0], -1, -1, -1)
            total_w = wts.sum(dim=(1, 2, 3))  # (N,)
            empty = total_w <= 0
            if bool(empty.any()):
                dropped.append(spec.taps[k])
            num = (weighted * wts).sum(dim=(1, 2, 3))
            layers.append(torch.where(empty, torch.zeros_like(num), num / total_w.clamp(min=1e-12)).view(-1, 1, 1, 1))
    if dropped:
        warnings.warn(
            f"masked LPIPS ({mode}): layer(s) {', '.join(dropped)} of net='{model.pnet_type}' have no "
            f"position whose receptive field lies inside the mask for some image; they add 0 "
            f"to its distance (grow the mask, or use larger images)",
            MaskedLayerWarning,
            stacklevel=_user_stacklevel(),
        )
    return K.sum_layers(layers), layers, MaskReport(mode, tuple(dropped))
