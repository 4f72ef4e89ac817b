"""Decoding an upload within the service's memory budget: the cost is read from the header, before any pixel.

:func:`plan_decode` reads an upload's header and says at what scale it will be decoded and how many bytes that
takes at most; :func:`prepare_upload` then decodes it (JPEG at reduced scale when planned so, alpha and 16-bit
images converted to RGB a band of rows at a time), cuts the crops the model reads and lets the pixels go.
An image that fits neither the pixel limit nor the budget at any scale is refused with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from ..data.io import STRIP_PIXELS, ImageLoadError, load_image, read_header, to_rgb_in_strips
from ..detect import PreparedImage, prepare_source

#: Bytes per pixel Pillow stores for each mode (every mode not listed takes 4, RGB included).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: ``I`` and ``F`` images are converted whole through several float64 arrays (their range depends on every pixel).
_WHOLE_IMAGE_BYTES = 48
#: Per pixel of one band of a conversion in strips (alpha compositing: four 4-byte images; 16-bit: float64 steps).
_STRIP_BYTES = 32
#: Formats Pillow can decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling).
_REDUCIBLE = ("JPEG", "MPO")
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class DecodePlan:
    reduce: int  # 1 = full size; 2, 4, 8 = that fraction of each side (JPEG only)
    cost: int  # bytes held at most while decoding, converting and cropping


def decode_cost(width: int, height: int, mode: str, rotated: bool = True, crop_copy: bool = False) -> int:
    """Bytes at most while an image is decoded (``mode`` as Pillow stores it), turned upright (EXIF), converted to
    RGB in strips and cut into crops (``crop_copy``: crops cut from a full-size array, a model at input scale 1)."""
    pixels = width * height
    if mode in ("I", "F"):
        return pixels * _WHOLE_IMAGE_BYTES
    stored = _STORED_BYTES.get(mode, 4)
    if mode == "RGB":
        held = stored * (2 if rotated else 1)  # a rotation copies; nothing to convert
        strips = 0
    else:
        held = stored + 4  # the decoded image beside the RGB result (a rotation copy is no larger)
        strips = min(pixels, STRIP_PIXELS) * _STRIP_BYTES
    if crop_copy:
        held = max(held, 4 + 3)  # the RGB image and its uint8 array
    return pixels * held + strips


def plan_decode(header: Image.Image, max_pixels: int, budget_bytes: int, crop_copy: bool = False) -> DecodePlan:
    """The smallest reduction (none when possible) at which ``header``'s image fits both ``max_pixels`` and
    ``budget_bytes``; :class:`ImageLoadError` with the reason when none does."""
    width, height = header.size
    rotated = _orientation(header) != 1
    scales = (1, 2, 4, 8) if header.format in _REDUCIBLE else (1,)
    for reduce in scales:
        w, h = math.ceil(width / reduce), math.ceil(height / reduce)
        cost = decode_cost(w, h, header.mode, rotated, crop_copy)
        if w * h <= max_pixels and cost <= budget_bytes:
            return DecodePlan(reduce, cost)
    if width * height > max_pixels and len(scales) == 1:
        reason = f"image is {width}x{height} = {width * height:,} pixels, over the service's limit of {max_pixels:,}"
    else:
        full = decode_cost(width, height, header.mode, rotated, crop_copy)
        reason = (
            f"image is {width}x{height} ({header.mode}) and needs about {full / 2**20:,.0f} MiB to decode, over the "
            f"service's decoding memory of {budget_bytes / 2**20:,.0f} MiB"
        )
    raise ImageLoadError("upload", reason)


def _orientation(header: Image.Image) -> int | None:
    """The EXIF orientation when the header holds it (JPEG; 1 when absent); None when unknown."""
    if header.format not in _REDUCIBLE:
        return None  # elsewhere EXIF may follow the pixels: reading it would decode them
    try:
        return header.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF: assume the rotation (the safe estimate)
        return None


def plan_upload(
    file: BinaryIO, max_pixels: int, budget_bytes: int, crop_copy: bool = False
) -> tuple[DecodePlan | None, str | None]:
    """(plan, None), or (None, why the upload cannot be decoded) from its header alone."""
    try:
        file.seek(0)
        return plan_decode(read_header(file), max_pixels, budget_bytes, crop_copy), None
    except ImageLoadError as exc:
        return None, exc.reason


def prepare_upload(
    config, file: BinaryIO, name: str, plan: DecodePlan, max_pixels: int
) -> tuple[PreparedImage | None, str | None]:
    """(prepared image, None) or (None, reason): the decoded image lives only inside this call."""
    file.seek(0)
    return prepare_source(
        config,
        file,
        name,
        decode=lambda f: load_image(f, max_pixels=max_pixels, reduce=plan.reduce, convert=to_rgb_in_strips),
    )
