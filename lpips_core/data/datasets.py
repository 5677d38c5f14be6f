"""Perceptual-judgment datasets: BAPPS 2AFC and JND, plus simple table and folder formats.

A 2AFC item is one triplet shown to judges ("which of p0, p1 is closer to ref?")::

    {'ref', 'p0', 'p1': float32 (3, H, W) in [-1, 1],
     'judge': float32 (1,) = fraction of judges preferring p1, in [0, 1],
     'subset': str, 'id': str}

A JND item is one pair shown briefly ("are these the same?")::

    {'p0', 'p1': float32 (3, H, W) in [-1, 1],
     'same': float32 (1,) = fraction of judges answering "same", in [0, 1],
     'subset': str, 'id': str}

The default DataLoader collation batches them ((N, 3, H, W), (N, 1), lists of str).

Where the files can be and how they are found: :mod:`.formats`.

Images are read as the reference repository's loader does: PIL RGB, bilinear resize to
``load_size`` (``transforms.Resize``), ``ToTensor`` and ``Normalize((0.5,)*3, (0.5,)*3)``,
i.e. ``x / 255 * 2 - 1``. BAPPS patches are square, where this is exactly the reference;
non-square images are resized to ``load_size x load_size`` so that triplets batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .formats import IMAGE_KEYS, MAX_ERRORS_LISTED, VALUE_KEY, Record, read_records
from .images import ImageLoadError, load_image, uint8_to_tensor


def load_patch(path: str | os.PathLike, load_size: int | None = 64) -> torch.Tensor:
    """Read one image as the reference BAPPS loader does.

    Args:
        path: image file (any format Pillow reads; grey and 16-bit are converted to 8-bit RGB).
        load_size: side of the output square (PIL bilinear resize), or None to keep the size.
    Returns:
        float32 (3, load_size, load_size) tensor in [-1, 1].
    Raises:
        ImageLoadError: naming the file, when it is missing or unreadable.
    """
    arr = load_image(path)  # (H, W, 3) uint8
    if load_size is not None and arr.shape[:2] != (load_size, load_size):
        arr = np.array(Image.fromarray(arr).resize((load_size, load_size), Image.BILINEAR))
    return uint8_to_tensor(arr)


class _JudgmentDataset(Dataset):
    kind = "2afc"

    def __init__(
        self,
        root: str | os.PathLike,
        subsets: Sequence[str] | str | None = None,
        load_size: int | None = 64,
        split: str | None = None,
        on_error: str = "raise",
        max_errors: int = MAX_ERRORS_LISTED,
        verify_images: bool = True,
        records: Sequence[Record] | None = None,
    ):
        self.root = Path(root)
        self.load_size = load_size
        self.records: list[Record] = (
            list(records)
            if records is not None
            else read_records(root, self.kind, split, subsets, on_error, max_errors, verify_images)
        )
        self.subsets = sorted({r.subset for r in self.records})

    def __len__(self) -> int:
        return len(self.records)

    @property
    def values(self) -> np.ndarray:
        """(N,) float64 judgments of every item, without reading images."""
        return np.array([r.value for r in self.records], dtype=np.float64)

    def __getitem__(self, index: int) -> dict:
        r = self.records[index]
        item: dict = {}
        for key, path in zip(IMAGE_KEYS[self.kind], r.paths):
            try:
                item[key] = load_patch(path, self.load_size)
            except ImageLoadError as exc:
                raise ImageLoadError(f"item {r.subset}/{r.id}: {exc}") from exc
        item[VALUE_KEY[self.kind]] = torch.tensor([r.value], dtype=torch.float32)
        item["subset"] = r.subset
        item["id"] = r.id
        return item

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, items={len(self)}, "
            f"subsets={self.subsets}, load_size={self.load_size})"
        )


class TwoAFCDataset(_JudgmentDataset):
    """2AFC triplets (ref, p0, p1) with the fraction of judges who found p1 closer to ref.

    Args:
        root: BAPPS dataset folder (with ``split``), a split folder (``<bapps>/2afc/val``),
            one subset folder, a CSV/JSON file, or a per-sample folder tree (see module doc).
        subsets: subset (category) names to keep; None keeps all.
        load_size: images are resized (PIL bilinear) to ``load_size x load_size``; None keeps size.
        split: 'train' or 'val' when ``root`` is a dataset folder holding several splits.
        on_error: 'raise' (default): one error listing every bad row; 'skip': warn and drop them.
        max_errors: how many bad rows the message lists.
        verify_images: also open every image once (Pillow ``verify``) to find damaged files
            before training starts; False only checks that the files exist.
    Item:
        ``{'ref', 'p0', 'p1'}``: float32 (3, H, W) in [-1, 1]; ``'judge'``: float32 (1,) in [0, 1]
        (fraction preferring p1); ``'subset'``, ``'id'``: str.

    The mini set of :mod:`lpips_core.studies.mini_bapps` has judgments from a SIMULATED observer
    (LPIPS-VGG or a pixel metric through a logistic psychometric function), not from people;
    see its ``README.md`` data card.

    Example:
        >>> ds = TwoAFCDataset('data/mini_bapps', split='val', subsets=['traditional'])  # doctest: +SKIP
        >>> ds[0]['ref'].shape, ds[0]['judge']                                           # doctest: +SKIP
        (torch.Size([3, 64, 64]), tensor([0.4000]))
    """

    kind = "2afc"

    @property
    def judges(self) -> np.ndarray:
        """(N,) fraction of judges preferring p1, per triplet."""
        return self.values


class JNDDataset(_JudgmentDataset):
    """JND pairs (p0, p1) with the fraction of judges who answered "same".

    Args: as :class:`TwoAFCDataset` (``root`` a BAPPS folder with ``jnd/``, a split folder
    such as ``<bapps>/jnd/val``, a subset folder, or a CSV/JSON file with ``p0_path,p1_path,same``).
    Item:
        ``{'p0', 'p1'}``: float32 (3, H, W) in [-1, 1]; ``'same'``: float32 (1,) in [0, 1];
        ``'subset'``, ``'id'``: str.
    """

    kind = "jnd"

    @property
    def sames(self) -> np.ndarray:
        """(N,) fraction of judges answering "same", per pair."""
        return self.values


# --------------------------------------------------------------------------- splits, augmentation, loaders
class FlipAugment(Dataset):
    """Mirror every image of an item left-right together (same flip for ref, p0, p1), with probability p.

    The judgment is unchanged by a mirror image of the whole triplet. The flips follow
    a generator seeded with ``seed`` (re-seeded per DataLoader worker from the loader's
    own seed), so a run is reproducible from ``seed`` for a fixed number of workers.
    """

    def __init__(self, dataset: Dataset, p: float = 0.5, seed: int = 0):
        self.dataset, self.p = dataset, p
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        if torch.rand((), generator=self.generator).item() < self.p:
            for key in ("ref", "p0", "p1"):
                if key in item:
                    item[key] = item[key].flip(-1)  # (3, H, W): mirror along W
        return item
