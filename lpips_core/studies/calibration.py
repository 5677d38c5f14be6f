"""LPIPS calibrated on people: linear layers fitted to 2AFC triplets derived from LIVE's DMOS.

The mini set's judgments come from a simulated observer; this study fits the same
linear layers to judgments that come from people's ratings, and tests them on
photographs the fit never saw. The steps, in order::

    LIVE table (DMOS, std)   -> derived triplets, h from Thurstone case III   (data.live_2afc)
    each rated image         -> m(ref, p): per-channel means of squared unit-feature
                                differences at full size, one trunk pass per image
                                (the reduction of train.fastpath)
    reference scenes         -> folds: no scene has triplets on both sides   (scene_folds)
    each fold, each head     -> Trainer on the training scenes' cached means (CachedTriplets)
    every triplet            -> held-out distances: "net" (all weights 1), the official
                                v0.1 weights, each trained head
                             -> 2AFC per subset; paired differences with whole scenes resampled

``d(ref, p)`` does not depend on the other image of a triplet, so one mean vector per
rated image serves every triplet it is in. Nothing trained here is shipped: LIVE's
licence allows evaluation and cross-validated experiments, not released weights.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.images import im2tensor, load_image
from ..data.judgments import twoafc_scores
from ..data.live_2afc import DerivedTriplet, RatedImage, derive_triplets, read_rated_table
from ..eval.collect import TwoAFCDistances
from ..eval.scores import score_2afc_results
from ..eval.stats import cluster_bootstrap_test
from ..files import write_json
from ..model import LPIPS
from ..model import kernels as K
from ..progress import progress_bar
from ..train.config import TrainConfig
from ..train.fastpath import CachedTriplets, FeatureCache, cached_distance
from ..train.trainer import Trainer

#: The linear-layer fits compared, as changes to the reference recipe (TrainConfig's defaults:
#: the paper's ranking network G, Adam lr 1e-4, 5 + 5 epochs, dropout, random start).
HEADS: dict[str, dict] = {
    "recipe (G, lr 1e-4, 10 ep)": {},
    "G, lr 1e-3, 30 ep": {"lr": 1e-3, "epochs": 30},
    "logistic, lr 1e-3, 30 ep": {"loss": "logistic", "lr": 1e-3, "epochs": 30},
}
#: The two fixed models every fit is compared with.
NET, OFFICIAL = "net (weights 1)", "official v0.1"


def scene_of(image: RatedImage) -> str:
    """A rated image's reference scene: the reference file's name without extension."""
    return image.reference.stem


# --------------------------------------------------------------------------- features
@torch.inference_mode()
def rated_image_means(model: LPIPS, images: Sequence[RatedImage], progress: bool = True) -> dict[str, torch.Tensor]:
    """Per rated image, the per-channel spatial means of squared unit-feature differences to its reference.

    Full-size images; a reference's features are computed once for all its distorted versions.

    Args:
        model: supplies the trunk and the input scaling (its linear weights are not used).
        images: rated images (:func:`lpips_core.data.live_2afc.read_rated_table`).
    Returns:
        {image name: (sum(model.chns),) float32 tensor}, entries >= 0; with weights w,
        ``<m, w>`` is the LPIPS distance of the pair.
    """
    model.eval()
    by_ref: dict[Path, list[RatedImage]] = {}
    for im in images:
        by_ref.setdefault(im.reference, []).append(im)
    out: dict[str, torch.Tensor] = {}
    bar = progress_bar(total=len(images), desc="LIVE images", unit="image", enabled=progress)
    for ref_path, members in by_ref.items():
        f_ref = model.features(im2tensor(load_image(ref_path)))  # [(1, C_k, H_k, W_k)]
        for im in members:
            f_img = model.features(im2tensor(load_image(im.distorted)))
            out[im.name] = (
                torch.cat([K.squared_difference(r, f).mean([2, 3]) for r, f in zip(f_ref, f_img)], dim=1)[0]
                .float()
                .clone()
            )
            bar.update(1)
    bar.close()
    return out


# --------------------------------------------------------------------------- folds
def scene_folds(scenes: Sequence[str], n_folds: int) -> np.ndarray:
    """Assign each triplet to a test fold so that every scene's triplets share one fold.

    Scenes are placed largest first, each into the fold with the fewest triplets so far
    (ties: the lower fold), so the folds are about equally large and the few scenes with
    many triplets (LIVE's 7 blur/noise scenes) land in different folds.

    Args:
        scenes: (N,) reference scene of each triplet.
        n_folds: 2 <= n_folds <= the number of scenes.
    Returns:
        (N,) int fold of each triplet, in [0, n_folds).
    """
    scenes = np.asarray(scenes)
    names, counts = np.unique(scenes, return_counts=True)
    if not 2 <= n_folds <= names.size:
        raise ValueError(f"n_folds={n_folds}: choose between 2 and the number of scenes ({names.size})")
    load = np.zeros(n_folds, dtype=np.int64)
    fold_of = {}
    for k in np.lexsort((names, -counts)):  # largest first; equal sizes by name, so the result is fixed
        f = int(np.argmin(load))
        fold_of[names[k]] = f
        load[f] += counts[k]
    return np.array([fold_of[s] for s in scenes], dtype=np.int64)


# --------------------------------------------------------------------------- the study
@dataclass
class CalibrationResult:
    """Held-out distances of every triplet for each model, with what is needed to score them.

    Arrays are (N,) in triplet order. ``d0``/``d1`` map a model name (:data:`NET`, :data:`OFFICIAL`
    or a key of :data:`HEADS`) to distances computed by a model that never saw the triplet's scene.
    """

    net: str
    subset: np.ndarray
    scene: np.ndarray
    judge: np.ndarray  # Thurstone h, the training target
    judge_majority: np.ndarray
    fold: np.ndarray
    d0: dict[str, np.ndarray] = field(default_factory=dict)
    d1: dict[str, np.ndarray] = field(default_factory=dict)
    zero_share: dict[str, list[float]] = field(default_factory=dict)  # per trained head, per layer, fold mean

    @property
    def models(self) -> list[str]:
        return list(self.d0)

    def distances(self, label: str = "h") -> TwoAFCDistances:
        """The held-out distances as a :class:`TwoAFCDistances`, judged by h or by the majority label."""
        judge = self.judge if label == "h" else self.judge_majority
        res = TwoAFCDistances(judge=judge.copy(), subset=self.subset.copy(), ids=[str(i) for i in range(judge.size)])
        for m in self.models:
            res.d0[m], res.d1[m] = self.d0[m], self.d1[m]
        return res

    def folds(self) -> list[list[str]]:
        """The scenes held out in each fold."""
        return [sorted(set(self.scene[self.fold == f].tolist())) for f in range(int(self.fold.max()) + 1)]

    def scores(self, label: str = "h", n_resamples: int = 1000) -> dict:
        """2AFC per subset and averaged, intervals resampling whole scenes (:func:`score_2afc_results`)."""
        return score_2afc_results(self.distances(label), n_resamples=n_resamples, clusters=self.scene)

    def paired(self, a: str, b: str, subset: str | None = None, label: str = "h", n_resamples: int = 10000) -> dict:
        """Held-out 2AFC of ``a`` minus ``b`` on one subset (None: all triplets), scenes resampled."""
        judge = self.judge if label == "h" else self.judge_majority
        m = np.ones(judge.size, bool) if subset is None else self.subset == subset
        agree = [twoafc_scores(self.d0[x][m], self.d1[x][m], judge[m]) for x in (a, b)]
        return cluster_bootstrap_test(agree[0], agree[1], self.scene[m], n_resamples=n_resamples)

    def to_json(self) -> dict:
        return {
            "net": self.net,
            "subset": self.subset.tolist(),
            "scene": self.scene.tolist(),
            "judge": self.judge.tolist(),
            "judge_majority": self.judge_majority.tolist(),
            "fold": self.fold.tolist(),
            "d0": {m: v.tolist() for m, v in self.d0.items()},
            "d1": {m: v.tolist() for m, v in self.d1.items()},
            "zero_share": self.zero_share,
        }

    @classmethod
    def from_json(cls, d: Mapping) -> CalibrationResult:
        arr = lambda v, dt=np.float64: np.asarray(v, dtype=dt)
        return cls(
            d["net"],
            np.asarray(d["subset"]),
            np.asarray(d["scene"]),
            arr(d["judge"]),
            arr(d["judge_majority"]),
            arr(d["fold"], np.int64),
            {m: arr(v) for m, v in d["d0"].items()},
            {m: arr(v) for m, v in d["d1"].items()},
            dict(d.get("zero_share", {})),
        )


def _means_of(triplets: Sequence[DerivedTriplet], means: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    m0 = torch.stack([means[t.p0.name] for t in triplets])  # (N, sum C)
    m1 = torch.stack([means[t.p1.name] for t in triplets])
    return m0, m1


def _held_out(model: LPIPS, m0: torch.Tensor, m1: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        return (
            cached_distance(model, m0).view(-1).double().numpy(),
            cached_distance(model, m1).view(-1).double().numpy(),
        )


def cross_validate(
    triplets: Sequence[DerivedTriplet],
    means: Mapping[str, torch.Tensor],
    net: str = "alex",
    n_folds: int = 7,
    heads: Mapping[str, dict] = HEADS,
    seed: int = 0,
    progress: bool = True,
) -> CalibrationResult:
    """Fit each head on all scenes but one fold's, score that fold's triplets; every fold in turn.

    Args:
        triplets: derived triplets (:func:`lpips_core.data.live_2afc.derive_triplets`).
        means: {image name: mean vector} from :func:`rated_image_means` with the same ``net``.
        heads: {name: TrainConfig changes}; each fit starts from the recipe's random weights (seed).
    Returns:
        a :class:`CalibrationResult` with held-out distances for :data:`NET`, :data:`OFFICIAL` and each head.
    """
    scenes = np.array([scene_of(t.p0) for t in triplets])
    fold = scene_folds(scenes, n_folds)
    m0, m1 = _means_of(triplets, means)
    judge = torch.tensor([t.h for t in triplets], dtype=torch.float32)
    result = CalibrationResult(
        net,
        np.array([t.subset for t in triplets]),
        scenes,
        judge.double().numpy(),
        np.array([t.h_majority for t in triplets], dtype=np.float64),
        fold,
    )
    for name, model in ((NET, LPIPS(net=net, lpips=False)), (OFFICIAL, LPIPS(net=net))):
        result.d0[name], result.d1[name] = _held_out(model, m0, m1)
    bar = progress_bar(total=len(heads) * n_folds, desc="calibration fits", unit="fit", enabled=progress)
    for name, changes in heads.items():
        d0, d1 = np.full(len(triplets), np.nan), np.full(len(triplets), np.nan)
        zeros = []
        for f in range(n_folds):
            train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            cache = FeatureCache(m0[train], m1[train], judge[train])
            config = TrainConfig(net=net, mode="lin", fast=True, progress=False, seed=seed, **changes)
            trainer = Trainer(config, CachedTriplets(cache, net))
            trainer.fit()
            model = trainer.model.eval()
            d0[test], d1[test] = _held_out(model, m0[test], m1[test])
            zeros.append([float((lin.conv.weight == 0).float().mean()) for lin in model.lins])
            bar.update(1)
        result.d0[name], result.d1[name] = d0, d1
        result.zero_share[name] = np.mean(zeros, axis=0).tolist()
    bar.close()
    return result


def calibrate_on_live(
    table: str | Path,
    net: str = "alex",
    n_folds: int = 7,
    heads: Mapping[str, dict] = HEADS,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> CalibrationResult:
    """The whole study on a LIVE DMOS table (e.g. ``../shared/data/live_three_types.csv``).

    Writes ``results.json`` (the :class:`CalibrationResult`, the folds, the scores and the paired
    tests) to ``out_dir`` when given.
    """
    images = read_rated_table(table)
    triplets = derive_triplets(images)
    means = rated_image_means(LPIPS(net=net, lpips=False), images, progress=progress)
    result = cross_validate(triplets, means, net, n_folds, heads, progress=progress)
    if out_dir is not None:
        write_json(Path(out_dir) / "results.json", summary(result, table))
    return result


def summary(result: CalibrationResult, table: str | Path = "", n_resamples: int = 1000) -> dict:
    """What the course shows: folds, held-out scores (scenes resampled) and the paired differences."""
    trained = [m for m in result.models if m not in (NET, OFFICIAL)]
    pairs = (
        [(t, OFFICIAL) for t in trained]
        + [(t, NET) for t in trained]
        + [(OFFICIAL, NET)]
        + list(itertools.combinations(trained, 2))
    )
    tests: dict = {}
    for subset in (None, "cross"):
        tests[subset or "all"] = {
            f"{a} - {b}": result.paired(a, b, subset, n_resamples=10 * n_resamples) for a, b in pairs
        }
    return {
        "table": str(table),
        "note": (
            "Judgments DERIVED FROM HUMAN DMOS RATINGS (LIVE IQA Release 2, 237 "
            "images of 29 scenes) by Thurstone case III; held-out scenes only."
        ),
        "result": result.to_json(),
        "folds": result.folds(),
        "heads": {k: dict(v) for k, v in HEADS.items()},
        "scores": result.scores(n_resamples=n_resamples),
        "scores_majority": result.scores("h_majority", n_resamples=n_resamples),
        "paired": tests,
    }


def load_summary(path: str | Path) -> tuple[CalibrationResult, dict]:
    """A stored :func:`summary` and its :class:`CalibrationResult`."""
    d = json.loads(Path(path).read_text())
    return CalibrationResult.from_json(d["result"]), d
