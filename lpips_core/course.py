"""Helpers of the course's chapters: stored results, the human data, numbers for the prose.

The chapters run in three places: this repository (``make book``, nbval), a fresh
Colab kernel with only the installed package, and the static book. These helpers
make the same cell work in all three:

* :func:`stored_json` reads a stored result of the repository (``results/...``): from the
  checkout, else fetched from the repository's address, else ``None`` with a hint;
* :func:`human_data_dir` says where the real human judgments are
  (``$LPIPS_CORE_HUMAN_DATA``, default ``../shared/data`` beside the repository);
* :func:`glue` hands a computed number to the chapter's prose (MyST-NB ``{glue:text}``
  roles), so a number in the text is the number the cell computed;
* :func:`photo` is the chapters' photograph (a scikit-image picture, centre-cropped and
  resized), :func:`median_ms` and :func:`interleaved_ms` their clocks, :func:`reference_lpips`
  the reference implementation they check their distances against;
* :func:`quiz` shows a self-check quiz that works in the static book without a kernel
  (``jupyterquiz``), and as plain text where that package is missing.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .files import stored_file, stored_file_hint

__all__ = [
    "glue",
    "glue_score",
    "glue_test",
    "human_data_dir",
    "interleaved_ms",
    "median_ms",
    "photo",
    "quiz",
    "reference_lpips",
    "stored_json",
]


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


def photo(name: str, size: int = 128) -> np.ndarray:
    """A scikit-image photograph (``skimage.data.<name>``), centre-cropped to a square and resized.

    Grey pictures are repeated to RGB; the resize is Lanczos (Pillow), as the chapters have
    always done it.

    Args:
        name: a picture of ``skimage.data`` (``"chelsea"``, ``"astronaut"``, ``"coffee"``, ...).
        size: side of the result in pixels.
    Returns:
        (size, size, 3) uint8 array.

    Example:
        >>> photo("chelsea", 64).shape
        (64, 64, 3)
    """
    from PIL import Image

    from .data.photos import load_photo

    img = load_photo(name)  # (H, W, 3) uint8
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = img[top : top + side, left : left + side]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS))


def reference_lpips(net: str = "alex", like: torch.nn.Module | None = None) -> torch.nn.Module:
    """The reference implementation, ``lpips.LPIPS`` (0.1.4, v0.1), with lpips_core's ImageNet trunk.

    Built with ``pnet_rand=True`` (no download; its random trunk draws from torch's global
    generator, as the reference always does), then the trunk's weights are copied from ``like``
    (an ``lpips_core.LPIPS`` of the same net) or from a new ``lpips_core.LPIPS(net=net)``. Its
    calibrated linear weights are its own, shipped in the ``lpips`` package. Eval mode.

    Example:
        >>> ref = reference_lpips("alex")        # doctest: +SKIP
        >>> ref(x, y)                            # the reference's distances, (N, 1, 1, 1)
    """
    import warnings

    import lpips

    from .model import LPIPS

    with warnings.catch_warnings():  # torchvision's notices on lpips' old pretrained= arguments
        warnings.simplefilter("ignore", UserWarning)
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    source = like if like is not None else LPIPS(net=net)
    ref.net.load_state_dict(source.net.state_dict())
    return ref.eval()


def median_ms(fn: Callable[[], Any], reps: int = 5, warmup: int = 1) -> float:
    """Median wall-clock time of ``fn()`` in milliseconds, over ``reps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def interleaved_ms(fa: Callable[[], Any], fb: Callable[[], Any], reps: int = 5) -> tuple[float, float]:
    """Median milliseconds of ``fa()`` and ``fb()``, run alternately (a b, b a, a b, ...) after one warm-up each.

    Alternating makes a busy moment of the machine hit both functions alike, so their ratio is
    steadier than that of two separate :func:`median_ms` runs.
    """
    fa(), fb()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(reps):
        order = ((fa, ta), (fb, tb)) if i % 2 == 0 else ((fb, tb), (fa, ta))
        for f, store in order:
            start = time.perf_counter()
            f()
            store.append(time.perf_counter() - start)
    return 1e3 * statistics.median(ta), 1e3 * statistics.median(tb)


def quiz(questions: Sequence[dict]) -> None:
    """Show a self-check quiz: multiple-choice or numeric questions in jupyterquiz's format.

    Each question is a dict such as::

        {"question": "...", "type": "multiple_choice",
         "answers": [{"answer": "...", "correct": True, "feedback": "..."}, ...]}
        {"question": "...", "type": "numeric", "precision": 3,
         "answers": [{"type": "value", "value": 0.82, "correct": True, "feedback": "..."},
                     {"type": "default", "feedback": "..."}]}

    In Jupyter and in the built book (no kernel needed: the quiz is HTML and JavaScript stored in
    the cell's output) ``jupyterquiz`` draws clickable questions with feedback; where it is not
    installed, the questions and their answers are printed as text. The answers keep their order,
    and Python's global random state is left as it was.
    """
    try:
        from jupyterquiz import display_quiz
    except ImportError:
        for k, q in enumerate(questions, start=1):
            print(f"Q{k}. {q['question']}")
            for a in q["answers"]:
                if "answer" in a:
                    print(f"   - {a['answer']}")
        print("(install jupyterquiz to check your answers here)")
        return
    state = random.getstate()  # display_quiz draws the container's id from the global generator
    try:
        display_quiz(list(questions), shuffle_answers=False, max_width=640)
    finally:
        random.setstate(state)
