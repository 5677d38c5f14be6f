"""Figures shared by the command line, the benchmarks and the book."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)


def save_distance_map(dmap: torch.Tensor, path: str | os.PathLike, title: str = "") -> None:
    """Save an (H, W) LPIPS spatial distance map as a heat-map PNG with a colour bar."""
    plt = _pyplot()
    arr = np.asarray(dmap.detach().cpu().float())
    fig, ax = plt.subplots(figsize=(4, 4 * arr.shape[0] / max(arr.shape[1], 1) + 0.4))
    im = ax.imshow(arr, cmap="magma")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    save_figure(fig, path)
    plt.close(fig)
