"""Pictures for people: a noise map and a spectrum as PNG data URLs (what the web page shows)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def noise_map_png(noise: np.ndarray) -> bytes:
    """``H x W x 3`` noise residual -> PNG, mid-grey at zero and +-3 standard deviations at the extremes."""
    spread = 3 * float(noise.std()) or 1.0
    pixels = np.clip(127.5 + 127.5 * (noise - noise.mean()) / spread, 0, 255).astype(np.uint8)
    return _png(Image.fromarray(pixels))


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
