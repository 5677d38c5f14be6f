"""A training run on a dataset folder: what ``lpips-core train`` does, end to end.

:func:`run_training` opens the 2AFC splits (:func:`open_split`), trains with
:class:`~.trainer.Trainer`, exports the best linear weights and compares the trained
model with the usual baselines on the validation split (:func:`compare_on`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence, Sized
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.utils.data import Dataset

from ..data import TwoAFCDataset
from ..eval import LPIPSDistance, PixelDistance, collect_2afc, score_2afc
from ..files import write_json
from ..model import LPIPS
from . import distributed as ddp
from .config import TrainConfig
from .trainer import Trainer

if TYPE_CHECKING:
    from ..eval.distances import DistanceFunction


def open_split(
    data: str | os.PathLike[str], split: str, subsets: Sequence[str] | None = None, load_size: int = 64
) -> Dataset[dict[str, Any]] | None:
    """The 2AFC ``split`` ('train'/'val') of a BAPPS-style folder, or None if it has none.

    Args:
        data: folder holding ``2afc/train`` and ``2afc/val`` (e.g. ``data/mini_bapps``
            or a full BAPPS download).
    """
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(
            f"{data}: no such dataset folder (expected a BAPPS-style folder "
            f"with 2afc/train and 2afc/val, e.g. data/mini_bapps)"
        )
    if not (data / "2afc").is_dir():
        raise FileNotFoundError(
            f"{data}: no 2afc/ folder inside; --data must be the dataset root "
            f"holding 2afc/train and 2afc/val (BAPPS layout)"
        )
    if not (data / "2afc" / split).is_dir():
        return None
    return TwoAFCDataset(data, subsets=subsets, load_size=load_size, split=split)


def compare_on(
    dataset: Dataset[dict[str, Any]],
    trained: LPIPS,
    name: str = "trained",
    baselines: bool = True,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, float]:
    """2AFC agreement of a trained model and of the usual baselines on one dataset, in one pass.

    Baselines: ``net-<net>`` (the untrained "net" distance, every channel
    weight 1), ``l2_lab`` (the paper's L2, :func:`lpips_core.eval.baselines.l2_lab`)
    and ``lpips-<net>`` (the official v0.1 weights). With a frozen trunk the
    trained model and the LPIPS baselines share one trunk pass per triplet
    (:func:`lpips_core.eval.collect_2afc`).

    Returns:
        {name: 2AFC score in [0, 1]} with ``name`` first.
    """
    device = torch.device(device)
    fns: dict[str, DistanceFunction] = {
        name: LPIPSDistance(trained, name=name, kind="checkpoint", device=device, freeze=False)
    }
    if baselines:
        net = trained.pnet_type
        fns[f"net-{net}"] = LPIPSDistance(LPIPS(net=net, version=trained.version, lpips=False), device=device)
        fns[f"lpips-{net}"] = LPIPSDistance(LPIPS(net=net, version=trained.version), device=device)
        fns["l2_lab"] = PixelDistance("l2_lab", device)
    res = collect_2afc(fns, dataset, batch_size=batch_size, device=device, progress=progress, desc="compare")
    return {k: score_2afc(res.d0[k], res.d1[k], res.judge) for k in fns}


def run_training(
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    resume: bool = False,
    train_subsets: Sequence[str] | None = None,
    val_subsets: Sequence[str] | None = None,
    load_size: int = 64,
    baselines: bool = True,
) -> dict[str, Any]:
    """Train on ``<data>/2afc/train``, validate on ``<data>/2afc/val``, export, and compare.

    What ``lpips-core train`` runs. Works under ``torchrun`` (joins the process
    group from the environment). Writes into ``out_dir``: ``latest.pt``,
    ``best.pt``, ``history.csv``, ``history.png``, ``tensorboard/``, the best
    linear weights as ``<net>_<mode>.pth`` (reference format) and
    ``.safetensors``, and ``summary.json``.

    Returns:
        the summary: config, best epoch, validation 2AFC of the trained model
        and (``baselines``) of the "net" baseline, L2 (Lab) and the official
        v0.1 weights, and the exported file names.
    """
    ddp.init_from_env(config.device)
    out_dir = Path(out_dir)
    train_set = open_split(data, "train", train_subsets, load_size)
    if train_set is None:
        raise FileNotFoundError(f"{Path(data) / '2afc' / 'train'}: no training split")
    val_set = open_split(data, "val", val_subsets, load_size)
    trainer = Trainer(config, train_set, val_set, out_dir=out_dir)
    history = trainer.fit(resume=resume)
    if val_set is not None and (out_dir / "best.pt").is_file():
        trainer.load_best()
    stem = f"{trainer.model.pnet_type}_{config.mode}"
    summary: dict[str, Any] = {
        "data": str(data),
        "train_triplets": len(cast(Sized, train_set)),  # torch's Dataset declares no __len__
        "val_triplets": len(cast(Sized, val_set)) if val_set is not None else 0,
        "config": asdict(config),
        "epochs_run": len(history),
        "best_epoch": trainer.state["best_epoch"],
        "stopped_early": trainer.state["stopped_early"],
        "train_seconds": trainer.state["seconds"],
        "val_2afc": {},
        "exported": [],
        "note": "2AFC agreement with the dataset's judgments (on the mini set: a SIMULATED observer)",
    }
    if ddp.is_main():
        summary["exported"] = [
            str(trainer.export(out_dir / f"{stem}.pth")),
            str(trainer.export(out_dir / f"{stem}.safetensors")),
        ]
        if val_set is not None:
            summary["val_2afc"] = compare_on(
                val_set,
                trainer.model,
                f"trained-{stem}",
                baselines,
                config.eval_batch_size,
                trainer.device,
                config.progress,
            )
        write_json(out_dir / "summary.json", summary)
    ddp.barrier()
    return summary
