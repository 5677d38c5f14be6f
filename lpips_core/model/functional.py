"""Functional LPIPS: ``distance(img0, img1)`` with a cached, frozen model per (net, version, device)."""
from __future__ import annotations

import functools

import torch

from . import checks
from .lpips import LPIPS
from .nets import canonical_net


@functools.lru_cache(maxsize=8)
def _cached_model(net: str, version: str, device: str) -> LPIPS:
    # Reused by later calls that may need input gradients: never build it as
    # inference tensors, even when the first call comes from inside torch.inference_mode.
    with torch.inference_mode(False):
        return LPIPS(net=net, version=version).to(device).eval().requires_grad_(False)


def distance(img0: torch.Tensor, img1: torch.Tensor, net: str = "alex", version: str = "0.1",
             normalize: bool = False, device: str | torch.device | None = None) -> torch.Tensor:
    """Functional LPIPS: ``(N,)`` distances between two image batches.

    The model is built once per (net, version, device) and reused; its weights
    are frozen, so gradients flow only to inputs that require them.

    Args:
        img0, img1: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
        net: 'alex', 'vgg' or 'squeeze'.
        device: where to run (both images are moved there); defaults to ``img0``'s device.
    Returns:
        (N,) tensor of distances.
    Raises:
        TypeError, ValueError: bad images (naming ``img0``/``img1``) or an unusable ``device``.
    """
    net = canonical_net(net)
    for name, x in (("img0", img0), ("img1", img1)):  # before moving: type, shape, no 'meta' tensors
        checks.check_device(checks.as_image_batch(x, name), name)
    device = checks.as_device(device) if device is not None else img0.device
    model = _cached_model(net, str(version).lstrip("v"), str(device))
    img0, img1 = model._check_inputs(normalize, ("img0", img0.to(device)), ("img1", img1.to(device)))
    return model._checked_forward(img0, img1, False, normalize).flatten()
