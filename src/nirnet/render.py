"""Pictures for people: residuals, noise maps and spectra as 8-bit images and PNG data URLs (numpy + Pillow only)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def residual_to_uint8(residual: np.ndarray) -> np.ndarray:
    """A zero-centred residual (any shape) -> uint8, mid-grey at its mean and +-3 standard deviations at the ends."""
    spread = 3 * float(residual.std()) or 1.0
    return np.clip(127.5 + 127.5 * (residual - residual.mean()) / spread, 0, 255).astype(np.uint8)


def noise_map_png(noise: np.ndarray) -> bytes:
    """``H x W x 3`` noise residual -> PNG (see :func:`residual_to_uint8`)."""
    return _png(Image.fromarray(residual_to_uint8(noise)))


def spectrum_png(spectrum: np.ndarray) -> bytes:
    """``H x W`` log-magnitude spectrum -> greyscale PNG stretched between its 1st and 99.5th percentiles."""
    lo, hi = np.percentile(spectrum, [1, 99.5])
    scaled = np.clip((spectrum - lo) / max(hi - lo, 1e-6), 0, 1)
    return _png(Image.fromarray((scaled * 255).astype(np.uint8)))


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
