"""Functional LPIPS: ``distance(img0, img1)`` with a cached, frozen model per (net, version, device)."""

from __future__ import annotations

import functools

import torch

from . import checks, masks
from .lpips import LPIPS
from .nets import canonical_net
from .precision import parse_precision
from .ranges import RangeSpec
from .versions import canonical_version


@functools.lru_cache(maxsize=8)
def _cached_model(net: str, version: str, device: str, precision: str = "fp32") -> LPIPS:
    # Reused by later calls that may need input gradients: never build it as
    # inference tensors, even when the first call comes from inside torch.inference_mode.
    with torch.inference_mode(False):
        return LPIPS(net=net, version=version, precision=precision).to(device).eval().requires_grad_(False)


def distance(
    img0: torch.Tensor,
    img1: torch.Tensor,
    net: str = "alex",
    version: str = "0.1",
    normalize: bool = False,
    device: str | torch.device | None = None,
    *,
    input_range: RangeSpec | None = None,
    mask: torch.Tensor | None = None,
    mask_mode: str = "hard",
    precision: str = "fp32",
) -> torch.Tensor:
    """Functional LPIPS: ``(N,)`` distances between two image batches.

    The model is built once per (net, version, device) and reused; its weights
    are frozen, so gradients flow only to inputs that require them.

    Args:
        img0, img1: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with
            ``normalize``, or in ``input_range``).
        net: 'alex', 'vgg' or 'squeeze'.
        device: where to run (both images are moved there); defaults to ``img0``'s device.
        input_range: '-1,1' (default; all-non-negative inputs then warn once per call
            site), '0,1' (= ``normalize=True``) or '0,255' (8-bit, uint8 accepted).
        mask, mask_mode: masked LPIPS (see :meth:`LPIPS.forward` and :mod:`.masks`).
        precision: 'fp32' (exact, default), 'bf16' or 'int8' (see :mod:`.precision`; each
            (net, version, device, precision) has its own cached model).
    Returns:
        (N,) tensor of distances.
    Raises:
        TypeError, ValueError: bad images (naming ``img0``/``img1``) or an unusable ``device``.
    """
    net = canonical_net(net)
    for name, x in (("img0", img0), ("img1", img1)):  # before moving: type, shape, no 'meta' tensors
        if isinstance(x, torch.Tensor) and not x.is_floating_point() and input_range is not None:
            continue  # integer images are checked after the '0,255' conversion
        checks.check_device(checks.as_image_batch(x, name), name)
    device = checks.as_device(device) if device is not None else img0.device
    model = _cached_model(net, canonical_version(version), str(device), parse_precision(precision))
    pair = ("img0", img0.to(device)), ("img1", img1.to(device))
    (img0, img1), normalize = model.check_inputs(*pair, input_range=input_range, normalize=normalize)
    if mask is not None:
        return masks.masked_distance(model, img0, img1, mask, mask_mode, normalize)[0].flatten()
    return model.compare(img0, img1, normalize, keep_layers=False)[0].flatten()
