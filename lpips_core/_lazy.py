"""Names a package exports, loaded on first use (PEP 562).

A package's ``__init__`` lists what it exports and from which of its modules;
:func:`lazy_exports` gives it the ``__getattr__`` and ``__dir__`` that import a
module only when one of its names (or the submodule itself) is first asked for,
so importing one corner of the package does not load all of it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: {public name: relative module that defines it ('.runs')}.
        namespace: the package's ``globals()`` (a loaded name is stored there, so the next
            lookup is an ordinary attribute).
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
        else:
            try:  # a submodule (``lpips_core.eval.plots``) asked for as an attribute
                value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
