"""The TorchScript twin of an LPIPS model: same weights, same distances, scriptable code.

``torch.jit.script(model)`` on an :class:`~lpips_core.LPIPS` scripts :class:`ScriptableLPIPS`
(through ``LPIPS.__prepare_scriptable__``). The eager model's input checks
(:mod:`.checks`) are plain Python, so the twin carries its own shape, size and
finiteness checks; the input scaling is the eager model's (:func:`.trunk.scale_input`)
and the distance the kernels of :mod:`.kernels`.
``torch.jit.trace(model, (x, y))`` traces the ordinary forward instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Tuple, Union, cast

import torch
import torch.nn as nn

from . import kernels as K
from .nets import MIN_INPUT_SIZE
from .steps import LPIPSSteps
from .trunk import scale_input


class ScriptableLPIPS(nn.Module):
    """A TorchScript-compatible twin of an :class:`LPIPS` model (same weights, same outputs).

    Eval-mode semantics (no dropout), the same memory layout as the eager model
    (channels-last on CPU), but every stage in that layout (no small-map rule).

    Args:
        model: the LPIPS model whose trunk and linear weights are shared (not copied).

    Shapes:
        ``forward(in0, in1, retPerLayer=False, normalize=False)`` as ``LPIPS.forward``:
        (N, 3, H, W) or (3, H, W) images -> (N, 1, 1, 1) ((N, 1, H, W) if spatial),
        or the tuple (total, per-layer list) with ``retPerLayer``.
    """

    if TYPE_CHECKING:  # the buffers registered in __init__ (nn.Module's __getattr__ types them Tensor | Module);
        # for mypy only: TorchScript reads class annotations and cannot resolve postponed ones
        shift: torch.Tensor
        scale: torch.Tensor

    def __init__(self, model: LPIPSSteps):
        super().__init__()
        self.stages = nn.ModuleList(model.net.stages)
        # the model's ScalingLayer buffers (Tensor | Module to mypy, as above)
        shift, scale = cast(torch.Tensor, model.scaling_layer.shift), cast(torch.Tensor, model.scaling_layer.scale)
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)
        device = shift.device
        self.weights: List[torch.Tensor] = [
            model.channel_weights(k, shift).detach() for k in range(model.L)
        ]  # (C_k,) each
        self.n_layers = model.L
        self.scaled = model.version == "0.1"
        self.spatial = model.spatial
        self.min_size = MIN_INPUT_SIZE[model.pnet_type]
        self.eps = K.EPS
        self.channels_last = model.uses_channels_last(device)

    def _as_batch(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise ValueError("LPIPS needs floating-point images in [-1, 1]")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4:
            raise ValueError("images must have shape (N, 3, H, W) or (3, H, W)")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[1] != 3:
            raise ValueError("images must have 3 (RGB) or 1 (grayscale) channels")
        return x

    def _scale(self, x: torch.Tensor, normalize: bool) -> torch.Tensor:
        """Images -> trunk input, by the eager model's one input scaling (:func:`.trunk.scale_input`)."""
        x = x.to(self.shift.dtype)
        if self.scaled:
            return scale_input(x, normalize, self.shift, self.scale)
        return scale_input(x, normalize, None, None)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    def _layer(self, f0: torch.Tensor, f1: torch.Tensor, k: int, out_hw: List[int]) -> torch.Tensor:
        """Unit features of layer k -> its distance: squared difference, channel weights, mean."""
        diff = K.squared_difference(f0, f1)  # (N, C, h, w)
        n, c, h, w = diff.shape
        weighted = K.channel_weighted_sum(diff, self.weights[k], self.channels_last)  # (N, h*w)
        if self.spatial:
            return K.upsample(weighted.view(n, 1, h, w), out_hw)
        return weighted.mean(1).view(n, 1, 1, 1)

    def forward(
        self, in0: torch.Tensor, in1: torch.Tensor, retPerLayer: bool = False, normalize: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        in0 = self._as_batch(in0)
        in1 = self._as_batch(in1)
        if in0.shape[1:] != in1.shape[1:] or (in0.shape[0] != in1.shape[0] and in0.shape[0] != 1 and in1.shape[0] != 1):
            raise ValueError("in0 and in1 must have the same shape (or one a batch of 1)")
        if min(in0.shape[2], in0.shape[3]) < self.min_size:
            raise ValueError("images are too small for this trunk")
        if not bool(torch.isfinite(in0).all()) or not bool(torch.isfinite(in1).all()):
            raise ValueError("images contain NaN or Inf values")
        out_hw = [in0.shape[2], in0.shape[3]]
        n = in0.shape[0]
        x0 = self._scale(in0, normalize)
        x1 = self._scale(in1, normalize)
        res: List[torch.Tensor] = []
        if in0.shape[0] == in1.shape[0]:  # one trunk call for both, as the eager model
            x = self._layout(torch.cat([x0, x1]))
            k = 0
            for stage in self.stages:
                x = stage(x)
                f = K.normalize_tensor(x, self.eps)
                res.append(self._layer(f[:n], f[n:], k, out_hw))
                k += 1
        else:
            x0 = self._layout(x0)
            x1 = self._layout(x1)
            k = 0
            for stage in self.stages:
                x0 = stage(x0)
                x1 = stage(x1)
                res.append(self._layer(K.normalize_tensor(x0, self.eps), K.normalize_tensor(x1, self.eps), k, out_hw))
                k += 1
        val = K.sum_layers(res)
        if retPerLayer:
            return val, res
        return val
