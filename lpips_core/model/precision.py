"""Lower-precision trunks: bf16 and calibrated static int8, each with a measured error contract.

``LPIPS(precision=...)`` chooses how the *trunk* runs; everything after it (unit
normalisation, squared difference, 1x1 weights, spatial mean, the sum over layers)
stays float32 in every mode. The one branch is :meth:`LPIPS.taps`:

* ``"fp32"`` (default): :meth:`~.trunk.Trunk.iter_taps`, exact, the reference's numbers.
* ``"bf16"``: the same trunk under bf16 autocast, where the hardware has bf16 units
  (AMX or AVX512_BF16 on x86, a GPU with bf16). Elsewhere oneDNN would emulate bf16 and
  be *slower* than fp32, so the model says so once (:class:`PrecisionFallbackWarning`)
  and runs exact fp32; ``dtype=torch.bfloat16`` still forces the emulation.
* ``"int8"``: :class:`Int8Trunk`, a calibrated static quantisation (x86 CPUs):

  - weights: int8, symmetric, one scale per output channel;
  - activations: uint8, one scale per tensor for every convolution's input, from
    ranges observed on :func:`~lpips_core.data.photos.calibration_images` (crops of scikit-image photographs
    and distorted versions of them; none of the evaluation photographs) with PyTorch's
    ``HistogramObserver`` (the range that minimises the quantisation error, the
    observer PyTorch's x86 recipe uses for activations);
  - the first convolution runs on the image's own 8-bit grid (:class:`FirstQConv`):
    an 8-bit image is not rounded again (a per-tensor uint8 grid of the scaled input
    would, three channels of different scales), and only its weights are; keeping it
    float32 instead (``Int8Config(first_layer='fp32')``) halves the median error on LIVE
    and costs a third more time on AlexNet (``benchmarks/precision_contract.py --ablation``);
  - each tap comes out of its convolution as float32 (ReLU fused, no requantisation),
    so the distance sees only the error of the quantised inputs and weights; inside a
    stage (VGG's second and third convolutions, SqueezeNet's fire modules) the
    convolutions hand uint8 to the next one directly.

  The kernels are oneDNN's int8 convolutions (``torch.ops.onednn.qconv_pointwise``),
  the ones PyTorch's maintained x86 quantisation path (PT2E with
  ``X86InductorQuantizer``, lowered by Inductor) emits, called directly: no
  ``torch.compile`` (tens of seconds per image shape on 2 cores, per process) and no
  deprecated ``torch.ao.quantization`` eager modules. An :class:`Int8Trunk` is built
  once per (trunk weights, configuration) and process (:func:`int8_trunk`), and its
  calibrated ranges are kept on disk (``<cache>/int8``), so a second process only
  quantises the weights.

What each mode costs in accuracy, on human data, is in ``results/precision/``
(``benchmarks/precision_contract.py``), and ``tests/test_precision.py`` holds each mode
to its contract on real photographs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import kernels as K

if TYPE_CHECKING:
    from .trunk import Trunk

#: The precisions a model can be asked for ("fp16" only runs on GPUs).
PRECISIONS = ("fp32", "bf16", "int8", "fp16")

_ALIASES = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "exact": "fp32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "int8": "int8",
    "qint8": "int8",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
}


class PrecisionFallbackWarning(UserWarning):
    """A lower precision was asked for that this device cannot run fast: exact fp32 runs instead."""


def parse_precision(precision: str | None) -> str:
    """'fp32' | 'bf16' | 'int8' | 'fp16' (also 'float32', 'bfloat16', 'float16', 'half'; None = 'fp32')."""
    if precision is None:
        return "fp32"
    key = str(precision).lower()
    if key not in _ALIASES:
        raise ValueError(
            f"precision={precision!r} is not supported; choose 'fp32' (exact, the default), "
            f"'bf16' or 'int8' ('fp16' on GPUs)"
        )
    return _ALIASES[key]


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` has bf16 arithmetic units (x86: AMX or AVX512_BF16; CUDA: Ampere or later)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def _qconv_op() -> Callable[..., torch.Tensor] | None:
    """oneDNN's int8 convolution with fused post-ops (name changed across PyTorch releases), or None."""
    ops = torch.ops.onednn
    for name in ("qconv_pointwise", "qconv2d_pointwise"):
        try:
            op: Callable[..., torch.Tensor] = getattr(ops, name).default
            return op
        except (AttributeError, RuntimeError):
            continue
    return None


def _qconv(*args: Any) -> torch.Tensor:
    """Call oneDNN's int8 convolution (only reached after :func:`int8_support` said yes)."""
    op = _qconv_op()
    if op is None:
        raise RuntimeError("this PyTorch build has no oneDNN int8 convolution (torch.ops.onednn.qconv_pointwise)")
    out: torch.Tensor = op(*args)
    return out


def int8_support(device: torch.device) -> tuple[bool, str]:
    """(True, '') where :class:`Int8Trunk` runs: an x86-64 CPU with PyTorch's oneDNN int8 kernels."""
    if device.type != "cpu":
        return False, (
            f"int8 runs on x86 CPUs only (oneDNN); on {device.type} use precision='bf16' (or 'fp16' on a GPU)"
        )
    if platform.machine().lower() not in ("x86_64", "amd64", "x64"):
        return False, f"int8 runs on x86-64 CPUs only (oneDNN); this is {platform.machine()}"
    mkldnn = torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]  # unannotated in torch
    if not mkldnn or _qconv_op() is None:
        return False, "this PyTorch build has no oneDNN int8 convolution (torch.ops.onednn.qconv_pointwise)"
    return True, ""


def support(precision: str, device: torch.device) -> tuple[bool, str]:
    """(True, '') when ``precision`` runs fast on ``device``, else (False, why) and fp32 runs instead."""
    if precision == "fp32":
        return True, ""
    if precision == "int8":
        return int8_support(device)
    if precision == "bf16":
        if bf16_native(device):
            return True, ""
        if device.type == "cpu":
            return False, (
                "this CPU has neither AVX512_BF16 nor AMX, so bf16 would be emulated in fp32 and run slower than fp32"
            )
        return False, f"{device.type} has no native bf16 arithmetic"
    if precision == "fp16":
        if device.type == "cuda":
            return True, ""
        return False, f"fp16 is for GPUs; on {device.type} it is emulated and slower than fp32"
    raise ValueError(precision)


_WARNED: set[tuple[str, str]] = set()
_WARN_LOCK = threading.Lock()


def effective_precision(precision: str, device: torch.device, warn: bool = True) -> str:
    """The precision that runs on ``device``: ``precision``, or 'fp32' with one warning per process."""
    ok, why = support(precision, device)
    if ok:
        return precision
    if warn:
        with _WARN_LOCK:
            first = (precision, why) not in _WARNED
            _WARNED.add((precision, why))
        if first:
            warnings.warn(
                f"precision={precision!r}: {why}; running exact fp32 instead (the signature says "
                f"so){' (dtype=torch.bfloat16 forces the emulation)' if precision == 'bf16' else ''}",
                PrecisionFallbackWarning,
                stacklevel=4,
            )
    return "fp32"


def autocast_dtype(precision: str) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


# --------------------------------------------------------------------------- int8
@dataclass(frozen=True)
class Int8Config:
    """How a trunk is quantised (part of the cache key and of the signature's ``precision:int8``).

    Attributes:
        first_layer: 'int8' (default) runs the first convolution in int8 on the image's own
            8-bit grid (:class:`FirstQConv`); 'fp32' keeps it float32 (exact first tap, a
            third more time on AlexNet: oneDNN's fp32 kernels are slow on 3 input channels).
        n_images, size, seed: the calibration set (:func:`~lpips_core.data.photos.calibration_images`).
        weight_bits: 8, 7, or 0 (default: 8 where the CPU has VNNI or AMX, else 7). Without VNNI
            oneDNN multiplies uint8 by int8 with ``vpmaddubsw``, which adds two products in int16
            and saturates: with 8-bit weights the int8 convolution was 3-4% of its range away from
            exact integer arithmetic on uniform inputs (AMD EPYC, AVX2), with 7-bit weights exact
            (255 * 64 * 2 < 32767).
    """

    first_layer: str = "int8"
    n_images: int = 64
    size: int = 160
    seed: int = 0
    weight_bits: int = 0  # 0: 8 where u8 x s8 sums cannot saturate (VNNI, AMX), else 7

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def tag(self) -> str:
        """'' for the default configuration, else what differs, e.g. '(first_layer:int8,weight_bits:7)'."""
        diff = [f"{k}:{v}" for k, v in asdict(self).items() if getattr(DEFAULT_INT8, k) != v]
        return f"({','.join(diff)})" if diff else ""


DEFAULT_INT8 = Int8Config()


class QConv:
    """One convolution + ReLU on oneDNN's int8 kernel: uint8 input (one scale), int8 weights per channel.

    Built from a float ``nn.Conv2d`` and the calibrated scale/zero point of its input.
    The packed weight (oneDNN's blocked layout) is made on first use and never pickled.
    """

    def __init__(self, conv: nn.Conv2d, in_scale: float, in_zp: int, weight_bits: int = 8):
        w = conv.weight.detach().float().contiguous()
        qmax = 2 ** (weight_bits - 1) - 1
        scales = (w.abs().amax(dim=(1, 2, 3)) / qmax).clamp_min(1e-12)  # (C_out,) symmetric, per channel
        self.weight = torch.clamp(torch.round(w / scales.view(-1, 1, 1, 1)), -qmax, qmax).to(torch.int8)
        self.w_scales = scales.float()
        self.w_zps = torch.zeros(scales.numel(), dtype=torch.int64)
        self.bias = conv.bias.detach().float().clone() if conv.bias is not None else None
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.in_scale, self.in_zp = float(in_scale), int(in_zp)
        self._packed: torch.Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_packed"] = None  # oneDNN's packed weight is rebuilt in each process
        return state

    def packed(self) -> torch.Tensor:
        if self._packed is None:
            self._packed = torch.ops.onednn.qconv_prepack(
                self.weight,
                self.w_scales,
                self.in_scale,
                self.in_zp,
                self.stride,
                self.padding,
                self.dilation,
                self.groups,
                None,
            )
        return self._packed

    def __call__(self, x: torch.Tensor, out_scale: float | None = None, out_zp: int = 0) -> torch.Tensor:
        """(N, C, H, W) uint8 (channels-last) -> relu(conv): float32, or uint8 at ``out_scale``."""
        out_dtype = torch.float32 if out_scale is None else torch.uint8
        scale = 1.0 if out_scale is None else out_scale
        zp = 0 if out_scale is None else out_zp
        return _qconv(
            x, self.in_scale, self.in_zp, self.packed(), self.w_scales, self.w_zps, self.bias,
            self.stride, self.padding, self.dilation, self.groups, scale, zp, out_dtype, "relu", [], "",
        )  # fmt: skip


class FirstQConv:
    """The first convolution in int8, fed the image's own 8-bit grid: no rounding of 8-bit images.

    The trunk input is ``s_c = (x_c - shift_c) / scale_c`` with ``x = u / 127.5 - 1`` for an 8-bit
    image ``u``, so ``s_c = A_c (u_c - 128) + b_c``. The int8 convolution runs on ``u`` itself
    (recovered from ``s`` by rounding, exact for 8-bit images; other inputs are rounded to that
    grid) with zero point 128 and the weights multiplied by ``A_c``; the constant part
    ``conv(pad0(b))`` (which differs at the borders, where the reference pads ``s`` with zeros,
    which the kernel's zero point reproduces) is one float map per image size, added before
    the ReLU. The only rounding left is the weights'. (v0.0 has no scaling: ``scale = 1``,
    ``shift = 0``.)
    """

    def __init__(self, conv: nn.Conv2d, shift: torch.Tensor, scale: torch.Tensor, weight_bits: int = 8):
        shift, scale = shift.detach().float().view(-1), scale.detach().float().view(-1)
        a = 1.0 / (127.5 * scale)  # (3,)
        # zero point 128: the kernel sums w (u - 128), centred, so the constant part is small and
        # the weights' rounding is not amplified by cancelling a large constant (zero point 0
        # tripled the median error on LIVE)
        self.b = ((128.0 / 127.5 - 1.0 - shift) / scale).view(1, -1, 1, 1)
        self.pre_a, self.pre_b = (127.5 * scale).view(1, -1, 1, 1), (127.5 * (1.0 + shift)).view(1, -1, 1, 1)
        folded = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]  # a Conv2d's own tuples, typed tuple[int, ...]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            conv.groups,
            bias=False,
        )
        with torch.no_grad():
            folded.weight.copy_(conv.weight.detach().float() * a.view(1, -1, 1, 1))
        self.q = QConv(folded, 1.0, 128, weight_bits)
        self.weight = conv.weight.detach().float().clone()
        self.bias = conv.bias.detach().float().clone() if conv.bias is not None else None
        self.stride, self.padding = conv.stride, conv.padding
        self._maps: dict[tuple[int, int], torch.Tensor] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def constant_map(self, h: int, w: int) -> torch.Tensor:
        """(1, C_out, h', w') ``conv(pad0(b)) + bias``: the output of a constant image (cached per size)."""
        found = self._maps.get((h, w))
        if found is None:
            if len(self._maps) >= 16:
                self._maps.pop(next(iter(self._maps)))
            with torch.inference_mode(False), torch.no_grad():
                found = F.conv2d(self.b.expand(1, -1, h, w), self.weight, self.bias, self.stride, self.padding)
            self._maps[(h, w)] = found.contiguous(memory_format=torch.channels_last)
        return found

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) trunk input (scaled, float32) -> relu(conv(x)) float32."""
        u = quantize(torch.addcmul(self.pre_b, x, self.pre_a), 1.0, 0)  # the 8-bit values, channels-last
        q = self.q
        out = _qconv(
            u, 1.0, 128, q.packed(), q.w_scales, q.w_zps, None,
            q.stride, q.padding, q.dilation, q.groups, 1.0, 0, torch.float32, "none", [], "",
        )  # fmt: skip
        return out.add_(self.constant_map(x.shape[2], x.shape[3])).relu_()


class _Q:
    """A uint8 tensor with its scale and zero point (what flows between int8 convolutions)."""

    __slots__ = ("data", "scale", "zp")

    def __init__(self, data: torch.Tensor, scale: float, zp: int):
        self.data, self.scale, self.zp = data, scale, zp

    def float(self) -> torch.Tensor:
        return (self.data.float() - self.zp) * self.scale


def quantize(x: torch.Tensor | _Q, scale: float, zp: int) -> torch.Tensor:
    """float32 (or a :class:`_Q` of another scale) -> uint8 at (scale, zp), channels-last.

    ``torch.quantize_per_tensor`` is one vectorised pass (7x faster than round/clamp/convert
    on 2 cores); its uint8 bytes are then taken as they are, without ``int_repr``'s copy.
    PyTorch marks quantized tensor types deprecated, so the arithmetic route stays as fallback.
    """
    if isinstance(x, _Q):
        if x.scale == scale and x.zp == zp:
            return x.data
        x = x.float()
    x = x.contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "quantized tensor creation functions ... are deprecated"
            q = torch.quantize_per_tensor(x, scale, zp, torch.quint8)
        return torch.empty(0, dtype=torch.uint8, device=x.device).set_(
            q.untyped_storage(), q.storage_offset(), q.shape, q.stride()
        )
    except (RuntimeError, AttributeError, TypeError):  # quantized dtypes gone: the same rounding, more passes
        return x.mul(1.0 / scale).round_().add_(zp).clamp_(0, 255).to(torch.uint8)


def _float(x: torch.Tensor | _Q) -> torch.Tensor:
    return x.float() if isinstance(x, _Q) else x


#: One step of an :class:`Int8Trunk` stage: ('conv', QConv | FirstQConv | nn.Conv2d),
#: ('pool', nn.MaxPool2d) or ('fire', (QConv, QConv, QConv)).
Step = tuple[str, Any]


class Int8Trunk:
    """An LPIPS trunk whose convolutions run in int8 (see the module docstring); yields float32 taps.

    Each stage is a list of steps: ('conv', QConv or float Conv2d), ('pool', MaxPool2d),
    ('fire', (squeeze, expand1x1, expand3x3)) (SqueezeNet), with every convolution
    followed by its ReLU (fused into the int8 kernel).
    """

    def __init__(self, stages: list[list[Step]], config: Int8Config, key: str):
        self.stages, self.config, self.key = stages, config, key

    # the uint8 scale a step's output should have: the input scale of the next convolution in its stage
    @staticmethod
    def _next_scale(steps: list[Step], i: int) -> tuple[float, int] | None:
        for kind, op in steps[i + 1 :]:
            if kind == "conv":
                return (op.in_scale, op.in_zp) if isinstance(op, QConv) else None
            if kind == "fire":
                return op[0].in_scale, op[0].in_zp
        return None

    def iter_taps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """(N, 3, H, W) scaled float32 input -> float32 (N, C_k, H_k, W_k) taps, one stage at a time."""
        v: torch.Tensor | _Q = x.contiguous(memory_format=torch.channels_last)
        for steps in self.stages:
            for i, (kind, op) in enumerate(steps):
                last = i == len(steps) - 1
                nxt = None if last else self._next_scale(steps, i)
                if kind == "pool":
                    v = _Q(op(v.data), v.scale, v.zp) if isinstance(v, _Q) else op(v)
                elif kind == "conv" and isinstance(op, FirstQConv):
                    v = op(_float(v))
                elif kind == "conv" and not isinstance(op, QConv):
                    v = F.relu_(op(_float(v).contiguous(memory_format=torch.channels_last)))
                elif kind == "conv":
                    xq = quantize(v, op.in_scale, op.in_zp)
                    v = op(xq) if nxt is None else _Q(op(xq, *nxt), *nxt)
                else:  # fire: squeeze (uint8 to the expands' scale), then both expands, concatenated
                    squeeze, e1, e3 = op
                    s = squeeze(quantize(v, squeeze.in_scale, squeeze.in_zp), e1.in_scale, e1.in_zp)
                    if nxt is None:
                        v = torch.cat([e1(s), e3(s)], dim=1)
                    else:
                        v = _Q(torch.cat([e1(s, *nxt), e3(s, *nxt)], dim=1), *nxt)
            yield _float(v)


def _observer() -> Any:
    from torch.ao.quantization.observer import HistogramObserver

    return HistogramObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False)


def _calibrate(
    trunk: Trunk,
    images: torch.Tensor,
    scale_input: Callable[[torch.Tensor], torch.Tensor],
    batch: int = 16,
) -> dict[str, tuple[float, int]]:
    """Observe every convolution's input on the calibration images; (scale, zero point) by module name."""
    convs = {name: m for name, m in trunk.named_modules() if isinstance(m, nn.Conv2d)}
    observers = {name: _observer() for name in convs}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=name: observers[name](args[0].float()))
        for name, m in convs.items()
    ]
    try:
        with torch.inference_mode():
            for s in range(0, images.shape[0], batch):
                x = scale_input(images[s : s + batch])
                for stage in trunk.stages:
                    x = stage(x)
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, tuple[float, int]] = {}
    for name, obs in observers.items():
        scale, zp = obs.calculate_qparams()
        out[name] = (float(scale), int(zp))
    return out


def trunk_fingerprint(trunk: nn.Module) -> str:
    """sha256 of the trunk's weights (the int8 cache key)."""
    h = hashlib.sha256()
    for name, t in sorted(trunk.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _cache_file(key: str) -> Path:
    from ..files import cache_root

    return cache_root() / "int8" / f"{key}.json"


#: Calibrated ranges of the official trunks (alex, vgg, squeeze; v0.1 and v0.0) for the
#: default calibration set, shipped so that int8 with the official weights needs neither the
#: calibration photographs (scikit-image) nor the seconds of calibrating, and gives the same
#: numbers on every machine. Written by ``benchmarks/precision_contract.py --write-ranges``.
SHIPPED_RANGES = Path(__file__).with_name("int8_ranges.json")


def calibration_key(fingerprint: str, version: str, config: Int8Config) -> str:
    """What the calibrated ranges depend on: the weights, the version and the calibration set."""
    calib = f"{fingerprint}|{version}|{config.n_images}|{config.size}|{config.seed}"
    return hashlib.sha256(calib.encode()).hexdigest()[:32]


def _shipped(key: str) -> dict[str, tuple[float, int]] | None:
    try:
        entry = json.loads(SHIPPED_RANGES.read_text())["ranges"].get(key)
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return None if entry is None else {k: (float(v[0]), int(v[1])) for k, v in entry["qparams"].items()}


def calibrate(trunk: Trunk, version: str, config: Int8Config = DEFAULT_INT8) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of every convolution's input, observed on the stated calibration set
    (:func:`~lpips_core.data.photos.calibration_images`)."""
    from .trunk import ScalingLayer

    scaling = ScalingLayer()
    prep = (lambda x: scaling(x)) if version == "0.1" else (lambda x: x)
    with torch.inference_mode(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the layer contract's one exception (pyproject.toml): the calibration set is data
        from ..data.photos import calibration_images

        return _calibrate(trunk, calibration_images(config.n_images, config.size, config.seed), prep)


def write_shipped_ranges(
    nets: Sequence[str] = ("alex", "vgg", "squeeze"),
    versions: Sequence[str] = ("0.1", "0.0"),
    config: Int8Config = DEFAULT_INT8,
) -> Path:
    """Calibrate the official trunks and write :data:`SHIPPED_RANGES` (a maintainer's step)."""
    from .trunk import Trunk

    ranges = {}
    for net in nets:
        trunk = Trunk(net)
        fingerprint = trunk_fingerprint(trunk)
        for version in versions:
            key = calibration_key(fingerprint, version, config)
            try:  # the ranges this machine's cache already holds (what its measurements used)
                qparams = {k: tuple(v) for k, v in json.loads(_cache_file(key).read_text())["qparams"].items()}
            except (OSError, ValueError, KeyError):
                qparams = calibrate(trunk, version, config)
            ranges[key] = {"net": net, "version": version, "qparams": {k: list(v) for k, v in qparams.items()}}
    from ..files import atomic_path

    with atomic_path(SHIPPED_RANGES) as tmp:
        tmp.write_text(
            json.dumps({"calibration": asdict(config), "torch": torch.__version__, "ranges": ranges}, indent=1) + "\n"
        )
    return SHIPPED_RANGES


def _build(trunk: Trunk, version: str, config: Int8Config, key: str, fingerprint: str) -> Int8Trunk:
    # the calibrated ranges depend on the weights, the version and the calibration set only:
    # shipped for the official trunks, else calibrated once and kept in the cache
    ckey = calibration_key(fingerprint, version, config)
    path = _cache_file(ckey)
    qparams = _shipped(ckey)
    if qparams is None and path.is_file():
        try:
            qparams = {k: (float(v[0]), int(v[1])) for k, v in json.loads(path.read_text())["qparams"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            qparams = None  # damaged: calibrate again and rewrite it
    if qparams is None:
        qparams = calibrate(trunk, version, config)
        try:
            from ..files import atomic_path

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(
                    json.dumps(
                        {
                            "config": asdict(config),
                            "version": version,
                            "qparams": {k: list(v) for k, v in qparams.items()},
                        },
                        indent=1,
                    )
                )
        except OSError:
            pass  # a read-only cache only costs the calibration next time
    from .trunk import ScalingLayer

    scaling = ScalingLayer()
    shift, scale = (
        (scaling.get_buffer("shift"), scaling.get_buffer("scale"))
        if version == "0.1"
        else (torch.zeros(3), torch.ones(3))
    )
    stages: list[list[Step]] = []
    first = True
    for k, stage in enumerate(trunk.stages):
        steps: list[Step] = []
        for idx, m in stage.named_children():
            name = f"slice{k + 1}.{idx}"
            if isinstance(m, nn.Conv2d):
                if first and config.first_layer == "fp32":
                    steps.append(("conv", copy.deepcopy(m).float().to(memory_format=torch.channels_last)))
                elif first:  # int8 on the image's 8-bit grid
                    steps.append(("conv", FirstQConv(m, shift, scale, weight_bits(config))))
                else:
                    steps.append(("conv", QConv(m, *qparams[name], weight_bits=weight_bits(config))))
                first = False
            elif isinstance(m, nn.MaxPool2d):
                steps.append(("pool", copy.deepcopy(m)))
            elif isinstance(m, nn.ReLU):
                continue  # fused into the convolution before it
            elif type(m).__name__ == "Fire":
                steps.append(
                    (
                        "fire",
                        tuple(
                            QConv(getattr(m, part), *qparams[f"{name}.{part}"], weight_bits=weight_bits(config))
                            for part in ("squeeze", "expand1x1", "expand3x3")
                        ),
                    )
                )
                first = False
            else:
                raise TypeError(f"int8 trunk: no int8 version of {type(m).__name__} ({name})")
        stages.append(steps)
    return Int8Trunk(stages, config, key)


def weight_bits(config: Int8Config) -> int:
    """The weights' bits for ``config`` on this CPU (see :attr:`Int8Config.weight_bits`)."""
    if config.weight_bits:
        return config.weight_bits
    return 8 if torch.cpu._is_vnni_supported() or torch.cpu._is_amx_tile_supported() else 7


_TRUNKS: dict[str, Int8Trunk] = {}
_TRUNKS_LOCK = threading.Lock()
#: How many quantised trunks were built in this process (tests check the cache with it).
BUILDS = {"count": 0}


def int8_trunk(trunk: Trunk, version: str, config: Int8Config = DEFAULT_INT8) -> Int8Trunk:
    """The :class:`Int8Trunk` of ``trunk``'s current weights: built (and calibrated) once per process.

    Keyed by the weights' sha256, the LPIPS version (v0.1 scales the input), the
    configuration and the PyTorch version; the calibrated ranges also live on disk.
    """
    fingerprint = trunk_fingerprint(trunk)
    key = hashlib.sha256(
        "|".join([fingerprint, version, config.key(), torch.__version__.split("+")[0]]).encode()
    ).hexdigest()[:32]
    with _TRUNKS_LOCK:
        found = _TRUNKS.get(key)
        if found is None:
            found = _TRUNKS[key] = _build(trunk, version, config, key, fingerprint)
            BUILDS["count"] += 1
    return found


def weights_state(trunk: nn.Module) -> tuple[tuple[int, int], ...]:
    """A cheap token that changes whenever the trunk's weights are replaced or changed in place."""
    return tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in trunk.parameters())


def iter_taps(
    trunk: Trunk, int8_trunk: Callable[[], Int8Trunk], x: torch.Tensor, precision: str
) -> Iterator[torch.Tensor]:
    """The taps of a model's trunk in ``precision`` ('bf16', 'fp16' or 'int8'); see :meth:`LPIPS.taps`.

    Args:
        trunk: the model's fp32 trunk (run under autocast for 'bf16' / 'fp16').
        int8_trunk: builds (or returns the cached) calibrated int8 trunk; called only for 'int8'.
        x: (N, 3, H, W) trunk input.
    """
    if precision in ("bf16", "fp16"):
        yield from trunk.iter_taps(x, autocast_dtype(precision))
        return
    if K.is_traced():
        raise RuntimeError(
            "precision='int8' cannot be traced or exported; export the fp32 model "
            "(export.quantize_onnx_static makes an int8 ONNX graph)"
        )
    if x.requires_grad:
        raise RuntimeError("precision='int8' has no gradients with respect to the images; use precision='fp32'")
    yield from int8_trunk().iter_taps(x.detach())
