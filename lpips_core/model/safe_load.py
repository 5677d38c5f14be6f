"""Every ``torch.load`` restricted to tensors and plain containers, also inside other libraries.

``lpips_core`` passes ``weights_only=True`` to each of its own ``torch.load`` calls. The
libraries it builds models with load files too: torchvision and ``torch.hub`` (whose
``load_state_dict_from_url`` passes ``weights_only=False`` unless told otherwise), the
reference ``lpips`` package and torchmetrics (which rely on torch's default, which the
environment variable ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns off). Inside
:func:`weights_only_loads` each of those calls runs with ``weights_only=True``, so a
planted pickle raises ``UnpicklingError`` instead of running its code.

Example:
    >>> with weights_only_loads():                                  # doctest: +SKIP
    ...     ref = lpips.LPIPS(net="alex", pnet_rand=True)  # loads its .pth restricted
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

_LOCK = threading.RLock()
_DEPTH = 0
_ORIGINAL: Callable[..., Any] | None = None  # torch.load while a block is open


def _restricted(load: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(load)
    def restricted_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True  # whatever the caller asked for
        return load(*args, **kwargs)

    # a marker on the function object, which mypy's function types do not model
    restricted_load.__lpips_core_restricted__ = True  # type: ignore[attr-defined]
    return restricted_load


@contextlib.contextmanager
def weights_only_loads() -> Iterator[None]:
    """Within the block, ``torch.load`` (looked up by any library as ``torch.load``) is ``weights_only=True``.

    Nested and concurrent blocks are fine: ``torch.load`` is restored when the last one ends.
    """
    global _DEPTH, _ORIGINAL
    with _LOCK:
        if _DEPTH == 0:
            _ORIGINAL = torch.load
            torch.load = _restricted(_ORIGINAL)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                assert _ORIGINAL is not None  # set when this block took _DEPTH from 0 to 1, under _LOCK
                torch.load = _ORIGINAL
                _ORIGINAL = None
