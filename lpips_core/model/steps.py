"""The pipeline's steps as the routes below :class:`~.lpips.LPIPS` see them: a Protocol.

:mod:`.fast`, :mod:`.reuse`, :mod:`.masks`, :mod:`.precision` and :mod:`.scriptable` run
the steps of a model they are handed (``check_inputs -> prepare -> taps -> layer_distance
-> reduce``, see :mod:`.lpips`). They are typed against :class:`LPIPSSteps`, not against
the class itself, so they sit wholly below ``lpips.py`` in the import graph: ``lpips.py``
imports them, and none of them imports it, not even for type hints. :class:`~.lpips.LPIPS`
satisfies the protocol; mypy checks that wherever ``lpips.py`` hands them ``self``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import torch
import torch.nn as nn

from .ranges import RangeSpec
from .trunk import ScalingLayer, Trunk

#: A compiled :func:`.fast.fused_layers` of one model: (trunk input of 2N images, N) -> per-layer distances.
Core = Callable[[torch.Tensor, int], list[torch.Tensor]]


class LPIPSSteps(Protocol):
    """What the routes use of an LPIPS model: its configuration, trunk and public steps."""

    L: int  # number of taps (layers)
    spatial: bool  # per-pixel maps instead of one distance per pair
    pnet_type: str  # 'alex', 'vgg' or 'squeeze'
    version: str  # '0.1' (ImageNet scaling of the input) or '0.0'
    net: Trunk
    scaling_layer: ScalingLayer
    _compiled_core: Core | None  # built by fast.compiled_core on first use

    @property
    def compile(self) -> Any:
        """The constructor's ``compile`` flag (an instance attribute shadowing ``nn.Module.compile``)."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def check_inputs(
        self, *named: tuple[str, torch.Tensor], input_range: RangeSpec | None = None, normalize: bool = False
    ) -> tuple[list[torch.Tensor], bool]: ...

    def prepare(
        self,
        images: Sequence[torch.Tensor],
        normalize: bool = False,
        channels_last: bool | None = None,
        in_place: bool = False,
    ) -> torch.Tensor: ...

    def taps(self, x: torch.Tensor) -> Iterator[torch.Tensor]: ...

    def pair_features(
        self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def features(self, x: torch.Tensor, normalize: bool = False) -> list[torch.Tensor]: ...

    def channel_weights(self, k: int, like: torch.Tensor) -> torch.Tensor: ...

    def weigh(self, k: int, diff: torch.Tensor) -> torch.Tensor: ...

    def pool(self, weighted: torch.Tensor, out_hw: Sequence[int] | None) -> torch.Tensor: ...

    def layer_distance(
        self, k: int, f0: torch.Tensor, f1: torch.Tensor, out_hw: Sequence[int] | None, overwrite: bool = False
    ) -> torch.Tensor: ...

    def reduce(self, layers: list[torch.Tensor]) -> torch.Tensor: ...

    def uses_channels_last(self, device: torch.device) -> bool: ...
