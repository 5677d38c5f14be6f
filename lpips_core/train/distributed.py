"""Helpers for training and feature extraction across processes (``torchrun``).

Everything here degrades to a single process when no process group is
initialised, so library code can call these helpers unconditionally.

Typical use (one process per CPU socket or GPU)::

    torchrun --nproc_per_node 2 -m lpips_core.cli train --data data/mini_bapps --out runs/x

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_from_env` reads them and joins the group (gloo on
CPU, nccl on GPU).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on the process that writes files (rank 0)."""
    return rank() == 0


def default_backend(device: str | torch.device = "cpu") -> str:
    """nccl for CUDA devices, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: str | torch.device = "cpu", backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment variables.

    Args:
        device: the device this process trains on (chooses the backend).
        backend: force 'gloo' or 'nccl'.
    Returns:
        True when running distributed (``WORLD_SIZE`` > 1), False otherwise.
    """
    if is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} "
            f"is not set; launch with torchrun (it sets all of them)"
        )
    dist.init_process_group(backend=backend or default_backend(device))
    return True


def local_device(device: str | torch.device) -> torch.device:
    """On CUDA, the GPU of this process (``LOCAL_RANK``); otherwise ``device`` unchanged."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` when not distributed)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(values: list[float], device: str | torch.device = "cpu") -> list[float]:
    """Sum a few Python floats over ranks (float64, so sums stay exact for counts)."""
    if not is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def cleanup() -> None:
    if is_initialized():
        dist.destroy_process_group()
