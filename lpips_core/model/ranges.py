"""Input ranges: which pixel values a caller's images use, and how they become [-1, 1].

LPIPS's trunk expects [-1, 1] images. The commonest misuse is passing [0, 1]
images without ``normalize=True``: nothing fails, the numbers are just wrong.
An :class:`InputRange` names the convention explicitly (``"-1,1"``, ``"0,1"``
or ``"0,255"``) and records whether the caller chose it, so the input checks
can warn when the default was left in place but every value is non-negative
(see :func:`lpips_core.model.checks.warn_about_range`).

:func:`parse_input_range` is what the command line and the applications call to
turn a user's string into the normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch


@dataclass(frozen=True)
class InputRange:
    """One input convention.

    Attributes:
        name: '-1,1', '0,1' or '0,255' (as written in signatures and on the CLI).
        low, high: the range's bounds.
        confirmed: the caller chose it explicitly (False only for the default
            '-1,1' left in place; only then does the [0, 1] heuristic warn).
    """

    name: str
    low: float
    high: float
    confirmed: bool = True

    @property
    def normalize(self) -> bool:
        """True when the trunk input needs the [0, 1] -> [-1, 1] map (after :meth:`prepare`)."""
        return self.name != "-1,1"

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """'0,255' images (any dtype, uint8 included) -> float [0, 1]; other ranges unchanged.

        Args:
            x: images in this range, any shape.
        Returns:
            ``x`` itself, or ``x / 255`` as float32 for '0,255'.
        """
        if self.name == "0,255" and isinstance(x, torch.Tensor):
            return x.to(torch.float32) / 255.0
        return x

    def to_minus_one_one(self, x: torch.Tensor) -> torch.Tensor:
        """Images in this range -> float images in [-1, 1] (what ``LPIPS`` sees)."""
        x = self.prepare(x)
        return x * 2 - 1 if self.normalize else x


#: The accepted spellings of each range.
_SPELLINGS = {
    "-1,1": "-1,1",
    "(-1,1)": "-1,1",
    "[-1,1]": "-1,1",
    "0,1": "0,1",
    "(0,1)": "0,1",
    "[0,1]": "0,1",
    "0,255": "0,255",
    "(0,255)": "0,255",
    "[0,255]": "0,255",
    "uint8": "0,255",
}
_BOUNDS = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "0,255": (0.0, 255.0)}

#: The ranges there are, by their canonical names (command-line choices read this).
RANGE_NAMES = tuple(_BOUNDS)

#: The default: [-1, 1], not confirmed by the caller (the heuristic may warn).
#: An input range as callers spell it: '-1,1', '0,1', '0,255' (or a tuple such as (0, 1)).
RangeSpec = Union[str, tuple[float, ...], InputRange]

DEFAULT = InputRange("-1,1", -1.0, 1.0, confirmed=False)


def parse_input_range(value: str | tuple[float, ...] | list[float] | InputRange | None) -> InputRange:
    """``"-1,1"`` / ``"0,1"`` / ``"0,255"`` (or a tuple such as ``(0, 1)``) -> :class:`InputRange`.

    None gives the unconfirmed default (:data:`DEFAULT`).

    Raises:
        ValueError: anything else, naming ``input_range`` and the accepted values.
    """
    if value is None:
        return DEFAULT
    if isinstance(value, InputRange):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            text = f"{float(value[0]):g},{float(value[1]):g}"
        except (TypeError, ValueError):
            text = str(value)
    else:
        text = str(value)
    key = _SPELLINGS.get(text.replace(" ", "").lower())
    if key is None:
        raise ValueError(
            f"input_range={value!r} is not supported; use '-1,1' (default), '0,1' "
            f"(same as normalize=True) or '0,255' (8-bit images)"
        )
    return InputRange(key, *_BOUNDS[key])


def resolve(
    model_range: InputRange, input_range: str | tuple[float, ...] | InputRange | None, normalize: bool
) -> InputRange:
    """The range of one call: the call's ``input_range``, else ``normalize=True``, else the model's.

    Raises:
        ValueError: ``normalize=True`` together with an ``input_range`` other than '0,1'.
    """
    if input_range is not None:
        rng = parse_input_range(input_range)
        if normalize and rng.name != "0,1":
            raise ValueError(
                f"normalize=True means input_range='0,1' but input_range={rng.name!r} was given; pass only one of them"
            )
        return rng
    if normalize:
        return InputRange("0,1", 0.0, 1.0)
    return model_range
