"""Train/val/test splits of judgment data and their DataLoaders, reproducible from one seed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .datasets import FlipAugment, JNDDataset, TwoAFCDataset
from .formats import KINDS, DataError


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(info.seed % 2**63)


class LPIPSDataModule:
    """Train/val/test datasets and DataLoaders for judgment data, split reproducibly.

    Splits:
        * ``root`` a BAPPS dataset folder with both an official ``train`` and ``val`` split
          (and ``split``, ``test_split`` left None): train and val are drawn from the
          official train split (``val_split`` of it held out for model selection), and test is
          the official ``val`` split, on which the paper reports its scores.
        * anything else (one split folder, a CSV/JSON table, per-sample folders, or
          ``test_split`` given): the items are shuffled with ``seed`` and cut into
          ``1 - val_split - test_split``, ``val_split`` and ``test_split`` fractions.

    Args:
        root: any location :class:`TwoAFCDataset` / :class:`JNDDataset` accepts.
        batch_size: items per batch (the reference trains with 50).
        val_split: fraction held out for validation, in [0, 1).
        test_split: fraction held out for testing, or None (see Splits).
        seed: seeds the split, the shuffling and the flips.
        augment: mirror training items left-right (all images of an item together), p = 0.5.
        kind: '2afc' or 'jnd'.
        load_size, subsets, split, on_error, verify_images: passed to the dataset.
        num_workers: DataLoader worker processes (0 loads in the calling process).

    Example:
        >>> dm = LPIPSDataModule('data/mini_bapps', batch_size=50)    # doctest: +SKIP
        >>> batch = next(iter(dm.train_dataloader()))                  # doctest: +SKIP
        >>> batch['ref'].shape, batch['judge'].shape                   # doctest: +SKIP
        (torch.Size([50, 3, 64, 64]), torch.Size([50, 1]))
    """

    def __init__(
        self,
        root: str | os.PathLike,
        batch_size: int = 50,
        val_split: float = 0.1,
        test_split: float | None = None,
        seed: int = 0,
        augment: bool = True,
        kind: str = "2afc",
        load_size: int | None = 64,
        subsets: Sequence[str] | str | None = None,
        split: str | None = None,
        num_workers: int = 0,
        on_error: str = "raise",
        verify_images: bool = True,
    ):
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: choose '2afc' or 'jnd'")
        if not 0 <= val_split < 1 or not 0 <= (test_split or 0) < 1 or val_split + (test_split or 0) >= 1:
            raise ValueError(
                f"val_split={val_split}, test_split={test_split}: each must be in [0, 1) "
                f"and together below 1, leaving items to train on"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        self.root, self.batch_size, self.val_split, self.test_split = Path(root), batch_size, val_split, test_split
        self.seed, self.augment, self.kind, self.num_workers = seed, augment, kind, num_workers
        self.dataset_kwargs = dict(load_size=load_size, subsets=subsets, on_error=on_error, verify_images=verify_images)
        self.split = split
        self.train_dataset = self.val_dataset = self.test_dataset = None
        # one generator for the training loaders: each epoch shuffles (and flips) differently,
        # and the run is reproducible; val/test loaders get their own, so they do not disturb it
        self._train_generator = torch.Generator().manual_seed(seed)

    def _official_splits(self) -> bool:
        parent = self.root / self.kind
        return (
            self.split is None
            and self.test_split is None
            and parent.is_dir()
            and (parent / "train").is_dir()
            and (parent / "val").is_dir()
        )

    def setup(self) -> LPIPSDataModule:
        """Read and check the records and make the splits (once); returns self."""
        if self.train_dataset is not None:
            return self
        cls = TwoAFCDataset if self.kind == "2afc" else JNDDataset
        if self._official_splits():
            pool = cls(self.root, split="train", **self.dataset_kwargs)
            test = cls(self.root, split="val", **self.dataset_kwargs)
            n_test = 0
        else:
            pool = cls(self.root, split=self.split, **self.dataset_kwargs)
            test = None
            n_test = int(round((self.test_split or 0) * len(pool)))
        n = len(pool)
        n_val = int(round(self.val_split * n))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        val_idx, test_idx, train_idx = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
        if not train_idx:
            raise DataError(f"{self.root}: {n} item(s) leave nothing to train on after the splits")
        subset = torch.utils.data.Subset
        train = subset(pool, train_idx)
        self.train_dataset = FlipAugment(train, 0.5, self.seed) if self.augment else train
        self.val_dataset = subset(pool, val_idx)
        self.test_dataset = test if test is not None else subset(pool, test_idx)
        return self

    def _loader(self, dataset: Dataset, shuffle: bool) -> torch.utils.data.DataLoader:
        generator = self._train_generator if shuffle else torch.Generator().manual_seed(self.seed)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            generator=generator,
            worker_init_fn=_seed_worker,
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        """Shuffled (seeded) training batches, mirrored at random when ``augment``."""
        return self._loader(self.setup().train_dataset, shuffle=True)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.setup().val_dataset, shuffle=False)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.setup().test_dataset, shuffle=False)

    def __repr__(self) -> str:
        if self.train_dataset is None:
            return f"LPIPSDataModule(root={str(self.root)!r}, not set up)"
        return (
            f"LPIPSDataModule(root={str(self.root)!r}, train={len(self.train_dataset)}, "
            f"val={len(self.val_dataset)}, test={len(self.test_dataset)})"
        )
