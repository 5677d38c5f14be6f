"""Loading images and converting between uint8 arrays and LPIPS tensors.

``load_image`` and ``im2tensor`` follow the reference package: an image is an
(H, W, 3) uint8 RGB array, and a tensor is (1, 3, H, W) float32 in [-1, 1].
The reference reads files with OpenCV; this module uses Pillow, which gives the
same RGB pixels for 8-bit files and is already a dependency of torchvision.
:func:`uint8_to_tensor` is the reference *dataset* loader's conversion
(``ToTensor`` then ``Normalize(0.5, 0.5)``, in float32), used for judgment data.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..model.checks import InputRangeWarning


class ImageLoadError(ValueError):
    """An image file is missing, unreadable, or in a form LPIPS cannot use."""


#: Pillow modes of 16-bit greyscale files ("I" is how Pillow opens 16-bit PGM/PPM).
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array.

    As the reference's OpenCV loader: grayscale and palette images are expanded
    to RGB, alpha is dropped, 16-bit images keep their high byte (``v >> 8``,
    whatever the range of the values, so a dark 16-bit image stays dark), and
    the EXIF orientation is applied. CMYK is converted by Pillow. An animated
    file contributes its first frame.

    Raises:
        ImageLoadError: naming the file, when it is missing, damaged or truncated,
            not an image, or holds 32-bit integer pixels outside [0, 65535].
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in _WIDE_MODES:
                arr = np.asarray(im).astype(np.int64)
                if arr.size and (arr.min() < 0 or arr.max() > 65535):
                    raise ImageLoadError(f"{path}: 32-bit integer pixels in [{arr.min()}, {arr.max()}]; "
                                         f"save it as an 8- or 16-bit image")
                arr = (arr >> 8).astype(np.uint8)
                return np.repeat(arr[:, :, None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except ImageLoadError:
        raise
    except Exception as exc:  # Pillow raises many types for damaged files (OSError, SyntaxError,
        # struct.error, DecompressionBombError, ...): all mean "this file is not a usable image"
        raise ImageLoadError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def im2tensor(image: np.ndarray, imtype=np.uint8, cent: float = 1.0,
              factor: float = 255.0 / 2.0) -> torch.Tensor:
    """(H, W, 3) uint8 in [0, 255] -> (1, 3, H, W) float32 in [-1, 1] (reference semantics).

    A float image whose values all lie in [0, 1] would land in [-1, -0.99] without
    any error downstream (a silently wrong distance), so it gets an InputRangeWarning.
    """
    image = np.asarray(image)
    if image.dtype == bool or (image.dtype.kind == "f" and image.size and float(np.nanmax(image)) <= 1.0
                               and float(np.nanmin(image)) >= 0.0 and float(np.nanmax(image)) > 0.0):
        warnings.warn(f"im2tensor expects 0-255 values but got a {image.dtype} image in [0, 1]; "
                      f"pass image * 255, or use torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1",
                      InputRangeWarning, stacklevel=2)
    if image.ndim == 2:
        image = image[:, :, None]
    return torch.Tensor((image / factor - cent)[:, :, :, np.newaxis].transpose((3, 2, 0, 1)))


def uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1]: ``ToTensor`` then ``Normalize((0.5,)*3, (0.5,)*3)``.

    The float32 arithmetic of the reference's BAPPS loader (``x / 255``, ``- 0.5``, ``/ 0.5``);
    :func:`im2tensor` is the reference *package*'s (``x / 127.5 - 1`` in float64).
    """
    x = torch.from_numpy(images).movedim(-1, -3).float().div(255)  # ToTensor
    return x.sub_(0.5).div_(0.5)


def tensor2im(image_tensor: torch.Tensor, imtype=np.uint8, cent: float = 1.0,
              factor: float = 255.0 / 2.0) -> np.ndarray:
    """First image of a (N, 3, H, W) [-1, 1] tensor -> (H, W, 3) uint8 (reference semantics).

    Values outside [-1, 1] are clipped (the reference's ``astype`` wraps them around: 1.1 -> 11).
    """
    image_numpy = image_tensor[0].detach().cpu().float().numpy()
    image_numpy = (np.transpose(image_numpy, (1, 2, 0)) + cent) * factor
    if np.issubdtype(np.dtype(imtype), np.integer):
        info = np.iinfo(imtype)
        image_numpy = np.clip(np.nan_to_num(image_numpy), info.min, info.max)
    return image_numpy.astype(imtype)


def load_tensor(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file straight to a (1, 3, H, W) tensor in [-1, 1]."""
    return im2tensor(load_image(path))


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm"}


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageLoadError(f"{folder}: no such directory")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
