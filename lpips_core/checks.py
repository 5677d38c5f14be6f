"""Input validation for every public entry point, in one place.

The reference package trusts its inputs; most LPIPS bug reports are about what
happens when that trust is misplaced ([0,1] images passed as [-1,1], grayscale
images, mismatched sizes, tiny crops). Each check here turns such a case into a
clear error or one warning.
"""
from __future__ import annotations

import warnings

import torch

from .backbones import MIN_INPUT_SIZE


class InputRangeWarning(UserWarning):
    """Image values fall outside the range the model expects."""


def as_image_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` as a float (N, 3, H, W) batch, or raise a clear error.

    Accepts (C, H, W) (batched to N=1) and (N, C, H, W), with C = 3 (RGB) or 1
    (grayscale, repeated to 3 channels). RGBA is rejected because silently
    dropping alpha changes what is compared.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 3, H, W), got "
                        f"{type(x).__name__}; convert numpy images with lpips_core.im2tensor")
    if not (x.is_floating_point()):
        raise TypeError(f"{name} has dtype {x.dtype}; LPIPS needs floating-point images in "
                        f"[-1, 1]. For uint8 images use lpips_core.im2tensor(img) or "
                        f"x.float() / 127.5 - 1")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (N, 3, H, W) or (3, H, W)")
    channels = x.shape[1]
    if channels == 1:
        x = x.expand(-1, 3, -1, -1)
    elif channels == 4:
        raise ValueError(f"{name} has 4 channels (RGBA?); LPIPS compares RGB images. "
                         f"Drop the alpha channel with {name}[:, :3] or composite it first")
    elif channels != 3:
        raise ValueError(f"{name} has {channels} channels (shape {tuple(x.shape)}); expected 3 "
                         f"(RGB) or 1 (grayscale) in dimension 1 of (N, C, H, W)")
    return x


def check_pair(in0: torch.Tensor, in1: torch.Tensor, net: str) -> None:
    """Raise if the pair cannot be compared: shapes, device, size, finiteness."""
    if in0.shape[1:] != in1.shape[1:] or (in0.shape[0] != in1.shape[0]
                                          and 1 not in (in0.shape[0], in1.shape[0])):
        raise ValueError(f"in0 has shape {tuple(in0.shape)} and in1 has shape "
                         f"{tuple(in1.shape)}; they must match (a batch of 1 may be "
                         f"compared against a batch of N)")
    if in0.device != in1.device:
        raise ValueError(f"in0 is on {in0.device} and in1 on {in1.device}; move both to one device")
    h, w = in0.shape[-2:]
    low = MIN_INPUT_SIZE[net]
    if min(h, w) < low:
        raise ValueError(f"images of {h}x{w} pixels are too small for net='{net}': each side "
                         f"must be at least {low} pixels")
    for name, x in (("in0", in0), ("in1", in1)):
        if x.numel() and not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or Inf values")


def out_of_range(x: torch.Tensor, normalize: bool, tol: float = 1e-3) -> bool:
    """True when ``x`` leaves [-1, 1] (or [0, 1] with ``normalize=True``) by more than ``tol``."""
    if x.numel() == 0:
        return False
    low = 0.0 if normalize else -1.0
    return bool(x.min() < low - tol or x.max() > 1.0 + tol)


def warn_range(normalize: bool, lo: float, hi: float) -> None:
    if normalize:
        msg = (f"LPIPS got images with values in [{lo:.3g}, {hi:.3g}] while normalize=True "
               f"expects [0, 1]. Images already in [-1, 1] should use normalize=False; "
               f"0-255 images should be divided by 255 first")
    else:
        msg = (f"LPIPS got images with values in [{lo:.3g}, {hi:.3g}] but expects [-1, 1]. "
               f"For 0-255 images use lpips_core.im2tensor or x / 127.5 - 1"
               + ("; for [0, 1] images pass normalize=True" if lo >= 0 else ""))
    warnings.warn(msg, InputRangeWarning, stacklevel=4)

