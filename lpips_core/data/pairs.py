"""Image pairs of two folders, matched by relative path, decoded in DataLoader workers.

The dataset side of ``lpips-core dirs`` / ``allpairs``:

* :func:`match_pairs`: files of ``dir0`` and ``dir1`` with the same relative path
  (``--recursive`` walks subfolders), plus the files that have no partner;
* :func:`plan_size`: the size policy for two images of different sizes
  (``error``, ``resize`` the second to the first, ``crop`` both to the common
  centre) and the optional ``max_side`` downscale, decided from file headers only;
* :func:`size_batches`: indices grouped by final size, then cut into batches, in a
  fixed order (so every run, shard and resume sees the same batches);
* :class:`PairDataset` / :class:`ImageDataset`: decode files to uint8 tensors (in
  DataLoader workers: uint8 is 4x less to pass between processes than float);
  :func:`to_model_range` turns them into the model's input range on the device.

Example:
    >>> pairs = match_pairs("renders", "ground_truth", recursive=True)  # doctest: +SKIP
    >>> print(pairs.report())                                           # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..model.ranges import RANGE_NAMES, parse_input_range
from .images import IMAGE_SUFFIXES, ImageLoadError, load_image, open_image

SIZE_POLICIES = ("error", "resize", "crop")

#: Input ranges a folder run can feed the metric (files are decoded to 8 bits first, so the
#: choice is what the 8-bit values become): '-1,1' (LPIPS's own) or '0,1' (``normalize=True``).
INPUT_RANGES = tuple(name for name in RANGE_NAMES if name != "0,255")

#: EXIF orientations that swap width and height (rotations by 90 degrees).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


class PairSizeError(ImageLoadError):
    """Two images of a pair differ in size and the policy is 'error'."""


# --------------------------------------------------------------------------- finding files
def list_images_recursive(folder: str | os.PathLike, recursive: bool = False) -> list[str]:
    """Relative POSIX paths of the image files in ``folder`` (and its subfolders), sorted.

    Hidden files and folders (names starting with '.') are skipped. Symbolic links to
    folders are followed, but each real folder is walked once (the first path to it in
    sorted order): a link cycle or a second link to the same folder adds no file twice.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageLoadError(f"{folder}: no such directory")
    if not recursive:
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
    found = []
    walked: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in walked:  # reached again through a link: a cycle or an alias
            dirs[:] = []
            continue
        walked.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(root).relative_to(folder)
        found += [
            (rel / f).as_posix() for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith(".")
        ]
    return sorted(found)


@dataclass
class PairList:
    """Matched pairs of two folders, and what did not match.

    Attributes:
        dir0, dir1: the two folders.
        keys: relative paths present in both, sorted (the CSV's first column).
        only0, only1: relative paths found in one folder only.
    """

    dir0: Path
    dir1: Path
    keys: list[str]
    only0: list[str] = field(default_factory=list)
    only1: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def paths(self, i: int) -> tuple[Path, Path]:
        return self.dir0 / self.keys[i], self.dir1 / self.keys[i]

    def report(self, show: int = 5) -> str:
        """Lines saying how many pairs matched and the first unmatched files of each side."""
        lines = [f"{len(self.keys)} pair(s) matched by relative path"]
        for where, only in ((self.dir0, self.only0), (self.dir1, self.only1)):
            if only:
                more = f" (and {len(only) - show} more)" if len(only) > show else ""
                lines.append(f"{len(only)} file(s) only in {where}: {', '.join(only[:show])}{more}")
        return "\n".join(lines)


def match_pairs(dir0: str | os.PathLike, dir1: str | os.PathLike, recursive: bool = False) -> PairList:
    """Pair the images of two folders by relative path (``a/b.png`` with ``a/b.png``).

    Raises:
        ImageLoadError: a folder is missing, or no file matches (naming both folders).
    """
    dir0, dir1 = Path(dir0), Path(dir1)
    files0, files1 = list_images_recursive(dir0, recursive), list_images_recursive(dir1, recursive)
    set1 = set(files1)
    keys = [k for k in files0 if k in set1]
    if not keys:
        hint = "" if recursive else " (add --recursive to look into subfolders)"
        raise ImageLoadError(
            f"no image of {dir0} ({len(files0)} found) has a file with the same relative "
            f"path in {dir1} ({len(files1)} found){hint}"
        )
    set0 = set(keys)
    return PairList(dir0, dir1, keys, [k for k in files0 if k not in set0], [k for k in files1 if k not in set0])


# --------------------------------------------------------------------------- sizes
def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file as :func:`~.images.load_image` will return it, from its header only.

    Raises:
        ImageLoadError: naming the file: missing, not an image, or over the pixel budget
            (:func:`~.images.max_pixels`).
    """
    with open_image(path) as im:
        w, h = im.size
        try:
            # Pillow's PNG getexif() decodes the whole image when no eXIf chunk came before the
            # pixels; such a late chunk is missed here and PairDataset reports the size it decodes to
            late = im.format == "PNG" and "exif" not in im.info
            orientation = 1 if late else im.getexif().get(0x0112, 1)
        except Exception as exc:  # Pillow's many error types all mean "not a usable image"
            raise ImageLoadError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    return (w, h) if orientation in _SWAPPING_ORIENTATIONS else (h, w)


def fit_max_side(hw: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """Downscaled (H, W) whose longer side is at most ``max_side`` (aspect kept; never upscaled)."""
    h, w = hw
    if max_side is None or max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


@dataclass(frozen=True)
class SizePlan:
    """How one pair becomes two images of one size.

    Attributes:
        crop: (H, W) both images are centre-cropped to first (None: no crop).
        resize1: (H, W) the second image is resized to (None: kept).
        out: (H, W) both are finally resized to (``max_side``), None: kept.
        size: the final (H, W).
    """

    size: tuple[int, int]
    crop: tuple[int, int] | None = None
    resize1: tuple[int, int] | None = None
    out: tuple[int, int] | None = None


def plan_size(
    hw0: tuple[int, int],
    hw1: tuple[int, int],
    policy: str = "error",
    max_side: int | None = None,
    names: tuple[str, str] = ("image 0", "image 1"),
) -> SizePlan:
    """The size policy for one pair.

    Args:
        hw0, hw1: (H, W) of the two images.
        policy: 'error' (sizes must agree), 'resize' (the second image is resized to
            the first's size, bicubic) or 'crop' (both centre-cropped to the common size).
        max_side: then downscale both (bicubic) so the longer side is at most this.
    Raises:
        PairSizeError: the sizes differ under 'error', naming both files.
    """
    if policy not in SIZE_POLICIES:
        raise ValueError(f"size_mismatch={policy!r}; choose one of {', '.join(SIZE_POLICIES)}")
    crop = resize1 = None
    size = hw0
    if hw0 != hw1:
        if policy == "error":
            raise PairSizeError(
                f"{names[0]} is {hw0[1]}x{hw0[0]} but {names[1]} is {hw1[1]}x{hw1[0]}; "
                f"use --size-mismatch resize or crop (size_mismatch=...)"
            )
        if policy == "resize":
            resize1 = hw0
        else:
            crop = size = (min(hw0[0], hw1[0]), min(hw0[1], hw1[1]))
    final = fit_max_side(size, max_side)
    return SizePlan(final, crop, resize1, final if final != size else None)


def _centre_crop(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[y : y + h, x : x + w]


def _resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if img.shape[:2] == tuple(hw):
        return img
    return np.array(Image.fromarray(img).resize((hw[1], hw[0]), Image.BICUBIC))  # writable, for torch


def apply_plan(img0: np.ndarray, img1: np.ndarray, plan: SizePlan) -> tuple[np.ndarray, np.ndarray]:
    """Two (H, W, 3) uint8 images -> two (H', W', 3) uint8 images of ``plan.size``."""
    if plan.crop is not None:
        img0, img1 = _centre_crop(img0, plan.crop), _centre_crop(img1, plan.crop)
    if plan.resize1 is not None:
        img1 = _resize(img1, plan.resize1)
    if plan.out is not None:
        img0, img1 = _resize(img0, plan.out), _resize(img1, plan.out)
    return img0, img1


def size_batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped by size (groups in order of first appearance), each group cut into batches.

    The result depends only on ``sizes`` and ``batch_size``: shards and resumed runs
    take whole batches from this list, so each pair is computed in the same batch
    as in one uninterrupted run (the same float32 numbers, to the last bit).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(sizes):
        groups.setdefault(tuple(s), []).append(i)
    return [idx[s : s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]


# --------------------------------------------------------------------------- datasets
def _hwc(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> the same as a tensor (shared memory when the array is contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(img))


class PairDataset(Dataset):
    """Item ``i``: {'index': i, 'images': (2, H, W, 3) uint8} for pair ``i`` of a :class:`PairList`.

    The images stay as decoded: uint8 (4x less to stack, pass between processes and
    copy to a GPU than float32) and channels last, which is the memory layout the
    trunk runs in on a CPU (so no transposing copy on the way). A batch ``x`` of
    (B, 2, H, W, 3) becomes the model's (B, 2, 3, H, W) input with
    ``to_model_range(x).permute(0, 1, 4, 2, 3)``, a view.

    Args:
        pairs, plans: the pairs and each pair's :class:`SizePlan`.
    """

    def __init__(self, pairs: PairList, plans: Sequence[SizePlan]):
        self.pairs, self.plans = pairs, list(plans)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        p0, p1 = self.pairs.paths(i)
        try:
            img0, img1 = apply_plan(load_image(p0), load_image(p1), self.plans[i])
        except ImageLoadError as exc:  # passed on as text: see collate_items
            return {"index": i, "error": str(exc)}
        if img0.shape != img1.shape or img0.shape[:2] != self.plans[i].size:  # the header lied
            return {
                "index": i,
                "error": f"{p0} decodes to {img0.shape[1]}x{img0.shape[0]} and {p1} to "
                f"{img1.shape[1]}x{img1.shape[0]}, not the sizes their headers give",
            }
        return {"index": i, "images": torch.from_numpy(np.stack([img0, img1]))}


class ImageDataset(Dataset):
    """Item ``i``: {'index': i, 'image': (H, W, 3) uint8}, brought to ``size`` by ``policy``.

    Args:
        paths: image files.
        size: (H, W) every image must have (after ``max_side``).
        policy: what to do with other sizes: 'error', 'resize' (bicubic) or 'crop' (centre)
            followed by a resize when the crop is still larger than ``size``.
    """

    def __init__(self, paths: Sequence[Path], size: tuple[int, int], policy: str = "error"):
        self.paths, self.size, self.policy = list(paths), tuple(size), policy

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        try:
            img = load_image(self.paths[i])
        except ImageLoadError as exc:
            return {"index": i, "error": str(exc)}
        if img.shape[:2] != self.size:
            if self.policy == "error":
                return {
                    "index": i,
                    "error": f"{self.paths[i]} is {img.shape[1]}x{img.shape[0]}, the others "
                    f"{self.size[1]}x{self.size[0]}; use --size-mismatch resize or crop",
                }
            if self.policy == "crop":
                h, w = img.shape[:2]
                ratio = max(self.size[0] / h, self.size[1] / w)  # the largest centred box of the target's shape
                img = _centre_crop(img, (min(h, round(self.size[0] / ratio)), min(w, round(self.size[1] / ratio))))
            img = _resize(img, self.size)
        return {"index": i, "image": _hwc(img)}


def collate_items(items: Sequence[dict]) -> dict:
    """Stack dataset items into a batch: 'index' (B,), the image tensors (B, ...), 'errors' [text].

    A worker that fails to decode a file returns the error as text instead of raising:
    DataLoader would re-raise it wrapped in a many-line traceback, and the CLI promises
    one line naming the file.
    """
    errors = [it["error"] for it in items if "error" in it]
    batch: dict = {"index": torch.tensor([it["index"] for it in items]), "errors": errors}
    if not errors:
        for key in items[0]:
            if key != "index":
                batch[key] = torch.stack([it[key] for it in items])
    return batch


def check_input_range(input_range: str) -> str:
    """The canonical name of a range a folder run can feed (any spelling :func:`parse_input_range` reads)."""
    name = parse_input_range(input_range).name
    if name not in INPUT_RANGES:
        raise ValueError(f"input_range={input_range!r}; choose one of {', '.join(INPUT_RANGES)}")
    return name


def to_model_range(x: torch.Tensor, input_range: str = "-1,1") -> torch.Tensor:
    """Images (any shape, any device) -> float32 in [-1, 1] (or [0, 1] with '0,1').

    uint8 ``v`` becomes ``(2v - 255) / 255`` (``v / 255`` for '0,1') in float32: ``2v - 255``
    is exact, so the one division rounds the exact value once, and all 256 results equal
    the reference's ``im2tensor`` (``v / 127.5 - 1`` in float64, then float32; checked in
    tests/test_dirs.py). Files therefore give the reference's inputs bit for bit, with no
    table look-up (a gather is 10x slower than this arithmetic on a CPU). Float input is
    taken to be converted already and returned as it is.
    """
    input_range = check_input_range(input_range)
    if x.dtype != torch.uint8:
        return x
    y = x.to(torch.float32)
    if input_range == "0,1":
        return y.div_(255)
    return y.mul_(2).sub_(255).div_(255)
