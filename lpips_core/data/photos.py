"""The course's photographs: the ones scikit-image ships in its wheel, named and licensed.

Every photograph the package and the course use comes from here: the mini set
(:mod:`lpips_core.studies.mini_bapps`) splits them by photograph between train and val, the
int8 calibration set (:func:`calibration_images`) uses the train
ones only, and the chapters' :func:`lpips_core.course.photo` crops them.
"""

from __future__ import annotations

import numpy as np
import torch

from . import distortions as D
from .images import im2tensor

__all__ = ["PHOTOS", "VAL_PHOTOS", "TRAIN_PHOTOS", "CALIBRATION_PHOTOS", "load_photo", "calibration_images"]

#: scikit-image photograph -> (what it shows, licence as stated in scikit-image's docstring).
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut Eileen Collins (NASA)", "public domain"),
    "coffee": ("coffee cup (Rachel Michetti)", "CC0"),
    "hubble_deep_field": ("Hubble eXtreme Deep Field (NASA)", "public domain"),
    "camera": ("photographer with camera, grey (Lav Varshney)", "CC0"),
    "brick": ("brick wall texture, grey (CC0Textures)", "CC0"),
    "coins": ("Greek coins from Pompeii, grey", "no known copyright restrictions"),
    "text": ("text on a sign, grey (Wikipedia)", "public domain"),
    "chelsea": ("Chelsea the cat (Stefan van der Walt)", "CC0"),
    "rocket": ("DSCOVR launch on Falcon 9 (SpaceX)", "public domain"),
    "immunohistochemistry": ("immunohistochemical staining", "no known copyright restrictions"),
    "retina": ("fundus photograph of a human retina (Wikimedia)", "CC0"),
    "grass": ("grass texture, grey (CC0Textures)", "CC0"),
    "gravel": ("gravel texture, grey (CC0Textures)", "CC0"),
    "clock": ("motion-blurred wall clock, grey (Stefan van der Walt)", "public domain"),
    "cell": ("cell floating in saline, grey", "CC0"),
}
VAL_PHOTOS = ("astronaut", "coffee", "hubble_deep_field", "camera", "brick", "coins", "text")
TRAIN_PHOTOS = ("chelsea", "rocket", "immunohistochemistry", "retina", "grass", "gravel", "clock", "cell")


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photograph as (H, W, 3) uint8 (grey ones repeated to RGB)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)


#: The int8 calibration photographs: the mini set's *train* photographs, so neither the mini
#: set's val triplets nor LIVE (the precision contract's evaluation data) is calibrated on.
CALIBRATION_PHOTOS = TRAIN_PHOTOS


def calibration_images(n: int = 64, size: int = 160, seed: int = 0) -> torch.Tensor:
    """The stated int8 calibration set: ``n`` crops of :data:`CALIBRATION_PHOTOS`, half of them distorted.

    Crop ``i`` comes from photograph ``i % 8``, resized so the crop spans 50-100% of its
    short side; odd ``i`` get one of the mini set's distortion families
    (:mod:`lpips_core.data.distortions`, strength 0.2-0.8), so the ranges cover both
    clean photographs and the distorted versions LPIPS compares them with.

    Returns:
        (n, 3, size, size) float32 in [-1, 1].
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    kinds = sorted(D.DISTORTIONS)
    out = []
    for i in range(n):
        img = load_photo(CALIBRATION_PHOTOS[i % len(CALIBRATION_PHOTOS)])
        scale = rng.uniform(1.0, 2.0) * size / min(img.shape[:2])
        h, w = (max(size, int(round(d * scale))) for d in img.shape[:2])
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crop = np.ascontiguousarray(img[y : y + size, x : x + size])
        if i % 2:
            crop = D.apply(crop, [(kinds[rng.integers(len(kinds))], float(rng.uniform(0.2, 0.8)))], rng)
        out.append(im2tensor(crop))
    return torch.cat(out)
