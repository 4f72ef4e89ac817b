"""Sampling weights that balance training data by generator family and by real-photo source.

Without them a family with 80 images is drawn 40 times as often as one with 2, and the detector learns "generated"
mostly from the large families; 800 small web JPEGs likewise drown 50 full-resolution camera photos.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .families import family_of


def family_weights(generators: Sequence[str], min_images: int = 8) -> list[float]:
    """One weight per image: each family gets the same total, scaled down to ``n / min_images`` for a family
    of fewer than ``min_images`` images (so three tiles of one prompt are not drawn as often as 40 images)."""
    families = [family_of(g) for g in generators]
    counts = Counter(families)
    return [min(1.0, counts[f] / max(1, min_images)) / counts[f] for f in families]


def source_of(path: str | Path) -> str:
    """A real photo's source: the folder it lies in (``real-train/imagenet``, ``real-train/camera``, ...)."""
    return str(Path(path).parent)


def source_weights(paths: Sequence[str | Path]) -> list[float]:
    """One weight per path: each source folder gets the same total whatever its size."""
    sources = [source_of(p) for p in paths]
    counts = Counter(sources)
    return [1.0 / counts[s] for s in sources]
