"""Traditional image metrics and DISTS, the baselines LPIPS is compared against.

Every function takes two image batches in the project's convention, (N, 3, H, W)
float tensors in [-1, 1] (``(3, H, W)`` is accepted as a batch of one), maps them
to [0, 1] and calls a well-kept library. Which library computes what, and with
which data range:

==========  ========================================================  ===========================
name        computed by                                               range / units
==========  ========================================================  ===========================
``psnr``    ``torchmetrics.functional.peak_signal_noise_ratio``       RGB in [0, 1], ``data_range=1``, dB
``ssim``    ``torchmetrics.functional.structural_similarity_index_    RGB in [0, 1], ``data_range=1``,
            measure`` (Gaussian window 11, sigma 1.5, K1 .01, K2 .03)  mean over the 3 channels (the
                                                                      paper's SSIM is on RGB)
``ms_ssim`` ``torchmetrics.functional.multiscale_structural_          RGB in [0, 1], 5 scales; needs
            similarity_index_measure``                                 both sides >= 176 pixels
``l1``      ``lpnorm(p=1)`` (one line of torch)                       mean absolute error, RGB [0, 1]
``l2``      ``lpnorm(p=2)``                                           root mean squared error, RGB [0, 1]
``l2_lab``  ``kornia.color.rgb_to_lab`` then the reference formula    ``0.5 * mean((dLab / 100)^2)``: the
                                                                      paper's "L2" baseline (``lpips.L2``
                                                                      with ``colorspace='Lab'``)
``dists``   ``piq.DISTS`` (structure + texture similarity of VGG16    RGB in [0, 1]; piq resizes the
            features), built offline: trunk from ``lpips_core``'s     shorter side to 256 when larger;
            VGG16 weights, alpha/beta from the ``DISTS_pytorch``      ``1 - DISTS similarity`` in [0, 1]
            wheel (the original authors' release)
==========  ========================================================  ===========================

The reference's SSIM baseline (``lpips.DSSIM``) called scikit-image with its
defaults (7x7 uniform window, sample covariance); here SSIM uses the Gaussian
window of Wang et al. (2004), the form most papers report. Its SSIM maps equal
scikit-image's with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``;
torchmetrics averages over a slightly larger border (a ~5e-3 shift on 96 px crops).

PSNR, SSIM and MS-SSIM are similarities (higher = closer); :data:`HIGHER_IS_BETTER`
says which, and :func:`as_distance` turns each into a distance (lower = closer)
for ranking-based scores such as 2AFC.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn as nn

from ..model.ranges import parse_input_range
from ..model.weights import load_backbone_state
from .registry import METRICS

__all__ = [
    "METRICS",
    "HIGHER_IS_BETTER",
    "MS_SSIM_MIN_SIZE",
    "DISTS_LAYERS",
    "DISTS_CHANNELS",
    "METRIC_FUNCTIONS",
    "to_unit_range",
    "psnr",
    "ssim",
    "ms_ssim",
    "lpnorm",
    "rgb_to_lab",
    "l2_lab",
    "dists_weights_path",
    "vgg16_features",
    "dists_resize",
    "dists_features",
    "dists_from_features",
    "dists",
    "as_distance",
    "TraditionalMetrics",
]

#: Metrics where a larger value means "more similar" (a view of the registry).
HIGHER_IS_BETTER = {m.name: m.higher_is_better for m in METRICS.values() if m.kind in ("traditional", "learned")}

#: Smallest side torchmetrics' MS-SSIM accepts (11-pixel window, 5 scales: side // 16 must exceed 10).
MS_SSIM_MIN_SIZE = 176


def _batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3, H, W) or (3, H, W) RGB, got shape {tuple(x.shape)}")
    return x


def to_unit_range(x: torch.Tensor, name: str = "image") -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> float32 in [0, 1] (clamped: libraries check their data range)."""
    x = _batch(x, name)
    return ((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def _pair(img0: torch.Tensor, img1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = to_unit_range(img0, "img0"), to_unit_range(img1, "img1")
    if a.shape != b.shape:
        raise ValueError(f"img0 {tuple(a.shape)} and img1 {tuple(b.shape)} must have the same shape")
    return a, b


# --------------------------------------------------------------------------- pixel metrics
def psnr(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (RGB, data range 1 after mapping to [0, 1]).

    Args:
        img0, img1: (N, 3, H, W) in [-1, 1].
    Returns:
        (N,) PSNR; ``inf`` for identical images.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = _pair(img0, img1)
    return peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004) on RGB, Gaussian window 11 / sigma 1.5, mean over channels.

    Args:
        img0, img1: (N, 3, H, W) in [-1, 1], each side at least 11 pixels.
    Returns:
        (N,) SSIM in [-1, 1]; 1 for identical images.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _pair(img0, img1)
    return structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")


def ms_ssim(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003), 5 scales, on RGB.

    Args:
        img0, img1: (N, 3, H, W) in [-1, 1], each side at least 176 pixels.
    Returns:
        (N,) MS-SSIM in [0, 1]; 1 for identical images.
    """
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    a, b = _pair(img0, img1)
    if min(a.shape[-2:]) < MS_SSIM_MIN_SIZE:
        raise ValueError(
            f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIZE}x{MS_SSIM_MIN_SIZE} "
            f"pixels (5 scales of an 11-pixel window); got {a.shape[-1]}x{a.shape[-2]}. "
            f"Leave ms_ssim out for small patches such as BAPPS' 64x64"
        )
    # normalize="relu" keeps negative contrast terms from producing NaN powers (torchmetrics' advice).
    return multiscale_structural_similarity_index_measure(a, b, data_range=1.0, reduction="none", normalize="relu")


def lpnorm(img0: torch.Tensor, img1: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Normalised Lp distance ``(mean |x - y|^p)^(1/p)`` over pixels and channels, RGB in [0, 1].

    p=1 is the mean absolute error, p=2 the root mean squared error.

    Args:
        img0, img1: (N, 3, H, W) in [-1, 1].
        p: the norm's order, > 0.
    Returns:
        (N,) distances in [0, 1].
    """
    if not p > 0:
        raise ValueError(f"p must be > 0, got {p}")
    a, b = _pair(img0, img1)
    return (a - b).abs().pow(p).mean(dim=(1, 2, 3)).pow(1.0 / p)


def rgb_to_lab(img: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> CIELAB (D65): L in [0, 100], a and b roughly in [-128, 127]."""
    import kornia

    return kornia.color.rgb_to_lab(to_unit_range(img))


def l2_lab(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """The paper's L2 baseline: ``0.5 * mean(((Lab0 - Lab1) / 100)^2)``, as ``lpips.L2(colorspace='Lab')``.

    The reference converts through uint8 (``tensor2im``) and scikit-image; here the
    float images go straight through kornia, so values agree to the uint8 rounding.

    Args:
        img0, img1: (N, 3, H, W) in [-1, 1].
    Returns:
        (N,) distances >= 0.
    """
    a, b = _pair(img0, img1)
    import kornia

    la, lb = kornia.color.rgb_to_lab(a), kornia.color.rgb_to_lab(b)
    return 0.5 * ((la - lb) / 100.0).pow(2).mean(dim=(1, 2, 3))


# --------------------------------------------------------------------------- DISTS
def dists_weights_path():
    """Path of DISTS' alpha/beta file inside the ``DISTS_pytorch`` wheel (the authors' release)."""
    import importlib.resources

    try:
        path = importlib.resources.files("DISTS_pytorch") / "weights.pt"
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "DISTS needs the package DISTS_pytorch for its alpha/beta weights: "
            "pip install DISTS_pytorch==0.1 (it is in requirements.txt)"
        ) from exc
    if not path.is_file():
        raise RuntimeError(f"{path}: missing; reinstall DISTS_pytorch==0.1")
    return path


def vgg16_features(pretrained: bool = True) -> nn.Sequential:
    """torchvision's VGG16 ``features`` (31 modules) with the package's offline ImageNet weights.

    The weights come from :func:`lpips_core.model.weights.load_backbone_state` (no download).
    """
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"], batch_norm=False)
    if pretrained:
        features.load_state_dict(load_backbone_state("vgg"))
    return features


DISTS_LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
DISTS_CHANNELS = [3, 64, 128, 256, 512, 512]


@functools.lru_cache(maxsize=4)
def load_dists(device: str = "cpu") -> nn.Module:
    """``piq.DISTS`` built without downloads (piq's own constructor fetches both weight files).

    Same module as ``piq.DISTS()``: its ``forward(x, y)`` takes [0, 1] images and
    returns ``1 - similarity``; ``get_features`` / ``compute_distance`` are piq's.
    """
    with torch.inference_mode(False):  # cached and reused: no inference tensors
        return _build_dists(device)


def _build_dists(device: str) -> nn.Module:
    import piq
    from piq.perceptual import VGG16_LAYERS

    weights = torch.load(dists_weights_path(), map_location="cpu", weights_only=True)
    alpha, beta = weights["alpha"], weights["beta"]  # (1, 1475, 1, 1) each, summing to 1 together
    layer_weights = list(torch.split(alpha, DISTS_CHANNELS, dim=1)) + list(torch.split(beta, DISTS_CHANNELS, dim=1))
    model = piq.DISTS.__new__(piq.DISTS)
    piq.ContentLoss.__init__(
        model,
        feature_extractor=vgg16_features(),
        layers=[VGG16_LAYERS[t] for t in DISTS_LAYERS],
        weights=layer_weights,
        replace_pooling=True,
        reduction="none",
        normalize_features=False,
        allow_layers_weights_mismatch=True,
    )
    return model.to(device).eval()


def dists_resize(x01: torch.Tensor) -> torch.Tensor:
    """piq's DISTS input rule: shorter side > 256 is resized (bilinear) to 256."""
    h, w = x01.shape[-2:]
    if min(h, w) > 256:
        x01 = torch.nn.functional.interpolate(
            x01, scale_factor=256 / min(h, w), recompute_scale_factor=False, mode="bilinear"
        )
    return x01


def dists_features(model: nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    """DISTS features of one batch (image in [-1, 1]), reusable across comparisons."""
    return model.get_features(dists_resize(to_unit_range(img).to(next(model.model.parameters()).device)))


def dists_from_features(model: nn.Module, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
    """(N,) DISTS distance from two :func:`dists_features` outputs (piq's weighting, exactly)."""
    terms = model.compute_distance(f0, f1)
    sim = torch.cat([(d * w.to(d)).mean(dim=[2, 3]) for d, w in zip(terms, model.weights)], dim=1).sum(dim=1)
    return 1.0 - sim


def dists(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """DISTS distance (Ding et al. 2020), ``1 - similarity`` in [0, 1]; 0 for identical images.

    Args:
        img0, img1: (N, 3, H, W) in [-1, 1], each side at least 32 pixels.
    Returns:
        (N,) distances.
    """
    a, b = _pair(img0, img1)
    model = load_dists(str(a.device))
    return model(dists_resize(a), dists_resize(b))


# --------------------------------------------------------------------------- registry
METRIC_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "psnr": psnr,
    "ssim": ssim,
    "ms_ssim": ms_ssim,
    "l1": functools.partial(lpnorm, p=1.0),
    "l2": functools.partial(lpnorm, p=2.0),
    "l2_lab": l2_lab,
    "dists": dists,
}


def as_distance(name: str, values: torch.Tensor) -> torch.Tensor:
    """Turn a metric's raw values into a distance (lower = more similar).

    PSNR -> ``-PSNR``; SSIM, MS-SSIM -> ``1 - value``; distances are returned unchanged.
    """
    if name == "psnr":
        return -values
    if name in ("ssim", "ms_ssim"):
        return 1.0 - values
    return values


class TraditionalMetrics:
    """The traditional metrics of the paper in one object.

    ``TraditionalMetrics(input_range=...).psnr(a, b)``: images in the instance's
    ``input_range`` ((-1, 1) by default, the LPIPS convention). The design document's
    class-level calls (``TraditionalMetrics.psnr(a, b)`` on [0, 1] images) are
    :class:`lpips_core.design_api.TraditionalMetrics`, a subclass kept out of this core.

    (3, H, W) inputs give floats and (N, 3, H, W) inputs (N,) tensors;
    PSNR uses data range 1 on [0, 1] RGB, SSIM the Gaussian window, ``lpnorm`` the
    mean over pixels and channels (see the module docstring).

    Args:
        input_range: value range of the images passed in, ``(-1, 1)`` (default,
            the LPIPS convention) or ``(0, 1)``.
        device: where to compute (default: where the images are).

    Example:
        >>> import torch
        >>> tm = TraditionalMetrics()
        >>> x = torch.rand(3, 64, 64) * 2 - 1
        >>> sorted(tm.compute_all_metrics(x, x.clamp(-0.9, 0.9)))
        ['l1', 'l2', 'l2_lab', 'psnr', 'ssim']
    """

    def __init__(self, input_range: tuple[float, float] | str = (-1.0, 1.0), device: str | torch.device | None = None):
        rng = parse_input_range(input_range)
        if rng.name == "0,255":
            raise ValueError(f"input_range must be (-1, 1) or (0, 1), got {input_range}")
        self._range = rng
        self.input_range = (rng.low, rng.high)
        self.device = torch.device(device) if device is not None else None

    def _prep(self, x: torch.Tensor, name: str) -> torch.Tensor:
        x = _batch(x, name)
        if self.device is not None:
            x = x.to(self.device)
        return self._range.to_minus_one_one(x)

    def _run(self, fn, img0, img1):
        """``fn`` on the prepared pair: a float for one (3, H, W) pair, else the (N,) tensor."""
        with torch.inference_mode():
            out = fn(self._prep(img0, "img0"), self._prep(img1, "img1"))
        return float(out[0]) if self._single(img0) else out

    @staticmethod
    def _single(img0: torch.Tensor) -> bool:
        return isinstance(img0, torch.Tensor) and img0.dim() == 3

    def psnr(self, img0: torch.Tensor, img1: torch.Tensor):
        """PSNR in dB: a float for (3, H, W) inputs, an (N,) tensor for batches."""
        return self._run(psnr, img0, img1)

    def ssim(self, img0: torch.Tensor, img1: torch.Tensor):
        """SSIM on RGB: a float for (3, H, W) inputs, an (N,) tensor for batches."""
        return self._run(ssim, img0, img1)

    def ms_ssim(self, img0: torch.Tensor, img1: torch.Tensor):
        """MS-SSIM on RGB (images of at least 176x176)."""
        return self._run(ms_ssim, img0, img1)

    def lpnorm(self, img0: torch.Tensor, img1: torch.Tensor, p: float = 2.0):
        """``(mean |x - y|^p)^(1/p)`` on RGB in [0, 1] (p=1: MAE, p=2: RMSE)."""
        return self._run(functools.partial(lpnorm, p=p), img0, img1)

    def l2_lab(self, img0: torch.Tensor, img1: torch.Tensor):
        """The paper's L2 baseline in CIELAB."""
        return self._run(l2_lab, img0, img1)

    def dists(self, img0: torch.Tensor, img1: torch.Tensor):
        """DISTS distance (piq, offline weights)."""
        return self._run(dists, img0, img1)

    def compute_all_metrics(
        self, img0: torch.Tensor, img1: torch.Tensor, include: tuple[str, ...] = ("psnr", "ssim", "l1", "l2", "l2_lab")
    ) -> dict:
        """Every metric in ``include`` for one pair (floats) or a batch ((N,) tensors).

        Args:
            img0, img1: (3, H, W) or (N, 3, H, W) in ``input_range``.
            include: names from :data:`METRIC_FUNCTIONS`; add "ms_ssim" (large
                images only) and "dists" (loads a VGG16) when wanted.
        Returns:
            {name: value}; PSNR in dB, SSIM in [-1, 1], the rest distances.
        """
        unknown = [n for n in include if n not in METRIC_FUNCTIONS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRIC_FUNCTIONS)}")
        return {name: self._run(METRIC_FUNCTIONS[name], img0, img1) for name in include}
