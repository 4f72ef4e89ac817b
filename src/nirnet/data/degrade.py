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


def resize(img: Image.Image, scale: float, resample: Image.Resampling = Image.Resampling.BICUBIC) -> Image.Image:
    """Scale both sides by ``scale`` with an antialiased filter, bicubic by default (at least 1 px per side)."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    width, height = img.size
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == img.size:
        return img.copy()
    # Pillow's resampling filters widen their support when shrinking, i.e. they antialias.
    return img.resize(size, resample=resample)


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


@dataclass(frozen=True)
class DegradeParams:
    """One concrete draw of the post-processing; ``None`` means the step is skipped."""

    blur_sigma: float | None = None
    resize_scale: float | None = None
    jpeg_quality: int | None = None
    crop_size: int | None = None
    crop_u: float = 0.5
    crop_v: float = 0.5
    # How the model reads an image (its ``PreprocessConfig``): resized by ``input_scale`` with ``interpolation``
    # after the JPEG and before the crop, where inference resizes it: as it arrives, compression included.
    input_scale: float = 1.0
    interpolation: str = "bicubic"


def sample_params(
    config: DegradeConfig,
    rng: np.random.Generator,
    crop_size: int | None = None,
    input_scale: float = 1.0,
    interpolation: str = "bicubic",
) -> DegradeParams:
    """Draw one :class:`DegradeParams` from ``config`` using ``rng`` (always the same number of draws); the crop
    size, input scale and interpolation are the model's (training passes its ``PreprocessConfig``'s)."""
    draws = rng.random(8)
    return DegradeParams(
        blur_sigma=float(np.interp(draws[1], [0, 1], config.blur_sigma)) if draws[0] < config.blur_prob else None,
        resize_scale=float(np.interp(draws[3], [0, 1], config.resize_scale)) if draws[2] < config.resize_prob else None,
        jpeg_quality=int(round(np.interp(draws[5], [0, 1], config.jpeg_quality)))
        if draws[4] < config.jpeg_prob
        else None,
        crop_size=crop_size,
        crop_u=float(draws[6]),
        crop_v=float(draws[7]),
        input_scale=input_scale,
        interpolation=interpolation,
    )


def apply(img: Image.Image, params: DegradeParams) -> Image.Image:
    """Apply ``params`` to one image: blur -> resize -> JPEG -> the model's input scale -> crop."""
    if params.blur_sigma is not None:
        img = gaussian_blur(img, params.blur_sigma)
    if params.resize_scale is not None:
        img = resize(img, params.resize_scale)
    if params.jpeg_quality is not None:
        img = jpeg(img, params.jpeg_quality)
    if params.input_scale != 1.0:
        img = resize(img, params.input_scale, Image.Resampling[params.interpolation.upper()])
    if params.crop_size is not None:
        img = crop(img, params.crop_size, params.crop_u, params.crop_v)
    return img


def apply_paired(real: Image.Image, fake: Image.Image, params: DegradeParams) -> tuple[Image.Image, Image.Image]:
    """Apply the *same* draw to a real image and its generated twin (which must have the same size)."""
    if real.size != fake.size:
        raise ValueError(f"paired images must have the same size, got {real.size} and {fake.size}")
    return apply(real, params), apply(fake, params)


# --- Shortcut removal for training pairs ---------------------------------------------------------------------------
# A real photo carries its own compression history (an 8x8 JPEG grid) and its own sharpness; a reconstruction or a
# simulated twin is grid-free and, from a blurry decoder, smoother. Either cue separates a pair without any imprint
# (and both invert on real generators), so the pair builder removes them before the pair's shared post-processing.


@dataclass(frozen=True)
class JpegHistory:
    """The quantisation tables and chroma subsampling a JPEG file was saved with."""

    qtables: tuple[tuple[int, ...], ...]
    subsampling: int  # Pillow's code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0


def read_jpeg_history(path) -> JpegHistory | None:
    """The JPEG history of a file, or ``None`` when it is not a (baseline-readable) JPEG."""
    from PIL import JpegImagePlugin

    try:
        with Image.open(path) as img:
            if img.format != "JPEG" or not getattr(img, "quantization", None):
                return None
            tables = tuple(tuple(int(v) for v in img.quantization[i]) for i in sorted(img.quantization))
            sampling = JpegImagePlugin.get_sampling(img)
    except (OSError, ValueError, SyntaxError):
        return None
    return JpegHistory(tables, max(int(sampling), 0))


def apply_jpeg_history(img: Image.Image, history: JpegHistory | None) -> Image.Image:
    """Re-encode ``img`` with the exact tables and subsampling of ``history`` (identity for ``None``).

    Applied to a twin cut at a 16-px aligned offset of its photo, this gives the twin the same 8x8 grid, at the
    same positions and strengths, as the photo it came from.
    """
    if history is None:
        return img
    buffer = io.BytesIO()
    img.convert("RGB").save(
        buffer, format="JPEG", qtables=[list(t) for t in history.qtables], subsampling=history.subsampling
    )
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


@dataclass(frozen=True)
class SharpnessConfig:
    """Random, *unpaired* blur or sharpening of each half of a pair, so that smoothness carries no label."""

    prob: float = 0.3  # per image; half of the hits blur, half sharpen
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    sharpen_percent: tuple[int, int] = (30, 150)  # unsharp-mask strength (radius 1 px)


def sharpness_jitter(img: Image.Image, config: SharpnessConfig, rng: np.random.Generator) -> Image.Image:
    """Blur, sharpen or keep ``img`` (always three draws from ``rng``, so streams stay aligned)."""
    hit, kind, amount = rng.random(3)
    if hit >= config.prob:
        return img
    if kind < 0.5:
        return gaussian_blur(img, float(np.interp(amount, [0, 1], config.blur_sigma)))
    percent = int(round(np.interp(amount, [0, 1], config.sharpen_percent)))
    return img.filter(ImageFilter.UnsharpMask(radius=1.0, percent=percent, threshold=0))


def luma(img: Image.Image) -> np.ndarray:
    """BT.601 luma of an RGB image as float32 (0-255)."""
    x = np.asarray(img, dtype=np.float32)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def sharpness_score(img: Image.Image) -> float:
    """Log mean absolute Laplacian over log mean absolute gradient of the luma: higher = sharper / noisier.

    A ratio of two derivatives, so it measures how much of the image's variation sits at the finest scale
    rather than how much texture the scene has.
    """
    y = luma(img)
    lap = np.abs(4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]).mean()
    grad = (np.abs(np.diff(y, axis=1)).mean() + np.abs(np.diff(y, axis=0)).mean()) / 2
    return float(np.log(lap + 1e-3) - np.log(grad + 1e-3))


def _soften_or_sharpen(img: Image.Image, t: float) -> Image.Image:
    """``t < 0``: Gaussian blur of sigma ``-1.5 t``; ``t > 0``: unsharp mask of ``400 t`` percent; 0: unchanged."""
    if t < 0:
        return gaussian_blur(img, -1.5 * t)
    if t > 0:
        return img.filter(ImageFilter.UnsharpMask(radius=1.0, percent=int(round(400 * t)), threshold=0))
    return img


def match_sharpness(img: Image.Image, reference: Image.Image, iterations: int = 6) -> Image.Image:
    """Blur or sharpen ``img`` until its :func:`sharpness_score` equals ``reference``'s (bisection on the
    strength in [-1, 1]; the score grows monotonically with it). Used on a fake twin against its own photo, so that
    the twin's structure may differ from the photo's but its overall fineness does not.

    Runs in the data loader for every twin, so it evaluates only the bisection points (``iterations`` filters and
    scores) and returns the closest one; a target outside the range converges to the nearer end."""
    target = sharpness_score(reference)
    score = sharpness_score(img)  # the first bisection point, t = 0, is the image itself
    best, best_gap = img, abs(score - target)
    lo, hi = (0.0, 1.0) if score < target else (-1.0, 0.0)
    for _ in range(iterations - 1):
        mid = (lo + hi) / 2
        candidate = _soften_or_sharpen(img, mid)
        score = sharpness_score(candidate)
        if abs(score - target) < best_gap:
            best, best_gap = candidate, abs(score - target)
        if score < target:
            lo = mid
        else:
            hi = mid
    return best


def noise_floor(img: Image.Image) -> float:
    """Donoho's estimate of the luma noise level in 8-bit units: median absolute diagonal Haar coefficient over
    0.6745 (robust to edges, so it measures the sensor / compression noise floor rather than the texture)."""
    y = luma(img)
    h, w = y.shape[0] // 2 * 2, y.shape[1] // 2 * 2
    b = y[:h, :w].reshape(h // 2, 2, w // 2, 2)
    diagonal = (b[:, 0, :, 0] - b[:, 0, :, 1] - b[:, 1, :, 0] + b[:, 1, :, 1]) / 2
    return float(np.median(np.abs(diagonal)) / 0.6745)


def match_noise_floor(
    img: Image.Image, reference: Image.Image, rng: np.random.Generator, colour: bool = False
) -> Image.Image:
    """Add grey Gaussian noise to ``img`` until its :func:`noise_floor` reaches ``reference``'s (a reconstruction
    loses the photo's sensor noise; without this, "less noise" alone would mark the twin). Never removes noise.
    ``colour``: independent noise per channel, as a sensor's is (it also breaks up a palette-quantised image)."""
    have, want = noise_floor(img), noise_floor(reference)
    if have >= want:
        return img
    sigma = float(np.sqrt(want**2 - have**2))
    noise = rng.normal(0.0, sigma, (img.height, img.width, 3 if colour else 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.round(np.asarray(img, dtype=np.float32) + noise), 0, 255).astype(np.uint8))
