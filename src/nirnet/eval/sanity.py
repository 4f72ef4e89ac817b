"""A JPEG-trace-only scorer: it looks at nothing but 8x8 block artefacts.

Real photos are usually JPEG and generated images usually PNG, so on raw files this "detector" scores well for
the wrong reason. Under the aligned protocol (both classes re-encoded alike) it must fall to chance; if it does
not, the protocol leaks the file format.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def blockiness(img: Image.Image) -> float:
    """Ratio of the mean absolute step across 8-px block boundaries to the mean step inside blocks (1 = none)."""
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    steps_x = np.abs(np.diff(grey, axis=1))
    steps_y = np.abs(np.diff(grey, axis=0))
    cols = np.arange(steps_x.shape[1]) % 8 == 7
    rows = np.arange(steps_y.shape[0]) % 8 == 7
    boundary = steps_x[:, cols].mean() + steps_y[rows].mean()
    inside = steps_x[:, ~cols].mean() + steps_y[~rows].mean()
    return float(boundary / (inside + 1e-6))


def jpeg_trace_scorer(images: Sequence[Image.Image]) -> list[float]:
    """Probability-like score of "generated" = no visible JPEG grid."""
    return [float(1 / (1 + np.exp(20 * (blockiness(img) - 1.05)))) for img in images]
