"""The exact feature-cached fast path for training the linear layers ("lin" mode).

With a frozen trunk, the LPIPS distance between a reference ``x`` and a
distorted patch ``x0`` is

    d(x, x0) = sum_k sum_c w_kc * mean_hw (f_k(x) - f_k(x0))^2_c

where ``f_k`` are the unit-normalised features at tap ``k`` and ``w_kc >= 0``
the learned weights. The 1x1 convolution has no bias, so it commutes with the
spatial mean: each (reference, patch) pair reduces once to the vector
``m = [mean_hw (f_k(x) - f_k(x0))^2_c]_{k,c}`` (the sum of the tap widths:
1,152 numbers for alex, 1,472 for vgg, 2,240 for squeeze), and ``d = <m, w>``.
Every epoch after the first pass over the images is a tiny linear problem on
a cached (N, 1152) matrix (alex).

What the fast path reproduces:

* Without dropout: the same distances, gradients and, with the same data order,
  the same weights as the standard loop (tests/test_fastpath.py checks <= 1e-5
  after several Adam steps).
* With dropout: the reference applies ``nn.Dropout(0.5)`` to the squared
  difference map *before* the 1x1 convolution. ``nn.Dropout`` scales kept
  values by 1/(1-p), so the dropped-out distance is an unbiased estimate of the
  distance without dropout: E[d_dropout] = <m, w>. The fast path uses this
  expected value (no dropout). It does not reproduce the noise itself, nor the
  expectation of the *loss* (the loss is non-linear in d, so E[loss(d)] differs
  from loss(E[d]) by a small variance term). benchmarks/bench_training.py
  shows the validation 2AFC scores of both agree within noise.
* Flip augmentation: a flipped image is not a flipped feature map (the
  trunk's kernels are not symmetric), so with ``flip=True`` both orientations
  are cached (two trunk passes per triplet instead of one) and each epoch picks
  the orientation per triplet exactly as the standard loop does.

The cache is keyed by the dataset (its files' names, sizes and modification
times, or its content for in-memory datasets), the trunk's weights, the net,
the version (input scaling), the flip setting and the cache format, so a stale
cache is never used. Files are written atomically (temporary file, rename).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from ..data import FlipAugment
from ..files import cache_root, save_torch
from ..model import LPIPS
from ..model import kernels as K
from ..model.reuse import triplet_features
from ..progress import progress_bar
from . import distributed as ddp

#: Bump when the cached quantities or their layout change.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$LPIPS_CORE_CACHE/features``, else ``~/.cache/lpips_core/features`` (:func:`lpips_core.files.cache_root`)."""
    return cache_root() / "features"


# --------------------------------------------------------------------------- the reduction
def layer_slices(channels: Sequence[int]) -> list[slice]:
    """Column ranges of each tap inside the concatenated (N, sum(channels)) means."""
    out, start = [], 0
    for c in channels:
        out.append(slice(start, start + c))
        start += c
    return out


def triplet_means(
    model: LPIPS, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer, per-channel spatial means of squared feature differences.

    The trunk runs once on the concatenated batch (three images per triplet,
    :func:`lpips_core.model.reuse.triplet_features`).

    Args:
        model: an LPIPS model (only its trunk, scaling and version are used).
        ref, p0, p1: (N, 3, H, W) images in [-1, 1].
    Returns:
        (m0, m1): two (N, sum(model.chns)) float32 tensors, ``m0`` for (ref, p0)
        and ``m1`` for (ref, p1); entries are >= 0 and at most 4 (unit vectors).
    """
    f_ref, f0, f1 = triplet_features(model, ref, p0, p1)
    m0 = torch.cat([K.squared_difference(r, f).mean([2, 3]) for r, f in zip(f_ref, f0)], dim=1)  # (N, sum C)
    m1 = torch.cat([K.squared_difference(r, f).mean([2, 3]) for r, f in zip(f_ref, f1)], dim=1)
    return m0, m1


def cached_distance(model: LPIPS, means: torch.Tensor) -> torch.Tensor:
    """Distances from cached means, differentiable in the linear weights.

    Per layer ``(m_k * w_k).sum(1)``: the channel weighting of the spatial means
    (the bias-free 1x1 layer commutes with the mean), then the layers added in order.

    Args:
        model: the LPIPS model whose channel weights apply (:meth:`LPIPS.channel_weights`:
            all ones when ``model.lpips`` is False, i.e. the "net" baseline).
        means: (N, sum(model.chns)) from :func:`triplet_means`.
    Returns:
        (N, 1, 1, 1) distances.
    """
    layers = [
        (means[:, sl] * model.channel_weights(k, means)).sum(1)  # (N,) from (N, C_k) * (C_k,)
        for k, sl in enumerate(layer_slices(model.chns))
    ]
    return K.sum_layers(layers).view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- cache keys
class _Hasher(Protocol):
    """What the cache keys use of a ``hashlib`` hash object."""

    def update(self, data: bytes, /) -> None: ...


def _hash_tensor(h: _Hasher, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


_SIMPLE = (str, int, float, bool, type(None), Path)


def _simple_attrs(obj: object) -> list[str]:
    out = []
    for k, v in sorted(vars(obj).items()) if hasattr(obj, "__dict__") else []:
        if isinstance(v, _SIMPLE):
            out.append(f"{k}={v!r}")
        elif isinstance(v, (list, tuple)) and len(v) <= 64 and all(isinstance(x, _SIMPLE) for x in v):
            out.append(f"{k}={list(v)!r}")
    return out


def _roots(ds: object) -> list[Path]:
    roots = []
    for name in ("root", "roots", "dataroot", "dataroots"):
        v = getattr(ds, name, None)
        for r in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(r, (str, os.PathLike)) and Path(r).is_dir():
                roots.append(Path(r))
    return roots


def _fingerprint_into(h: _Hasher, ds: Dataset[dict[str, Any]]) -> None:
    fp = getattr(ds, "fingerprint", None)
    if callable(fp):
        h.update(f"fingerprint:{fp()}".encode())
        return
    if isinstance(ds, Subset):
        _fingerprint_into(h, ds.dataset)
        h.update(f"subset:{list(map(int, ds.indices))}".encode())
        return
    if isinstance(ds, ConcatDataset):
        for sub in ds.datasets:
            _fingerprint_into(h, sub)
        return
    # cast: torch's Dataset declares no __len__; the map-style datasets used here all have one
    h.update(f"{type(ds).__module__}.{type(ds).__qualname__} n={len(cast(Sized, ds))}".encode())
    h.update("|".join(_simple_attrs(ds)).encode())
    records = getattr(ds, "records", None)
    if isinstance(records, (list, tuple)) and records:  # lpips_core.data: one Record per item
        for rec in records:
            h.update(repr(rec).encode())
            for p in getattr(rec, "paths", ()) or ():
                st = os.stat(p)
                h.update(f":{st.st_size}:{st.st_mtime_ns}\n".encode())
        return
    roots = _roots(ds)
    if roots:  # files on disk: names, sizes and modification times (no need to read them)
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(filenames):
                    st = os.stat(os.path.join(dirpath, name))
                    rel = os.path.relpath(os.path.join(dirpath, name), root)
                    h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return
    for i in range(len(cast(Sized, ds))):  # in-memory data: hash the content itself
        item = ds[i]
        for key in sorted(item):
            v = item[key]
            h.update(key.encode())
            if isinstance(v, torch.Tensor):
                _hash_tensor(h, v)
            else:
                h.update(repr(v).encode())


def dataset_fingerprint(dataset: Dataset[dict[str, Any]]) -> str:
    """A hex digest that changes whenever the dataset's items could change.

    Uses ``dataset.fingerprint()`` if the dataset defines it; for datasets
    with ``records`` (:mod:`lpips_core.data`), every record (paths, judgment,
    subset, id) with its files' sizes and modification times; for datasets
    with a ``root`` folder, the names, sizes and modification times of every
    file under it; otherwise a hash of every item's content. The dataset's
    simple settings (load size, subsets, ...) are always included.
    """
    h = hashlib.sha256()
    _fingerprint_into(h, dataset)
    return h.hexdigest()


def trunk_fingerprint(model: LPIPS) -> str:
    """Hash of what the cached means depend on: trunk weights, version (input scaling), net."""
    h = hashlib.sha256(f"{model.pnet_type}|v{model.version}".encode())
    for name, t in sorted(model.net.state_dict().items()):
        h.update(name.encode())
        _hash_tensor(h, t)
    # registered buffers, which nn.Module's __getattr__ types as Tensor | Module
    _hash_tensor(h, cast(torch.Tensor, model.scaling_layer.shift))
    _hash_tensor(h, cast(torch.Tensor, model.scaling_layer.scale))
    return h.hexdigest()


def cache_key(dataset: Dataset[dict[str, Any]], model: LPIPS, flip: bool) -> str:
    """The cache file's name: dataset + net + version + trunk weights + transform + format."""
    parts = [
        f"format={CACHE_FORMAT}",
        f"net={model.pnet_type}",
        f"version={model.version}",
        f"trunk={trunk_fingerprint(model)}",
        f"flip={bool(flip)}",
        f"data={dataset_fingerprint(dataset)}",
    ]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
    return f"{model.pnet_type}-v{model.version}-{'flip-' if flip else ''}{digest}"


# --------------------------------------------------------------------------- the cache
@dataclass
class FeatureCache:
    """Cached means of one 2AFC dataset, index-aligned with it.

    Attributes:
        m0, m1: (N, sum C) means for (ref, p0) and (ref, p1).
        judge: (N,) fraction of judges preferring p1.
        m0_flip, m1_flip: the same for horizontally flipped triplets (``flip=True``), else None.
        key: the cache key (file stem).
    """

    m0: torch.Tensor
    m1: torch.Tensor
    judge: torch.Tensor
    m0_flip: torch.Tensor | None = None
    m1_flip: torch.Tensor | None = None
    key: str = ""

    def __len__(self) -> int:
        return self.m0.shape[0]

    def select(
        self, idx: torch.Tensor, flips: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means and judgments of the triplets ``idx``; flipped ones where ``flips`` is True.

        Returns:
            m0 (B, sum C), m1 (B, sum C), judge (B,).
        """
        m0, m1 = self.m0[idx], self.m1[idx]
        if flips is not None and bool(flips.any()):
            if self.m0_flip is None:
                raise ValueError("this cache holds no flipped features; build it with flip=True")
            f = flips.view(-1, 1)
            m0 = torch.where(f, self.m0_flip[idx], m0)
            m1 = torch.where(f, cast(torch.Tensor, self.m1_flip)[idx], m1)  # set together with m0_flip
        return m0, m1, self.judge[idx]

    def to(self, device: str | torch.device) -> FeatureCache:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return FeatureCache(
            self.m0.to(device),
            self.m1.to(device),
            self.judge.to(device),
            move(self.m0_flip),
            move(self.m1_flip),
            self.key,
        )

    def state(self) -> dict[str, Any]:
        out = {"format": CACHE_FORMAT, "key": self.key, "m0": self.m0, "m1": self.m1, "judge": self.judge}
        if self.m0_flip is not None:
            out.update(m0_flip=self.m0_flip, m1_flip=self.m1_flip)
        return out


class CachedTriplets(Dataset[dict[str, Any]]):
    """A 2AFC dataset given by its cached means only: train on features computed elsewhere.

    For triplets whose images cannot or need not be read again (full-size photographs whose
    per-image means were computed once, as in :mod:`lpips_core.studies.calibration`).
    :func:`load_or_build` returns ``cache`` for it, after checking the width against the model;
    it has no images, so it serves the fast path only (``TrainConfig(fast=True)``).

    Args:
        cache: the means and judgments; ``net``: the trunk they were computed with.
    """

    def __init__(self, cache: FeatureCache, net: str):
        self.cache, self.net = cache, net

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> dict[str, Any]:
        raise TypeError("CachedTriplets holds feature means, not images: train it with TrainConfig(fast=True)")


def _flip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=[-1])


@torch.no_grad()
def extract(
    model: LPIPS,
    dataset: Dataset[dict[str, Any]],
    flip: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> FeatureCache:
    """One pass of the trunk over a 2AFC dataset, reduced to per-channel means.

    Under ``torchrun`` each rank processes every ``world_size``-th triplet and
    the pieces are gathered, so every rank returns the full cache.

    Args:
        model: LPIPS model with the trunk to use (frozen).
        dataset: items ``{'ref','p0','p1': (3,H,W) in [-1,1], 'judge': (1,), ...}``.
        flip: also cache horizontally flipped triplets.
        batch_size: triplets per trunk call (3x as many images).
    Returns:
        a :class:`FeatureCache` on the CPU (key left empty).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    n, r, w = len(cast(Sized, dataset)), ddp.rank(), ddp.world_size()  # torch's Dataset declares no __len__
    mine = list(range(r, n, w))
    loader = DataLoader(
        Subset(dataset, mine),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        generator=torch.Generator(),
    )
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("m0", "m1", "judge", "m0_flip", "m1_flip")}
    try:
        for batch in progress_bar(loader, desc="features", unit="batch", enabled=progress and r == 0):
            ref, p0, p1 = (batch[k].to(device) for k in ("ref", "p0", "p1"))
            m0, m1 = triplet_means(model, ref, p0, p1)
            parts["m0"].append(m0.float().cpu())
            parts["m1"].append(m1.float().cpu())
            parts["judge"].append(batch["judge"].reshape(-1).float())
            if flip:
                m0f, m1f = triplet_means(model, _flip(ref), _flip(p0), _flip(p1))
                parts["m0_flip"].append(m0f.float().cpu())
                parts["m1_flip"].append(m1f.float().cpu())
    finally:
        model.train(was_training)
    keys = ["m0", "m1", "judge"] + (["m0_flip", "m1_flip"] if flip else [])
    # clone(): plain tensors even if the model used inference mode internally
    local = {k: (torch.cat(parts[k]) if parts[k] else torch.empty(0)).clone() for k in keys}
    if w > 1:
        gathered = ddp.all_gather_object((mine, local))
        order = torch.tensor([i for idx, _ in gathered for i in idx])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        local = {k: torch.cat([part[k] for _, part in gathered if len(part[k])])[inverse] for k in keys}
    return FeatureCache(local["m0"], local["m1"], local["judge"], local.get("m0_flip"), local.get("m1_flip"))


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    save_torch(obj, path)


def _load(path: Path, key: str, flip: bool, n: int, width: int) -> FeatureCache | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable: rebuild rather than fail
        warnings.warn(f"feature cache {path} is unreadable ({exc}); rebuilding it", stacklevel=3)
        return None
    try:  # a file with the right name can still hold anything: check every field before using it
        ok = (
            isinstance(state, dict)
            and state.get("format") == CACHE_FORMAT
            and state.get("key") == key
            and all(
                isinstance(state.get(k), torch.Tensor) and state[k].shape == (n, width)
                for k in (("m0", "m1", "m0_flip", "m1_flip") if flip else ("m0", "m1"))
            )
            and isinstance(state.get("judge"), torch.Tensor)
            and state["judge"].shape == (n,)
            and all(bool(torch.isfinite(state[k]).all()) for k in ("m0", "m1", "judge"))
        )
    except Exception:
        ok = False
    if not ok:
        warnings.warn(f"feature cache {path} does not match this dataset/model; rebuilding it", stacklevel=3)
        return None
    return FeatureCache(state["m0"], state["m1"], state["judge"], state.get("m0_flip"), state.get("m1_flip"), key)


def _check_static(dataset: Dataset[dict[str, Any]]) -> None:
    """Refuse datasets whose items change between reads (random augmentation): a cache would freeze them."""
    stack = [dataset]
    while stack:
        ds = stack.pop()
        if isinstance(ds, FlipAugment):
            raise ValueError(
                "the fast path caches features, so it cannot use a randomly flipped dataset "
                "(FlipAugment); pass the plain dataset and set TrainConfig.flip=True, which "
                "caches both orientations"
            )
        if isinstance(ds, Subset):
            stack.append(ds.dataset)
        elif isinstance(ds, ConcatDataset):
            stack.extend(ds.datasets)


def load_or_build(
    model: LPIPS,
    dataset: Dataset[dict[str, Any]],
    cache_dir: str | os.PathLike[str] | None = None,
    flip: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> FeatureCache:
    """The dataset's feature cache: read from ``cache_dir`` if a matching file exists, else built.

    Under ``torchrun`` rank 0 decides whether the cache exists and writes it;
    every rank returns the full cache.

    Args:
        model: LPIPS model whose trunk defines the features.
        dataset: a 2AFC dataset following the item contract.
        cache_dir: folder of cache files (default :func:`default_cache_dir`).
        flip: also cache flipped triplets.
    Returns:
        :class:`FeatureCache` on the CPU, its ``key`` set (a :class:`CachedTriplets`: its own cache).
    """
    if isinstance(dataset, CachedTriplets):
        width = sum(model.chns)
        if dataset.net != model.pnet_type or dataset.cache.m0.shape[1] != width or flip:
            raise ValueError(
                f"these cached means come from net={dataset.net!r} ({dataset.cache.m0.shape[1]} "
                f"channels, no flips); the model is net={model.pnet_type!r} ({width} channels)"
                + (" and flip=True needs images" if flip else "")
            )
        return dataset.cache
    _check_static(dataset)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(dataset, model, flip)
    path = cache_dir / f"{key}.pt"
    width = sum(model.chns)
    cache = None
    if ddp.broadcast_object(path.is_file()):
        cache = _load(path, key, flip, len(cast(Sized, dataset)), width)
    hit = ddp.all_gather_object(cache is not None)
    if all(hit):
        assert cache is not None  # hit holds this rank's own `cache is not None`
        return cache
    cache = extract(model, dataset, flip=flip, batch_size=batch_size, num_workers=num_workers, progress=progress)
    cache.key = key
    if ddp.is_main():
        try:
            _atomic_save(cache.state(), path)
        except Exception as exc:  # full disk, read-only folder: the cache only saves time next run
            warnings.warn(
                f"could not write the feature cache {path} ({type(exc).__name__}: {exc}); continuing without it",
                stacklevel=2,
            )
    ddp.barrier()
    return cache
