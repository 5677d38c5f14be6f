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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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

    judge: np.ndarray  # (N,) fraction of judges preferring p1
    subset: np.ndarray  # (N,) subset name
    ids: list[str]
    d0: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (N,) d(ref, p0)
    d1: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (N,) d(ref, p1)
    seconds: dict[str, float] = field(default_factory=dict)  # metric -> compute time of timed batches
    timed: int = 0  # triplets in the timed batches

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

    same: np.ndarray  # (N,) fraction of judges answering "same"
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


def _collect(
    fns: dict,
    loader,
    image_keys: tuple[str, ...],
    pairs: tuple[tuple[int, int], ...],
    label_key: str,
    kind: str,
    progress: bool,
    desc: str,
):
    """The one collection pass behind :func:`collect_2afc` and :func:`collect_jnd`.

    Each batch's images ``batch[k] for k in image_keys`` go through each metric's trunk
    in one call (features shared between metrics that can share them); ``pairs`` names
    which of those stacks each distance compares. The first batch is left out of the
    timings (warm-up) unless it is the only one.

    Returns:
        (per metric, one (N,) float64 array per pair; labels (N,) float64; subsets;
        ids; seconds per metric; items timed).
    """
    dists = {k: [[] for _ in pairs] for k in fns}
    seconds = dict.fromkeys(fns, 0.0)
    labels, subset, ids = [], [], []
    timed, n_batches = 0, len(loader)
    with torch.inference_mode():
        for b, batch in enumerate(progress_bar(loader, n_batches, desc, unit="batch", enabled=progress)):
            n = batch[image_keys[0]].shape[0]
            images = torch.cat([batch[k] for k in image_keys])  # one trunk call per metric
            timing = b > 0 or n_batches == 1
            timed += n if timing else 0
            shared = _SharedFeatures()
            for name, fn in fns.items():
                feats, t_feat = shared.get(fn, images)
                t0 = time.perf_counter()
                parts = split_features(feats, [n] * len(image_keys))
                for slot, (i, j) in enumerate(pairs):
                    dists[name][slot].append(fn.from_features(parts[i], parts[j]).float().cpu())
                seconds[name] += (t_feat + time.perf_counter() - t0) if timing else 0.0
            labels.append(batch[label_key].reshape(-1).double())
            subset += _strings(batch.get("subset", "all"), n)
            ids += _strings(batch.get("id", ""), n)
    if not labels:
        raise ValueError(f"the {kind} dataset is empty")
    arrays = {k: [torch.cat(v).double().numpy() for v in slots] for k, slots in dists.items()}
    return arrays, torch.cat(labels).numpy(), np.asarray(subset), ids, seconds, timed


def collect_2afc(
    metrics,
    dataset,
    batch_size: int = 50,
    num_workers: int = 0,
    device="cpu",
    progress: bool = True,
    desc: str = "2AFC",
) -> TwoAFCDistances:
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
    d, judge, subset, ids, seconds, timed = _collect(
        fns,
        _loader(dataset, batch_size, num_workers),
        ("ref", "p0", "p1"),
        ((0, 1), (0, 2)),
        "judge",
        "2AFC",
        progress,
        desc,
    )
    return TwoAFCDistances(
        judge=judge,
        subset=subset,
        ids=ids,
        d0={k: v[0] for k, v in d.items()},
        d1={k: v[1] for k, v in d.items()},
        seconds=seconds,
        timed=timed,
    )


def collect_jnd(
    metrics, dataset, batch_size: int = 50, num_workers: int = 0, device="cpu", progress: bool = True, desc: str = "JND"
) -> JNDDistances:
    """Distances d(p0, p1) of each metric on each JND pair (both images in one trunk call)."""
    fns = as_functions(metrics, device)
    d, same, subset, ids, seconds, timed = _collect(
        fns, _loader(dataset, batch_size, num_workers), ("p0", "p1"), ((0, 1),), "same", "JND", progress, desc
    )
    return JNDDistances(
        same=same, subset=subset, ids=ids, d={k: v[0] for k, v in d.items()}, seconds=seconds, timed=timed
    )
