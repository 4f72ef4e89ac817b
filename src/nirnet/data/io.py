"""The one image loader used everywhere in NIRNet.

Every image that enters the library goes through :func:`load_image`, which returns an 8-bit RGB
``PIL.Image.Image`` or raises :class:`ImageLoadError` with the source and a human-readable reason.

Conversion rules (documented because they change pixels, and pixels are what we classify):

* EXIF orientation is applied (the image is rotated/flipped as a viewer would show it).
* Animated files (GIF, APNG, WebP, multi-page TIFF): the first frame is used.
* ``1`` (bilevel), ``L`` (grey), ``P`` (palette), ``RGBX``, ``YCbCr``, ``LAB``, ``HSV``, ``CMYK``:
  Pillow's standard conversion to RGB (grey values are replicated to three channels).
* Any alpha (``LA``, ``PA``, ``RGBA``, ``RGBa``, palette with a transparency entry) is composited over
  :data:`ALPHA_BACKGROUND` (white), so transparent regions look as they would on a typical page.
* High bit depth (``I;16*``, ``I``, ``F``): ``I;16`` is divided by 257 (0..65535 -> 0..255). ``I`` and
  ``F`` are kept as-is when all values lie in [0, 255], divided by 257 when they lie in [0, 65535],
  multiplied by 255 for ``F`` images in [0, 1], and otherwise min-max rescaled. 16-bit-per-channel RGB
  PNGs are reduced to 8 bits by Pillow when opened.
* Images with more than ``max_pixels`` pixels are refused from the header, before any decoding, so a
  decompression bomb never allocates its pixels.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Default upper bound on width * height (about a 16k x 12k image).
DEFAULT_MAX_PIXELS = 200_000_000
#: Files larger than this are refused before reading (no photo comes near it; a bigger "image" is a mistake).
MAX_FILE_BYTES = 512 * 2**20
#: Background used when compositing images that have an alpha channel.
ALPHA_BACKGROUND = (255, 255, 255)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".jfif"}
)

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image]  # noqa: UP007 - a runtime alias


class ImageLoadError(Exception):
    """An image could not be loaded. ``source`` names the input, ``reason`` says why."""

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension that the loader understands."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def sniff_image(source: str | os.PathLike | bytes) -> str | None:
    """``None`` when the header of a file (or of bytes, e.g. a tar member) is one the loader can decode, else why
    it is not an image (reads only the header; for folder scans, where extensions lie or are missing)."""
    name = "" if isinstance(source, bytes) else os.fspath(source)
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
            head = handle.read(16)
            if not head:
                return "empty file"
            handle.seek(0)
            try:
                Image.open(handle)
                return None
            except UnidentifiedImageError:
                pass
            except Exception:  # noqa: BLE001, S110 - a damaged image: the loader reports the details
                return None
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    suffix = Path(name).suffix.lower()
    kind = _KNOWN_NON_IMAGES.get(suffix)
    if head.startswith(b"%PDF"):
        kind = "PDF document"
    elif head.lstrip().startswith(b"<") and suffix == ".svg":
        kind = "SVG (vector graphics, not a raster image)"
    return f"not an image ({kind})" if kind else "not an image"


_KNOWN_NON_IMAGES = {".pdf": "PDF document", ".svg": "SVG (vector graphics, not a raster image)", ".txt": "text"}


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    return getattr(source, "name", "<stream>")


def _read_file(path: Path, name: str) -> bytes:
    """The bytes of an image file, refusing non-images from their header alone (a 2 GB non-image is never read
    whole) and files over :data:`MAX_FILE_BYTES`."""
    if not path.exists():
        raise ImageLoadError(name, "file does not exist")
    if path.is_dir():
        raise ImageLoadError(name, "is a directory, not an image file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise ImageLoadError(name, "file is empty (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageLoadError(name, f"file is {size / 2**20:,.0f} MiB, over the limit of {MAX_FILE_BYTES >> 20} MiB")
        with path.open("rb") as handle:
            try:
                Image.open(handle)  # reads only as much of the header as the format needs (not closed: that
                # would close our handle too)
            except UnidentifiedImageError:
                raise ImageLoadError(name, "not a recognised image format") from None
            except Exception:  # noqa: BLE001, S110 - a malformed header is reported by the full open below
                pass
            handle.seek(0)
            # Read into memory: the file handle is closed at once and partial reads cannot race.
            return handle.read()
    except PermissionError:
        raise ImageLoadError(name, "permission denied (the file cannot be read)") from None
    except OSError as exc:
        raise ImageLoadError(name, f"cannot read file: {exc.strerror or exc}") from None


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        source = _read_file(Path(source), name)
    if isinstance(source, bytes):
        if not source:
            raise ImageLoadError(name, "file is empty (0 bytes)")
        source = io.BytesIO(source)
    try:
        return Image.open(source)
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        # Pillow refuses from the header alone when an image is far over its own limit.
        raise ImageLoadError(name, f"image is over the limit of pixels ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a malformed header must become a clear error
        raise ImageLoadError(name, f"cannot read image header: {type(exc).__name__}: {exc}") from None


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        arr = arr.astype(np.float64) / 257.0
    else:
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if lo >= 0 and hi <= 255 and not (img.mode == "F" and hi <= 1.0):
            pass
        elif img.mode == "F" and lo >= 0 and hi <= 1.0:
            arr = arr * 255.0
        elif lo >= 0 and hi <= 65535:
            arr = arr / 257.0
        else:
            arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
    grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("LA", "PA", "RGBA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a decoded Pillow image of any mode to 8-bit RGB by the rules in the module docstring."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return _high_depth_to_rgb(img)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(
    source: ImageSource,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    reduce: int = 1,
    convert: Callable[[Image.Image], Image.Image] = to_rgb,
) -> Image.Image:
    """Load ``source`` (path, bytes, binary stream or PIL image) as an 8-bit RGB PIL image.

    Raises :class:`ImageLoadError` for every failure: missing or empty file, directory, unknown format,
    truncated or corrupt data, an image over ``max_pixels`` pixels (``None`` disables the limit).
    ``reduce`` (2, 4 or 8) decodes a JPEG at that fraction of its size with libjpeg's DCT scaling, so the
    full-size pixels are never allocated (other formats ignore it); ``max_pixels`` applies to the reduced size.
    ``convert`` turns the decoded image into RGB (:func:`to_rgb`, or :func:`to_rgb_in_strips` for the same pixels
    in less memory).
    """
    name = _describe(source)
    img = source if isinstance(source, Image.Image) else _open(source, name)
    try:
        if reduce > 1 and img.format == "JPEG":
            img.draft("RGB", (max(1, img.width // reduce), max(1, img.height // reduce)))
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(name, f"image has no pixels ({width}x{height})")
        if max_pixels is not None and width * height > max_pixels:
            raise ImageLoadError(
                name,
                f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
            )
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        with warnings.catch_warnings():
            # Our own pixel limit replaces Pillow's bomb warning; Pillow's hard limit still applies.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            if img is source:
                img = ImageOps.exif_transpose(img) or img  # a copy: the caller's image is never altered
            else:
                ImageOps.exif_transpose(img, in_place=True)  # upright without a full-size copy when already so
            return convert(img)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, f"refused as a decompression bomb: {exc}") from None
    except MemoryError:
        raise ImageLoadError(name, "not enough memory to decode the image") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        KeyError,
        TypeError,
        ZeroDivisionError,
    ) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason:
            reason = f"file is truncated or incomplete ({reason})"
        raise ImageLoadError(name, f"cannot decode image: {reason}") from None
    except Exception as exc:  # noqa: BLE001 - a decoder bug must become a clear error, not a crash
        raise ImageLoadError(name, f"cannot decode image: {type(exc).__name__}: {exc}") from None


def read_header(source: ImageSource) -> Image.Image:
    """``source`` opened but not decoded: its size, mode and format come from the header alone (a bomb costs
    nothing here). Raises :class:`ImageLoadError` as :func:`load_image` does for an unreadable header."""
    return source if isinstance(source, Image.Image) else _open(source, _describe(source))


#: Pixels converted at a time by :func:`to_rgb_in_strips` (a band of rows of a quarter megapixel).
STRIP_PIXELS = 2**18


def to_rgb_in_strips(img: Image.Image, strip_pixels: int = STRIP_PIXELS) -> Image.Image:
    """The pixels of :func:`to_rgb`, converted a band of rows at a time into the result, so an image with alpha or
    16 bits is never held as several full-size copies (compositing alone makes three). Every rule of
    :func:`to_rgb` maps each pixel on its own, except the range of ``I`` and ``F`` images, which depends on the
    whole image: those are converted whole."""
    if img.mode in ("RGB", "I", "F"):
        return to_rgb(img)
    width, height = img.size
    rows = max(1, strip_pixels // max(1, width))
    out = Image.new("RGB", (width, height))
    for top in range(0, height, rows):
        box = (0, top, width, min(top + rows, height))
        out.paste(to_rgb(img.crop(box)), box[:2])
    return out


def load_image_array(source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """:func:`load_image` as an ``H x W x 3`` uint8 array."""
    return np.asarray(load_image(source, max_pixels=max_pixels), dtype=np.uint8)
