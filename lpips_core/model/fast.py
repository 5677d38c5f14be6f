"""The fast routes of ``LPIPS.forward``: the reference route's numbers in fewer passes.

``LPIPS._checked_forward`` takes these when nothing records a graph (no gradient
needed, not traced, no dropout) and runs them under ``torch.inference_mode``.
Every tensor made here belongs to the call, so it is overwritten in place:

* trunk input: both batches copied into one buffer and scaled in place (no ``cat`` copy);
* pair distances: one norm per position for the whole 2N tap, then
  :func:`~.kernels.squared_unit_difference` (no normalised copy of either tap);
* row blocks: taps of more than :data:`BLOCK_ELEMENTS` elements are reduced in blocks
  of rows, so normalised copies of a whole large tap never exist;
* pixel budget: batches of more than :func:`pixel_budget` pixels run in chunks of
  pairs, and a pair bigger than that runs its two images one after the other;
* compiled core: with ``compile=True`` the chunks run through
  ``torch.compile(model._fused_core)``.

Each layer's distance is computed as soon as its tap exists and the tap is then
dropped (:meth:`~.trunk.Trunk.iter_taps`), so large images need far less memory.
``model`` is always an :class:`~.lpips.LPIPS` (these routes sit below it and use its
trunk, scaling and per-layer weighting).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch

from . import kernels as K

if TYPE_CHECKING:  # the model these functions serve; lpips.py imports this module
    from .lpips import LPIPS

#: Largest number of pixels (images x H x W) pushed through the trunk in one call when no
#: gradient is needed. Bigger batches are split into chunks of pairs, and a pair bigger
#: than this runs its two images one after the other. 2**21 pixels is 32 pairs of
#: 128x128 (batching beyond that gains no speed on CPU).
PIXEL_BUDGET = 2**21

#: On a CPU the budget is also at most this many pixels per intra-op thread: one thread
#: runs the AlexNet trunk on one pair of 512x512 per call 14% faster than on four (127 ->
#: 111 ms a pair; 256x256 and 64x64 pairs are as fast as before), as the activations of a
#: call then stay in cache. From 4 threads on, :data:`PIXEL_BUDGET` is the smaller.
CPU_PIXELS_PER_THREAD = 2**19


def pixel_budget(device: torch.device) -> int:
    """Most pixels (images x H x W) per trunk call on ``device`` (see :data:`PIXEL_BUDGET`)."""
    if device.type == "cpu":
        return min(PIXEL_BUDGET, CPU_PIXELS_PER_THREAD * max(1, torch.get_num_threads()))
    return PIXEL_BUDGET


#: Taps larger than this many elements (both images together) get their distance
#: computed in blocks of rows (a 2048x2048 VGG relu1_2 tap is 1 GB per image).
BLOCK_ELEMENTS = 2**24


def scale_in_place(model: LPIPS, buf: torch.Tensor, normalize: bool) -> None:
    """``LPIPS._scale`` applied in place to a buffer holding the raw images (same values)."""
    if normalize:  # [0, 1] -> [-1, 1]
        buf.mul_(2).sub_(1)
    if model.version == "0.1":
        # registered buffers, which nn.Module's __getattr__ types as Tensor | Module
        shift, scale = cast(torch.Tensor, model.scaling_layer.shift), cast(torch.Tensor, model.scaling_layer.scale)
        if (
            buf.dim() == 4
            and buf.shape[1] > 1
            and not buf.is_contiguous()
            and buf.is_contiguous(memory_format=torch.channels_last)
        ):
            # NHWC memory is N*H rows of W*C values: a (1, C, 1, 1) broadcast there has an inner
            # loop of C = 3 elements (6x slower on a CPU); per-row tiled constants give the same
            # element-wise operations on long contiguous rows.
            n, c, h, w = buf.shape
            rows = buf.permute(0, 2, 3, 1).view(n * h, w * c)
            rows.sub_(shift.view(c).repeat(w)).div_(scale.view(c).repeat(w))
        else:
            buf.sub_(shift).div_(scale)


def trunk_input(model: LPIPS, images: Sequence[torch.Tensor], normalize: bool, channels_last: bool) -> torch.Tensor:
    """Scaled images concatenated along the batch in one fresh buffer, in the trunk's memory format."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    first = images[0]
    buf = torch.empty(
        (sum(im.shape[0] for im in images), *first.shape[1:]),
        device=first.device,
        dtype=cast(torch.Tensor, model.scaling_layer.shift).dtype,
        memory_format=fmt,
    )  # a buffer
    start = 0
    for im in images:  # a plain copy (also converts dtype, expands grayscale) is ~8x faster
        buf[start : start + im.shape[0]].copy_(im)  # than writing sub(..., out=) into a slice
        start += im.shape[0]
    scale_in_place(model, buf, normalize)
    return buf


def tap_distance_blocked(
    model: LPIPS, k: int, t0: torch.Tensor, t1: torch.Tensor, out_hw: Sequence[int]
) -> torch.Tensor:
    """Layer-k distance of raw taps, computed over blocks of rows.

    Unit normalisation is per position, so each block gives the same values
    as the whole; only the order of the final sum differs (float rounding).
    """
    # torch.broadcast_shapes has no annotations; it returns a torch.Size
    shape: torch.Size = torch.broadcast_shapes(t0.shape, t1.shape)  # type: ignore[no-untyped-call]
    n, c, h, w = shape
    rows = max(1, BLOCK_ELEMENTS // 4 // max(1, n * c * w))
    weights = model.channel_weights(k, t0.new_empty(0, dtype=K.accumulation_dtype(t0.dtype)))
    pieces = []
    for r in range(0, h, rows):
        diff = K.squared_unit_difference(t0[:, :, r : r + rows], t1[:, :, r : r + rows])
        pieces.append(K.channel_weighted_sum(diff, weights, K.is_channels_last(diff)).view(n, -1, w))  # (N, rows, w)
        del diff
    if model.spatial:
        # F.interpolate takes any int sequence (here a torch.Size); List[int] is for TorchScript
        return K.upsample(torch.cat(pieces, dim=1).view(n, 1, h, w), cast("list[int]", out_hw))
    total = pieces[0].sum((1, 2))
    for p in pieces[1:]:
        total += p.sum((1, 2))
    return (total / (h * w)).view(n, 1, 1, 1)


def tap_distance(
    model: LPIPS,
    k: int,
    t0: torch.Tensor,
    t1: torch.Tensor,
    out_hw: Sequence[int],
    norm0: torch.Tensor | None = None,
    norm1: torch.Tensor | None = None,
) -> torch.Tensor:
    """Layer-k distance from raw taps (batches of 1 broadcast): blocked for large taps."""
    if t0.numel() + t1.numel() > BLOCK_ELEMENTS:
        return tap_distance_blocked(model, k, t0, t1, out_hw)
    return model._weigh(k, K.squared_unit_difference(t0, t1, norm0, norm1), out_hw)


def pair_distances(model: LPIPS, x: torch.Tensor, n: int, out_hw: Sequence[int]) -> list[torch.Tensor]:
    """Per-layer distances of one trunk call on both batches (``x``: first ``n`` images, then the rest)."""
    layers = []
    for k, tap in enumerate(model._taps(x)):
        if tap.numel() > BLOCK_ELEMENTS:  # no norms of the whole big tap: the blocks compute their own
            layers.append(tap_distance_blocked(model, k, tap[:n], tap[n:], out_hw))
        else:
            norms = K.unit_norms(tap)  # (2N, 1, h, w), one pass for both batches
            layers.append(tap_distance(model, k, tap[:n], tap[n:], out_hw, norms[:n], norms[n:]))
    return layers


def separate_distances(model: LPIPS, x0: torch.Tensor, x1: torch.Tensor, out_hw: Sequence[int]) -> list[torch.Tensor]:
    """Per-layer distances when the two batches run through the trunk one after the other."""
    taps = zip(model._taps(x0), model._taps(x1))  # both trunks advance one stage at a time
    return [tap_distance(model, k, t0, t1, out_hw) for k, (t0, t1) in enumerate(taps)]


def layer_distances(model: LPIPS, in0: torch.Tensor, in1: torch.Tensor, normalize: bool) -> list[torch.Tensor]:
    """Checked images -> per-layer distances, chunked so one trunk call stays within :func:`pixel_budget`.

    Args:
        in0, in1: (N0, 3, H, W), (N1, 3, H, W) checked images (N0 == N1, or one of them 1).
    Returns:
        one (N, 1, 1, 1) tensor per layer ((N, 1, H, W) when spatial), inference tensors.
    """
    cl = model.uses_channels_last(in0.device)
    out_hw = in0.shape[2:]
    n0, n1 = in0.shape[0], in1.shape[0]
    if n0 != n1 or n0 == 0:  # a batch of 1 against N (or no pairs): the batches run separately
        return separate_distances(
            model, trunk_input(model, [in0], normalize, cl), trunk_input(model, [in1], normalize, cl), out_hw
        )
    # model.compile is the constructor's flag, an instance attribute that shadows nn.Module.compile
    if model._compiled_core is None and cast(bool, model.compile):
        # lpips.py leaves _compiled_core unannotated (None), so mypy types it as None
        model._compiled_core = torch.compile(model._fused_core)  # type: ignore[assignment]
    pixels, budget = in0.shape[2] * in0.shape[3], pixel_budget(in0.device)
    chunk = max(1, budget // (2 * pixels))
    parts = []
    for s in range(0, n0, chunk):
        a, b = in0[s : s + chunk], in1[s : s + chunk]
        if 2 * a.shape[0] * pixels > budget:  # one pair too big to run together
            parts.append(
                separate_distances(
                    model, trunk_input(model, [a], normalize, cl), trunk_input(model, [b], normalize, cl), out_hw
                )
            )
        elif model._compiled_core is not None and not model.spatial:
            parts.append(model._compiled_core(trunk_input(model, [a, b], normalize, channels_last=False), a.shape[0]))
        else:
            parts.append(pair_distances(model, trunk_input(model, [a, b], normalize, cl), a.shape[0], out_hw))
    if len(parts) == 1:
        return parts[0]
    return [torch.cat([p[k] for p in parts]) for k in range(model.L)]
