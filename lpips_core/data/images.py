"""Loading images and converting between uint8 arrays and LPIPS tensors.

``load_image`` and ``im2tensor`` follow the reference package: an image is an
(H, W, 3) uint8 RGB array, and a tensor is (1, 3, H, W) float32 in [-1, 1].
The reference reads files with OpenCV; this module uses Pillow, which gives the
same RGB pixels for 8-bit files and is already a dependency of torchvision.
:func:`uint8_to_tensor` is the reference *dataset* loader's conversion
(``ToTensor`` then ``Normalize(0.5, 0.5)``, in float32), used for judgment data.

Plain 8-bit PNG files (the usual renders and benchmark outputs) are decoded by
libspng through ``pyspng`` when it is installed: 1.6x faster than Pillow, the
same pixels (PNG is lossless). Every other file, every PNG carrying anything
that could change the result (an EXIF orientation, transparency, a palette,
16 bits, an animation) and every PNG with a failing chunk checksum goes through
Pillow.

Every decode path (:func:`load_image`, :func:`open_image` for masks and headers,
the folder commands, the datasets) first reads the image's size from its header and
refuses, naming the file, one whose pixel count exceeds :func:`max_pixels`: a PNG of
a few hundred KB can declare 14000x14000 pixels (a decompression bomb, 561 MiB once
decoded). The budget is ``$LPIPS_CORE_MAX_PIXELS`` (default: Pillow's own
``MAX_IMAGE_PIXELS``, 89.5 million pixels, 256 MiB as 8-bit RGB).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..model.checks import InputRangeWarning

try:  # optional (lpips_core[fast]): libspng, used for plain 8-bit PNG only
    import pyspng
except ImportError:  # pragma: no cover - Pillow decodes everything then
    pyspng = None


class ImageLoadError(ValueError):
    """An image file is missing, unreadable, or in a form LPIPS cannot use."""


class ImageTooLargeError(ImageLoadError):
    """An image whose header declares more pixels than :func:`max_pixels` allows (not decoded)."""


#: Environment variable holding the pixel budget (width x height) of one image.
MAX_PIXELS_ENV = "LPIPS_CORE_MAX_PIXELS"
#: Default budget: Pillow's own decompression-bomb threshold (1024**3 // 4 // 3 pixels).
DEFAULT_MAX_PIXELS = 89_478_485


def max_pixels() -> int:
    """The pixel budget of one image: ``$LPIPS_CORE_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`.

    Read on every call, so DataLoader workers and subprocesses follow the same setting.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r}: expected a whole number of pixels "
            f"(width x height) >= 1, e.g. {MAX_PIXELS_ENV}=200000000"
        )
    return int(raw)


def check_pixel_budget(path: str | os.PathLike, width: int, height: int) -> None:
    """Raise :class:`ImageTooLargeError` (one line naming ``path`` and the fix) above the budget."""
    budget, n = max_pixels(), int(width) * int(height)
    if n > budget:
        raise ImageTooLargeError(
            f"{path}: {width}x{height} = {n:,} pixels, over the budget of {budget:,} pixels per image "
            f"(a decompression bomb, or a very large image); not decoded. If the image is genuine, raise "
            f"the limit: {MAX_PIXELS_ENV}={n} (environment variable), or downscale it first"
        )


_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def open_image(source: str | os.PathLike | io.BytesIO, path: str | os.PathLike | None = None) -> Iterator[Image.Image]:
    """``Image.open`` with the pixel budget checked from the header, before any pixel is decoded.

    Args:
        source: a file path or the file's bytes (``io.BytesIO``).
        path: the name used in errors (default: ``source``).
    Yields:
        the opened (not yet decoded) image; decode it inside the block.
    Raises:
        ImageLoadError: naming the file when it is missing, not an image, or over the budget.
    """
    path = source if path is None else path
    budget = max_pixels()
    try:
        with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
            # Our budget decides; Pillow's own bomb check (2x its limit) must not refuse first
            # when the user raised the budget, nor warn below it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < budget:
                Image.MAX_IMAGE_PIXELS = -(-budget // 2)  # Pillow refuses above twice its limit
            im = Image.open(source)
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"{path}: {exc}; not decoded. If the image is genuine, raise the limit "
            f"with {MAX_PIXELS_ENV} (environment variable)"
        ) from None
    except Exception as exc:  # Pillow's many error types all mean "not a usable image"
        raise ImageLoadError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    with im:
        check_pixel_budget(path, *im.size)
        yield im


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
        ImageTooLargeError: its header declares more than :func:`max_pixels` pixels
            (checked before decoding).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such image file")
    data = None
    if pyspng is not None and path.suffix.lower() == ".png":  # fast path: the same pixels as below
        data = path.read_bytes()
        arr = _load_plain_png(data, path)
        if arr is not None:
            return arr
    try:  # the bytes already read are not read again
        with open_image(io.BytesIO(data) if data is not None else path, path) as im:
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in _WIDE_MODES:
                arr = np.asarray(im)  # uint16 (any byte order) or int32 ("I"): no int64 copy
                if arr.dtype.kind == "i" and arr.size and (arr.min() < 0 or arr.max() > 65535):
                    raise ImageLoadError(
                        f"{path}: 32-bit integer pixels in [{arr.min()}, {arr.max()}]; save it as an 8- or 16-bit image"
                    )
                arr = (arr >> 8).astype(np.uint8)
                return np.repeat(arr[:, :, None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except ImageLoadError:
        raise
    except Exception as exc:  # Pillow raises many types for damaged files (OSError, SyntaxError,
        # struct.error, DecompressionBombError, ...): all mean "this file is not a usable image"
        raise ImageLoadError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: 8-bit colour types libspng decodes to what Pillow's ``convert("RGB")`` gives: grey, RGB, grey+alpha, RGBA.
_PLAIN_COLOUR_TYPES = (0, 2, 4, 6)
#: Chunks after which Pillow may give other pixels (transparency, a palette, an animation) or rotate (EXIF).
_NOT_PLAIN_CHUNKS = (b"tRNS", b"PLTE", b"eXIf", b"acTL")


def _is_plain_png(data: bytes) -> bool:
    """An intact 8-bit grey/RGB(A) PNG with no palette, transparency or EXIF (no decoding).

    Every chunk's CRC is checked here: libspng (as pyspng builds it) decodes damaged data
    without complaint, so a file with any damaged chunk goes to Pillow, which names it.
    """
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 33:
        return False
    if data[24] != 8 or data[25] not in _PLAIN_COLOUR_TYPES:  # bit depth, colour type
        return False
    view, pos = memoryview(data), 8
    while pos + 12 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data) or zlib.crc32(view[pos + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            return False  # truncated or damaged
        if kind in _NOT_PLAIN_CHUNKS:
            return False
        if kind in (b"tEXt", b"zTXt", b"iTXt") and data[pos + 8 : pos + 30].startswith(b"Raw profile type exif"):
            return False  # Pillow reads an EXIF orientation from this text chunk too
        if kind == b"IEND":
            return True
        pos = end + 4
    return False


def _load_plain_png(data: bytes, path: str | os.PathLike = "PNG data") -> np.ndarray | None:
    """A PNG file's bytes -> (H, W, 3) uint8 through libspng, or None to let Pillow decode (and explain damage).

    Raises:
        ImageTooLargeError: IHDR declares more pixels than the budget (nothing decoded).
    """
    if not _is_plain_png(data):
        return None
    check_pixel_budget(path, int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    try:
        arr = pyspng.load(data, format="RGB")  # grey repeated, alpha dropped: as convert("RGB")
    except Exception:  # noqa: BLE001 - damaged data: Pillow's path raises the named error
        return None
    return arr if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 else None


def im2tensor(image: np.ndarray, imtype=np.uint8, cent: float = 1.0, factor: float = 255.0 / 2.0) -> torch.Tensor:
    """(H, W, 3) uint8 in [0, 255] -> (1, 3, H, W) float32 in [-1, 1] (reference semantics).

    A float image whose values all lie in [0, 1] would land in [-1, -0.99] without
    any error downstream (a silently wrong distance), so it gets an InputRangeWarning.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8 and (imtype, cent, factor) == (np.uint8, 1.0, 255.0 / 2.0):
        # the reference's float64 ``v / 127.5 - 1`` rounded to float32, computed in float32 (exactly
        # the same 256 values, see to_model_range) without a float64 copy of a large image
        with warnings.catch_warnings():  # a read-only array (Pillow's) is only read here: the float copy is new
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(np.ascontiguousarray(image if image.ndim == 3 else image[:, :, None]))
        x = x.permute(2, 0, 1)[None].to(torch.float32, memory_format=torch.contiguous_format)
        return x.mul_(2).sub_(255).div_(255)
    if image.dtype == bool or (
        image.dtype.kind == "f"
        and image.size
        and float(np.nanmax(image)) <= 1.0
        and float(np.nanmin(image)) >= 0.0
        and float(np.nanmax(image)) > 0.0
    ):
        warnings.warn(
            f"im2tensor expects 0-255 values but got a {image.dtype} image in [0, 1]; "
            f"pass image * 255, or use torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1",
            InputRangeWarning,
            stacklevel=2,
        )
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


def tensor2im(
    image_tensor: torch.Tensor, imtype=np.uint8, cent: float = 1.0, factor: float = 255.0 / 2.0
) -> np.ndarray:
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
