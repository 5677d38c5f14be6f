"""The one progress bar of the package: tqdm on stderr, so stdout stays for results."""
from __future__ import annotations

import sys
from typing import Iterable

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 enabled: bool = True, leave: bool = True, initial: int = 0) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``); ``enabled=False`` shows nothing."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                leave=leave, initial=initial, dynamic_ncols=True)
