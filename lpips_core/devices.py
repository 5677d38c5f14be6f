"""Which device a run uses: the one rule behind every ``device="auto"``.

'auto' picks the first accelerator that is available, in the order the caller allows
(CUDA, then Apple MPS, by default), else the CPU. Under torchrun, a bare 'cuda' means
this process's GPU (``LOCAL_RANK``). An explicit device that cannot be used here is
an error that says what to pass instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

#: Accelerators 'auto' may pick, in order of preference.
ACCELERATORS = ("cuda", "mps")


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return False


def resolve_device(
    device: str | torch.device | None = "auto", accelerators: Sequence[str] = ACCELERATORS
) -> torch.device:
    """``'auto'`` (or None), ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'`` or a ``torch.device`` -> ``torch.device``.

    Args:
        device: what the caller asked for.
        accelerators: the accelerators 'auto' may choose, in order (``("cuda",)`` where a
            code path has not been tested on MPS).
    Raises:
        ValueError: 'cuda' asked for where CUDA is not available.
    """
    if device is None or str(device) == "auto":
        device = next((kind for kind in accelerators if _available(kind)), "cpu")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but CUDA is not available here; use device 'cpu' or 'auto'")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device
