"""The LPIPS metric: a drop-in replacement for the reference ``lpips.LPIPS``.

Data flow (one pair); each step is a public method of :class:`LPIPS`::

    check_inputs    range, shapes, device, size, finite values  (N, 3, H, W) in [-1, 1] (or [0, 1])
    prepare         [0, 1] -> [-1, 1], ImageNet scaling (v0.1)  (N, 3, H, W) trunk input
    taps            the trunk's stages                          [(N, C_k, H_k, W_k)] k = 1..L
    unit features   channel vectors scaled to length 1          (N, C_k, H_k, W_k)
    layer_distance  squared difference                          (N, C_k, H_k, W_k)
      weigh         linear 1x1 weights >= 0                     (N, 1, H_k, W_k)
      pool          spatial mean (or upsampling, spatial=True)  (N, 1, 1, 1)
    reduce          sum over the L layers                       (N, 1, 1, 1)   the distance

:meth:`LPIPS.compare` (what :meth:`LPIPS.forward` calls after the checks) runs these
steps by one of two paths, with the same kernels (:mod:`.kernels`):

* the reference path, written out step by step as above; it runs whenever
  autograd records (an input or a parameter requires a gradient), while the model
  is traced or exported, and in train mode with dropout;
* the fast path of :mod:`.fast` otherwise: the same steps and numbers in fewer
  passes over buffers the call owns, in chunks of pairs and blocks of rows.

Feature reuse (``one_to_many``, ``embed``, ``pairwise``) lives in :mod:`.reuse`, masked
LPIPS in :mod:`.masks`; ``torch.jit.script(model)`` scripts the twin of :mod:`.scriptable`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Union, cast, overload

import torch
import torch.nn as nn

from ..version import __version__
from . import checks, fast, masks, reuse
from . import kernels as K
from . import precision as P
from .nets import canonical_net
from .ranges import InputRange, RangeSpec, parse_input_range, resolve
from .scriptable import ScriptableLPIPS
from .steps import Core
from .trunk import ScalingLayer, Trunk, trunk_input
from .versions import canonical_version
from .weights import linear_weight, linear_weights_path, load_linear_state

#: What ``forward`` and ``distance_from_features`` return: the distance, or (distance, per-layer).
Distance = Union[torch.Tensor, tuple[torch.Tensor, list[torch.Tensor]]]


class NetLinLayer(nn.Module):
    """Learned non-negative per-channel weights: dropout (training only) then a 1x1 conv to 1 channel."""

    def __init__(self, chn_in: int, chn_out: int = 1, use_dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout()] if use_dropout else []
        layers.append(nn.Conv2d(chn_in, chn_out, 1, stride=1, padding=0, bias=False))
        self.model = nn.Sequential(*layers)

    @property
    def conv(self) -> nn.Conv2d:
        return cast(nn.Conv2d, self.model[-1])  # nn.Sequential types its items as Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)
        return out


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018).

    Same constructor and ``forward`` as ``lpips.LPIPS`` 0.1.4, same state-dict
    keys, same outputs (within 1e-5), but: weights load without internet,
    gradients stay finite on all-zero features, inputs are checked, and it is
    faster at the same numbers (see ``benchmarks/bench_inference.py`` and :mod:`.fast`):
    one trunk call for both inputs written into one buffer, channels-last on CPU,
    each layer's distance computed as soon as its tap is ready, the 1x1 weighting
    and spatial mean as one matrix-vector product per layer, ``torch.inference_mode``
    when no gradient is needed. In train mode with dropout the reference
    computation ``lin(dropout(diff))`` is used, so training behaves exactly as with the reference.

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
        input_range: the images' convention: '-1,1' (the reference's), '0,1'
            (what ``normalize=True`` means per call) or '0,255' (8-bit images,
            uint8 tensors accepted). Left at None (= '-1,1' unconfirmed), inputs
            that are all non-negative get one :class:`~.checks.ZeroOneRangeWarning`
            per call site; passing '-1,1' confirms the range and silences it.
        precision: how the trunk runs (:mod:`.precision`): 'fp32' (exact, default),
            'bf16' (where bf16 units exist: AMX/AVX512_BF16, GPUs; elsewhere one
            :class:`~.precision.PrecisionFallbackWarning` and exact fp32) or 'int8'
            (calibrated static int8 on x86 CPUs, built once per process). Distances
            always accumulate in float32; each mode's measured error is its contract
            (``results/precision/contract.md``).

    Every result can be traced to how it was computed with :meth:`signature`. The pipeline's steps are public
    methods (:meth:`check_inputs`, :meth:`prepare`, :meth:`taps`, :meth:`layer_distance`,
    :meth:`reduce`; see the module docstring), and :meth:`compare` runs them.

    Example:
        >>> import torch, lpips_core
        >>> model = lpips_core.LPIPS(net='alex')
        >>> x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
        >>> model(x, y).shape
        torch.Size([2, 1, 1, 1])
    """

    def __init__(
        self,
        pretrained: bool = True,
        net: str = "alex",
        version: str = "0.1",
        lpips: bool = True,
        spatial: bool = False,
        pnet_rand: bool = False,
        pnet_tune: bool = False,
        use_dropout: bool = True,
        model_path: str | os.PathLike[str] | None = None,
        eval_mode: bool = True,
        verbose: bool = False,
        *,
        channels_last: bool | None = None,
        compile: bool = False,
        dtype: torch.dtype = torch.float32,
        input_range: RangeSpec | None = None,
        precision: str = "fp32",
    ):
        super().__init__()
        self.pnet_type = canonical_net(net)
        version = canonical_version(version)
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype={dtype} is not supported; choose torch.float32, torch.bfloat16 or torch.float16")
        self.version = version
        self.pnet_tune = pnet_tune
        self.pnet_rand = pnet_rand
        self.spatial = spatial
        self.lpips = lpips
        self.channels_last = channels_last
        # the reference-era constructor flag, an instance attribute that shadows nn.Module.compile
        self.compile = compile  # type: ignore[method-assign,assignment]
        self.dtype = dtype
        self.input_range: InputRange = parse_input_range(input_range)
        self.precision = P.parse_precision(precision)
        if compile and self.precision == "int8":
            raise ValueError(
                "compile=True works with precision 'fp32', 'bf16' or 'fp16', not 'int8' "
                "(the int8 trunk calls oneDNN's int8 kernels directly)"
            )
        self.int8_config: P.Int8Config = P.DEFAULT_INT8
        self._effective: dict[str, str] = {}  # device type -> the precision that runs there
        self._int8: P.Int8Trunk | None = None
        self._int8_state: tuple[object, ...] | None = None
        # what the signature names: the linear weights' origin (the shipped v0.x, a file, or
        # 'custom': set by the caller, e.g. trained in memory) and the trunk's (loading.py sets both)
        self.weights_source = "custom"
        self.trunk_source = "random" if pnet_rand else "imagenet"
        self.last_mask: masks.MaskReport | None = None  # what the last masked call dropped (signature)
        self.scaling_layer = ScalingLayer()
        self.net = Trunk(self.pnet_type, pretrained=not pnet_rand, requires_grad=pnet_tune)
        self.chns = self.net.channels
        self.L = len(self.chns)
        self._range_warned = False
        self._compiled_core: Core | None = None  # built by fast.compiled_core on first use
        if verbose:
            print(
                f"Setting up [{'LPIPS' if lpips else 'baseline'}] perceptual loss: trunk "
                f"[{self.pnet_type}], v[{version}], spatial [{'on' if spatial else 'off'}]"
            )

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
                if model_path is None:
                    self.weights_source = f"v{version}"
        if eval_mode:
            self.eval()

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()  # type: ignore[no-untyped-call]  # unannotated in torch
        state["_compiled_core"] = None  # compiled code is rebuilt on demand, never copied or pickled
        state["_int8"] = state["_int8_state"] = None  # so is the int8 trunk (from the process cache)
        return state

    def __prepare_scriptable__(self) -> ScriptableLPIPS:
        """``torch.jit.script(model)`` scripts an equivalent TorchScript-friendly module."""
        if self.precision != "fp32":
            raise RuntimeError(f"torch.jit.script needs precision='fp32' (this model: {self.precision!r})")
        return ScriptableLPIPS(self)

    # ------------------------------------------------------------------ precision
    def set_precision(self, precision: str, int8_config: P.Int8Config | None = None) -> LPIPS:
        """Change how the trunk runs ('fp32', 'bf16', 'int8'; see :mod:`.precision`); returns self."""
        self.precision = P.parse_precision(precision)
        if int8_config is not None:
            self.int8_config = int8_config
        self._effective, self._int8, self._int8_state = {}, None, None
        return self

    def effective_precision(self, device: torch.device | str | None = None) -> str:
        """The precision that runs on ``device`` (default: the model's): ``precision``, or 'fp32'
        where that mode would not be fast here (one :class:`~.precision.PrecisionFallbackWarning`)."""
        if self.precision == "fp32":
            return "fp32"
        dev = torch.device(device) if device is not None else self.scaling_layer.shift.device
        mode = self._effective.get(dev.type)
        if mode is None:
            mode = self._effective[dev.type] = P.effective_precision(self.precision, dev)
        return mode

    def prepare_precision(self, device: torch.device | str | None = None) -> str:
        """Resolve the precision for ``device`` now (warning now, not at the first call) and, for
        int8, build the quantised trunk now (before worker processes fork). Returns the mode."""
        mode = self.effective_precision(device)
        if mode == "int8":
            self.int8_trunk()
        return mode

    def int8_trunk(self) -> P.Int8Trunk:
        """The calibrated int8 version of this model's trunk (:func:`.precision.int8_trunk`): built
        once per process and configuration, and again only when the trunk's weights change."""
        state = P.weights_state(self.net)
        if self._int8 is None or state != self._int8_state:
            with torch.inference_mode(False):
                self._int8 = P.int8_trunk(self.net, self.version, self.int8_config)
            self._int8_state = state
        return self._int8

    # ------------------------------------------------------------------ weights
    def load_linear_weights(self, path: str | os.PathLike[str]) -> None:
        """Load linear weights in the reference format (keys ``lin<k>.model.<i>.weight``).

        Unlike the reference (``strict=False``), a file that does not provide
        every layer with the right shape is an error naming the file.
        """
        state = load_linear_state(path)
        for k, lin in enumerate(cast("Iterable[NetLinLayer]", self.lins)):  # an nn.ModuleList of NetLinLayer
            weight = linear_weight(state, k, tuple(lin.conv.weight.shape), path, self.pnet_type)
            with torch.no_grad():
                lin.conv.weight.copy_(weight)
        self.weights_source = os.path.basename(str(path))

    def linear_state_dict(self) -> dict[str, torch.Tensor]:
        """The linear weights under the reference's keys (``lin<k>.model.1.weight``)."""
        lins = cast("Iterable[NetLinLayer]", self.lins)
        return {f"lin{k}.model.1.weight": lin.conv.weight.detach().clone() for k, lin in enumerate(lins)}

    def channel_weights(self, k: int, like: torch.Tensor) -> torch.Tensor:
        """(C_k,) weights of layer k (all ones for the lpips=False baseline), in ``like``'s dtype.

        A view of the 1x1 convolution's weight (gradients flow into it), not a copy.
        """
        if self.lpips:
            return cast(NetLinLayer, self.lins[k]).conv.weight.view(-1).to(like.dtype)
        return torch.ones(self.chns[k], dtype=like.dtype, device=like.device)

    # ------------------------------------------------------------------ signature
    def signature(self, size: str | int = "native", input_range: RangeSpec | None = None) -> str:
        """How this model's numbers are computed, as one short string (in the manner of sacreBLEU).

        ``lpips|net:alex|v:0.1|range:-1,1|size:native|lpips_core:0.1.0``; fields that
        differ from the defaults are added before the package version:

        * ``lin:<file>`` or ``lin:custom`` (set by the caller, e.g. trained in memory):
          linear weights other than the shipped ones;
        * ``baseline``: lpips=False (every channel weighted 1);
        * ``trunk:random`` or ``trunk:<file>``: a trunk other than ImageNet's;
        * ``spatial:on``, ``dtype:bf16`` / ``dtype:fp16``;
        * ``precision:bf16`` / ``precision:int8`` (what ran: a precision that fell back to
          fp32 adds nothing, the numbers being exact);
        * after a masked call, ``mask:hard`` or ``mask:soft``, and ``dropped:<taps>``
          (the signature describes the last call's mask).

        Args:
            size: what the images were resized to before the model ('native': not at all);
                the model never resizes, so callers that do say so here.
            input_range: the range of the call being described (default: the model's).
        """
        rng = parse_input_range(input_range) if input_range is not None else self.input_range
        parts = ["lpips", f"net:{self.pnet_type}", f"v:{self.version}", f"range:{rng.name}", f"size:{size}"]
        if not self.lpips:
            parts.append("baseline")
        elif self.weights_source != f"v{self.version}":
            parts.append(f"lin:{self.weights_source}")
        if self.trunk_source != "imagenet":
            parts.append(f"trunk:{self.trunk_source}")
        if self.spatial:
            parts.append("spatial:on")
        if self.dtype != torch.float32:
            parts.append(f"dtype:{ {torch.bfloat16: 'bf16', torch.float16: 'fp16'}[self.dtype] }")
        mode = self.effective_precision()
        if mode != "fp32":
            parts.append(f"precision:{mode}" + (self.int8_config.tag() if mode == "int8" else ""))
        if self.last_mask is not None:
            parts.extend(self.last_mask.signature_fields())
        parts.append(f"lpips_core:{__version__}")
        return "|".join(parts)

    # ------------------------------------------------------------------ the steps of the pipeline
    def check_inputs(
        self, *named: tuple[str, torch.Tensor], input_range: RangeSpec | None = None, normalize: bool = False
    ) -> tuple[list[torch.Tensor], bool]:
        """Step 1: the call's input range, then the input checks, whose errors name the arguments.

        Order: type and shape -> the pair agrees -> device -> size -> finite values, then the
        range warnings from the finiteness check's min/max (:func:`.checks.warn_about_range`),
        so a NaN/Inf input raises without also warning (or using up the model's one range
        warning). While traced only the shapes are normalised: value checks cannot be traced.

        Args:
            named: ``(argument name, images)``, one batch or a pair; images (N, 3, H, W) or
                (3, H, W), RGB or grayscale (repeated to RGB).
            input_range: this call's range ('-1,1', '0,1', '0,255'); default: '0,1' when
                ``normalize``, else the model's.
            normalize: the reference's spelling of ``input_range='0,1'``.
        Returns:
            the float (N, 3, H, W) batches, in [-1, 1] or [0, 1] ('0,255' images divided by 255),
            and whether :meth:`prepare` must map them from [0, 1] to [-1, 1].
        """
        rng = resolve(self.input_range, input_range, normalize)
        if rng.name == "0,255":
            named = tuple((name, rng.prepare(x)) for name, x in named)
        if K.is_traced():  # the traced graph assumes valid input
            return [checks.as_image_batch(x, name) for name, x in named], rng.normalize
        xs, ranges = checks.check_images_and_ranges(named, self.pnet_type, self.scaling_layer.shift.device)
        if checks.warn_about_range(ranges, rng, self._range_warned):
            self._range_warned = True
        return xs, rng.normalize

    def prepare(
        self,
        images: Sequence[torch.Tensor],
        normalize: bool = False,
        channels_last: bool | None = None,
        in_place: bool = False,
    ) -> torch.Tensor:
        """Step 2: checked image batches -> one trunk input (:func:`.trunk.trunk_input`).

        Args:
            images: (N_i, 3, H, W) batches from :meth:`check_inputs`, in [-1, 1] ([0, 1] with
                ``normalize``), concatenated along the batch.
            normalize: map [0, 1] to [-1, 1] first.
            channels_last: the memory format; None: :meth:`uses_channels_last` on their device.
            in_place: scale one fresh buffer in place: no autograd, fewer passes (the fast path).
        Returns:
            (sum N_i, 3, H, W) float32: ImageNet-standardised (about [-2.1, 2.6]) for v0.1,
            [-1, 1] for v0.0.
        """
        shift, scale = self.scaling_layer.shift, self.scaling_layer.scale
        stats = (shift, scale) if self.version == "0.1" else None
        cl = self.uses_channels_last(images[0].device) if channels_last is None else channels_last
        return trunk_input(images, normalize, stats, shift.dtype, cl, in_place)

    def taps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Step 3: the trunk's taps, one stage at a time (:meth:`.trunk.Trunk.iter_taps`).

        The one branch on ``precision``: exact fp32 runs the trunk as it is (in ``self.dtype``);
        'bf16' / 'int8' run :func:`.precision.iter_taps` (autocast, or the calibrated int8 trunk).

        Args:
            x: (N, 3, H, W) trunk input from :meth:`prepare`.
        Yields:
            (N, C_k, H_k, W_k) ReLU activations (>= 0) of tap k = 1..L.
        """
        mode = self.effective_precision(x.device)
        if mode == "fp32":
            return self.net.iter_taps(x, self.dtype)
        return P.iter_taps(self.net, self.int8_trunk, x, mode)

    def pair_features(
        self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Steps 2-3 and the unit features, for a pair of batches, tap by tap.

        Equal batches share one trunk call; a batch of 1 against N runs the two batches
        through the trunk side by side, one stage at a time.

        Args:
            in0, in1: (N0, 3, H, W), (N1, 3, H, W) checked images (N0 == N1, or one of them 1).
        Yields:
            per tap, (N0, C_k, H_k, W_k) and (N1, C_k, H_k, W_k) unit features: each channel
            vector of length 1 (0 where the activations were all 0).
        """
        n = in0.shape[0]
        if n == in1.shape[0] and n > 0:
            for tap in self.taps(self.prepare([in0, in1], normalize)):
                f = K.unit_features(tap)  # (2N, C_k, H_k, W_k)
                yield f[:n], f[n:]
        else:
            taps0 = self.taps(self.prepare([in0], normalize))
            taps1 = self.taps(self.prepare([in1], normalize))
            for t0, t1 in zip(taps0, taps1):
                yield K.unit_features(t0), K.unit_features(t1)

    def weigh(self, k: int, diff: torch.Tensor) -> torch.Tensor:
        """Step 4a: squared feature differences -> layer k's map, weighted by the learned 1x1 layer.

        One matrix-vector product in ``diff``'s own layout (taps of one call can differ, see
        :data:`.trunk.SMALL_MAP_PIXELS`); in train mode with dropout, the reference's
        ``lin(dropout(diff))`` in NCHW, so that dropout draws its mask in the reference's order.

        Args:
            k: the layer, 0..L-1.
            diff: (N, C_k, h, w) squared differences of unit features, in [0, 4].
        Returns:
            (N, 1, h, w) map, >= 0 for trained weights.
        """
        if self.dropout_active():
            weighted: torch.Tensor = self.lins[k](diff.contiguous())
            return weighted
        n, _, h, w = diff.shape
        weights = self.channel_weights(k, diff)
        return K.channel_weighted_sum(diff, weights, K.is_channels_last(diff)).view(n, 1, h, w)

    def pool(self, weighted: torch.Tensor, out_hw: Sequence[int] | None) -> torch.Tensor:
        """Step 4b: layer map -> layer distance: its spatial mean, or (spatial=True) the map
        upsampled to the image size (bilinear, as the reference).

        Args:
            weighted: (N, 1, h, w) map from :meth:`weigh`.
            out_hw: the images' (H, W); needed only when spatial.
        Returns:
            (N, 1, 1, 1), or (N, 1, H, W) when spatial.
        """
        if self.spatial:
            # F.interpolate takes any int sequence (here a torch.Size); List[int] is for TorchScript
            return K.upsample(weighted, cast("list[int]", out_hw))
        return K.spatial_average(weighted)

    def layer_distance(
        self, k: int, f0: torch.Tensor, f1: torch.Tensor, out_hw: Sequence[int] | None, overwrite: bool = False
    ) -> torch.Tensor:
        """Step 4: unit features of layer k -> its distance: squared difference, :meth:`weigh`, :meth:`pool`.

        Args:
            k: the layer, 0..L-1.
            f0, f1: (N0, C_k, h, w) and (N1, C_k, h, w) unit features (a batch of 1 broadcasts);
                with ``overwrite`` f1 is a temporary of the caller (no autograd, N1 >= N0) that
                holds the difference afterwards.
            out_hw: the images' (H, W); needed only when spatial.
        Returns:
            (N, 1, 1, 1), or (N, 1, H, W) when spatial.
        """
        diff = f1.sub_(f0).square_() if overwrite else K.squared_difference(f0, f1)  # (f1-f0)^2 == (f0-f1)^2
        return self.pool(self.weigh(k, diff), out_hw)

    def reduce(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """Step 5: per-layer distances -> the distance, their sum in layer order.

        Args:
            layers: L tensors (N, 1, 1, 1) (or (N, 1, H, W) when spatial), each >= 0.
        Returns:
            a tensor of the same shape.
        """
        return K.sum_layers(layers)

    # ------------------------------------------------------------------ which path runs
    def uses_channels_last(self, device: torch.device) -> bool:
        """Whether the trunk runs channels-last on ``device`` (never while traced)."""
        if K.is_traced():
            return False
        if self.channels_last is not None:
            return bool(self.channels_last)
        return device.type == "cpu" or self.dtype != torch.float32 or self.precision in ("bf16", "fp16")

    def dropout_active(self) -> bool:
        """True in train mode with dropout before the linear layers (:meth:`weigh` then runs the reference's)."""
        return self.lpips and self.training and any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.lins.modules())

    def needs_reference_route(self, *inputs: torch.Tensor) -> bool:
        """True when autograd must record (grad mode on and an input or a parameter requires grad),
        while tracing/exporting, and with dropout active: then the reference path runs."""
        if K.is_traced() or self.dropout_active():
            return True
        if not torch.is_grad_enabled():
            return False
        return any(x.requires_grad for x in inputs) or any(p.requires_grad for p in self.parameters())

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        in0: torch.Tensor,
        in1: torch.Tensor,
        retPerLayer: bool = False,
        normalize: bool = False,
        *,
        input_range: RangeSpec | None = None,
        mask: torch.Tensor | None = None,
        mask_mode: str = "hard",
    ) -> Distance:
        """Distance between two image batches.

        Args:
            in0, in1: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with
                ``normalize=True``, or in ``input_range``); 1-channel images are
                repeated to RGB. A batch of 1 is compared with every image of the other batch.
            retPerLayer: also return the list of per-layer distances.
            normalize: inputs are in [0, 1] (the reference's spelling of ``input_range='0,1'``).
            input_range: this call's range ('-1,1', '0,1', '0,255'); default: the model's.
            mask: (N, 1, H, W) or (1, 1, H, W) (also (H, W)) region to compare, {0, 1} or
                weights in [0, 1]. With ``mask_mode='hard'`` each layer averages only the
                positions whose receptive field lies entirely inside the mask (pixels
                outside cannot change the distance); ``'soft'`` weights every position
                by the mask averaged over its cell (simpler, leaks context). See :mod:`.masks`.
        Returns:
            (N, 1, 1, 1) distances ((N, 1, H, W) maps with ``spatial=True``),
            and with ``retPerLayer`` the tuple (total, [per-layer]).
        """
        # range warnings point at the caller's line (checks._user_stacklevel)
        (in0, in1), normalize = self.check_inputs(
            ("in0", in0), ("in1", in1), input_range=input_range, normalize=normalize
        )
        if mask is not None:  # per-position weights from the mask, see masks.py
            total, layers, self.last_mask = masks.masked_distance(self, in0, in1, mask, mask_mode, normalize)
        else:
            self.last_mask = None
            total, layers = self.compare(in0, in1, normalize, keep_layers=retPerLayer)
        return (total, layers) if retPerLayer else total

    def compare(
        self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False, keep_layers: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Checked images -> (distance, per-layer distances): ``forward`` after its checks.

        Args:
            in0, in1: (N0, 3, H, W), (N1, 3, H, W) batches from :meth:`check_inputs`
                (N0 == N1, or one of them 1).
            normalize: they are in [0, 1].
            keep_layers: the per-layer distances are wanted (else the fast path need not copy them).
        Returns:
            (N, 1, 1, 1) distances ((N, 1, H, W) when spatial) and the L per-layer distances.
        """
        if self.needs_reference_route(in0, in1):  # the reference path: the module docstring, step by step
            out_hw = in0.shape[2:]
            pairs = self.pair_features(in0, in1, normalize)
            layers = [self.layer_distance(k, f0, f1, out_hw) for k, (f0, f1) in enumerate(pairs)]
            return self.reduce(layers), layers
        # the fast path, when nothing records a graph: the same steps and numbers in fewer passes
        return fast.compare(self, in0, in1, normalize, keep_layers)

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
        (x,), normalize = self.check_inputs(("x", x), normalize=normalize)
        grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.net.parameters()))
        with torch.set_grad_enabled(grad):
            taps = self.taps(self.prepare([x], normalize, in_place=not grad))
            return [K.unit_features(t).contiguous() for t in taps]

    @overload
    def distance_from_features(
        self,
        feats0: list[torch.Tensor],
        feats1: list[torch.Tensor],
        out_hw: Sequence[int] | None = None,
        retPerLayer: Literal[False] = False,
    ) -> torch.Tensor: ...

    @overload
    def distance_from_features(
        self,
        feats0: list[torch.Tensor],
        feats1: list[torch.Tensor],
        out_hw: Sequence[int] | None = None,
        retPerLayer: bool = False,
    ) -> Distance: ...

    def distance_from_features(
        self,
        feats0: list[torch.Tensor],
        feats1: list[torch.Tensor],
        out_hw: Sequence[int] | None = None,
        retPerLayer: bool = False,
    ) -> Distance:
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
            raise ValueError(
                f"expected {self.L} feature maps per image for net='{self.pnet_type}', "
                f"got {len(feats0)} and {len(feats1)}"
            )
        layers = []
        for k, (f0, f1) in enumerate(zip(feats0, feats1)):
            if not (K.is_channels_last(f0) and f1.is_contiguous(memory_format=torch.channels_last)):
                f0, f1 = f0.contiguous(), f1.contiguous()
            layers.append(self.layer_distance(k, f0, f1, out_hw))
        total = self.reduce(layers)
        return (total, layers) if retPerLayer else total

    # ------------------------------------------------------------------ reuse across comparisons
    def one_to_many(
        self, ref: torch.Tensor, images: torch.Tensor, normalize: bool = False, chunk_size: int = 64
    ) -> torch.Tensor:
        """Distances from one reference image to each of many images (see :func:`.reuse.one_to_many`)."""
        return reuse.one_to_many(self, ref, images, normalize, chunk_size)

    def embed(self, images: torch.Tensor, normalize: bool = False, chunk_size: int = 32) -> torch.Tensor:
        """Each image as one vector whose squared distances are the LPIPS distances (see :func:`.reuse.embed`)."""
        return reuse.embed(self, images, normalize, chunk_size)

    def pairwise(self, images: torch.Tensor, normalize: bool = False, chunk_size: int = 32) -> torch.Tensor:
        """All-pairs (N, N) distance matrix; each image goes through the trunk once (see :func:`.reuse.pairwise`)."""
        return reuse.pairwise(self, images, normalize, chunk_size)
