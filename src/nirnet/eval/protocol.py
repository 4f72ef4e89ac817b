"""Evaluation protocols: what happens to every image, of both classes alike, before a detector sees it.

* ``aligned`` (the default): centre crop to at most 512 px a side, then JPEG quality 90. Real photos are mostly
  JPEG and generated images mostly PNG; passing both through the same crop and compression removes format,
  size and compression history as shortcuts.
* ``raw``: the files as they are (reported separately, never alone).

Robustness grid (METHOD.md section 5): after the protocol's crop, one degradation is applied to both classes,
then the protocol's JPEG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from ..data import degrade

Transform = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True)
class Protocol:
    name: str
    max_side: int | None = 512
    jpeg_quality: int | None = 90

    def __call__(self, img: Image.Image, extra: Transform | None = None) -> Image.Image:
        return self.finish(self.crop(img), extra)

    def crop(self, img: Image.Image) -> Image.Image:
        """The first step (centre crop), the same for every robustness cell: done once per image."""
        return degrade.center_crop(img, self.max_side) if self.max_side else img

    def finish(self, img: Image.Image, extra: Transform | None = None) -> Image.Image:
        """The steps after :meth:`crop`: the optional degradation, then the protocol's JPEG."""
        if extra is not None:
            img = extra(img)
        if self.jpeg_quality:
            img = degrade.jpeg(img, self.jpeg_quality)
        return img


PROTOCOLS = {"aligned": Protocol("aligned", 512, 90), "raw": Protocol("raw", None, None)}


def robustness_grid() -> list[tuple[str, str, float, Transform]]:
    """(family, label, value, transform) for every cell of the grid."""
    grid: list[tuple[str, str, float, Transform]] = []
    for q in (95, 90, 80, 70, 60, 50):
        grid.append(("jpeg", f"jpeg{q}", q, lambda im, q=q: degrade.jpeg(im, q)))
    for sigma in (1.0, 2.0, 3.0):
        grid.append(("blur", f"blur{sigma:g}", sigma, lambda im, s=sigma: degrade.gaussian_blur(im, s)))
    for scale in (0.5, 0.75, 1.5):
        grid.append(("resize", f"resize{scale:g}", scale, lambda im, s=scale: degrade.resize(im, s)))
    return grid


def degradation(label: str) -> Transform:
    """The transform of the robustness grid's cell ``label`` (e.g. ``blur2``, ``jpeg70``, ``resize0.5``)."""
    for _, name, _, transform in robustness_grid():
        if name == label:
            return transform
    raise ValueError(f"unknown degradation {label!r}; one of {', '.join(c[1] for c in robustness_grid())}")
