"""The LPIPS metric: a drop-in replacement for the reference ``lpips.LPIPS``.

Data flow (one pair)::

    images in [-1, 1]           (N, 3, H, W)
    -> ScalingLayer (v0.1)      (N, 3, H, W)
    -> trunk taps               [(N, C_k, H_k, W_k)] k = 1..L
    -> unit-normalise channels  each feature vector scaled to length 1
    -> squared difference       (N, C_k, H_k, W_k)
    -> linear 1x1 weights >= 0  (N, 1, H_k, W_k)
    -> spatial mean             (N, 1, 1, 1)
    -> sum over the L layers    (N, 1, 1, 1)   the distance
"""
from __future__ import annotations

import functools
import math
import os
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks
from .backbones import Trunk, canonical_net
from .weights import linear_weights_path, load_linear_state

EPS = 1e-10


def normalize_tensor(feat: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Scale each spatial position's channel vector to unit length.

    Same forward values as the reference ``x / (sqrt(sum x^2) + eps)``, but the
    norm comes from ``torch.linalg.vector_norm``, whose gradient at a zero vector
    is 0 instead of NaN (d sqrt(s)/ds is infinite at 0 and 0 * inf = NaN). Zero
    feature vectors are common deep in a trunk for dark or flat images.

    Args:
        feat: (N, C, H, W) features.
    Returns:
        (N, C, H, W), each (n, :, h, w) vector of norm ~1 (or 0 where it was 0).
    """
    norm = torch.linalg.vector_norm(feat, dim=1, keepdim=True)  # (N, 1, H, W)
    return feat / (norm + eps)


def spatial_average(x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) mean over the image plane."""
    return x.mean([2, 3], keepdim=keepdim)


def upsample(x: torch.Tensor, out_hw: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of a (N, C, h, w) map to ``out_hw`` (as the reference)."""
    return F.interpolate(x, size=tuple(out_hw), mode="bilinear", align_corners=False)


class ScalingLayer(nn.Module):
    """Map [-1, 1] images to the statistics the ImageNet trunks were trained on (v0.1)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """Learned non-negative per-channel weights: dropout (training only) then a 1x1 conv to 1 channel."""

    def __init__(self, chn_in: int, chn_out: int = 1, use_dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout()] if use_dropout else []
        layers.append(nn.Conv2d(chn_in, chn_out, 1, stride=1, padding=0, bias=False))
        self.model = nn.Sequential(*layers)

    @property
    def conv(self) -> nn.Conv2d:
        return self.model[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


#: Largest number of pixels (images x H x W) pushed through the trunk in one call by
#: ``forward`` when no gradient is needed. Bigger batches are split into chunks of
#: pairs, and a pair bigger than this runs its two images one after the other.
#: 2**21 pixels is 32 pairs of 128x128 (batching beyond that gains no speed on CPU).
PIXEL_BUDGET = 2 ** 21

#: Taps larger than this many elements (both images together) get their distance
#: computed in blocks of rows, so normalised copies of a whole large tap never
#: exist (a 2048x2048 VGG relu1_2 tap is 1 GB per image).
BLOCK_ELEMENTS = 2 ** 24

#: A trunk stage whose input map has fewer pixels than this runs in NCHW even on the
#: channels-last path: oneDNN's channels-last convolutions lose on maps a few pixels
#: across. The rule reads the stage's *input*: alex at 64x64 feeds stage 3 a 7x7 map
#: (its max-pool then makes the 3x3 its convolution sees), so stages 4-5 run in NCHW;
#: a 128-image trunk call took 40.3 ms all channels-last, 36.2 ms with NCHW on small
#: maps, on 2 CPU cores.
SMALL_MAP_PIXELS = 16


def _is_traced() -> bool:
    """True while torch.jit.trace, torch.export / ONNX export or torch.compile trace the model."""
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling()
                or torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export())


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Distances are computed in float32 even when the trunk ran in bf16/fp16."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def unit_features(tap: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``normalize_tensor`` in three passes (norm, add, divide), any memory format.

    Same values as the reference ``x / (sqrt(sum x^2) + eps)`` within one
    rounding of the norm (checked in tests/test_fast.py), finite gradient at zero vectors
    (``vector_norm``), result in float32 for bf16/fp16 taps, and it keeps the
    memory format of ``tap`` (channels-last stays channels-last).

    Args:
        tap: (N, C, H, W) trunk activations.
    Returns:
        (N, C, H, W) unit-length channel vectors (0 where the vector was 0).
    """
    acc = _accumulation_dtype(tap.dtype)
    norm = torch.linalg.vector_norm(tap, dim=1, keepdim=True, dtype=acc)  # (N, 1, H, W)
    return tap / norm.add_(eps) if not norm.requires_grad else tap / (norm + eps)


def squared_unit_difference(t0: torch.Tensor, t1: torch.Tensor, norm0: torch.Tensor | None = None,
                            norm1: torch.Tensor | None = None, eps: float = EPS) -> torch.Tensor:
    """``(unit(t0) - unit(t1))^2`` in few passes, no autograd (a fresh tensor, batches of 1 broadcast).

    One division writes ``t_big / norm_big``, ``addcdiv_`` subtracts the other side's
    quotient in the same pass, then the square is taken in place; no normalised
    copy of both taps is made. The quotient is rounded before it is subtracted,
    so identical inputs give exactly 0.

    Args:
        t0, t1: (N0, C, h, w), (N1, C, h, w) raw trunk activations.
        norm0, norm1: their ``vector_norm`` over channels plus ``eps`` when already known.
    Returns:
        (N, C, h, w) float32 squared differences of the unit-normalised features.
    """
    acc = _accumulation_dtype(t0.dtype)
    if norm0 is None:
        norm0 = torch.linalg.vector_norm(t0, dim=1, keepdim=True, dtype=acc).add_(eps)
    if norm1 is None:
        norm1 = torch.linalg.vector_norm(t1, dim=1, keepdim=True, dtype=acc).add_(eps)
    if t1.shape[0] < t0.shape[0]:
        t0, t1, norm0, norm1 = t1, t0, norm1, norm0  # (a - b)^2 == (b - a)^2 bit for bit
    diff = torch.div(t1, norm1)  # (N, C, h, w)
    return diff.addcdiv_(t0, norm0, value=-1).square_()


def is_channels_last(t: torch.Tensor) -> bool:
    """True when ``t``'s memory is laid out (N, h, w, C) and not also plain NCHW."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def channel_weighted_sum(d: torch.Tensor, w: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``sum_c w_c d[:, c]``: the 1x1 linear layer as one matrix-vector product.

    Args:
        d: (N, C, h, w) squared feature differences; channels-last when ``channels_last``.
        w: (C,) channel weights.
    Returns:
        (N, h * w) weighted sums (a flattened (N, 1, h, w) map).
    """
    n, c, h, wd = d.shape
    if channels_last:  # memory is (N, h, w, C): a (N*h*w, C) matrix times w
        return (d.permute(0, 2, 3, 1).reshape(n * h * wd, c) @ w).view(n, h * wd)
    return torch.matmul(w, d.reshape(n, c, h * wd))  # (N, h*w)


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018).

    Same constructor and ``forward`` as ``lpips.LPIPS`` 0.1.4, same state-dict
    keys, same outputs (within 1e-5), but: weights load without internet,
    gradients stay finite on all-zero features, inputs are checked, and it is
    faster at the same numbers (see ``benchmarks/bench_inference.py``):

    * both inputs go through the trunk in one call, written straight into one
      buffer (no ``torch.cat`` copy), in channels-last memory format on CPU
      (max-pooling is ~30x faster in that layout);
    * each layer's distance is computed as soon as its tap is ready and the tap
      is then dropped, so large images need far less memory;
    * unit normalisation is one reciprocal norm per position; difference,
      square, 1x1 weighting and spatial mean run in place as one matrix-vector
      product per layer (exact: the 1x1 conv has no bias);
    * with no gradient needed the work runs under ``torch.inference_mode``.

    In train mode with dropout the reference computation ``lin(dropout(diff))``
    is used, so training behaves exactly as with the reference.

    Args:
        pretrained: load the calibrated linear weights (v``version``) or ``model_path``.
        net: 'alex', 'vgg' or 'squeeze' (also 'alexnet', 'vgg16', 'squeezenet').
        version: '0.1' (current) or '0.0' (first release, no input scaling).
        lpips: True for learned linear weights; False for the "net" baseline
            (every channel weighted 1).
        spatial: return a (N, 1, H, W) distance map instead of (N, 1, 1, 1).
        pnet_rand: random trunk instead of ImageNet weights.
        pnet_tune: make the trunk trainable.
        use_dropout: dropout before each linear layer (active in train mode only).
        model_path: linear weights to load instead of the shipped ones
            (reference ``.pth`` format, or ``.safetensors``).
        eval_mode: put the model in eval mode.
        verbose: print a one-line summary, as the reference does.
        channels_last: run the trunk in channels-last memory format; None picks
            it on CPU (where oneDNN convolutions and max-pooling prefer it) and
            for half-precision on GPU.
        compile: run the inference path through ``torch.compile`` (compiled on
            the first call; a few tens of seconds on CPU).
        dtype: trunk precision: torch.float32 (exact, default), torch.bfloat16 or
            torch.float16 (autocast; distances still accumulate in float32).
            Worth it only where the hardware has bf16/fp16 units (AMX, GPUs).

    Example:
        >>> import torch, lpips_core
        >>> model = lpips_core.LPIPS(net='alex')
        >>> x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
        >>> model(x, y).shape
        torch.Size([2, 1, 1, 1])
    """

    def __init__(self, pretrained: bool = True, net: str = "alex", version: str = "0.1",
                 lpips: bool = True, spatial: bool = False, pnet_rand: bool = False,
                 pnet_tune: bool = False, use_dropout: bool = True,
                 model_path: str | os.PathLike | None = None, eval_mode: bool = True,
                 verbose: bool = False, *, channels_last: bool | None = None,
                 compile: bool = False, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.pnet_type = canonical_net(net)
        version = str(version).lstrip("v")
        if version not in ("0.0", "0.1"):
            raise ValueError(f"version={version!r} is not supported; choose '0.1' or '0.0'")
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype={dtype} is not supported; choose torch.float32, "
                             f"torch.bfloat16 or torch.float16")
        self.version = version
        self.pnet_tune = pnet_tune
        self.pnet_rand = pnet_rand
        self.spatial = spatial
        self.lpips = lpips
        self.channels_last = channels_last
        self.compile = compile
        self.dtype = dtype
        self.scaling_layer = ScalingLayer()
        self.net = Trunk(self.pnet_type, pretrained=not pnet_rand, requires_grad=pnet_tune)
        self.chns = self.net.channels
        self.L = len(self.chns)
        self._range_warned = False
        self._compiled_core = None
        if verbose:
            print(f"Setting up [{'LPIPS' if lpips else 'baseline'}] perceptual loss: trunk "
                  f"[{self.pnet_type}], v[{version}], spatial [{'on' if spatial else 'off'}]")

        if lpips:
            lins = [NetLinLayer(c, use_dropout=use_dropout) for c in self.chns]
            for k, lin in enumerate(lins):
                self.add_module(f"lin{k}", lin)
            self.lins = nn.ModuleList(lins)  # registered twice, as in the reference's state dict
            if pretrained:
                path = model_path if model_path is not None else linear_weights_path(self.pnet_type, version)
                if verbose:
                    print(f"Loading model from: {path}")
                self.load_linear_weights(path)
        if eval_mode:
            self.eval()

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_compiled_core"] = None  # compiled code is rebuilt on demand, never copied or pickled
        return state

    def __prepare_scriptable__(self):
        """``torch.jit.script(model)`` scripts an equivalent TorchScript-friendly module."""
        from .export import ScriptableLPIPS
        return ScriptableLPIPS(self)

    # ------------------------------------------------------------------ weights
    def load_linear_weights(self, path: str | os.PathLike) -> None:
        """Load linear weights in the reference format (keys ``lin<k>.model.<i>.weight``).

        Unlike the reference (``strict=False``), a file that does not provide
        every layer with the right shape is an error naming the file.
        """
        state = load_linear_state(path)
        for k, lin in enumerate(self.lins):
            candidates = [f"lin{k}.model.1.weight", f"lin{k}.model.0.weight",
                          f"lins.{k}.model.1.weight", f"lins.{k}.model.0.weight"]
            key = next((c for c in candidates if c in state), None)
            if key is None:
                raise ValueError(f"{path}: no weights for layer {k} (expected key 'lin{k}.model.1.weight'); "
                                 f"is this an LPIPS linear-weights file for net='{self.pnet_type}'?")
            weight = state[key]
            if weight.shape != lin.conv.weight.shape:
                raise ValueError(f"{path}: layer {k} weights have shape {tuple(weight.shape)}, "
                                 f"net='{self.pnet_type}' needs {tuple(lin.conv.weight.shape)}")
            with torch.no_grad():
                lin.conv.weight.copy_(weight)

    def linear_state_dict(self) -> dict[str, torch.Tensor]:
        """The linear weights under the reference's keys (``lin<k>.model.1.weight``)."""
        return {f"lin{k}.model.1.weight": lin.conv.weight.detach().clone()
                for k, lin in enumerate(self.lins)}

    # ------------------------------------------------------------------ small helpers
    def _check_inputs(self, normalize: bool, *named: tuple[str, torch.Tensor]) -> list[torch.Tensor]:
        """Validate (type/shape -> pair -> device -> size -> finite), then warn once about the range.

        Errors name the argument; a NaN/Inf input raises without also warning
        (and without using up the model's one range warning).
        """
        xs = checks.check_images(named, self.pnet_type, self.scaling_layer.shift.device)
        if not self._range_warned and checks.warn_if_out_of_range(xs, normalize):
            self._range_warned = True
        return xs

    def _scale(self, x: torch.Tensor, normalize: bool) -> torch.Tensor:
        """Checked images -> trunk input: dtype, [0,1]->[-1,1] if ``normalize``, v0.1 scaling."""
        x = x.to(self.scaling_layer.shift.dtype)
        if normalize:  # [0, 1] -> [-1, 1]
            x = 2 * x - 1
        return self.scaling_layer(x) if self.version == "0.1" else x

    def _scale_in_place(self, buf: torch.Tensor, normalize: bool) -> None:
        """``_scale`` applied in place to a buffer that holds the raw images (no graph)."""
        if normalize:  # [0, 1] -> [-1, 1]
            buf.mul_(2).sub_(1)
        if self.version == "0.1":
            buf.sub_(self.scaling_layer.shift).div_(self.scaling_layer.scale)

    def _use_channels_last(self, device: torch.device) -> bool:
        if _is_traced():
            return False
        if self.channels_last is not None:
            return bool(self.channels_last)
        return device.type == "cpu" or self.dtype != torch.float32

    def _dropout_active(self) -> bool:
        return self.lpips and self.training and any(
            isinstance(m, nn.Dropout) and m.p > 0 for lin in self.lins for m in lin.model)

    def _needs_graph(self, *inputs: torch.Tensor) -> bool:
        """True when autograd must record: grad mode on and an input or a parameter requires grad."""
        if not torch.is_grad_enabled():
            return False
        return any(x.requires_grad for x in inputs) or any(p.requires_grad for p in self.parameters())

    def _channel_weights(self, k: int, like: torch.Tensor) -> torch.Tensor:
        """(C_k,) weights of layer k (all ones for the lpips=False baseline), in ``like``'s dtype."""
        if self.lpips:
            return self.lins[k].conv.weight.view(-1).to(like.dtype)
        return torch.ones(self.chns[k], dtype=like.dtype, device=like.device)

    @staticmethod
    def _stage_format(x: torch.Tensor) -> torch.memory_format:
        """Memory format a trunk stage should run in, given its input ``x`` (N, C, h, w)."""
        if is_channels_last(x):
            return torch.channels_last if x.shape[2] * x.shape[3] >= SMALL_MAP_PIXELS else torch.contiguous_format
        return torch.contiguous_format

    @staticmethod
    def _match_stage_layout(stage: nn.Module, fmt: torch.memory_format) -> None:
        """Store a frozen stage's convolution weights in memory format ``fmt``.

        oneDNN otherwise copies every weight into the activations' layout on every
        call (about 1 ms per alex forward on CPU). Values are unchanged; the
        state dict's keys and values are the same. A trainable trunk is left alone.
        """
        convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
        if all(c.weight.is_contiguous(memory_format=fmt) for c in convs):
            return
        if any(c.weight.requires_grad for c in convs):
            return
        with torch.inference_mode(False), torch.no_grad():
            for c in convs:
                c.weight.data = c.weight.data.contiguous(memory_format=fmt)

    def _taps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Trunk taps one stage at a time, in ``self.dtype`` (autocast per stage, so the
        distance arithmetic between stages stays in float32). On the channels-last
        path, stages fed with small maps run in NCHW (see :data:`SMALL_MAP_PIXELS`)."""
        if _is_traced() or x.dim() != 4:
            yield from self.net.iter_taps(x)
            return
        for stage in self.net.stages:
            fmt = self._stage_format(x)
            self._match_stage_layout(stage, fmt)
            x = x.contiguous(memory_format=fmt)
            if self.dtype == torch.float32:
                x = stage(x)
            else:
                with torch.autocast(x.device.type, dtype=self.dtype):
                    x = stage(x)
            yield x

    # ------------------------------------------------------------------ per-layer distance
    def _tap_distance(self, k: int, f0: torch.Tensor, f1: torch.Tensor, out_hw: Sequence[int] | None,
                      owned: bool) -> torch.Tensor:
        """Layer-k distance from unit-normalised features (batches of 1 broadcast).

        Args:
            f0, f1: (N0, C, h, w) and (N1, C, h, w) features; ``owned`` means they are
                temporaries of this call that may be overwritten (no autograd); f1 is
                the one overwritten unless it is the broadcast batch of 1.
        Returns:
            (N, 1, 1, 1), or (N, 1, H, W) upsampled to ``out_hw`` when spatial.
        """
        if self._dropout_active():  # reference path: lin(dropout(diff)), then mean/upsample
            diff = ((f0 - f1) ** 2).contiguous()  # NCHW, so dropout draws its mask in the reference's order
            weighted = self.lins[k](diff)
            return upsample(weighted, out_hw) if self.spatial else spatial_average(weighted)
        if owned and f1.shape[0] >= f0.shape[0]:  # overwrite f1 (one_to_many keeps f0 = the reference)
            diff = f1.sub_(f0).square_()  # (N, C, h, w); (f1-f0)^2 == (f0-f1)^2 bit for bit
        elif owned:
            diff = f0.sub_(f1).square_()
        else:
            diff = (f0 - f1).square()
        return self._reduce_difference(k, diff, out_hw)

    def _reduce_difference(self, k: int, diff: torch.Tensor, out_hw: Sequence[int] | None) -> torch.Tensor:
        """(N, C, h, w) squared differences -> layer-k distance (1x1 weights, then mean or upsample).

        The weighting follows ``diff``'s own layout: taps of one call can differ
        (stages fed with small maps run in NCHW, see :data:`SMALL_MAP_PIXELS`)."""
        n, _, h, w = diff.shape
        weighted = channel_weighted_sum(diff, self._channel_weights(k, diff), is_channels_last(diff))  # (N, h*w)
        if self.spatial:
            return upsample(weighted.view(n, 1, h, w), out_hw)
        return weighted.mean(1).view(n, 1, 1, 1)

    def _tap_distance_blocked(self, k: int, t0: torch.Tensor, t1: torch.Tensor,
                              out_hw: Sequence[int] | None) -> torch.Tensor:
        """``_tap_distance`` of raw taps, computed over blocks of rows (no autograd, eval semantics).

        Unit normalisation is per position, so each block gives the same values
        as the whole; only the order of the final sum differs (float rounding).
        """
        n, c, h, w = torch.broadcast_shapes(t0.shape, t1.shape)
        rows = max(1, BLOCK_ELEMENTS // 4 // max(1, n * c * w))
        weights = self._channel_weights(k, t0.new_empty(0, dtype=_accumulation_dtype(t0.dtype)))
        pieces = []
        for r in range(0, h, rows):
            diff = squared_unit_difference(t0[:, :, r:r + rows], t1[:, :, r:r + rows])
            pieces.append(channel_weighted_sum(diff, weights, is_channels_last(diff)).view(n, -1, w))  # (N, rows, w)
            del diff
        if self.spatial:
            return upsample(torch.cat(pieces, dim=1).view(n, 1, h, w), out_hw)
        total = pieces[0].sum((1, 2))
        for p in pieces[1:]:
            total += p.sum((1, 2))
        return (total / (h * w)).view(n, 1, 1, 1)

    def _taps_distance(self, k: int, t0: torch.Tensor, t1: torch.Tensor, out_hw: Sequence[int] | None,
                       owned: bool) -> torch.Tensor:
        """Layer-k distance from raw taps: blocked for large taps on the no-grad path."""
        if owned and not self._dropout_active():
            if t0.numel() + t1.numel() > BLOCK_ELEMENTS:
                return self._tap_distance_blocked(k, t0, t1, out_hw)
            return self._reduce_difference(k, squared_unit_difference(t0, t1), out_hw)
        return self._tap_distance(k, unit_features(t0), unit_features(t1), out_hw, owned)

    def _pair_distances(self, x0: torch.Tensor, x1: torch.Tensor | None, n: int,
                        out_hw: Sequence[int], owned: bool) -> list[torch.Tensor]:
        """Per-layer distances, computing each layer as soon as its tap exists.

        Args:
            x0: scaled trunk input; with ``x1`` None it holds both batches
                concatenated (first ``n`` images, then the rest).
            x1: second scaled input when the two run separately (different batch
                sizes, or a pair too big to run together).
        """
        res = []
        if x1 is None:
            for k, tap in enumerate(self._taps(x0)):
                if owned and tap.numel() > BLOCK_ELEMENTS:
                    res.append(self._taps_distance(k, tap[:n], tap[n:], out_hw, owned))
                elif owned and not self._dropout_active():
                    norms = torch.linalg.vector_norm(tap, dim=1, keepdim=True,  # (2N, 1, h, w), one pass
                                                     dtype=_accumulation_dtype(tap.dtype)).add_(EPS)
                    diff = squared_unit_difference(tap[:n], tap[n:], norms[:n], norms[n:])
                    res.append(self._reduce_difference(k, diff, out_hw))
                else:
                    f = unit_features(tap)  # (2N, C, h, w)
                    res.append(self._tap_distance(k, f[:n], f[n:], out_hw, owned))
        else:
            for k, (t0, t1) in enumerate(zip(self._taps(x0), self._taps(x1))):
                res.append(self._taps_distance(k, t0, t1, out_hw, owned))
        return res

    def _fused_core(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        """Functional (no in-place) trunk + distances of a concatenated batch, for torch.compile."""
        return self._pair_distances(x, None, n, x.shape[2:], owned=False)

    def _trunk_input(self, images: Sequence[torch.Tensor], normalize: bool, owned: bool,
                     channels_last: bool) -> torch.Tensor:
        """Scaled images concatenated along the batch, in the trunk's memory format."""
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if not owned:
            x = torch.cat([self._scale(im, normalize) for im in images]) if len(images) > 1 \
                else self._scale(images[0], normalize)
            return x.contiguous(memory_format=fmt)
        first = images[0]
        buf = torch.empty((sum(im.shape[0] for im in images), *first.shape[1:]), device=first.device,
                          dtype=self.scaling_layer.shift.dtype, memory_format=fmt)
        start = 0
        for im in images:  # a plain copy (also converts dtype, expands grayscale) is ~8x faster
            buf[start:start + im.shape[0]].copy_(im)  # than writing sub(..., out=) into a slice
            start += im.shape[0]
        self._scale_in_place(buf, normalize)
        return buf

    def _layer_distances_from_images(self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool,
                                     owned: bool) -> list[torch.Tensor]:
        """Checked images -> per-layer distances, chunked so one trunk call stays within PIXEL_BUDGET."""
        cl = self._use_channels_last(in0.device)
        out_hw = in0.shape[2:]
        n0, n1 = in0.shape[0], in1.shape[0]
        pixels = in0.shape[2] * in0.shape[3]
        if _is_traced() or not owned or n0 != n1 or n0 == 0:
            if n0 == n1 and n0 > 0:
                x = self._trunk_input([in0, in1], normalize, owned, cl)
                return self._pair_distances(x, None, n0, out_hw, owned)
            x0 = self._trunk_input([in0], normalize, owned, cl)
            x1 = self._trunk_input([in1], normalize, owned, cl)
            return self._pair_distances(x0, x1, n0, out_hw, owned)
        if self._compiled_core is None and self.compile:
            self._compiled_core = torch.compile(self._fused_core)
        chunk = max(1, PIXEL_BUDGET // (2 * pixels))
        parts = []
        for s in range(0, n0, chunk):
            a, b = in0[s:s + chunk], in1[s:s + chunk]
            if 2 * a.shape[0] * pixels > PIXEL_BUDGET:  # one pair too big to run together
                x0 = self._trunk_input([a], normalize, owned, cl)
                x1 = self._trunk_input([b], normalize, owned, cl)
                parts.append(self._pair_distances(x0, x1, a.shape[0], out_hw, owned))
            elif self._compiled_core is not None and not self.spatial and not self._dropout_active():
                x = self._trunk_input([a, b], normalize, owned, channels_last=False)
                parts.append(self._compiled_core(x, a.shape[0]))
            else:
                x = self._trunk_input([a, b], normalize, owned, cl)
                parts.append(self._pair_distances(x, None, a.shape[0], out_hw, owned))
        if len(parts) == 1:
            return parts[0]
        return [torch.cat([p[k] for p in parts]) for k in range(self.L)]

    # ------------------------------------------------------------------ feature API
    def features(self, x: torch.Tensor, normalize: bool = False) -> list[torch.Tensor]:
        """Unit-normalised trunk features of one image batch, for reuse across comparisons.

        Gradients flow when grad mode is on and the input or the trunk requires
        them; otherwise the trunk runs without recording. The features come
        back as ordinary contiguous (N, C, H, W) tensors usable in autograd
        (for example by ``distance_from_features`` while training the linear layers).

        Args:
            x: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
        Returns:
            one (N, C_k, H_k, W_k) float32 tensor per tap, each channel vector of unit length.
        """
        if not _is_traced():
            (x,) = self._check_inputs(normalize, ("x", x))
        grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.net.parameters()))
        cl = self._use_channels_last(x.device)
        with torch.set_grad_enabled(grad):
            inp = self._trunk_input([x], normalize, owned=not grad, channels_last=cl)
            return [unit_features(t).contiguous() for t in self._taps(inp)]

    def distance_from_features(self, feats0: list[torch.Tensor], feats1: list[torch.Tensor],
                               out_hw: Sequence[int] | None = None,
                               retPerLayer: bool = False):
        """Distance between two sets of ``features()`` outputs (batches broadcast as in ``forward``).

        Args:
            feats0, feats1: lists from :meth:`features`.
            out_hw: image size, needed only when ``spatial=True``.
        Returns:
            (N, 1, 1, 1) distances ((N, 1, H, W) with ``spatial``); with
            ``retPerLayer`` the tuple (total, [per-layer]).
        """
        if self.spatial and out_hw is None:
            raise ValueError("distance_from_features needs out_hw=(H, W) when spatial=True")
        if len(feats0) != self.L or len(feats1) != self.L:
            raise ValueError(f"expected {self.L} feature maps per image for net='{self.pnet_type}', "
                             f"got {len(feats0)} and {len(feats1)}")
        res = []
        for k in range(self.L):
            f0, f1 = feats0[k], feats1[k]
            if not (is_channels_last(f0) and f1.is_contiguous(memory_format=torch.channels_last)):
                f0, f1 = f0.contiguous(), f1.contiguous()
            res.append(self._tap_distance(k, f0, f1, out_hw, owned=False))
        return self._total(res, retPerLayer)

    @staticmethod
    def _total(res: list[torch.Tensor], retPerLayer: bool):
        val = res[0]
        for r in res[1:]:
            val = val + r
        return (val, res) if retPerLayer else val

    # ------------------------------------------------------------------ forward
    def forward(self, in0: torch.Tensor, in1: torch.Tensor, retPerLayer: bool = False,
                normalize: bool = False):
        """Distance between two image batches.

        Args:
            in0, in1: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with
                ``normalize=True``); 1-channel images are repeated to RGB. A batch
                of 1 is compared with every image of the other batch.
            retPerLayer: also return the list of per-layer distances.
            normalize: inputs are in [0, 1].
        Returns:
            (N, 1, 1, 1) distances ((N, 1, H, W) maps with ``spatial=True``),
            and with ``retPerLayer`` the tuple (total, [per-layer]).
        """
        if _is_traced():  # value checks cannot be traced; the traced graph assumes valid input
            in0, in1 = checks.as_image_batch(in0, "in0"), checks.as_image_batch(in1, "in1")
        else:  # range warnings point at the caller's line (checks._user_stacklevel)
            in0, in1 = self._check_inputs(normalize, ("in0", in0), ("in1", in1))
        return self._checked_forward(in0, in1, retPerLayer, normalize)

    def _checked_forward(self, in0: torch.Tensor, in1: torch.Tensor, retPerLayer: bool, normalize: bool):
        """``forward`` after its input checks (``distance`` checks under its own argument names)."""
        if _is_traced() or self._needs_graph(in0, in1):
            res = self._layer_distances_from_images(in0, in1, normalize, owned=False)
            return self._total(res, retPerLayer)
        outer_inference = torch.is_inference_mode_enabled()
        with torch.inference_mode():
            res = self._layer_distances_from_images(in0, in1, normalize, owned=True)
            val = self._total(res, False)
        if not outer_inference:  # hand back ordinary tensors, usable later in autograd
            val = val.clone()
            res = [r.clone() for r in res] if retPerLayer else res
        return (val, res) if retPerLayer else val

    # ------------------------------------------------------------------ reuse across comparisons
    def one_to_many(self, ref: torch.Tensor, images: torch.Tensor, normalize: bool = False,
                    chunk_size: int = 64) -> torch.Tensor:
        """Distances from one reference image to each of many images; the trunk runs on ``ref`` once.

        Equal to ``self(ref.expand_as(images), images)`` (within float rounding).
        Runs without gradients (``torch.inference_mode``).

        Args:
            ref: (3, H, W) or (1, 3, H, W) reference image in [-1, 1] ([0, 1] with ``normalize``).
            images: (N, 3, H, W) images of the same size.
            chunk_size: images per trunk call (bounds memory).
        Returns:
            (N, 1, 1, 1) distances ((N, 1, H, W) maps with ``spatial=True``), as ``forward``.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if isinstance(ref, torch.Tensor) and ref.dim() == 4 and ref.shape[0] != 1:
            raise ValueError(f"ref has batch size {ref.shape[0]}; one_to_many takes one reference "
                             f"image (3, H, W) or (1, 3, H, W); use forward for pairs")
        ref, images = self._check_inputs(normalize, ("ref", ref), ("images", images))
        outer_inference = torch.is_inference_mode_enabled()
        with torch.inference_mode():
            cl = self._use_channels_last(ref.device)
            ref_feats = [unit_features(t) for t in self._taps(self._trunk_input([ref], normalize, True, cl))]
            out = []
            for s in range(0, images.shape[0], chunk_size):
                x = self._trunk_input([images[s:s + chunk_size]], normalize, True, cl)
                res = [self._tap_distance(k, ref_feats[k], unit_features(t), images.shape[2:], True)
                       for k, t in enumerate(self._taps(x))]
                out.append(self._total(res, False))
            val = torch.cat(out) if out else images.new_zeros(0, 1, *(images.shape[2:] if self.spatial else (1, 1)))
        return val if outer_inference else val.clone()

    def embed(self, images: torch.Tensor, normalize: bool = False, chunk_size: int = 32) -> torch.Tensor:
        """Each image as one vector whose squared distances are the LPIPS distances.

        With unit features ``f_k`` and weights ``w_k >= 0``,
        ``d(x, y) = sum_k sum_c w_kc mean_hw (f_k(x) - f_k(y))_c^2 = ||e(x) - e(y)||^2`` where
        ``e(x)`` concatenates ``sqrt(w_kc / (h_k w_k)) f_k(x)`` over layers, channels and
        positions. Negative weights (untrained linear layers) are not allowed here.

        Args:
            images: (N, 3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
            chunk_size: images per trunk call (bounds activation memory).
        Returns:
            (N, D) float32 embedding, D = sum_k C_k h_k w_k (about 0.64 M for alex at 256x256).
        """
        if self.spatial:
            raise ValueError("embed/pairwise need spatial=False (a matrix of distance maps "
                             "would be N x N x H x W); build the model with spatial=False")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        (images,) = self._check_inputs(normalize, ("images", images))
        scales = []
        for k in range(self.L):
            w = self._channel_weights(k, images.new_empty(0, dtype=torch.float32)).detach()
            if (w < 0).any():
                raise ValueError(f"layer {k} has negative linear weights; the LPIPS embedding needs "
                                 f"w >= 0 (trained/pretrained weights are clamped to >= 0)")
            scales.append(w.sqrt())
        outer_inference = torch.is_inference_mode_enabled()
        with torch.inference_mode():
            cl = self._use_channels_last(images.device)
            rows = []
            for s in range(0, max(images.shape[0], 1), chunk_size):  # N = 0: one empty pass gives (0, D)
                x = self._trunk_input([images[s:s + chunk_size]], normalize, True, cl)
                parts = []
                for k, t in enumerate(self._taps(x)):
                    f = unit_features(t)  # (n, C, h, w)
                    n, c, h, w = f.shape
                    f.mul_((scales[k] / math.sqrt(h * w)).view(1, c, 1, 1))
                    parts.append(f.permute(0, 2, 3, 1).reshape(n, h * w * c))  # any fixed order; a view if channels-last
                rows.append(torch.cat(parts, dim=1))
            emb = torch.cat(rows)
        return emb if outer_inference else emb.clone()

    def pairwise(self, images: torch.Tensor, normalize: bool = False, chunk_size: int = 32) -> torch.Tensor:
        """All-pairs distance matrix; each image goes through the trunk once.

        Uses ``d(i, j) = ||e_i - e_j||^2`` with the embedding of :meth:`embed`,
        computed as ``|e_i|^2 + |e_j|^2 - 2 e_i.e_j`` after centring the
        embeddings (centring removes most of the cancellation; the result matches
        one forward call per pair within 1e-5, see tests/test_fast.py).

        Memory: the trunk runs on ``chunk_size`` images at a time; the N x D
        embedding is kept (D * 4 bytes per image, about 2.6 MB for alex at 256x256).

        Args:
            images: (N, 3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
            chunk_size: images per trunk call.
        Returns:
            (N, N) float32 matrix: symmetric, zero diagonal, entries >= 0.
        """
        emb = self.embed(images, normalize=normalize, chunk_size=chunk_size)
        outer_inference = torch.is_inference_mode_enabled()
        with torch.inference_mode():
            emb = emb - emb.mean(0, keepdim=True)
            sq = emb.pow(2).sum(1)  # (N,)
            dist = (sq[:, None] + sq[None, :]).sub_(emb @ emb.T, alpha=2)  # (N, N)
            dist = (dist + dist.T).mul_(0.5).clamp_(min=0)
            dist.fill_diagonal_(0)
        return dist if outer_inference else dist.clone()


@functools.lru_cache(maxsize=8)
def _cached_model(net: str, version: str, device: str) -> LPIPS:
    # Reused by later calls that may need input gradients: never build it as
    # inference tensors, even when the first call comes from inside torch.inference_mode.
    with torch.inference_mode(False):
        return LPIPS(net=net, version=version).to(device).eval().requires_grad_(False)


def distance(img0: torch.Tensor, img1: torch.Tensor, net: str = "alex", version: str = "0.1",
             normalize: bool = False, device: str | torch.device | None = None) -> torch.Tensor:
    """Functional LPIPS: ``(N,)`` distances between two image batches.

    The model is built once per (net, version, device) and reused; its weights
    are frozen, so gradients flow only to inputs that require them.

    Args:
        img0, img1: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
        net: 'alex', 'vgg' or 'squeeze'.
        device: where to run (both images are moved there); defaults to ``img0``'s device.
    Returns:
        (N,) tensor of distances.
    Raises:
        TypeError, ValueError: bad images (naming ``img0``/``img1``) or an unusable ``device``.
    """
    net = canonical_net(net)
    for name, x in (("img0", img0), ("img1", img1)):  # before moving: type, shape, no 'meta' tensors
        checks.check_device(checks.as_image_batch(x, name), name)
    device = checks.as_device(device) if device is not None else img0.device
    model = _cached_model(net, str(version).lstrip("v"), str(device))
    img0, img1 = model._check_inputs(normalize, ("img0", img0.to(device)), ("img1", img1.to(device)))
    return model._checked_forward(img0, img1, False, normalize).flatten()
