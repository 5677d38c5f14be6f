"""Input validation for every public entry point, in one place.

The reference package trusts its inputs; most LPIPS bug reports are about what
happens when that trust is misplaced ([0,1] images passed as [-1,1], grayscale
images, mismatched sizes, tiny crops). Each check here turns such a case into a
clear error or one warning.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from types import FrameType

import torch

from .nets import MIN_INPUT_SIZE
from .ranges import InputRange


class InputRangeWarning(UserWarning):
    """Image values fall outside the range the model expects."""


class ZeroOneRangeWarning(InputRangeWarning):
    """Every input is non-negative under the default [-1, 1] convention: probably [0, 1] images."""


def as_image_batch(x: object, name: str) -> torch.Tensor:
    """Return ``x`` as a float (N, 3, H, W) batch, or raise a clear error.

    Accepts (C, H, W) (batched to N=1) and (N, C, H, W), with C = 3 (RGB) or 1
    (grayscale, repeated to 3 channels). RGBA is rejected because silently
    dropping alpha changes what is compared.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (N, 3, H, W), got "
            f"{type(x).__name__}; convert numpy images with lpips_core.im2tensor"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} has dtype {x.dtype}; LPIPS needs floating-point images in "
            f"[-1, 1]. For uint8 images pass input_range='0,255', or use "
            f"lpips_core.im2tensor(img) or x.float() / 127.5 - 1"
        )
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (N, 3, H, W) or (3, H, W)")
    channels = x.shape[1]
    if channels == 1:
        x = x.expand(-1, 3, -1, -1)
    elif channels == 4:
        raise ValueError(
            f"{name} has 4 channels (RGBA?); LPIPS compares RGB images. "
            f"Drop the alpha channel with {name}[:, :3] or composite it first"
        )
    elif channels != 3:
        raise ValueError(
            f"{name} has {channels} channels (shape {tuple(x.shape)}); expected 3 "
            f"(RGB) or 1 (grayscale) in dimension 1 of (N, C, H, W)"
        )
    return x


def check_pair(
    in0: torch.Tensor,
    in1: torch.Tensor,
    net: str,
    names: tuple[str, str] = ("in0", "in1"),
    device: torch.device | None = None,
) -> list[tuple[float, float] | None]:
    """Raise if the pair cannot be compared: shapes, device, size, finiteness (in that order).

    Returns:
        [(min, max) of in0, (min, max) of in1] (None for an empty batch), from the
        finiteness check's one pass, for the range warnings.
    """
    n0, n1 = names
    if in0.shape[1:] != in1.shape[1:] or (in0.shape[0] != in1.shape[0] and 1 not in (in0.shape[0], in1.shape[0])):
        raise ValueError(
            f"{n0} has shape {tuple(in0.shape)} and {n1} has shape "
            f"{tuple(in1.shape)}; they must match (a batch of 1 may be "
            f"compared against a batch of N)"
        )
    check_device(in0, n0, device)
    check_device(in1, n1, device)
    if in0.device != in1.device:
        raise ValueError(f"{n0} is on {in0.device} and {n1} on {in1.device}; move both to one device")
    check_size(in0, net, f"{n0} and {n1}" if n0 != n1 else n0)
    r0 = check_finite(in0, n0)
    return [r0, check_finite(in1, n1) if in1 is not in0 else r0]


def check_images_and_ranges(
    named: Sequence[tuple[str, object]], net: str, device: torch.device | None = None
) -> tuple[list[torch.Tensor], list[tuple[float, float] | None]]:
    """Check one image batch or a pair; return them as float (N, 3, H, W) batches and their (min, max).

    The order is fixed so that the most basic problem is the one reported:
    type and shape of each argument -> the two shapes agree -> device ->
    size -> finite values. Range warnings come after all of these (see
    :func:`warn_about_range`), so a NaN/Inf input never also warns.

    Args:
        named: ``[(argument name, value)]``, one or two entries. When one of two
            batches is empty both come back empty (broadcasting 1 against 0 pairs).
        net: canonical net name (for the minimum size).
        device: where the model is (None: not checked).
    Raises:
        TypeError: not a floating-point tensor.
        ValueError: shape, channels, device, size or NaN/Inf, naming the argument.
    """
    xs = [as_image_batch(x, name) for name, x in named]
    names = [name for name, _ in named]
    if len(xs) == 2:
        ranges = check_pair(xs[0], xs[1], net, (names[0], names[1]), device)
        if 0 in (xs[0].shape[0], xs[1].shape[0]):  # a batch of 1 against an empty batch: no pairs
            xs, ranges = [x[:0] for x in xs], [None, None]
    else:
        ranges = check_pair(xs[0], xs[0], net, (names[0], names[0]), device)[:1]
    return xs, ranges


def check_device(x: torch.Tensor, name: str, device: torch.device | None = None) -> None:
    """``x`` must hold data (not a 'meta' tensor) and be on ``device`` (the model's) when given."""
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is a 'meta' tensor (a shape without values); pass real images"
            + (f" on {device}" if device is not None else "")
        )
    if device is not None and x.device != torch.device(device):
        raise ValueError(
            f"{name} is on {x.device} but the model is on {device}; move the images with "
            f"{name}.to('{device}') or the model with model.to('{x.device}')"
        )


def as_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists here, or a ValueError saying what to use."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not a device name; use 'cpu', 'cuda', 'cuda:1', ...") from None
    if dev.type == "meta":
        raise ValueError("device='meta' holds no values; use 'cpu' or 'cuda'")
    if dev.type == "cuda" and (
        not torch.cuda.is_available() or (dev.index is not None and dev.index >= torch.cuda.device_count())
    ):
        raise ValueError(
            f"device={device!r} is not available here ({torch.cuda.device_count()} CUDA device(s)); use device='cpu'"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} is not available here; use device='cpu'")
    return dev


def check_size(x: torch.Tensor, net: str, name: str = "images") -> None:
    """Each side of the images must be at least the net's minimum (:data:`MIN_INPUT_SIZE`)."""
    h, w = x.shape[-2:]
    low = MIN_INPUT_SIZE[net]
    if min(h, w) < low:
        raise ValueError(
            f"{name}: images of {h}x{w} pixels are too small for net='{net}': each side must be at least {low} pixels"
        )


def check_finite(x: torch.Tensor, name: str) -> tuple[float, float] | None:
    """Raise if ``x`` holds NaN or Inf; return its (min, max) as floats (None when empty).

    One min/max pass (NaN propagates into both, +-Inf shows up in one) instead of
    isfinite's four elementwise passes plus a reduction; the range warnings reuse
    the same two numbers, so checking the range costs no further pass.
    """
    if not x.numel():
        return None
    lo_hi = torch.stack(torch.aminmax(x))
    if not torch.isfinite(lo_hi).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    lo, hi = lo_hi.tolist()
    return lo, hi


def warn_about_range(
    ranges: Sequence[tuple[float, float] | None], rng: InputRange, out_of_range_warned: bool, tol: float = 1e-3
) -> bool:
    """The range warnings of one call, from each batch's (min, max) (no pass over the data).

    * values outside the expected range ([-1, 1], or [0, 1] for '0,1' and for
      '0,255' after dividing by 255): :func:`warn_range`, once per model
      (``out_of_range_warned`` says whether it already fired);
    * otherwise, under the unconfirmed default '-1,1', when every batch is
      non-negative (what [0, 1] images look like): a :class:`ZeroOneRangeWarning`,
      once per call site of the user's code. On correct [-1, 1] data it fired for
      none of the 15 course photographs and none of the 237 pairs of LIVE, and for
      0.30% of the 11,662 (ref, p) pairs of 64x64 mini_bapps patches (results/audit).

    Returns:
        True when the out-of-range warning was issued now.
    """
    known = [r for r in ranges if r is not None]
    if not known:
        return False
    low = -1.0 if rng.name == "-1,1" else 0.0
    lo, hi = min(r[0] for r in known), max(r[1] for r in known)
    if lo < low - tol or hi > 1.0 + tol:
        if out_of_range_warned:
            return False
        warn_range(rng.name != "-1,1", lo, hi)
        return True
    if not rng.confirmed and lo >= 0.0:
        warn_zero_one(lo, hi, len(known))
    return False


#: Call sites (file, line) that already had their ZeroOneRangeWarning.
_ZERO_ONE_WARNED: set[tuple[str, int]] = set()


def warn_zero_one(lo: float, hi: float, n_batches: int) -> None:
    """Warn once per call site that non-negative inputs look like [0, 1] images."""
    level = _user_stacklevel()
    frame = sys._getframe(level - 1)  # the frame warnings.warn(stacklevel=level) names
    site = (frame.f_code.co_filename, frame.f_lineno)
    if site in _ZERO_ONE_WARNED:
        return
    _ZERO_ONE_WARNED.add(site)
    what = "both inputs have" if n_batches == 2 else "the input has"
    msg = (
        f"LPIPS expects images in [-1, 1] but {what} no negative value (values in "
        f"[{lo:.3g}, {hi:.3g}]): [0, 1] images? Pass normalize=True or input_range='0,1' for "
        f"[0, 1] images ('0,255' for 8-bit), or input_range='-1,1' to confirm [-1, 1] and "
        f"silence this warning"
    )
    warnings.warn(msg, ZeroOneRangeWarning, stacklevel=level)


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside lpips_core and torch.

    Entry points are reached through different depths (``model(x, y)`` passes
    through ``nn.Module.__call__``, ``distance`` adds a frame, ``pairwise``
    calls ``embed``), so a fixed ``stacklevel`` would point into torch or into
    this package; the warning should point at the user's line.
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # lpips_core/
    skip = (package + os.sep, os.path.dirname(os.path.abspath(torch.__file__)) + os.sep)
    frame: FrameType | None  # None past the outermost frame
    frame, level = sys._getframe(2), 2  # _getframe(k) is the frame stacklevel=k names (1: warn_range)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skip):
        frame, level = frame.f_back, level + 1
    return level


def warn_range(normalize: bool, lo: float, hi: float) -> None:
    if normalize:
        msg = (
            f"LPIPS got images with values in [{lo:.3g}, {hi:.3g}] while normalize=True "
            f"expects [0, 1]. Images already in [-1, 1] should use normalize=False; "
            f"0-255 images should be divided by 255 first"
        )
    else:
        msg = (
            f"LPIPS got images with values in [{lo:.3g}, {hi:.3g}] but expects [-1, 1]. "
            f"For 0-255 images use lpips_core.im2tensor or x / 127.5 - 1"
            + ("; for [0, 1] images pass normalize=True" if lo >= 0 else "")
        )
    warnings.warn(msg, InputRangeWarning, stacklevel=_user_stacklevel())
