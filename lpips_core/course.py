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
* :func:`max_abs_diff`, :func:`timed_results`, :func:`speedup_table` and :func:`precision_errors`
  are the bookkeeping of the speed chapter: how far two results are apart, what each way of
  computing something took, and how much an approximation changes a set of distances;
* :func:`distance_table` measures several images against one reference with several metrics,
  one table row per image;
* :func:`quiz` shows a self-check quiz that works in the static book without a kernel
  (``jupyterquiz``), and as plain text where that package is missing;
* :func:`available_models`, :func:`bapps_layout`, :func:`item_summary`, :func:`agreement_table`
  and :func:`paired_tests_frame` are the chapters' bookkeeping: the models that can be built here,
  a data folder's layout, what an item or a batch holds, and scores as tables.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np
import torch

from .files import stored_file, stored_file_hint

if TYPE_CHECKING:
    import pandas as pd

    from .model import LPIPS

T = TypeVar("T")  # what a timed function returns

__all__ = [
    "agreement_table",
    "available_models",
    "bapps_layout",
    "distance_table",
    "glue",
    "glue_score",
    "glue_test",
    "human_data_dir",
    "interleaved_ms",
    "item_summary",
    "max_abs_diff",
    "median_ms",
    "paired_tests_frame",
    "photo",
    "precision_errors",
    "quiz",
    "reference_lpips",
    "speedup_table",
    "stored_json",
    "timed_results",
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


def distance_table(
    images: Mapping[str, torch.Tensor],
    reference: torch.Tensor,
    metrics: Mapping[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
) -> pd.DataFrame:
    """Each image against one reference, by each metric: a table with a row per image.

    Args:
        images: {row name: (1, 3, H, W) tensor in [-1, 1]}, each the size of ``reference``.
        reference: (1, 3, H, W) tensor in [-1, 1].
        metrics: {column name: ``fn(reference, image)`` -> a one-element tensor}: an
            ``lpips_core.LPIPS`` model, ``lpips_core.eval.baselines.psnr``, ``dists``, ...
            Each is called once per image, without gradients, in the order of ``images``
            then ``metrics``.
    Returns:
        a ``pandas.DataFrame`` of floats, ``len(images)`` rows by ``len(metrics)`` columns,
        rows and columns in the given order (e.g. LPIPS in [0, ~1.5], PSNR in dB).

    Example:
        >>> table = distance_table({"blur": blurred}, target, {"alex": lpips_alex})  # doctest: +SKIP
        >>> table.loc["blur", "alex"]                                                 # doctest: +SKIP
    """
    import pandas as pd

    rows = {}
    with torch.no_grad():
        for name, image in images.items():
            rows[name] = {col: float(fn(reference, image).item()) for col, fn in metrics.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(metrics))


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


# --------------------------------------------------------------------------- bookkeeping of the chapters
def available_models(nets: Sequence[str], **kwargs: Any) -> dict[str, LPIPS]:
    """``lpips_core.LPIPS(net=net, **kwargs)`` for each net that can be built here, in order.

    A net whose weights are neither in ``$LPIPS_CORE_WEIGHTS`` nor downloadable (SqueezeNet
    offline, say) is skipped with a printed note, so a chapter runs with the trunks it has.

    Example:
        >>> models = available_models(("alex", "vgg", "squeeze"))   # doctest: +SKIP
        >>> list(models)                                            # ['alex', 'vgg', 'squeeze']
    """
    from .model import LPIPS

    models = {}
    for net in nets:
        try:
            models[net] = LPIPS(net=net, **kwargs)
        except Exception as exc:  # missing weights, no network, an unknown net
            print(f"skipping {net}: {exc}")
    return models


def bapps_layout(root: str | os.PathLike[str]) -> pd.DataFrame:
    """The folders of a BAPPS-style dataset (full BAPPS or the mini set), one row per subset.

    BAPPS keeps ``<root>/<kind>/<split>/<subset>/`` with one folder per patch role and one of
    judgments (``judge`` for 2AFC, ``same`` for JND), each judgment a ``.npy`` file.

    Returns:
        a DataFrame with columns ``kind`` ("2afc" or "jnd"), ``split``, ``subset``,
        ``folders`` (the subset's sub-folders, sorted, space-separated) and ``items`` (the number
        of judgment files), sorted by kind, split and subset.
    """
    import pandas as pd

    rows = []
    for kind, value in (("2afc", "judge"), ("jnd", "same")):
        for split in sorted(p for p in (Path(root) / kind).glob("*") if p.is_dir()):
            for subset in sorted(p for p in split.iterdir() if p.is_dir()):
                folders = " ".join(sorted(p.name for p in subset.iterdir() if p.is_dir()))
                items = sum(1 for _ in (subset / value).glob("*.npy"))
                rows.append(
                    {"kind": kind, "split": split.name, "subset": subset.name, "folders": folders, "items": items}
                )
    return pd.DataFrame(rows, columns=["kind", "split", "subset", "folders", "items"])


def item_summary(item: Any) -> pd.DataFrame:
    """What a dataset item or a batch holds: one row per key with its shape, dtype, min and max.

    Args:
        item: a mapping such as a ``TwoAFCDataset`` item (``ref``, ``p0``, ``p1``: (3, H, W) tensors
            in [-1, 1]; ``judge``: (1,) in [0, 1]; ``subset``, ``id``: strings) or a DataLoader
            batch of them (tensors with a leading batch dimension, lists of strings).
    Returns:
        a DataFrame indexed by key: ``shape`` (a tuple; ``(n,)`` for a list, ``()`` for a scalar),
        ``dtype`` (e.g. ``torch.float32``, ``str``) and, for tensors and arrays, ``min`` and ``max``
        (NaN for other values).
    """
    import pandas as pd

    rows = {}
    for key, value in item.items():
        if isinstance(value, (torch.Tensor, np.ndarray)):
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            low, high = (float(array.min()), float(array.max())) if array.size else (np.nan, np.nan)
            rows[key] = (tuple(value.shape), str(value.dtype), low, high)
        elif isinstance(value, (list, tuple)):
            kinds = sorted({type(v).__name__ for v in value}) or ["empty"]
            rows[key] = ((len(value),), "/".join(kinds), np.nan, np.nan)
        else:
            rows[key] = ((), type(value).__name__, np.nan, np.nan)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["shape", "dtype", "min", "max"])


def agreement_table(agreements: Any, scale: float = 100.0, level: float = 0.95) -> pd.DataFrame:
    """Mean agreement of each model with a bootstrap interval, one row per model.

    Args:
        agreements: {name: (N,) per-item scores}, e.g. per-triplet 2AFC agreements in [0, 1]
            (``lpips_core.data.twoafc_scores``).
        scale: factor applied to every number (100: percent).
        level: confidence level of the percentile bootstrap (``lpips_core.eval.stats.bootstrap_ci``,
            its default resamples and seed 0, so the table is reproducible).
    Returns:
        a DataFrame indexed by name with columns ``mean``, ``low`` and ``high``, times ``scale``.
    """
    import pandas as pd

    from .eval.stats import bootstrap_ci

    rows = {}
    for name, values in agreements.items():
        x = np.asarray(values, dtype=np.float64).ravel()
        low, high = bootstrap_ci(x, level=level)
        rows[name] = {"mean": scale * float(x.mean()), "low": scale * low, "high": scale * high}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "low", "high"])


def paired_tests_frame(tests: Any, scale: float = 100.0) -> pd.DataFrame:
    """Paired tests as a table, one row per comparison.

    Args:
        tests: {name: test}, each test a dict ``{'difference', 'ci': (low, high), 'p_value',
            'n_resamples'}`` as ``lpips_core.eval.stats.paired_bootstrap_test`` returns it.
        scale: factor applied to the difference and its interval (100: points of a percentage).
    Returns:
        a DataFrame indexed by name with columns ``difference``, ``low``, ``high`` (times
        ``scale``) and ``p`` (text, ``lpips_core.eval.stats.format_p``: ``'p = 0.02'``, or
        ``'p < 0.0001'`` at the floor of the resampling).
    """
    import pandas as pd

    from .eval.stats import format_p

    rows = {}
    for name, t in tests.items():
        rows[name] = {
            "difference": scale * float(t["difference"]),
            "low": scale * float(t["ci"][0]),
            "high": scale * float(t["ci"][1]),
            "p": format_p(t["p_value"], t.get("n_resamples", 10_000)),
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["difference", "low", "high", "p"])


def max_abs_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """The largest absolute difference between two arrays of one shape (or shapes that broadcast).

    Args:
        a, b: tensors or NumPy arrays, any shape and dtype (tensors are compared as tensors).
    Returns:
        ``max |a - b|`` over all elements, as a Python float (0.0 when they are equal).

    Example:
        >>> max_abs_diff(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0]))
        1.0
    """
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max().item())
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def timed_results(fns: Mapping[str, Callable[[], T]], warmup: int = 1) -> tuple[dict[str, T], dict[str, float]]:
    """Call each function once, timed, after ``warmup`` untimed calls; keep what it returned.

    For computations that take long enough that one timed call says enough (a whole distance
    matrix), and whose results are compared afterwards.

    Args:
        fns: name -> a function of no arguments.
        warmup: untimed calls of each function before its timed one.
    Returns:
        (results, ms): name -> the timed call's return value, and name -> its wall-clock time in
        milliseconds; both in the order of ``fns``.
    """
    results: dict[str, T] = {}
    ms: dict[str, float] = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        results[name] = fn()
        ms[name] = 1e3 * (time.perf_counter() - start)
    return results, ms


def speedup_table(ms: Mapping[str, float], baseline: str) -> pd.DataFrame:
    """Times as a table with each one's speed-up over a baseline.

    Args:
        ms: name -> time (any unit, e.g. milliseconds, all the same), positive.
        baseline: the name whose time the others are compared with (its speed-up is 1).
    Returns:
        a pandas DataFrame indexed by name, in the order of ``ms``, with the columns ``'ms'`` (the
        times) and ``'speed-up'`` (``ms[baseline] / ms[name]``: above 1 is faster than the baseline).

    Example:
        >>> speedup_table({"loop": 120.0, "batched": 30.0}, "loop")["speed-up"].tolist()
        [1.0, 4.0]
    """
    import pandas as pd

    base = ms[baseline]
    return pd.DataFrame({"ms": dict(ms), "speed-up": {name: base / t for name, t in ms.items()}})


def precision_errors(exact: np.ndarray, approx: np.ndarray) -> dict[str, float]:
    """How much an approximation (int8, bf16, an export) changes a set of distances.

    Args:
        exact: (N,) the exact distances, positive (the relative errors divide by them).
        approx: (N,) the approximate distances of the same pairs.
    Returns:
        {'max |err|': max |approx - exact|, 'median rel' and 'max rel': median and max of
        |approx - exact| / exact (fractions, 0.01 = 1%), 'Spearman' and 'Kendall': rank
        correlations of approx with exact, in [-1, 1] (1: the order of the pairs is kept)}.

    Example:
        >>> precision_errors(np.array([1.0, 2.0, 4.0]), np.array([1.1, 2.0, 3.0]))["max rel"]
        0.25
    """
    from scipy import stats

    exact, approx = np.asarray(exact, dtype=np.float64).ravel(), np.asarray(approx, dtype=np.float64).ravel()
    if exact.shape != approx.shape:
        raise ValueError(f"exact and approx must have the same length, got {exact.size} and {approx.size}")
    err = np.abs(approx - exact)
    rel = err / exact
    return {
        "max |err|": float(err.max()),
        "median rel": float(np.median(rel)),
        "max rel": float(rel.max()),
        "Spearman": float(stats.spearmanr(exact, approx).statistic),
        "Kendall": float(stats.kendalltau(exact, approx).statistic),
    }
