"""Conversions between 8-bit RGB images (PIL or ``H x W x 3`` arrays) and ``3 x H x W`` tensors.

Written once here because the rounding matters: a float image is quantised with ``round`` (not truncation) to 8 bits,
exactly as a saved image would be.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """``3 x H x W`` uint8 tensor of an RGB image (a copy: the image's buffer is never shared)."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def to_float_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """``1 x 3 x H x W`` float tensor in [0, 1] of an RGB image (a batch of one, as models take it)."""
    return to_uint8_tensor(img)[None].float() / 255


def to_uint8_array(x: torch.Tensor) -> np.ndarray:
    """``H x W x 3`` uint8 array of a ``3 x H x W`` float tensor in [0, 1] (clamped, rounded)."""
    return (x.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def to_image(x: torch.Tensor) -> Image.Image:
    """RGB PIL image of a ``3 x H x W`` float tensor in [0, 1]."""
    return Image.fromarray(to_uint8_array(x))
