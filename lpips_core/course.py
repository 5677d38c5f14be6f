"""Helpers of the course's chapters: stored results, the human data, numbers for the prose.

The chapters run in three places: this repository (``make book``, nbval), a fresh
Colab kernel with only the installed package, and the static book. These helpers
make the same cell work in all three:

* :func:`stored_json` reads a stored result of the repository (``results/...``): from the
  checkout, else fetched from the repository's address, else ``None`` with a hint;
* :func:`human_data_dir` says where the real human judgments are
  (``$LPIPS_CORE_HUMAN_DATA``, default ``../shared/data`` beside the repository);
* :func:`glue` hands a computed number to the chapter's prose (MyST-NB ``{glue:text}``
  roles), so a number in the text is the number the cell computed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .files import stored_file, stored_file_hint

__all__ = ["glue", "glue_score", "glue_test", "human_data_dir", "stored_json"]


def stored_json(relpath: str) -> dict | None:
    """A stored JSON result of the repository (e.g. ``'results/live_jpeg/results.json'``).

    Returns:
        the parsed file, or None (after printing where to get it) when neither the checkout
        nor the repository's address has it.
    """
    path = stored_file(relpath)
    if path is None:
        print(stored_file_hint(relpath))
        return None
    return json.loads(path.read_text())


def human_data_dir() -> Path:
    """Where the real human judgments are: ``$LPIPS_CORE_HUMAN_DATA``, else ``../shared/data`` beside the
    repository the package was imported from (it may not exist: chapters then use stored results)."""
    env = os.environ.get("LPIPS_CORE_HUMAN_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def glue(name: str, value: Any) -> None:
    """Record ``value`` under ``name`` for the book's prose.

    In the book a Markdown cell writes ``{glue:text}`name:.1f``` and MyST-NB pastes the value
    stored in this cell's output, so the prose cannot drift from the computation. Without
    ``myst_nb`` (a Colab kernel) nothing is recorded: the notebook's Markdown shows the role.
    NumPy and one-element torch scalars are stored as Python numbers (their repr,
    ``np.float64(0.9)``, would not format).
    """
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.numel() == 1):
        value = value.item()
    try:
        from myst_nb import glue as record
    except ImportError:
        return
    record(name, value, display=False)


def glue_score(name: str, cell: dict, scale: float = 100.0) -> None:
    """Glue a score with its interval: ``name`` (the value), ``name_lo``, ``name_hi``, times ``scale``.

    Args:
        cell: {'score' or 'value', 'ci': [low, high]} as the evaluation functions return them.
    """
    value = cell["score"] if "score" in cell else cell["value"]
    glue(name, scale * float(value))
    glue(f"{name}_lo", scale * float(cell["ci"][0]))
    glue(f"{name}_hi", scale * float(cell["ci"][1]))


def glue_test(name: str, test: dict, scale: float = 100.0) -> None:
    """Glue a paired test: ``name`` (difference), ``name_lo``, ``name_hi`` (times ``scale``) and ``name_p``,
    the p-value as text (``'p = 0.20'``, or ``'p < 0.001'`` at the resampling floor)."""
    from .eval.stats import format_p

    glue(name, scale * float(test["difference"]))
    glue(f"{name}_lo", scale * float(test["ci"][0]))
    glue(f"{name}_hi", scale * float(test["ci"][1]))
    glue(f"{name}_p", format_p(test["p_value"], test.get("n_resamples", 10_000)))
