"""Near-duplicate fingerprints: the same picture resized, re-encoded or re-saved gets (almost) the same bits.

A held-out check by file hash misses a photo that another package ships at another size or quality (wallpaper
sets share photos), so the corpus builder also compares a perceptual hash of each built image against the
evaluation images: the signs of the 16 x 16 lowest 2-D DCT frequencies of the grey image at 64 x 64, against their
median (a "pHash"). Two fingerprints per image, the whole frame and its centre square (a copy cut to a centre
square still matches). A copy cropped elsewhere, or by more than a few per cent, is not caught: this is a net for
resized and re-encoded copies, not a proof of disjointness.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .io import to_rgb

SIZE = 64  # the grey image is read at 64 x 64
KEEP = 16  # 16 x 16 lowest frequencies: 256 bits per view (the constant term is left out of the median)
NEAR = 0.15  # bench-dev: copies at 0.15-0.8x, JPEG 60-95 differ in <= 5 % of the bits, unrelated images in >= 30 %


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``M @ x`` is the DCT of a column ``x``."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    m = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= np.sqrt(2)
    return m


def _bits(gray: Image.Image) -> np.ndarray:
    pixels = np.asarray(gray.resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    m = _dct_matrix(SIZE)
    low = (m @ pixels @ m.T)[:KEEP, :KEEP].ravel()
    return low > np.median(low[1:])


def fingerprints(source: str | Path | bytes | Image.Image) -> np.ndarray:
    """``(2, 256)`` bits of an image (a path, encoded bytes or a PIL image): the whole frame, the centre square."""
    if isinstance(source, Image.Image):
        img = source
    else:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        img.draft("L", (4 * SIZE, 4 * SIZE))  # a JPEG decodes at a fraction of its size: fast on 20 MP photos
    # The loader's own RGB rules (alpha over its background, 16-bit and float scaled): the pixels the detector reads.
    gray = to_rgb(ImageOps.exif_transpose(img)).convert("L")
    side = min(gray.size)
    left, top = (gray.width - side) // 2, (gray.height - side) // 2
    return np.stack([_bits(gray), _bits(gray.crop((left, top, left + side, top + side)))])


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest fraction of differing bits between any view of ``a`` and any view of ``b``."""
    return float(min(np.mean(x != y) for x in a for y in b))


def is_near_duplicate(a: np.ndarray, b: np.ndarray, tolerance: float = NEAR) -> bool:
    return distance(a, b) <= tolerance
