"""Distances of many metrics on 2AFC triplets and JND pairs, in one pass over the data.

The flow::

    dataset items (ref, p0, p1, judge)  --collect_2afc-->  d0, d1 per metric   (TwoAFCDistances)
    dataset items (p0, p1, same)        --collect_jnd-->   d per metric        (JNDDistances)

Collection is batched and computes every image's features once per metric:
the triplet's three images go through the trunk in one call and the reference
patch's features feed both d0 and d1. Metrics that share a trunk ('lpips-alex',
'net-alex', a lin-trained alex) share its features. All metrics are computed in
one pass over the data, so each image is also read from disk once. Evaluation
(:mod:`.runs`), the trainer's validation and its final comparison all collect here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..progress import progress_bar
from .distances import DistanceFunction, make_distance, split_features


def _loader(dataset, batch_size: int, num_workers: int) -> DataLoader:
    if isinstance(dataset, DataLoader):
        return dataset
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def as_functions(metrics: Mapping[str, DistanceFunction] | Sequence, device="cpu") -> dict[str, DistanceFunction]:
    """{name: DistanceFunction} from a mapping, or from a list of functions and :func:`make_distance` specs."""
    if isinstance(metrics, Mapping):
        return dict(metrics)
    out: dict[str, DistanceFunction] = {}
    for m in metrics:
        fn = make_distance(m, device=device) if isinstance(m, str) else m
        out[fn.name] = fn
    return out


# --------------------------------------------------------------------------- collection
@dataclass
class TwoAFCDistances:
    """Distances of every metric on every triplet of a 2AFC set, in dataset order."""

    judge: np.ndarray                      # (N,) fraction of judges preferring p1
    subset: np.ndarray                     # (N,) subset name
    ids: list[str]
    d0: dict[str, np.ndarray] = field(default_factory=dict)   # metric -> (N,) d(ref, p0)
    d1: dict[str, np.ndarray] = field(default_factory=dict)   # metric -> (N,) d(ref, p1)
    seconds: dict[str, float] = field(default_factory=dict)   # metric -> compute time of timed batches
    timed: int = 0                                            # triplets in the timed batches

    @property
    def metrics(self) -> list[str]:
        return list(self.d0)

    def pairs_per_second(self, metric: str) -> float:
        """Distances per second (two per triplet), features included, data loading excluded.

        The first batch is a warm-up (lazy initialisation, allocator) and is not timed
        when there are more batches.
        """
        return 2 * self.timed / max(self.seconds[metric], 1e-9)


@dataclass
class JNDDistances:
    """Distances of every metric on every pair of a JND set, in dataset order."""

    same: np.ndarray                       # (N,) fraction of judges answering "same"
    subset: np.ndarray
    ids: list[str]
    d: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    timed: int = 0

    @property
    def metrics(self) -> list[str]:
        return list(self.d)


class _SharedFeatures:
    """Features of one batch, computed once per ``feature_key`` (and timed once)."""

    def __init__(self):
        self.cache: dict = {}

    def get(self, fn: DistanceFunction, images: torch.Tensor) -> tuple[list[torch.Tensor], float]:
        """(features, seconds it took to compute them); metrics sharing a key are each
        charged the full feature time, so pairs/s stays each metric's stand-alone speed."""
        key = fn.feature_key()
        if key is not None and key in self.cache:
            return self.cache[key]
        t0 = time.perf_counter()
        feats = fn.features(images)
        out = (feats, time.perf_counter() - t0)
        if key is not None:
            self.cache[key] = out
        return out


def _strings(batch_value, n: int) -> list[str]:
    if isinstance(batch_value, (list, tuple)):
        return [str(v) for v in batch_value]
    return [str(batch_value)] * n


def collect_2afc(metrics, dataset, batch_size: int = 50, num_workers: int = 0, device="cpu",
                 progress: bool = True, desc: str = "2AFC") -> TwoAFCDistances:
    """Distances d(ref, p0) and d(ref, p1) of each metric on each triplet.

    Args:
        metrics: {name: DistanceFunction}, or a list of specs for :func:`make_distance`.
        dataset: a dataset of 2AFC items (``{'ref','p0','p1','judge','subset','id'}``,
            images (3, H, W) in [-1, 1]), a list of such dicts, or a DataLoader.
        batch_size: triplets per batch (each metric sees 3 x batch_size images at once).
    Returns:
        :class:`TwoAFCDistances`.
    """
    fns = as_functions(metrics, device)
    loader = _loader(dataset, batch_size, num_workers)
    d0 = {k: [] for k in fns}
    d1 = {k: [] for k in fns}
    seconds = dict.fromkeys(fns, 0.0)
    judge, subset, ids = [], [], []
    timed, n_batches = 0, len(loader)
    with torch.inference_mode():
        for b, batch in enumerate(progress_bar(loader, n_batches, desc, unit="batch", enabled=progress)):
            ref, p0, p1 = batch["ref"], batch["p0"], batch["p1"]  # (B, 3, H, W) each
            n = ref.shape[0]
            images = torch.cat([ref, p0, p1])  # (3B, 3, H, W): one trunk call per metric
            timing = b > 0 or n_batches == 1
            timed += n if timing else 0
            shared = _SharedFeatures()
            for name, fn in fns.items():
                feats, t_feat = shared.get(fn, images)
                t0 = time.perf_counter()
                fr, f0, f1 = split_features(feats, [n, n, n])
                d0[name].append(fn.from_features(fr, f0).float().cpu())
                d1[name].append(fn.from_features(fr, f1).float().cpu())
                seconds[name] += (t_feat + time.perf_counter() - t0) if timing else 0.0
            judge.append(batch["judge"].reshape(-1).double())
            subset += _strings(batch.get("subset", "all"), n)
            ids += _strings(batch.get("id", ""), n)
    if not judge:
        raise ValueError("the 2AFC dataset is empty")
    return TwoAFCDistances(judge=torch.cat(judge).numpy(), subset=np.asarray(subset), ids=ids,
                           d0={k: torch.cat(v).double().numpy() for k, v in d0.items()},
                           d1={k: torch.cat(v).double().numpy() for k, v in d1.items()},
                           seconds=seconds, timed=timed)


def collect_jnd(metrics, dataset, batch_size: int = 50, num_workers: int = 0, device="cpu",
                progress: bool = True, desc: str = "JND") -> JNDDistances:
    """Distances d(p0, p1) of each metric on each JND pair (both images in one trunk call)."""
    fns = as_functions(metrics, device)
    loader = _loader(dataset, batch_size, num_workers)
    ds = {k: [] for k in fns}
    seconds = dict.fromkeys(fns, 0.0)
    same, subset, ids = [], [], []
    timed, n_batches = 0, len(loader)
    with torch.inference_mode():
        for b, batch in enumerate(progress_bar(loader, n_batches, desc, unit="batch", enabled=progress)):
            p0, p1 = batch["p0"], batch["p1"]
            n = p0.shape[0]
            images = torch.cat([p0, p1])
            timing = b > 0 or n_batches == 1
            timed += n if timing else 0
            shared = _SharedFeatures()
            for name, fn in fns.items():
                feats, t_feat = shared.get(fn, images)
                t0 = time.perf_counter()
                f0, f1 = split_features(feats, [n, n])
                ds[name].append(fn.from_features(f0, f1).float().cpu())
                seconds[name] += (t_feat + time.perf_counter() - t0) if timing else 0.0
            same.append(batch["same"].reshape(-1).double())
            subset += _strings(batch.get("subset", "all"), n)
            ids += _strings(batch.get("id", ""), n)
    if not same:
        raise ValueError("the JND dataset is empty")
    return JNDDistances(same=torch.cat(same).numpy(), subset=np.asarray(subset), ids=ids,
                        d={k: torch.cat(v).double().numpy() for k, v in ds.items()}, seconds=seconds,
                        timed=timed)
