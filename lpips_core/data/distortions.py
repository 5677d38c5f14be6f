"""Image distortions in the spirit of BAPPS "traditional" (Zhang et al. 2018, section 2.1).

Every distortion has the same signature::

    fn(image: (H, W, 3) uint8, strength: float in [0, 1], rng: numpy Generator) -> (H, W, 3) uint8

``strength`` 0 is (nearly) no change and 1 the strongest version; the mapping to each
distortion's own parameter is in its docstring. Randomness (noise, directions, signs)
comes only from ``rng``, so a seeded generator reproduces the output exactly.
Borders are handled by reflection: apply a distortion to a patch with a margin and crop
the centre when the border matters (the mini-set builder uses a margin of 8 pixels).

Example:
    >>> import numpy as np
    >>> from lpips_core.data.distortions import DISTORTIONS, apply
    >>> img = np.full((80, 80, 3), 128, np.uint8)
    >>> out = apply(img, [("jpeg", 0.5), ("gaussian_noise", 0.2)], np.random.default_rng(0))
    >>> out.shape, out.dtype
    ((80, 80, 3), dtype('uint8'))
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance
from scipy import ndimage

Distortion = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


# --------------------------------------------------------------------------- noise
def gaussian_noise(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise, independent per pixel and channel; sigma = 2 + 38 * strength (of 255)."""
    sigma = 2.0 + 38.0 * strength
    return _to_uint8(image + rng.normal(0.0, sigma, image.shape))


def multiplicative_noise(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Speckle: x * (1 + n), n ~ N(0, sigma^2) per pixel and channel; sigma = 0.03 + 0.37 * strength."""
    sigma = 0.03 + 0.37 * strength
    return _to_uint8(image * (1.0 + rng.normal(0.0, sigma, image.shape)))


# --------------------------------------------------------------------------- blur
def gaussian_blur(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (``scipy.ndimage.gaussian_filter``, reflect); sigma = 0.3 + 2.7 * strength pixels."""
    sigma = 0.3 + 2.7 * strength
    return _to_uint8(ndimage.gaussian_filter(image.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect"))


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel of ``length`` pixels at ``angle`` radians (anti-aliased by sampling)."""
    size = int(np.ceil(length)) | 1  # odd
    kernel = np.zeros((size, size), np.float64)
    c = size // 2
    for t in np.linspace(-length / 2, length / 2, 8 * size):
        y, x = c + t * np.sin(angle), c + t * np.cos(angle)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                if 0 <= yy < size and 0 <= xx < size:
                    kernel[yy, xx] += wy * wx
    return kernel / kernel.sum()


def motion_blur(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur at a random angle; length = 2 + 10 * strength pixels."""
    kernel = motion_kernel(2.0 + 10.0 * strength, rng.uniform(0, np.pi))
    x = image.astype(np.float32)
    out = np.stack([ndimage.convolve(x[..., c], kernel, mode="reflect") for c in range(3)], axis=-1)
    return _to_uint8(out)


# --------------------------------------------------------------------------- compression, quantisation
def jpeg(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression with Pillow (4:2:0 chroma subsampling); quality = 95 - 90 * strength (95 .. 5)."""
    quality = int(round(95 - 90 * strength))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.array(im.convert("RGB"))


def quantization(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform quantisation of each channel to L levels; L = round(2 ** (5 - 3.4 * strength)) (32 .. 3)."""
    levels = max(2, int(round(2 ** (5 - 3.4 * strength))))
    step = 255.0 / (levels - 1)
    return _to_uint8(np.rint(image / step) * step)


# --------------------------------------------------------------------------- colour and tone
def saturation(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Saturation change (``PIL.ImageEnhance.Color``); factor 1 +- 0.9 * strength, random sign."""
    factor = 1.0 + _sign(rng) * 0.9 * strength
    return np.array(ImageEnhance.Color(Image.fromarray(image)).enhance(factor))


def hue_shift(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Rotation of the HSV hue by +- 0.25 * strength of a turn (``skimage.color``), random sign."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(image)
    hsv[..., 0] = (hsv[..., 0] + _sign(rng) * 0.25 * strength) % 1.0
    return _to_uint8(hsv2rgb(hsv) * 255.0)


def color_shift(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Colour cast: a random offset per channel, N(0, (40 * strength)^2) of 255, plus 3 minimum."""
    offsets = rng.normal(0.0, 3.0 + 40.0 * strength, 3)
    return _to_uint8(image + offsets)


def contrast(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Contrast change about the mean grey (``PIL.ImageEnhance.Contrast``); factor 1 +- 0.8 * strength."""
    factor = 1.0 + _sign(rng) * 0.8 * strength
    return np.array(ImageEnhance.Contrast(Image.fromarray(image)).enhance(factor))


def gamma(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma change 255 * (x / 255) ** g; g = exp(+- 1.2 * strength), random sign."""
    g = float(np.exp(_sign(rng) * 1.2 * strength))
    return _to_uint8(255.0 * (image / 255.0) ** g)


# --------------------------------------------------------------------------- geometry
def translation(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Sub-pixel shift (bilinear, reflect) by 0.5 + 3.5 * strength pixels in a random direction."""
    magnitude, angle = 0.5 + 3.5 * strength, rng.uniform(0, 2 * np.pi)
    shift = (magnitude * np.sin(angle), magnitude * np.cos(angle), 0.0)
    return _to_uint8(ndimage.shift(image.astype(np.float32), shift, order=1, mode="reflect"))


def warp(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random warp: a displacement field of Gaussian noise smoothed with sigma 6 px,
    scaled to an RMS of 0.3 + 2.7 * strength pixels, sampled bilinearly (reflect)."""
    h, w = image.shape[:2]
    rms = 0.3 + 2.7 * strength
    fields = []
    for _ in range(2):
        f = ndimage.gaussian_filter(rng.normal(size=(h, w)), 6.0, mode="reflect")
        fields.append(f * rms / (f.std() + 1e-12))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = [yy + fields[0], xx + fields[1]]
    out = np.stack(
        [ndimage.map_coordinates(image[..., c].astype(np.float32), coords, order=1, mode="reflect") for c in range(3)],
        axis=-1,
    )
    return _to_uint8(out)


#: name -> distortion function, in a fixed order (the builder samples by index).
DISTORTIONS: dict[str, Distortion] = {
    "gaussian_noise": gaussian_noise,
    "multiplicative_noise": multiplicative_noise,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "jpeg": jpeg,
    "quantization": quantization,
    "saturation": saturation,
    "hue_shift": hue_shift,
    "color_shift": color_shift,
    "contrast": contrast,
    "gamma": gamma,
    "translation": translation,
    "warp": warp,
}


def apply(image: np.ndarray, steps: Sequence[tuple[str, float]], rng: np.random.Generator) -> np.ndarray:
    """Apply distortions in order (a composition), e.g. ``[('gaussian_blur', 0.3), ('jpeg', 0.8)]``.

    Args:
        image: (H, W, 3) uint8.
        steps: (name, strength in [0, 1]) pairs; names are keys of :data:`DISTORTIONS`.
        rng: source of all randomness.
    Returns:
        (H, W, 3) uint8, same size.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    for name, strength in steps:
        if name not in DISTORTIONS:
            raise ValueError(f"unknown distortion {name!r}; choose from {', '.join(DISTORTIONS)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"{name}: strength {strength} is outside [0, 1]")
        image = DISTORTIONS[name](image, float(strength), rng)
    return image
