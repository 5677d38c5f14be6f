"""The fast path of ``LPIPS.forward``: the reference path's steps and numbers in fewer passes.

:meth:`LPIPS.compare <.lpips.LPIPS.compare>` takes it when nothing records a graph (no
gradient needed, not traced, no dropout); :func:`compare` runs it under
``torch.inference_mode``. It calls the model's public steps (``prepare``, ``taps``,
``weigh``, ``pool``, ``reduce``), and every tensor made here belongs to the call,
so it is overwritten in place:

* trunk input: both batches copied into one buffer and scaled in place (``prepare(in_place=True)``);
* pair distances: one norm per position for the whole 2N tap, then
  :func:`~.kernels.squared_unit_difference` (no normalised copy of either tap);
* row blocks: taps of more than :data:`BLOCK_ELEMENTS` elements are reduced in blocks
  of rows, so normalised copies of a whole large tap never exist;
* pixel budget: batches of more than :func:`pixel_budget` pixels run in chunks of
  pairs, and a pair bigger than that runs its two images one after the other;
* compiled core: with ``compile=True`` the chunks run through ``torch.compile`` of
  :func:`fused_layers` (:func:`compiled_core`).

Each layer's distance is computed as soon as its tap exists and the tap is then
dropped (:meth:`~.trunk.Trunk.iter_taps`), so large images need far less memory.
``model`` is always an :class:`~.lpips.LPIPS`, typed as the :class:`~.steps.LPIPSSteps` it
provides (these routes sit below it and use its steps).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import cast

import torch

from . import kernels as K
from .steps import Core, LPIPSSteps

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


def tap_distance_blocked(
    model: LPIPSSteps, k: int, t0: torch.Tensor, t1: torch.Tensor, out_hw: Sequence[int]
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
    model: LPIPSSteps,
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
    return model.pool(model.weigh(k, K.squared_unit_difference(t0, t1, norm0, norm1)), out_hw)


def pair_distances(model: LPIPSSteps, x: torch.Tensor, n: int, out_hw: Sequence[int]) -> list[torch.Tensor]:
    """Per-layer distances of one trunk call on both batches (``x``: first ``n`` images, then the rest)."""
    layers = []
    for k, tap in enumerate(model.taps(x)):
        if tap.numel() > BLOCK_ELEMENTS:  # no norms of the whole big tap: the blocks compute their own
            layers.append(tap_distance_blocked(model, k, tap[:n], tap[n:], out_hw))
        else:
            norms = K.unit_norms(tap)  # (2N, 1, h, w), one pass for both batches
            layers.append(tap_distance(model, k, tap[:n], tap[n:], out_hw, norms[:n], norms[n:]))
    return layers


def separate_distances(
    model: LPIPSSteps, x0: torch.Tensor, x1: torch.Tensor, out_hw: Sequence[int]
) -> list[torch.Tensor]:
    """Per-layer distances when the two batches run through the trunk one after the other."""
    taps = zip(model.taps(x0), model.taps(x1))  # both trunks advance one stage at a time
    return [tap_distance(model, k, t0, t1, out_hw) for k, (t0, t1) in enumerate(taps)]


def fused_layers(model: LPIPSSteps, x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Per-layer distances of one trunk input holding both batches (the first ``n`` images, then the rest).

    The reference path's steps on one trunk call, functional (nothing in place): what
    ``compile=True`` hands to ``torch.compile``.
    """
    out_hw = x.shape[2:]
    feats = (K.unit_features(tap) for tap in model.taps(x))  # (2N, C_k, h, w)
    return [model.layer_distance(k, f[:n], f[n:], out_hw) for k, f in enumerate(feats)]


def compiled_core(model: LPIPSSteps) -> Core | None:
    """``torch.compile`` of :func:`fused_layers` for a model built with ``compile=True`` (compiled
    on its first call, kept on the model, never copied or pickled), else None."""
    # model.compile is the constructor's flag, an instance attribute that shadows nn.Module.compile
    if model._compiled_core is None and cast(bool, model.compile):
        model._compiled_core = cast(Core, torch.compile(functools.partial(fused_layers, model)))
    return model._compiled_core


def layer_distances(model: LPIPSSteps, in0: torch.Tensor, in1: torch.Tensor, normalize: bool) -> list[torch.Tensor]:
    """Checked images -> per-layer distances, chunked so one trunk call stays within :func:`pixel_budget`.

    Args:
        in0, in1: (N0, 3, H, W), (N1, 3, H, W) checked images (N0 == N1, or one of them 1).
    Returns:
        one (N, 1, 1, 1) tensor per layer ((N, 1, H, W) when spatial), inference tensors.
    """
    out_hw = in0.shape[2:]
    n0, n1 = in0.shape[0], in1.shape[0]
    if n0 != n1 or n0 == 0:  # a batch of 1 against N (or no pairs): the batches run separately
        return separate_distances(
            model,
            model.prepare([in0], normalize, in_place=True),
            model.prepare([in1], normalize, in_place=True),
            out_hw,
        )
    core = compiled_core(model)
    pixels, budget = in0.shape[2] * in0.shape[3], pixel_budget(in0.device)
    chunk = max(1, budget // (2 * pixels))
    parts = []
    for s in range(0, n0, chunk):
        a, b = in0[s : s + chunk], in1[s : s + chunk]
        if 2 * a.shape[0] * pixels > budget:  # one pair too big to run together
            x0, x1 = model.prepare([a], normalize, in_place=True), model.prepare([b], normalize, in_place=True)
            parts.append(separate_distances(model, x0, x1, out_hw))
        elif core is not None and not model.spatial:
            parts.append(core(model.prepare([a, b], normalize, channels_last=False, in_place=True), a.shape[0]))
        else:
            parts.append(pair_distances(model, model.prepare([a, b], normalize, in_place=True), a.shape[0], out_hw))
    if len(parts) == 1:
        return parts[0]
    return [torch.cat([p[k] for p in parts]) for k in range(model.L)]


def compare(
    model: LPIPSSteps, in0: torch.Tensor, in1: torch.Tensor, normalize: bool, keep_layers: bool = True
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The fast path of :meth:`LPIPS.compare <.lpips.LPIPS.compare>`: (distance, per-layer distances).

    Runs :func:`layer_distances` under ``torch.inference_mode`` and, unless the caller is
    itself in inference mode, hands back ordinary tensors (usable later in autograd); the
    per-layer ones only when ``keep_layers``.
    """
    outer_inference = torch.is_inference_mode_enabled()
    with torch.inference_mode():
        layers = layer_distances(model, in0, in1, normalize)
        total = model.reduce(layers)
    if not outer_inference:
        total = total.clone()
        layers = [r.clone() for r in layers] if keep_layers else layers
    return total, layers
