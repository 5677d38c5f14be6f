"""Training checkpoints: what they hold, writing them safely, reading them back, choosing one to resume.

A checkpoint (``latest.pt``, ``best.pt``) holds everything a run needs to continue
exactly: config, weights, ranking network, optimiser, schedule, loop state,
history, and every rank's random-number state and running sums. Writes are atomic
and flushed to disk; ``latest`` keeps the file it replaces as ``latest.prev.pt``,
so a crash or a full disk always leaves one whole checkpoint behind.
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np
import torch

from ..files import save_torch
from . import distributed as ddp

CHECKPOINT_FORMAT = "lpips_core.train/1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, damaged, or not a training checkpoint."""


class TrainState(TypedDict):
    """``Trainer.state``: where the loop is and how validation went (saved in every checkpoint)."""

    epoch: int  # epochs completed
    step_in_epoch: int  # steps of the current epoch done
    global_step: int
    best_score: float | None  # best validation 2AFC so far
    best_epoch: int | None  # its epoch (1-based)
    epochs_since_best: int
    stopped_early: bool
    seconds: float  # training time, validation not counted


#: What every checkpoint written by :meth:`~lpips_core.train.trainer.Trainer.save_checkpoint` holds.
CHECKPOINT_KEYS = ("config", "model", "rank_loss", "optimizer", "scheduler", "state", "history", "ranks")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a training checkpoint (``weights_only``) and check that it is complete.

    Raises:
        CheckpointError: naming the file, when it is truncated, damaged or not a checkpoint.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bit flips, not a torch file, ...
        raise CheckpointError(
            f"{path}: not a readable checkpoint, damaged or truncated "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not an lpips_core training checkpoint "
            f"(format {ckpt.get('format') if isinstance(ckpt, dict) else '?'})"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    return ckpt


#: Checkpoints a resumed run may start from, newest kind first: the latest, the one it
#: replaced (kept as ``latest.prev.pt``), and the best epoch's.
RESUME_CANDIDATES = ("latest.pt", "latest.prev.pt", "best.pt")

#: Fields a resumed run must share with its checkpoint (others, like epochs or fast, may change).
RESUME_MUST_MATCH = (
    "net",
    "version",
    "mode",
    "loss",
    "use_dropout",
    "optimizer",
    "batch_size",
    "schedule",
    "seed",
    "flip",
)


def rng_state() -> dict[str, Any]:
    """The torch, numpy, Python (and CUDA) random-number states, in a ``weights_only``-loadable form."""
    # legacy=True (the default): the tuple form, never the dict one
    np_state = cast("tuple[str, np.ndarray[Any, np.dtype[np.uint32]], int, int, float]", np.random.get_state())
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]  # torch: unannotated
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(payload: dict[str, Any], path: Path, keep_previous: Path | None = None) -> Path:
    """Write ``payload`` to ``path`` atomically and flushed to disk.

    Raises:
        OSError: when the write fails (full disk, ...), naming the file and the free
            space; the previous checkpoint is left untouched.
    """
    try:
        return save_torch(payload, path, fsync=True, keep_previous=keep_previous)
    except Exception as exc:  # torch.save reports a full disk as a RuntimeError of its zip writer
        free = shutil.disk_usage(path.parent).free
        raise OSError(
            f"could not write checkpoint {path} ({type(exc).__name__}: {exc}); "
            f"{free / 2**20:.1f} MiB free there. The previous checkpoint is unchanged; "
            f"free some space and resume (--resume)"
        ) from exc


def resume_source(out_dir: Path) -> Path | None:
    """The newest usable checkpoint in ``out_dir`` (None: nothing to resume from).

    Damaged candidates (truncated by a crash of the disk, bit flips, ...) are
    reported by name, renamed to ``<name>.damaged`` (by rank 0) and skipped, so
    resuming falls back to the last good checkpoint. Collective under DDP.

    Raises:
        CheckpointError: checkpoints exist but none is usable (each one and why).
    """
    found: list[tuple[int, int, Path]] = []  # (global step, -candidate order, path)
    damaged: list[tuple[Path, CheckpointError]] = []
    for name in RESUME_CANDIDATES:
        path = out_dir / name
        if not path.is_file():
            continue
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as exc:
            damaged.append((path, exc))
            continue
        found.append((int(ckpt["state"].get("global_step", 0)), -len(found), path))
    if damaged and not found:
        raise CheckpointError(
            f"no usable checkpoint in {out_dir}:\n  "
            + "\n  ".join(str(e) for _, e in damaged)
            + "\nmove them away to start a new run, or choose another output folder"
        )
    chosen = max(found)[2] if found else None
    ddp.barrier()  # every rank has read the files before any is renamed
    for path, err in damaged:
        assert chosen is not None  # damaged and nothing found raised above
        if ddp.is_main():
            os.replace(path, path.with_name(path.name + ".damaged"))
        warnings.warn(f"{err}; renamed to {path.name}.damaged, resuming from {chosen.name}", stacklevel=3)
    return chosen
