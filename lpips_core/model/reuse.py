"""Trunk features reused across comparisons: one image against many, embeddings, all pairs.

``LPIPS.one_to_many``, ``LPIPS.embed`` and ``LPIPS.pairwise`` delegate here, and
:func:`triplet_features` is the one trunk pass over a 2AFC triplet that training
and the fast path share. Everything except :func:`triplet_features` runs without
gradients (``torch.inference_mode``) and hands back ordinary tensors. ``model`` is
always an :class:`~.lpips.LPIPS`, typed as the :class:`~.steps.LPIPSSteps` it provides
(these functions sit below it and use its public steps).
"""

from __future__ import annotations

import math

import torch

from . import kernels as K
from .fast import pixel_budget
from .steps import LPIPSSteps


def triplet_features(
    model: LPIPSSteps, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Unit features of a triplet's three images from one trunk call on ``cat([ref, p0, p1])``.

    The reference makes four calls per triplet (``ref`` twice); ``ref``'s features
    feed both d(ref, p0) and d(ref, p1). Gradients flow as in :meth:`LPIPS.features`.

    Args:
        ref, p0, p1: (N, 3, H, W) images in [-1, 1].
    Returns:
        (f_ref, f_p0, f_p1): three lists of (N, C_k, H_k, W_k) unit features, one entry per tap.
    """
    n = ref.shape[0]
    feats = model.features(torch.cat([ref, p0, p1]))  # [(3N, C_k, H_k, W_k)]
    return [f[:n] for f in feats], [f[n : 2 * n] for f in feats], [f[2 * n :] for f in feats]


def one_to_many(
    model: LPIPSSteps, ref: torch.Tensor, images: torch.Tensor, normalize: bool = False, chunk_size: int = 64
) -> torch.Tensor:
    """Distances from one reference image to each of many images; the trunk runs on ``ref`` once.

    Equal to ``model(ref.expand_as(images), images)`` (within float rounding).

    Args:
        ref: (3, H, W) or (1, 3, H, W) reference image in [-1, 1] ([0, 1] with ``normalize``).
        images: (N, 3, H, W) images of the same size.
        chunk_size: images per trunk call (bounds memory); fewer where the chunk would
            exceed the fast path's pixel budget (:func:`.fast.pixel_budget`).
    Returns:
        (N, 1, 1, 1) distances ((N, 1, H, W) maps with ``spatial=True``), as ``forward``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if isinstance(ref, torch.Tensor) and ref.dim() == 4 and ref.shape[0] != 1:
        raise ValueError(
            f"ref has batch size {ref.shape[0]}; one_to_many takes one reference "
            f"image (3, H, W) or (1, 3, H, W); use forward for pairs"
        )
    (ref, images), normalize = model.check_inputs(("ref", ref), ("images", images), normalize=normalize)
    out_hw = images.shape[2:]
    chunk = max(1, min(chunk_size, pixel_budget(images.device) // math.prod(out_hw)))
    outer_inference = torch.is_inference_mode_enabled()
    with torch.inference_mode():
        ref_feats = [K.unit_features(t) for t in model.taps(model.prepare([ref], normalize, in_place=True))]
        out = []
        for s in range(0, images.shape[0], chunk):
            x = model.prepare([images[s : s + chunk]], normalize, in_place=True)
            layers = [
                model.layer_distance(k, ref_feats[k], K.unit_features(t), out_hw, overwrite=True)
                for k, t in enumerate(model.taps(x))
            ]  # the chunk's features hold its differences
            out.append(model.reduce(layers))
        val = torch.cat(out) if out else images.new_zeros(0, 1, *(out_hw if model.spatial else (1, 1)))
    return val if outer_inference else val.clone()


def embed(model: LPIPSSteps, images: torch.Tensor, normalize: bool = False, chunk_size: int = 32) -> torch.Tensor:
    """Each image as one vector whose squared distances are the LPIPS distances.

    With unit features ``f_k`` and weights ``w_k >= 0``,
    ``d(x, y) = sum_k sum_c w_kc mean_hw (f_k(x) - f_k(y))_c^2 = ||e(x) - e(y)||^2`` where
    ``e(x)`` concatenates ``sqrt(w_kc / (h_k w_k)) f_k(x)`` over layers, channels and
    positions. Negative weights (untrained linear layers) are not allowed here.

    Args:
        images: (N, 3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
        chunk_size: images per trunk call (bounds activation memory).
    Returns:
        (N, D) float32 embedding, D = sum_k C_k h_k w_k (about 0.64 M for alex at 256x256).
    """
    if model.spatial:
        raise ValueError(
            "embed/pairwise need spatial=False (a matrix of distance maps "
            "would be N x N x H x W); build the model with spatial=False"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    (images,), normalize = model.check_inputs(("images", images), normalize=normalize)
    scales = []
    for k in range(model.L):
        wk = model.channel_weights(k, images.new_empty(0, dtype=torch.float32)).detach()
        if (wk < 0).any():
            raise ValueError(
                f"layer {k} has negative linear weights; the LPIPS embedding needs "
                f"w >= 0 (trained/pretrained weights are clamped to >= 0)"
            )
        scales.append(wk.sqrt())
    outer_inference = torch.is_inference_mode_enabled()
    with torch.inference_mode():
        rows = []
        for s in range(0, max(images.shape[0], 1), chunk_size):  # N = 0: one empty pass gives (0, D)
            x = model.prepare([images[s : s + chunk_size]], normalize, in_place=True)
            parts = []
            for k, t in enumerate(model.taps(x)):
                f = K.unit_features(t)  # (n, C, h, w)
                n, c, h, w = f.shape
                f.mul_((scales[k] / math.sqrt(h * w)).view(1, c, 1, 1))
                parts.append(f.permute(0, 2, 3, 1).reshape(n, h * w * c))  # any fixed order; a view if channels-last
            rows.append(torch.cat(parts, dim=1))
        emb = torch.cat(rows)
    return emb if outer_inference else emb.clone()


def pairwise(model: LPIPSSteps, images: torch.Tensor, normalize: bool = False, chunk_size: int = 32) -> torch.Tensor:
    """All-pairs distance matrix; each image goes through the trunk once.

    Uses ``d(i, j) = ||e_i - e_j||^2`` with the embedding of :func:`embed`,
    computed as ``|e_i|^2 + |e_j|^2 - 2 e_i.e_j`` after centring the
    embeddings (centring removes most of the cancellation; the result matches
    one forward call per pair within 1e-5, see tests/test_fast.py).

    Memory: the trunk runs on ``chunk_size`` images at a time; the N x D
    embedding is kept (D * 4 bytes per image, about 2.6 MB for alex at 256x256).

    Args:
        images: (N, 3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
        chunk_size: images per trunk call.
    Returns:
        (N, N) float32 matrix: symmetric, zero diagonal, entries >= 0.
    """
    emb = embed(model, images, normalize=normalize, chunk_size=chunk_size)
    outer_inference = torch.is_inference_mode_enabled()
    with torch.inference_mode():
        emb = emb - emb.mean(0, keepdim=True)
        sq = emb.pow(2).sum(1)  # (N,)
        dist = (sq[:, None] + sq[None, :]).sub_(emb @ emb.T, alpha=2)  # (N, N)
        dist = (dist + dist.T).mul_(0.5).clamp_(min=0)
        dist.fill_diagonal_(0)
    return dist if outer_inference else dist.clone()
