"""What a judgment says about a distance: 2AFC agreement and JND average precision.

A 2AFC judgment ``h`` (fraction of judges who found p1 closer to ref) turns two
distances ``d0 = d(ref, p0)``, ``d1 = d(ref, p1)`` into the agreement
``(d0 < d1)(1 - h) + (d1 < d0) h + 0.5 (d0 == d1)``; a JND "same" fraction turns a
ranking of pair distances into an average precision. Exactly as ``lpips/trainer.py``,
from distances already computed (numpy arrays or tensors).
"""

from __future__ import annotations

import numpy as np
import torch


def _flat(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def twoafc_scores(d0, d1, judge) -> np.ndarray:
    """Per-triplet 2AFC agreement with the judges.

    Args:
        d0, d1: (N,) distances from the reference to p0 and to p1.
        judge: (N,) fraction of judges who preferred p1 (found it closer), in [0, 1].
    Returns:
        (N,) agreement in [0, 1]: ``(d0<d1)(1-h) + (d1<d0)h + 0.5(d0==d1)``.
    """
    d0, d1, h = _flat(d0), _flat(d1), _flat(judge)
    if not (d0.shape == d1.shape == h.shape):
        raise ValueError(f"d0, d1 and judge must have the same length, got {d0.size}, {d1.size}, {h.size}")
    return (d0 < d1) * (1.0 - h) + (d1 < d0) * h + (d0 == d1) * 0.5


def score_2afc(d0, d1, judge) -> float:
    """2AFC score: mean agreement of a distance with the judges (the paper's Table 3 metric)."""
    return float(np.mean(twoafc_scores(d0, d1, judge)))


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """Area under the precision-recall curve, VOC style (precision envelope, no 11-point sampling)."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def score_jnd(ds, sames) -> float:
    """JND score: average precision of ranking pairs by ascending distance, "same" as soft positive.

    Args:
        ds: (N,) distances between the two patches of each pair.
        sames: (N,) fraction of judges who said the two patches look the same, in [0, 1].
    Returns:
        mAP in [0, 1].
    """
    ds, sames = _flat(ds), _flat(sames)
    if ds.shape != sames.shape:
        raise ValueError(f"ds and sames must have the same length, got {ds.size} and {sames.size}")
    order = np.argsort(ds, kind="stable")
    s = sames[order]
    tps = np.cumsum(s)
    fps = np.cumsum(1.0 - s)
    fns = np.sum(s) - tps
    with np.errstate(invalid="ignore", divide="ignore"):
        precs = tps / (tps + fps)
        recs = tps / (tps + fns)
    return voc_ap(recs, precs)
