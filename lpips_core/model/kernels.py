"""The functional kernels of the LPIPS distance, shared by every route that computes it.

Per layer k, with taps ``t = trunk_k(x)`` of shape (N, C, h, w)::

    unit features      f = t / (|t|_C + eps)               normalize_tensor / unit_features
    squared difference (f0 - f1)^2                          squared_difference
                       or straight from raw taps            squared_unit_difference (no autograd)
    channel weights    sum_c w_c (f0 - f1)_c^2 -> (N, h*w)  channel_weighted_sum
    spatial mean       mean over h*w -> (N, 1, 1, 1)        (or upsample to (N, 1, H, W))
    the distance       sum over the layers                 sum_layers

:class:`~lpips_core.model.lpips.LPIPS` (the reference route and the fast routes of
:mod:`.fast`), its TorchScript twin (:mod:`.scriptable`) and the training fast path
(:mod:`lpips_core.train.fastpath`) call these, so the arithmetic is written once.
``normalize_tensor``, ``squared_difference``, ``channel_weighted_sum`` and ``upsample``
are TorchScript-compatible.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F

EPS = 1e-10


def is_traced() -> bool:
    """True while torch.jit.trace, torch.export / ONNX export or torch.compile trace the model."""
    # torch.jit.is_tracing is defined without annotations in torch
    return bool(
        torch.jit.is_tracing()  # type: ignore[no-untyped-call]
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Distances are computed in float32 even when the trunk ran in bf16/fp16."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def is_channels_last(t: torch.Tensor) -> bool:
    """True when ``t``'s memory is laid out (N, h, w, C) and not also plain NCHW."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def normalize_tensor(feat: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Scale each spatial position's channel vector to unit length.

    Same forward values as the reference ``x / (sqrt(sum x^2) + eps)``, but the
    norm comes from ``torch.linalg.vector_norm``, whose gradient at a zero vector
    is 0 instead of NaN (d sqrt(s)/ds is infinite at 0 and 0 * inf = NaN). Zero
    feature vectors are common deep in a trunk for dark or flat images.

    Args:
        feat: (N, C, H, W) features.
    Returns:
        (N, C, H, W), each (n, :, h, w) vector of norm ~1 (or 0 where it was 0).
    """
    norm: torch.Tensor = torch.linalg.vector_norm(feat, dim=1, keepdim=True)  # (N, 1, H, W)
    return feat / (norm + eps)


def unit_norms(tap: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(N, C, h, w) -> (N, 1, h, w) channel norms plus ``eps``, accumulated in float32 for bf16/fp16."""
    norm: torch.Tensor = torch.linalg.vector_norm(tap, dim=1, keepdim=True, dtype=accumulation_dtype(tap.dtype))
    return norm.add_(eps)


def unit_features(tap: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``normalize_tensor`` in three passes (norm, add, divide), any memory format.

    Same values as the reference ``x / (sqrt(sum x^2) + eps)`` within one
    rounding of the norm (checked in tests/test_fast.py), finite gradient at zero vectors
    (``vector_norm``), result in float32 for bf16/fp16 taps, and it keeps the
    memory format of ``tap`` (channels-last stays channels-last).

    Args:
        tap: (N, C, H, W) trunk activations.
    Returns:
        (N, C, H, W) unit-length channel vectors (0 where the vector was 0).
    """
    norm: torch.Tensor = torch.linalg.vector_norm(
        tap, dim=1, keepdim=True, dtype=accumulation_dtype(tap.dtype)
    )  # (N, 1, H, W)
    return tap / norm.add_(eps) if not norm.requires_grad else tap / (norm + eps)


def squared_difference(f0: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) ``(f0 - f1)^2`` of two unit-feature batches (a batch of 1 broadcasts)."""
    return (f0 - f1).square()


def squared_unit_difference(
    t0: torch.Tensor,
    t1: torch.Tensor,
    norm0: Optional[torch.Tensor] = None,
    norm1: Optional[torch.Tensor] = None,
    eps: float = EPS,
) -> torch.Tensor:
    """``(unit(t0) - unit(t1))^2`` in few passes, no autograd (a fresh tensor, batches of 1 broadcast).

    One division writes ``t_big / norm_big``, ``addcdiv_`` subtracts the other side's
    quotient in the same pass, then the square is taken in place; no normalised
    copy of both taps is made. The quotient is rounded before it is subtracted,
    so identical inputs give exactly 0.

    Args:
        t0, t1: (N0, C, h, w), (N1, C, h, w) raw trunk activations.
        norm0, norm1: their :func:`unit_norms` when already known.
    Returns:
        (N, C, h, w) float32 squared differences of the unit-normalised features.
    """
    if norm0 is None:
        norm0 = unit_norms(t0, eps)
    if norm1 is None:
        norm1 = unit_norms(t1, eps)
    if t1.shape[0] < t0.shape[0]:
        t0, t1, norm0, norm1 = t1, t0, norm1, norm0  # (a - b)^2 == (b - a)^2 bit for bit
    diff = torch.div(t1, norm1)  # (N, C, h, w)
    return diff.addcdiv_(t0, norm0, value=-1).square_()


def channel_weighted_sum(d: torch.Tensor, w: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``sum_c w_c d[:, c]``: the bias-free 1x1 linear layer as one matrix-vector product.

    Args:
        d: (N, C, h, w) squared feature differences; channels-last when ``channels_last``.
        w: (C,) channel weights.
    Returns:
        (N, h * w) weighted sums (a flattened (N, 1, h, w) map).
    """
    n, c, h, wd = d.shape
    if channels_last:  # memory is (N, h, w, C): a (N*h*w, C) matrix times w
        return (d.permute(0, 2, 3, 1).reshape(n * h * wd, c) @ w).view(n, h * wd)
    return torch.matmul(w, d.reshape(n, c, h * wd))  # (N, h*w)


def spatial_average(x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) mean over the image plane."""
    return x.mean([2, 3], keepdim=keepdim)


def upsample(x: torch.Tensor, out_hw: List[int]) -> torch.Tensor:
    """Bilinear resize of a (N, C, h, w) map to ``out_hw`` (as the reference)."""
    return F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)


def sum_layers(layers: List[torch.Tensor]) -> torch.Tensor:
    """The distance: per-layer distances added in layer order."""
    total = layers[0]
    for r in layers[1:]:
        total = total + r
    return total
