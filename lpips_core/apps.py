"""LPIPS in applications: a load-once wrapper and helpers for common questions.

* :class:`ProductionLPIPS`: load official weights or a trained checkpoint once,
  then compare tensors, arrays, PIL images or file paths, on CPU or GPU.
* :func:`compression_quality` / :func:`jpeg_quality_curve`: how far is a
  compressed image from its original (LPIPS beside PSNR and SSIM)?
* :func:`set_diversity`: mean pairwise LPIPS of a set of generated images
  (higher = more diverse), each image's features computed once.
* :func:`augmentation_distances`: distance between an original and each of its
  augmentations (how strong is each augmentation, perceptually?); :func:`in_unit_range`
  makes an augmentation of [0, 1] images one of [-1, 1] images.
* :func:`jpeg_roundtrip`: an image encoded as JPEG and decoded again, with the file size.

Example:
    >>> from lpips_core.apps import ProductionLPIPS            # doctest: +SKIP
    >>> metric = ProductionLPIPS(net="alex")                   # doctest: +SKIP
    >>> metric("a.png", "b.png")                               # doctest: +SKIP
    0.2317
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Callable, Union

import numpy as np
import torch
from PIL import Image

from .data.images import ImageLoadError, im2tensor, load_tensor, open_image
from .devices import resolve_device
from .eval.baselines import psnr, ssim
from .model import LPIPS, load_lpips_checkpoint
from .model.ranges import InputRange, parse_input_range, resolve

__all__ = [
    "ProductionLPIPS",
    "mask_from_image",
    "compression_quality",
    "jpeg_quality_curve",
    "jpeg_roundtrip",
    "set_diversity",
    "default_augmentations",
    "augmentation_distances",
    "in_unit_range",
]

ImageLike = Union[str, os.PathLike, np.ndarray, torch.Tensor, Image.Image]


class ProductionLPIPS:
    """An LPIPS metric loaded once and called many times.

    Args:
        net: 'alex' (default, fastest), 'vgg' or 'squeeze'; ignored with ``checkpoint``.
        version: linear-weight version, '0.1' (default) or '0.0'.
        checkpoint: a trained checkpoint or linear-weights file (see
            :func:`lpips_core.model.load_lpips_checkpoint`) instead of the official weights.
        device: 'auto' (GPU when available), 'cpu', 'cuda', 'cuda:1', ...
        batch_size: images per trunk call in :meth:`one_to_many` and :meth:`pairwise`.
        precision: 'fp32' (exact, default), 'bf16' or 'int8' (see :mod:`lpips_core.model.precision`;
            a mode this device cannot run fast warns once and runs fp32; :attr:`precision` is what runs).
        input_range: the range of tensor inputs: '-1,1' (default), '0,1' or '0,255'.
            Left at None, tensors are taken as [-1, 1] and all-non-negative ones warn
            once per call site (they look like [0, 1] images); files, arrays and PIL
            images are always converted correctly and never warn.

    Inputs to every method may be file paths, (H, W, 3) uint8 arrays, PIL images,
    or tensors (3, H, W) / (N, 3, H, W) in ``input_range`` (``normalize=True`` per
    call means [0, 1]). :meth:`signature` says how the numbers were computed.
    """

    def __init__(
        self,
        net: str = "alex",
        version: str = "0.1",
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = "auto",
        batch_size: int = 32,
        input_range: str | tuple | None = None,
        precision: str = "fp32",
    ):
        self.device = resolve_device(device)
        if checkpoint is not None:
            model = load_lpips_checkpoint(checkpoint)
            self.source = str(checkpoint)
        else:
            model = LPIPS(net=net, version=version)
            self.source = f"official {model.pnet_type} v{model.version}"
        self.model = model.to(self.device).eval().requires_grad_(False).set_precision(precision)
        self.precision = self.model.prepare_precision(self.device)  # what runs here (a fallback warns now)
        self.net = model.pnet_type
        self.batch_size = batch_size
        self.input_range: InputRange = parse_input_range(input_range)

    def signature(self) -> str:
        """The model's :meth:`~lpips_core.model.LPIPS.signature`, with this wrapper's input range."""
        return self.model.signature(input_range=self.input_range)

    def _model_range(self, images: Sequence, normalize: bool) -> str | None:
        """The range the model is told: '-1,1' confirmed unless raw tensors came in an undeclared range."""
        rng = resolve(self.input_range, None, normalize)
        raw = any(isinstance(im, torch.Tensor) for im in images)
        return None if raw and not rng.confirmed else "-1,1"

    def __repr__(self) -> str:
        return f"ProductionLPIPS({self.source}, device={self.device})"

    # ------------------------------------------------------------------ inputs
    def to_tensor(self, image: ImageLike, normalize: bool = False) -> torch.Tensor:
        """Any supported image -> (N, 3, H, W) float32 in [-1, 1] on this device.

        Tensors are read in ``input_range`` (``normalize=True``: [0, 1]).
        """
        if isinstance(image, (str, os.PathLike)):
            x = load_tensor(image)
        elif isinstance(image, torch.Tensor):
            x = resolve(self.input_range, None, normalize).to_minus_one_one(image.detach()).float()
            x = x.unsqueeze(0) if x.dim() == 3 else x
        elif isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                raise TypeError(
                    f"numpy images must be uint8 (H, W, 3), got {image.dtype}; "
                    f"pass float data as a torch tensor in [-1, 1]"
                )
            x = im2tensor(image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2))
        elif hasattr(image, "convert"):  # PIL image
            x = im2tensor(np.asarray(image.convert("RGB")))
        else:
            raise TypeError(
                f"unsupported image type {type(image).__name__}; use a path, a uint8 array, a PIL image or a tensor"
            )
        return x.to(self.device)

    def _stack(self, images: Sequence[ImageLike] | torch.Tensor, normalize: bool) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            return self.to_tensor(images, normalize)
        tensors = [self.to_tensor(im, normalize) for im in images]
        if not tensors:
            raise ValueError("no images given")
        shapes = {tuple(t.shape[1:]) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"images must share one size to be compared; got {sorted(shapes)}")
        return torch.cat(tensors)

    # ------------------------------------------------------------------ distances
    def features(self, images, normalize: bool = False) -> list[torch.Tensor]:
        """Normalised trunk features of a batch, computed in chunks of ``batch_size``."""
        x = self._stack(images, normalize)
        with torch.inference_mode():
            chunks = [self.model.features(x[i : i + self.batch_size]) for i in range(0, x.shape[0], self.batch_size)]
        return [torch.cat(level) for level in zip(*chunks)]

    def __call__(
        self,
        img0: ImageLike,
        img1: ImageLike,
        normalize: bool = False,
        mask: ImageLike | None = None,
        mask_mode: str = "hard",
    ):
        """Distance between two images (a float) or two equal-size batches (an (N,) tensor).

        Args:
            mask: a region to compare (see :meth:`lpips_core.model.LPIPS.forward`):
                an (N, 1, H, W) / (H, W) tensor in [0, 1], or an image file / array
                whose non-zero pixels are the region.
            mask_mode: 'hard' (pixels outside cannot matter) or 'soft'.
        """
        a, b = self.to_tensor(img0, normalize), self.to_tensor(img1, normalize)
        if mask is not None and not isinstance(mask, torch.Tensor):
            mask = mask_from_image(mask)
        with torch.inference_mode():
            d = (
                self.model(a, b, input_range=self._model_range([img0, img1], normalize), mask=mask, mask_mode=mask_mode)
                .flatten()
                .cpu()
            )
        single = not (isinstance(img0, torch.Tensor) and img0.dim() == 4)
        return float(d[0]) if single and d.numel() == 1 else d

    distance = __call__

    def one_to_many(
        self, reference: ImageLike, images: Sequence[ImageLike] | torch.Tensor, normalize: bool = False
    ) -> torch.Tensor:
        """(M,) distances from one reference to each image; the reference's features are computed once."""
        model = self._confirmed_model(
            [reference, *images] if not isinstance(images, torch.Tensor) else [reference, images], normalize
        )
        with torch.inference_mode():
            return (
                model.one_to_many(self.to_tensor(reference, normalize), self._stack(images, normalize)).flatten().cpu()
            )

    def pairwise(self, images: Sequence[ImageLike] | torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(M, M) symmetric matrix of distances between all images (zero diagonal).

        Each image goes through the trunk once; the M(M-1)/2 comparisons reuse its features.
        """
        x = self._stack(images, normalize)
        model = self._confirmed_model([images] if isinstance(images, torch.Tensor) else list(images), normalize)
        with torch.inference_mode():
            return model.pairwise(x).cpu()

    def _confirmed_model(self, images: Sequence, normalize: bool) -> LPIPS:
        """The model, with its input range confirmed as [-1, 1] unless raw tensors came undeclared.

        The reuse routes read the model's own range; converted inputs are [-1, 1] for sure.
        """
        self.model.input_range = parse_input_range(self._model_range(images, normalize))
        return self.model


def mask_from_image(mask: ImageLike, threshold: float = 0.5) -> torch.Tensor:
    """A mask image (path, array or PIL; white = compare) -> (1, 1, H, W) float {0, 1} tensor.

    Pixels brighter than ``threshold`` (of full scale) in any channel are inside the mask.
    """
    if isinstance(mask, (str, os.PathLike)):
        if not os.path.isfile(mask):
            raise FileNotFoundError(f"{mask}: mask image not found")
        try:
            with open_image(mask) as im:  # the pixel budget, checked from the header
                arr = np.asarray(im.convert("L"))
        except ImageLoadError as exc:
            raise ImageLoadError(f"mask {exc}") from None
        except Exception as exc:  # truncated or damaged: Pillow's many error types
            raise ImageLoadError(f"mask {mask}: not a readable image ({type(exc).__name__}: {exc})") from exc
    elif hasattr(mask, "convert"):
        arr = np.asarray(mask.convert("L"))
    else:
        arr = np.asarray(mask)
        arr = arr.max(axis=2) if arr.ndim == 3 else arr
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    return torch.from_numpy((arr.astype(np.float32) / scale > threshold).astype(np.float32))[None, None]


# --------------------------------------------------------------------------- helpers
def _metric(metric: ProductionLPIPS | None) -> ProductionLPIPS:
    return metric if metric is not None else ProductionLPIPS(device="auto")


def compression_quality(original: ImageLike, compressed: ImageLike, metric: ProductionLPIPS | None = None) -> dict:
    """How far a compressed image is from its original: LPIPS, PSNR (dB) and SSIM.

    Returns:
        {'lpips': float (lower = closer), 'psnr': float, 'ssim': float}.
    """
    metric = _metric(metric)
    a, b = metric.to_tensor(original), metric.to_tensor(compressed)
    if a.shape != b.shape:
        raise ValueError(f"original {tuple(a.shape[2:])} and compressed {tuple(b.shape[2:])} differ in size")
    with torch.inference_mode():
        return {
            "lpips": metric(a[0], b[0]),
            "psnr": float(psnr(a.cpu(), b.cpu())[0]),
            "ssim": float(ssim(a.cpu(), b.cpu())[0]),
        }


def jpeg_quality_curve(
    image: ImageLike, qualities: Sequence[int] = (5, 10, 20, 40, 60, 80, 95), metric: ProductionLPIPS | None = None
) -> list[dict]:
    """Encode ``image`` as JPEG at each quality and measure each version against the original.

    Returns:
        one dict per quality: {'quality', 'bytes', 'bits_per_pixel', 'lpips', 'psnr', 'ssim'}.
    """
    metric = _metric(metric)
    for q in qualities:
        if not 1 <= int(q) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {q}")
    x = metric.to_tensor(image)[:1]
    # the image as uint8, rounded: tensor2im truncates (as the reference does), which would move
    # pixels of a uint8 image down by one level, so the curve would measure another image
    arr = x[0].cpu().permute(1, 2, 0).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    versions = [jpeg_roundtrip(arr, int(q)) for q in qualities]  # (decoded (H, W, 3) uint8, bytes)
    original = metric.to_tensor(arr).cpu()  # (1, 3, H, W)
    decoded = torch.cat([metric.to_tensor(d).cpu() for d, _ in versions])  # (Q, 3, H, W)
    # one trunk pass of the original for all qualities (one_to_many), and the pixel metrics as one batch
    lpips_values = metric.one_to_many(arr, [d for d, _ in versions]).tolist()
    with torch.inference_mode():
        psnr_values = psnr(original.expand_as(decoded), decoded).tolist()
        ssim_values = ssim(original.expand_as(decoded), decoded).tolist()
    pixels = arr.shape[0] * arr.shape[1]
    return [
        {
            "quality": int(q),
            "bytes": n_bytes,
            "bits_per_pixel": 8 * n_bytes / pixels,
            "lpips": lp,
            "psnr": ps,
            "ssim": ss,
        }
        for q, (_, n_bytes), lp, ps, ss in zip(qualities, versions, lpips_values, psnr_values, ssim_values)
    ]


def jpeg_roundtrip(image: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """``image`` encoded as JPEG by Pillow at ``quality`` (1..100, Pillow's scale), then decoded.

    Args:
        image: (H, W, 3) uint8 array.
        quality: the JPEG quality, 1 (smallest file) to 100.
    Returns:
        (the decoded image, (H, W, 3) uint8; the size of the JPEG file in bytes).
    """
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return decoded, buf.tell()


def set_diversity(images: Sequence[ImageLike] | torch.Tensor, metric: ProductionLPIPS | None = None) -> dict:
    """Diversity of a set (e.g. samples of a generative model): mean LPIPS over all pairs.

    Returns:
        {'mean': float, 'std': float, 'n_images': int, 'n_pairs': int, 'matrix': (M, M) tensor}.
    """
    metric = _metric(metric)
    matrix = metric.pairwise(images)
    m = matrix.shape[0]
    if m < 2:
        raise ValueError("diversity needs at least 2 images")
    iu = torch.triu_indices(m, m, offset=1)
    vals = matrix[iu[0], iu[1]]
    return {
        "mean": float(vals.mean()),
        "std": float(vals.std()) if vals.numel() > 1 else 0.0,
        "n_images": m,
        "n_pairs": int(vals.numel()),
        "matrix": matrix,
    }


def in_unit_range(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A transform of [0, 1] images (torchvision's functional transforms) as one of [-1, 1] images.

    The returned function maps ``x`` (N, 3, H, W) in [-1, 1] to ``fn((x + 1) / 2)``, clamped
    to [0, 1] and mapped back to [-1, 1]: ``clamp(fn((x + 1) / 2), 0, 1) * 2 - 1``.

    Example:
        >>> lighter = in_unit_range(lambda u: u + 0.25)
        >>> lighter(torch.tensor([-1.0, 0.0, 0.5])).tolist()
        [-0.5, 0.5, 1.0]
    """
    return lambda x: fn((x + 1) / 2).clamp(0, 1) * 2 - 1


def default_augmentations(seed: int = 0) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """A few common augmentations on (1, 3, H, W) tensors in [-1, 1], deterministic given ``seed``."""
    # imported here: torchvision costs about as much as torch, and only this function needs it
    import torchvision.transforms.v2.functional as TF

    g = torch.Generator().manual_seed(seed)
    return {
        "horizontal flip": in_unit_range(TF.horizontal_flip),
        "rotate 5 deg": in_unit_range(lambda x: TF.rotate(x, 5.0, interpolation=TF.InterpolationMode.BILINEAR)),
        "brightness +20%": in_unit_range(lambda x: TF.adjust_brightness(x, 1.2)),
        "saturation x0.5": in_unit_range(lambda x: TF.adjust_saturation(x, 0.5)),
        "gaussian blur s=1.5": in_unit_range(lambda x: TF.gaussian_blur(x, kernel_size=9, sigma=1.5)),
        "crop 90% + resize": in_unit_range(
            lambda x: TF.resized_crop(
                x,
                int(0.05 * x.shape[-2]),
                int(0.05 * x.shape[-1]),
                int(0.9 * x.shape[-2]),
                int(0.9 * x.shape[-1]),
                list(x.shape[-2:]),
                antialias=True,
            )
        ),
        "gaussian noise s=0.05": in_unit_range(lambda x: x + 0.05 * torch.randn(x.shape, generator=g)),
    }


def augmentation_distances(
    original: ImageLike,
    augmentations: Mapping[str, Callable | ImageLike] | Sequence[ImageLike] | None = None,
    metric: ProductionLPIPS | None = None,
) -> dict[str, float]:
    """LPIPS between an original and each augmented version (original's features computed once).

    Args:
        original: the image.
        augmentations: {name: function on (1, 3, H, W) [-1, 1] tensors, or an already
            augmented image}, a list of augmented images (named by position), or None
            for :func:`default_augmentations`.
    Returns:
        {name: distance}, in the given order.
    """
    metric = _metric(metric)
    x = metric.to_tensor(original)[:1]
    if augmentations is None:
        augmentations = default_augmentations()
    if not isinstance(augmentations, Mapping):
        augmentations = {str(i): a for i, a in enumerate(augmentations)}
    names, images = [], []
    for name, aug in augmentations.items():
        out = aug(x.cpu()) if callable(aug) and not isinstance(aug, (str, os.PathLike)) else aug
        t = metric.to_tensor(out)[:1]
        if t.shape != x.shape:
            raise ValueError(
                f"augmentation {name!r} changed the size {tuple(x.shape[2:])} -> {tuple(t.shape[2:])}; "
                f"resize back before comparing"
            )
        names.append(name)
        images.append(t)
    d = metric.one_to_many(x, torch.cat(images))
    return {n: float(v) for n, v in zip(names, d)}
