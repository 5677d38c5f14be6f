"""The one progress bar of the package: tqdm on stderr, so stdout stays for results."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm

__all__ = [
    "progress_bar",
]


def progress_bar(
    iterable: Iterable | None = None,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    leave: bool = True,
    initial: int = 0,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``); ``enabled=False`` shows nothing.

    ``TQDM_DISABLE=1`` in the environment turns every bar off, in a notebook too
    (tqdm's notebook bar ignores that variable once ``disable`` is passed): the
    book's notebooks are executed that way, so no frozen bar is stored in them.
    """
    disabled = not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=disabled,
        leave=leave,
        initial=initial,
        dynamic_ncols=True,
    )
