"""The linear-weight versions of LPIPS, and the one place a user's spelling of them is read.

v0.1 (the default) scales inputs to ImageNet statistics before the trunk; v0.0, the
paper's first release, does not. Both ship with the reference package.
"""

from __future__ import annotations

#: The versions, newest first.
VERSIONS = ("0.1", "0.0")


def canonical_version(version: object) -> str:
    """``'0.1'``, ``'v0.1'`` or ``0.1`` -> ``'0.1'`` (likewise for 0.0).

    Raises:
        ValueError naming the value and the versions there are.
    """
    text = str(version).strip().lower().lstrip("v")
    if text not in VERSIONS:
        raise ValueError(f"version={version!r} is not available; choose '0.1' (default) or '0.0'")
    return text
