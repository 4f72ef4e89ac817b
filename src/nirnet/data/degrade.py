"""Image degradations shared by training augmentation and robustness evaluation.

All functions are pure: they take an RGB ``PIL.Image`` and return a new one. Random choices are drawn once into
a :class:`DegradeParams` by :func:`sample_params` and then applied with :func:`apply`; applying the *same* params
to a real image and its generated twin (:func:`apply_paired`) gives both the same post-processing, so that JPEG,
blur, resizing or crop position cannot separate the classes.

Order of operations in :func:`apply`: blur -> resize -> JPEG -> crop. JPEG comes before the crop because in the
wild an image is compressed whole and then seen at any position; it means a crop's 8x8 block grid is not always
aligned with its top-left corner.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode as JPEG at ``quality`` (1-95 recommended, up to 100) in memory with Pillow."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def gaussian_blur(img: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur with standard deviation ``sigma`` pixels (0 returns a copy)."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return img.copy()
    return img.filter(ImageFilter.GaussianBlur(radius=float(sigma)))


def resize(img: Image.Image, scale: float) -> Image.Image:
    """Scale both sides by ``scale`` with an antialiased bicubic filter (at least 1 px per side)."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    width, height = img.size
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == img.size:
        return img.copy()
    # Pillow's resampling filters widen their support when shrinking, i.e. they antialias.
    return img.resize(size, resample=Image.Resampling.BICUBIC)


def pad_to(img: Image.Image, size: int) -> Image.Image:
    """Pad an image smaller than ``size`` on either side by mirror reflection, keeping it at the top-left.

    Mirroring keeps the local noise statistics close to the image's own (zero padding would add a hard edge).
    """
    width, height = img.size
    if width >= size and height >= size:
        return img
    arr = np.asarray(img)
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    return Image.fromarray(np.pad(arr, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric"))


def crop(img: Image.Image, size: int, u: float = 0.5, v: float = 0.5) -> Image.Image:
    """Square crop of ``size`` at relative position (``u``, ``v``) in [0, 1] (0.5, 0.5 = centre).

    Images smaller than ``size`` are first padded with :func:`pad_to`. No resampling happens.
    """
    img = pad_to(img, size)
    width, height = img.size
    left = round(u * (width - size))
    top = round(v * (height - size))
    return img.crop((left, top, left + size, top + size))


def center_crop(img: Image.Image, max_size: int) -> Image.Image:
    """Centre crop each side to at most ``max_size`` (smaller sides are left as they are, never padded)."""
    width, height = img.size
    new_w, new_h = min(width, max_size), min(height, max_size)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return img.crop((left, top, left + new_w, top + new_h))


@dataclass(frozen=True)
class DegradeConfig:
    """Probabilities and ranges of the random post-processing used in training."""

    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (65, 100)
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    resize_prob: float = 0.2
    resize_scale: tuple[float, float] = (0.5, 1.5)
    crop_size: int | None = 256


@dataclass(frozen=True)
class DegradeParams:
    """One concrete draw of the post-processing; ``None`` means the step is skipped."""

    blur_sigma: float | None = None
    resize_scale: float | None = None
    jpeg_quality: int | None = None
    crop_size: int | None = None
    crop_u: float = 0.5
    crop_v: float = 0.5


def sample_params(config: DegradeConfig, rng: np.random.Generator) -> DegradeParams:
    """Draw one :class:`DegradeParams` from ``config`` using ``rng`` (always the same number of draws)."""
    draws = rng.random(8)
    return DegradeParams(
        blur_sigma=float(np.interp(draws[1], [0, 1], config.blur_sigma)) if draws[0] < config.blur_prob else None,
        resize_scale=float(np.interp(draws[3], [0, 1], config.resize_scale)) if draws[2] < config.resize_prob else None,
        jpeg_quality=int(round(np.interp(draws[5], [0, 1], config.jpeg_quality)))
        if draws[4] < config.jpeg_prob
        else None,
        crop_size=config.crop_size,
        crop_u=float(draws[6]),
        crop_v=float(draws[7]),
    )


def apply(img: Image.Image, params: DegradeParams) -> Image.Image:
    """Apply ``params`` to one image: blur -> resize -> JPEG -> crop."""
    if params.blur_sigma is not None:
        img = gaussian_blur(img, params.blur_sigma)
    if params.resize_scale is not None:
        img = resize(img, params.resize_scale)
    if params.jpeg_quality is not None:
        img = jpeg(img, params.jpeg_quality)
    if params.crop_size is not None:
        img = crop(img, params.crop_size, params.crop_u, params.crop_v)
    return img


def apply_paired(real: Image.Image, fake: Image.Image, params: DegradeParams) -> tuple[Image.Image, Image.Image]:
    """Apply the *same* draw to a real image and its generated twin (which must have the same size)."""
    if real.size != fake.size:
        raise ValueError(f"paired images must have the same size, got {real.size} and {fake.size}")
    return apply(real, params), apply(fake, params)
