"""In-memory pools of native-resolution crops, for fitting small models on real photos without a data loader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .degrade import crop
from .io import ImageLoadError, load_image


def crop_pool(
    paths: Sequence[str | Path],
    size: int,
    per_image: int = 1,
    seed: int = 0,
    skip_smaller: bool = True,
) -> torch.Tensor:
    """``N x 3 x size x size`` uint8 crops, ``per_image`` random ones from each loadable image (no resampling).

    Images smaller than ``size`` are skipped (``skip_smaller``) or mirror-padded; unreadable files are skipped.
    """
    rng = np.random.default_rng(seed)
    crops = []
    for path in paths:
        try:
            img = load_image(path)
        except ImageLoadError:
            continue
        if skip_smaller and min(img.size) < size:
            continue
        for _ in range(per_image):
            u, v = rng.random(2)
            crops.append(np.asarray(crop(img, size, float(u), float(v))))
    if not crops:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float32 in [0, 1]."""
    return batch.float().div_(255)
