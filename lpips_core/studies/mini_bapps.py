"""A small BAPPS-like dataset built from real photographs, with SIMULATED judges.

BAPPS (Zhang et al. 2018) cannot be downloaded here, so this module builds a
miniature in exactly its layout::

    <out>/2afc/train/traditional/{ref,p0,p1}/<id>.png, judge/<id>.npy, metadata.csv
    <out>/2afc/val/{traditional,compositions}/...
    <out>/jnd/val/{traditional,compositions}/{p0,p1}/<id>.png, same/<id>.npy, metadata.csv
    <out>/README.md    the data card
    <out>/.complete    JSON: builder fingerprint, configuration, sizes, build time

Source: the photographs scikit-image ships in its wheel (public-domain / CC0, listed in
:data:`PHOTOS`), split by photograph between train and val. Each reference is a 64x64
patch (cut from an 80x80 context so that blur, warps and shifts have real borders).
Each reference gets a *pool* of distorted versions (:mod:`lpips_core.data.distortions`);
every pair of pool members is one triplet, so triplets that share a reference are
correlated (the data card says so, and gives the number of references).

**The judgments are not human.** An observer with a known distance ``d`` (default: the
official LPIPS-VGG v0.1) answers through a logistic psychometric function::

    P(judge prefers p1) = 1 / (1 + exp(-(d(ref, p0) - d(ref, p1)) / T))
    P(judge says "same") = 1 / (1 + exp(-(tau - d(p0, p1)) / T_jnd))      (JND)

and ``judge`` is the fraction of n sampled judges (5 per val triplet and 2 per train
triplet, as in BAPPS; 3 per JND pair), so it takes values in multiples of 1/5, 1/2 or 1/3.
The course uses it to show a linear calibration recovering a known observer.

Example:
    >>> from lpips_core.studies.mini_bapps import ensure_mini_bapps   # doctest: +SKIP
    >>> root = ensure_mini_bapps()      # builds once (~1-2 minutes on 2 CPU cores)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from filelock import FileLock
from PIL import Image

from ..data import distortions as D
from ..data.images import uint8_to_tensor
from ..data.judgments import score_2afc
from ..data.photos import PHOTOS, TRAIN_PHOTOS, VAL_PHOTOS, load_photo
from ..files import atomic_path, cache_root, write_csv, write_text
from ..model import LPIPS
from ..progress import progress_bar

__all__ = [
    "BUILDER_VERSION",
    "COLOUR_ONLY",
    "OBSERVERS",
    "OBSERVED",
    "Observer",
    "MiniBappsConfig",
    "Reference",
    "default_dir",
    "fingerprint",
    "is_complete",
    "sample_reference",
    "draw_steps",
    "recipe_text",
    "psychometric",
    "sample_judges",
    "make_distance",
    "pools_key",
    "stored_distances",
    "build_mini_bapps",
    "ensure_mini_bapps",
]

#: Bump whenever a change to this module or to :mod:`lpips_core.data.distortions` changes the
#: files a build writes: the fingerprint of a build is (version, configuration).
BUILDER_VERSION = 1


@dataclass(frozen=True)
class Observer:
    """A simulated observer: a distance and the logistic psychometric functions around it.

    Attributes:
        name: key in :data:`OBSERVERS`.
        description: one line for the data card.
        temperature: T of P(prefer p1) = sigmoid((d0 - d1) / T), in the distance's units;
            the slope of the psychometric function at d0 = d1 is 1 / (4 T).
        jnd_threshold: tau, the distance at which half the judges say "same".
        jnd_temperature: T_jnd of P(same) = sigmoid((tau - d) / T_jnd).
    """

    name: str
    description: str
    temperature: float
    jnd_threshold: float
    jnd_temperature: float


OBSERVERS: dict[str, Observer] = {
    "lpips-vgg": Observer(
        "lpips-vgg",
        "official LPIPS-VGG v0.1 distance (lpips_core.LPIPS(net='vgg'))",
        temperature=0.05,
        jnd_threshold=0.12,
        jnd_temperature=0.03,
    ),
    "lab-l2": Observer(
        "lab-l2",
        "mean CIE76 colour difference (Euclidean distance in CIELAB, skimage.color.deltaE_cie76) over the 64x64 patch",
        temperature=2.0,
        jnd_threshold=4.0,
        jnd_temperature=1.5,
    ),
}


@dataclass(frozen=True)
class MiniBappsConfig:
    """What to build. The defaults are the course's mini set.

    Attributes:
        seed: seeds every random choice (patches, distortions, judges).
        observer: key of :data:`OBSERVERS`.
        patch: side of the patches (BAPPS: 64).
        margin: context around each patch, cropped after distorting.
        train_refs, train_pool: references and pool size of 2afc/train/traditional
            (triplets = refs * pool * (pool - 1) / 2).
        val_refs, val_pool: the same for 2afc/val/traditional; its (ref, distorted) pairs
            are also the pairs of jnd/val/traditional (val_refs * val_pool of them).
        compositions_refs: references of 2afc/val/compositions (two distortions per image,
            never seen in training) and of jnd/val/compositions; pool size ``val_pool``.
        train_judges, val_judges, jnd_judges: judges sampled per item.
    """

    seed: int = 0
    observer: str = "lpips-vgg"
    patch: int = 64
    margin: int = 8
    train_refs: int = 86
    train_pool: int = 8
    val_refs: int = 115
    val_pool: int = 7
    compositions_refs: int = 48
    train_judges: int = 2
    val_judges: int = 5
    jnd_judges: int = 3


# --------------------------------------------------------------------------- locations
def default_dir() -> Path:
    """``$LPIPS_CORE_MINI_BAPPS``, else ``<repository>/data/mini_bapps`` (editable install),
    else ``~/.cache/lpips_core/mini_bapps``."""
    env = os.environ.get("LPIPS_CORE_MINI_BAPPS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]  # lpips_core/studies/mini_bapps.py -> the repository
    if (repo / "pyproject.toml").is_file():
        return repo / "data" / "mini_bapps"
    return cache_root() / "mini_bapps"


def fingerprint(config: MiniBappsConfig) -> str:
    """sha256 prefix of (:data:`BUILDER_VERSION`, configuration): what a build is checked against."""
    payload = json.dumps({"version": BUILDER_VERSION, "config": dataclasses.asdict(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def is_complete(out_dir: str | os.PathLike, config: MiniBappsConfig = MiniBappsConfig()) -> bool:
    """True when ``out_dir`` holds a finished build of exactly this configuration and code."""
    marker = Path(out_dir) / ".complete"
    try:
        return json.loads(marker.read_text())["fingerprint"] == fingerprint(config)
    except (OSError, ValueError, KeyError):
        return False


# --------------------------------------------------------------------------- photographs and patches
@dataclass
class Reference:
    """One reference patch with its context and where it came from."""

    photo: str
    box: tuple[int, int, int]  # (y, x, side) of the crop in the photograph, before resizing
    context: np.ndarray  # (patch + 2 margin, same, 3) uint8


def sample_reference(
    photo: np.ndarray, name: str, side: int, rng: np.random.Generator, tries: int = 20, min_std: float = 6.0
) -> Reference:
    """A random square crop at a random scale (1x to 3x), resized to ``side``; flat crops are redrawn."""
    h, w = photo.shape[:2]
    for _ in range(tries):
        crop = int(min(side * rng.uniform(1.0, 3.0), h, w))
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        region = photo[y : y + crop, x : x + crop]
        context = (
            np.array(Image.fromarray(region).resize((side, side), Image.LANCZOS)) if crop != side else region.copy()
        )
        if context.std() >= min_std:
            break
    return Reference(name, (y, x, crop), context)


def _centre(img: np.ndarray, margin: int) -> np.ndarray:
    return img[margin : img.shape[0] - margin, margin : img.shape[1] - margin]


#: distortions that do nothing to a grey image (left out for grey photographs)
COLOUR_ONLY = ("saturation", "hue_shift")


def draw_steps(
    rng: np.random.Generator, pool: int, per_image: int, grey: bool = False
) -> list[list[tuple[str, float]]]:
    """Distortion recipes for one pool: distinct families across the pool where possible,
    ``per_image`` distinct families per image, strengths uniform in [0, 1]."""
    names = [n for n in D.DISTORTIONS if not (grey and n in COLOUR_ONLY)]
    recipes = []
    order = list(rng.permutation(len(names)))
    for _ in range(pool):
        chosen: list[str] = []
        while len(chosen) < per_image:
            if not order:
                order = list(rng.permutation(len(names)))
            cand = names[order.pop()]
            if cand not in chosen:
                chosen.append(cand)
        recipes.append([(n, float(rng.uniform(0.0, 1.0))) for n in chosen])
    return recipes


def recipe_text(steps: Sequence[tuple[str, float]]) -> str:
    """``'jpeg:0.63+gaussian_blur:0.21'``; ``'none'`` for the undistorted reference."""
    return "+".join(f"{n}:{s:.3f}" for n, s in steps) or "none"


# --------------------------------------------------------------------------- observers
def psychometric(x: np.ndarray) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def sample_judges(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Fraction of ``n`` independent judges answering yes with probability ``p``: multiples of 1/n."""
    return rng.binomial(n, np.clip(p, 0.0, 1.0)) / n


class _LpipsVggDistance:
    """d(ref, each pool image) with LPIPS-VGG v0.1; features computed once per image, batched."""

    def __init__(self):
        self.model = LPIPS(net="vgg", version="0.1").eval().requires_grad_(False)

    def __call__(self, refs: np.ndarray, pools: np.ndarray) -> np.ndarray:
        """refs (R, H, W, 3), pools (R, K, H, W, 3) uint8 -> (R, K) float64 distances."""
        r, k = pools.shape[:2]
        images = np.concatenate([refs[:, None], pools], axis=1).reshape(r * (k + 1), *refs.shape[1:])
        with torch.inference_mode():
            # read as the dataset loader reads them; list of (R*(K+1), C, h, w)
            feats = self.model.features(uint8_to_tensor(images))
            feats = [f.view(r, k + 1, *f.shape[1:]) for f in feats]
            f_ref = [f[:, :1].expand(-1, k, *f.shape[2:]).reshape(r * k, *f.shape[2:]) for f in feats]
            f_pool = [f[:, 1:].reshape(r * k, *f.shape[2:]) for f in feats]
            d = self.model.distance_from_features(f_ref, f_pool)  # (R*K, 1, 1, 1)
        return d.view(r, k).double().numpy()


def _lab_l2_distance(refs: np.ndarray, pools: np.ndarray) -> np.ndarray:
    from skimage.color import deltaE_cie76, rgb2lab

    lab_ref = rgb2lab(refs)  # (R, H, W, 3)
    lab_pool = rgb2lab(pools)  # (R, K, H, W, 3)
    return deltaE_cie76(lab_ref[:, None], lab_pool).mean(axis=(2, 3))


def make_distance(observer: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The observer's distance: f(refs (R,H,W,3), pools (R,K,H,W,3)) -> (R, K)."""
    if observer == "lpips-vgg":
        return _LpipsVggDistance()
    if observer == "lab-l2":
        return _lab_l2_distance
    raise ValueError(f"unknown observer {observer!r}; choose from {', '.join(OBSERVERS)}")


# --------------------------------------------------------------------------- building
@dataclass
class _Pools:
    """Everything known about one subset before its judgments are drawn."""

    refs: list[Reference]
    recipes: list[list[list[tuple[str, float]]]]  # [ref][pool member] -> steps
    ref_patches: np.ndarray  # (R, P, P, 3) uint8
    pool_patches: np.ndarray  # (R, K, P, P, 3) uint8
    distances: np.ndarray | None = None  # (R, K) observer distance d(ref, pool member)


def _make_pools(
    photos: dict[str, np.ndarray],
    names: Sequence[str],
    n_refs: int,
    pool: int,
    per_image: int,
    config: MiniBappsConfig,
    rng: np.random.Generator,
    desc: str,
) -> _Pools:
    side = config.patch + 2 * config.margin
    refs, recipes, ref_patches, pool_patches = [], [], [], []
    for i in progress_bar(range(n_refs), desc=f"distorting {desc}", unit="ref", leave=False):
        name = names[i % len(names)]  # round-robin: every photograph contributes equally
        ref = sample_reference(photos[name], name, side, rng)
        grey = bool(
            (ref.context[..., 0] == ref.context[..., 1]).all() and (ref.context[..., 1] == ref.context[..., 2]).all()
        )
        steps = draw_steps(rng, pool, per_image, grey)
        refs.append(ref)
        recipes.append(steps)
        ref_patches.append(_centre(ref.context, config.margin))
        pool_patches.append([_centre(D.apply(ref.context, s, rng), config.margin) for s in steps])
    return _Pools(refs, recipes, np.stack(ref_patches), np.asarray(pool_patches, dtype=np.uint8))


#: The default observer's distances for the course's build, shipped so that a fresh machine
#: need not run LPIPS-VGG over its 9,213 patches (about 100 s on 2 cores). Each array is keyed
#: by :func:`pools_key`, the sha256 of the observer's name and the exact patches it judges: any
#: other pools (another configuration, a changed distortion, another library's rounding) are
#: observed live. Written by ``data_scripts/make_mini_bapps.py --write-observed``;
#: ``tests/test_mini_bapps.py`` checks the built set's distances against the reference package.
OBSERVED = Path(__file__).with_name("mini_bapps_observed.npz")


def pools_key(observer: str, pools: _Pools) -> str:
    """sha256 prefix of the observer's name and the pools' reference and distorted patches."""
    h = hashlib.sha256(observer.encode())
    for patches in (pools.ref_patches, pools.pool_patches):
        h.update(str(patches.shape).encode())
        h.update(np.ascontiguousarray(patches).tobytes())
    return h.hexdigest()[:32]


def stored_distances(key: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The shipped (R, K) distances for ``key`` as float64, or None (absent, damaged, other shape)."""
    try:
        with np.load(OBSERVED, allow_pickle=False) as stored:
            found = stored[key] if key in stored.files else None
    except (OSError, ValueError):
        return None
    return None if found is None or found.shape != shape else found.astype(np.float64)


def _observe(pools: _Pools, distance: Callable, batch_refs: int, desc: str) -> None:
    out = []
    n = len(pools.refs)
    for start in progress_bar(range(0, n, batch_refs), desc=f"observer on {desc}", unit="batch", leave=False):
        out.append(
            distance(pools.ref_patches[start : start + batch_refs], pools.pool_patches[start : start + batch_refs])
        )
    pools.distances = np.concatenate(out)


class _Writer:
    """Writes PNGs once per distinct image and hard-links repeats (a pool image is in many triplets)."""

    def __init__(self):
        self.first: dict[tuple, Path] = {}

    def image(self, key: tuple, array: np.ndarray, path: Path) -> None:
        src = self.first.get(key)
        if src is not None:
            try:
                os.link(src, path)
                return
            except OSError:
                pass
        Image.fromarray(array).save(path, compress_level=1)
        self.first.setdefault(key, path)


def _write_2afc(
    folder: Path, pools: _Pools, n_judges: int, observer: Observer, rng: np.random.Generator, writer: _Writer, tag: str
) -> tuple[int, float]:
    """Write one 2AFC subset; returns (triplets, the observer's own 2AFC score against its judges)."""
    for sub in ("ref", "p0", "p1", "judge"):
        (folder / sub).mkdir(parents=True)
    triplets = []
    k = pools.pool_patches.shape[1]
    for r in range(len(pools.refs)):
        for i, j in combinations(range(k), 2):
            if rng.random() < 0.5:
                i, j = j, i
            triplets.append((r, i, j))
    order = rng.permutation(len(triplets))  # so that any prefix mixes references
    rows, d0s, d1s, hs = [], [], [], []
    for idx, t in enumerate(order):
        r, i, j = triplets[t]
        d0, d1 = pools.distances[r, i], pools.distances[r, j]
        p = float(psychometric((d0 - d1) / observer.temperature))
        h = float(sample_judges(np.array([p]), n_judges, rng)[0])
        stem = f"{idx:06d}"
        writer.image((tag, r, "ref"), pools.ref_patches[r], folder / "ref" / f"{stem}.png")
        writer.image((tag, r, i), pools.pool_patches[r, i], folder / "p0" / f"{stem}.png")
        writer.image((tag, r, j), pools.pool_patches[r, j], folder / "p1" / f"{stem}.png")
        np.save(folder / "judge" / f"{stem}.npy", np.array([h], dtype=np.float32))
        d0s.append(d0), d1s.append(d1), hs.append(h)
        ref = pools.refs[r]
        rows.append(
            [
                stem,
                ref.photo,
                *ref.box,
                recipe_text(pools.recipes[r][i]),
                recipe_text(pools.recipes[r][j]),
                f"{d0:.6f}",
                f"{d1:.6f}",
                f"{p:.6f}",
                f"{h:.4f}",
            ]
        )
    write_csv(
        folder / "metadata.csv",
        [
            "id",
            "photo",
            "crop_y",
            "crop_x",
            "crop_side",
            "p0_distortion",
            "p1_distortion",
            "d0",
            "d1",
            "p_prefer_p1",
            "judge",
        ],
        rows,
    )
    return len(rows), float(score_2afc(np.array(d0s), np.array(d1s), np.array(hs)))


def _write_jnd(
    folder: Path, pools: _Pools, n_judges: int, observer: Observer, rng: np.random.Generator, writer: _Writer, tag: str
) -> int:
    for sub in ("p0", "p1", "same"):
        (folder / sub).mkdir(parents=True)
    pairs = [(r, k) for r in range(len(pools.refs)) for k in range(pools.pool_patches.shape[1])]
    order = rng.permutation(len(pairs))
    rows = []
    for idx, t in enumerate(order):
        r, k = pairs[t]
        d = pools.distances[r, k]
        p = float(psychometric((observer.jnd_threshold - d) / observer.jnd_temperature))
        same = float(sample_judges(np.array([p]), n_judges, rng)[0])
        stem = f"{idx:06d}"
        items = [
            ((tag, r, "ref"), pools.ref_patches[r], "none"),
            ((tag, r, k), pools.pool_patches[r, k], recipe_text(pools.recipes[r][k])),
        ]
        if rng.random() < 0.5:  # which side shows the reference is random
            items.reverse()
        for side, (key, arr, _) in zip(("p0", "p1"), items):
            writer.image(key, arr, folder / side / f"{stem}.png")
        np.save(folder / "same" / f"{stem}.npy", np.array([same], dtype=np.float32))
        ref = pools.refs[r]
        rows.append([stem, ref.photo, *ref.box, items[0][2], items[1][2], f"{d:.6f}", f"{p:.6f}", f"{same:.4f}"])
    write_csv(
        folder / "metadata.csv",
        [
            "id",
            "photo",
            "crop_y",
            "crop_x",
            "crop_side",
            "p0_distortion",
            "p1_distortion",
            "distance",
            "p_same",
            "same",
        ],
        rows,
    )
    return len(rows)


def build_mini_bapps(
    out_dir: str | os.PathLike | None = None,
    config: MiniBappsConfig = MiniBappsConfig(),
    force: bool = False,
    batch_refs: int = 4,
    write_observed: bool = False,
) -> Path:
    """Build the mini set into ``out_dir`` (default :func:`default_dir`) unless it is already complete.

    The set is written into a temporary sibling folder and renamed into place only when
    complete, under a file lock, so concurrent callers build it once and a failed build
    leaves nothing behind. Progress bars go to stderr.

    Args:
        out_dir: target folder (replaced when it holds another build).
        config: what to build; the defaults are the course's set.
        force: rebuild even when a complete build of this configuration exists.
        batch_refs: references per observer batch (each brings its pool: 4 x 9 = 36 images).
        write_observed: build with the observer run live (no shipped distances) and write its
            distances to :data:`OBSERVED` (a maintainer's step, after a change to the pools).
    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_dir()
    if config.observer not in OBSERVERS:
        raise ValueError(f"unknown observer {config.observer!r}; choose from {', '.join(OBSERVERS)}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir.parent / f".{out_dir.name}.lock")):
        if not force and is_complete(out_dir, config):
            os.utime(out_dir / ".complete")  # lets make see the marker as up to date
            return out_dir
        tmp = out_dir.parent / f".{out_dir.name}.building"
        if tmp.exists():
            shutil.rmtree(tmp)  # a build that was killed; we hold the lock
        try:
            observed: dict[str, np.ndarray] = {}
            stats = _build_into(tmp, config, batch_refs, observe_live=write_observed, observed=observed)
            if write_observed:
                with atomic_path(OBSERVED, suffix=".npz") as npz:
                    np.savez_compressed(npz, **observed)
            _write_card(tmp, config, stats)
            marker = {
                "fingerprint": fingerprint(config),
                "builder_version": BUILDER_VERSION,
                "config": dataclasses.asdict(config),
                **stats,
            }
            write_text(tmp / ".complete", json.dumps(marker, indent=1) + "\n")
            if out_dir.exists():
                old = out_dir.parent / f".{out_dir.name}.old"
                if old.exists():
                    shutil.rmtree(old)
                os.replace(out_dir, old)
                os.replace(tmp, out_dir)
                shutil.rmtree(old)
            else:
                os.replace(tmp, out_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def ensure_mini_bapps(out_dir: str | os.PathLike | None = None) -> Path:
    """The course's mini set, built on first use (cached afterwards)."""
    return build_mini_bapps(out_dir)


def _build_into(
    tmp: Path,
    config: MiniBappsConfig,
    batch_refs: int,
    observe_live: bool = False,
    observed: dict[str, np.ndarray] | None = None,
) -> dict:
    start = time.perf_counter()
    observer = OBSERVERS[config.observer]
    rng = np.random.default_rng(config.seed)
    photos = {name: load_photo(name) for name in VAL_PHOTOS + TRAIN_PHOTOS}

    # Each subset has its own child generator, so changing one size leaves the others' draws alone.
    seeds = rng.spawn(3)
    train = _make_pools(photos, TRAIN_PHOTOS, config.train_refs, config.train_pool, 1, config, seeds[0], "train")
    val = _make_pools(photos, VAL_PHOTOS, config.val_refs, config.val_pool, 1, config, seeds[1], "val")
    comp = _make_pools(
        photos, VAL_PHOTOS, config.compositions_refs, config.val_pool, 2, config, seeds[2], "compositions"
    )
    t_distort = time.perf_counter() - start
    shipped = 0
    for pools, desc in ((train, "train"), (val, "val"), (comp, "compositions")):
        shape = (len(pools.refs), pools.pool_patches.shape[1])
        pools.distances = None if observe_live else stored_distances(pools_key(config.observer, pools), shape)
        if pools.distances is None:
            _observe(pools, make_distance(config.observer), batch_refs, desc)
        else:
            shipped += 1
    t_observe = time.perf_counter() - start - t_distort
    if observed is not None:
        observed.update({pools_key(config.observer, p): p.distances for p in (train, val, comp)})

    judge_rng = np.random.default_rng([config.seed, 1])
    writer = _Writer()
    written = {
        "2afc/train/traditional": _write_2afc(
            tmp / "2afc" / "train" / "traditional", train, config.train_judges, observer, judge_rng, writer, "train"
        ),
        "2afc/val/traditional": _write_2afc(
            tmp / "2afc" / "val" / "traditional", val, config.val_judges, observer, judge_rng, writer, "val"
        ),
        "2afc/val/compositions": _write_2afc(
            tmp / "2afc" / "val" / "compositions", comp, config.val_judges, observer, judge_rng, writer, "comp"
        ),
        "jnd/val/traditional": _write_jnd(
            tmp / "jnd" / "val" / "traditional", val, config.jnd_judges, observer, judge_rng, writer, "val"
        ),
        "jnd/val/compositions": _write_jnd(
            tmp / "jnd" / "val" / "compositions", comp, config.jnd_judges, observer, judge_rng, writer, "comp"
        ),
    }
    sizes = {k: v[0] if isinstance(v, tuple) else v for k, v in written.items()}
    scores = {k: round(v[1], 4) for k, v in written.items() if isinstance(v, tuple)}
    references = {
        "2afc/train/traditional": len(train.refs),
        "2afc/val/traditional": len(val.refs),
        "2afc/val/compositions": len(comp.refs),
        "jnd/val/traditional": len(val.refs),
        "jnd/val/compositions": len(comp.refs),
    }
    n_images = sum(len(p.refs) * (1 + p.pool_patches.shape[1]) for p in (train, val, comp))
    return {
        "sizes": sizes,
        "references": references,
        "distinct_images": n_images,
        "observer_2afc_score": scores,
        "observer_distances": f"shipped for {shipped} of 3 subsets" if shipped else "computed",
        "seconds": {
            "distort": round(t_distort, 1),
            "observer": round(t_observe, 1),
            "total": round(time.perf_counter() - start, 1),
        },
    }


def _write_card(folder: Path, config: MiniBappsConfig, stats: dict) -> None:
    observer = OBSERVERS[config.observer]
    sizes, refs = stats["sizes"], stats["references"]
    photo_rows = "\n".join(
        f"| `{n}` | {PHOTOS[n][0]} | {PHOTOS[n][1]} | {'val' if n in VAL_PHOTOS else 'train'} |"
        for n in VAL_PHOTOS + TRAIN_PHOTOS
    )
    size_rows = "\n".join(f"| `{k}` | {v} | {refs[k]} |" for k, v in sizes.items())
    families = ", ".join(f"`{n}`" for n in D.DISTORTIONS)
    score_text = ", ".join(f"{v:.3f} on `{k}`" for k, v in stats["observer_2afc_score"].items())
    text = f"""# mini-BAPPS: a small perceptual-judgment set with a simulated observer

**These judgments are NOT human judgments.** Every `judge` and `same` value in this
folder was drawn from a simulated observer (described below), not from people. Use it
to learn, test and debug; do not report results on it as agreement with humans.
Real human ratings are in BAPPS (`data_scripts/download_bapps.py`) and LIVE.

Built by `lpips_core.studies.mini_bapps` (builder version {BUILDER_VERSION}, seed {config.seed},
observer `{config.observer}`, fingerprint `{fingerprint(config)}`) in {stats["seconds"]["total"]} s.

## Layout (exactly BAPPS)

`2afc/<split>/<subset>/{{ref,p0,p1}}/<id>.png` with `judge/<id>.npy` (float32, shape (1,),
fraction of judges preferring p1), and `jnd/val/<subset>/{{p0,p1}}/<id>.png` with
`same/<id>.npy` (fraction of judges answering "same"). Patches are {config.patch}x{config.patch} RGB PNG.
Each subset folder also holds `metadata.csv`: the source photograph and crop, the
distortions and strengths that made p0 and p1, the observer's distances and probability,
and the sampled judgment.

| subset | items | distinct references |
|---|---|---|
{size_rows}

Each reference patch has a pool of distorted versions ({config.train_pool} in train,
{config.val_pool} in val) and every pair of pool members is a triplet, so triplets that
share a reference are correlated: count the references, not the triplets, when judging
how independent the evidence is. The JND pairs are the (reference, pool member) pairs of
the 2afc val subset of the same name, shown in random order (same images, other question).
A pool image appears in many triplets: its files are hard links to one file, so copy a
file before editing it in place.

## Source photographs

The photographs scikit-image installs with its wheel (`skimage.data`), split by photograph
so that no photograph appears in both train and val. Grey photographs are repeated to RGB.
Each reference is a random square crop (1x to 3x the patch size, resized with Lanczos),
{config.patch + 2 * config.margin} px of context of which the centre {config.patch} px is kept after distorting;
nearly flat crops are redrawn.

| photograph | content | licence (scikit-image docstring) | split |
|---|---|---|---|
{photo_rows}

## Distortions

`lpips_core.data.distortions`, in the spirit of BAPPS "traditional": {families}.
Strength is uniform in [0, 1]; each function's docstring maps it to its parameter.
Grey photographs never get `saturation` or `hue_shift`, which would leave them unchanged.
`traditional` subsets: one distortion per image, families distinct within a pool where
possible. `2afc/val/compositions`: two different distortions applied in sequence, a kind
of image never seen in training.

## The simulated observer

Distance d: {observer.description}.

* 2AFC: each judge prefers p1 with probability `P = 1 / (1 + exp(-(d(ref,p0) - d(ref,p1)) / T))`,
  T = {observer.temperature} (a logistic psychometric function; slope 1/(4T) = {1 / (4 * observer.temperature):.3g}
  per unit of distance difference at d0 = d1). {config.val_judges} judges per val triplet and
  {config.train_judges} per train triplet (as in BAPPS), so `judge` is a multiple of
  1/{config.val_judges} (val) or 1/{config.train_judges} (train). Scored against its own judges,
  the observer's own distance reaches a 2AFC score of {score_text}: roughly the best any
  metric can expect here, since the sampled judges disagree with each other as people do.
* JND: each judge says "same" with probability `1 / (1 + exp(-(tau - d(p0,p1)) / T_jnd))`,
  threshold tau = {observer.jnd_threshold} plus logistic noise of scale T_jnd = {observer.jnd_temperature};
  {config.jnd_judges} judges per pair, so `same` is a multiple of 1/{config.jnd_judges}.

The observer is a choice of this dataset: with it, a linear calibration of LPIPS can be
shown to recover a known observer. Build a second set with another observer
(`python data_scripts/make_mini_bapps.py --observer lab-l2 --out data/mini_bapps_lab`, a
pixel-space distance in CIELAB) to see training follow the judges.

## Licence

The photographs keep the licences above (public domain, CC0, or no known copyright
restrictions, as stated by scikit-image). The distorted patches and simulated judgments
are derived from them and released under the same terms.
"""
    write_text(folder / "README.md", text)
