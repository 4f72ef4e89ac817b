"""How a model reads an image: one :class:`PreprocessConfig` (carried in the model's config) and one
:func:`inference_transform` built from it, used by the detector, export, evaluation and the benchmarks.

Training reads the same numbers from the model (``engine.train``): its crops are cut at the model's crop size from
images resized by the model's input scale, so a training crop is what the model reads at inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from .degrade import pad_to, resize

#: Relative crop positions in order of preference: centre, quadrant centres, edge midpoints, corners.
CROP_POSITIONS: tuple[tuple[float, float], ...] = (
    (0.5, 0.5),
    (0.25, 0.25),
    (0.75, 0.75),
    (0.75, 0.25),
    (0.25, 0.75),
    (0.5, 0.0),
    (0.5, 1.0),
    (0.0, 0.5),
    (1.0, 0.5),
    (0.0, 0.0),
    (1.0, 1.0),
    (1.0, 0.0),
    (0.0, 1.0),
)
RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessConfig:
    """What a model reads of an image: up to ``num_crops`` crops of ``crop_size`` px at ``positions`` (relative,
    in order of preference) of the image resized by ``input_scale`` with ``interpolation``; crop offsets are
    multiples of ``align`` px where the image allows, so decoder and JPEG grids keep their phase."""

    crop_size: int = 256  # crop side in pixels of the image as read (after input_scale)
    num_crops: int = 4  # crops per image at inference; logits are averaged
    positions: tuple[tuple[float, float], ...] = CROP_POSITIONS
    # Every image is resized by this factor before its crops are taken, in training (after the JPEG step) and at
    # inference; 1.0 reads native pixels. The shipped default reads at 1.5 (docs/RESULTS.md section 6f).
    input_scale: float = 1.0
    align: int = 16
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if not self.input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {self.input_scale}")
        if self.crop_size < 1 or self.num_crops < 1 or self.align < 1:
            raise ValueError(f"crop_size, num_crops and align must be >= 1, got {self}")
        if self.interpolation not in RESAMPLING:
            raise ValueError(f"interpolation must be one of {', '.join(RESAMPLING)}, got {self.interpolation!r}")
        if not self.positions or any(len(p) != 2 or not all(0 <= c <= 1 for c in p) for p in self.positions):
            raise ValueError(f"positions must be (u, v) pairs in [0, 1], got {self.positions}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """From a ``config.json``'s ``preprocess`` object (JSON lists back to tuples); unknown keys are an error."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown preprocess keys: {unknown}")
        data = dict(data)
        if "positions" in data:
            data["positions"] = tuple(tuple(float(c) for c in p) for p in data["positions"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> PreprocessConfig:
        return self.from_dict({**self.to_dict(), **changes})

    @property
    def resample(self) -> Image.Resampling:
        return RESAMPLING[self.interpolation]


PREPROCESS_KEYS = frozenset(f.name for f in fields(PreprocessConfig))


def crop_boxes(
    width: int, height: int, config: PreprocessConfig, num_crops: int | None = None
) -> list[tuple[int, int]]:
    """Top-left corners of up to ``num_crops`` (default: the config's) crops in a ``width`` x ``height`` image (at
    least a crop on each side): offsets are multiples of ``config.align`` where possible, duplicates dropped."""
    size, align = config.crop_size, config.align
    boxes: list[tuple[int, int]] = []
    for u, v in config.positions[: num_crops or config.num_crops]:
        left = int(u * (width - size)) // align * align
        top = int(v * (height - size)) // align * align
        if (left, top) not in boxes:
            boxes.append((left, top))
    return boxes


def image_crops(
    image: Image.Image, config: PreprocessConfig, num_crops: int | None = None, as_uint8: bool = False
) -> torch.Tensor:
    """Crops of an RGB image: ``K x 3 x S x S`` float in [0, 1] (or uint8 pixels with ``as_uint8``, a quarter of
    the memory while they wait for the model), ``K <= num_crops``, cut from the image resized by ``input_scale``.

    Padding policy: an image smaller than the crop on either side (after the resize) is mirror-padded at the
    bottom/right to the crop size. A resized crop is resampled from its own region of the original (Pillow's
    ``box``), which gives the pixels of the crop of the whole resized image without ever holding that image: a
    40 MP upload stays 40 MP.
    """
    size, scale = config.crop_size, config.input_scale
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    if scale != 1.0 and width >= size and height >= size:
        fx, fy = image.width / width, image.height / height
        pieces = [
            np.asarray(
                image.resize(
                    (size, size),
                    config.resample,
                    box=(left * fx, top * fy, (left + size) * fx, (top + size) * fy),
                )
            )
            for left, top in crop_boxes(width, height, config, num_crops)
        ]
    else:
        if scale != 1.0:  # smaller than a crop once resized: cheap to resize whole, then pad
            image = resize(image, scale, config.resample)
        arr = np.asarray(pad_to(image, size))
        boxes = crop_boxes(arr.shape[1], arr.shape[0], config, num_crops)
        pieces = [arr[t : t + size, l : l + size] for l, t in boxes]  # noqa: E741
    crops = torch.from_numpy(np.stack(pieces)).permute(0, 3, 1, 2)
    return crops.contiguous() if as_uint8 else crops.float() / 255


def whole_view(image: Image.Image, size: int, as_uint8: bool = False) -> torch.Tensor:
    """The whole image resized (antialiased bicubic) to ``size`` x ``size``: ``1 x 3 x size x size`` in [0, 1]
    (uint8 pixels with ``as_uint8``), for a semantic branch trained on whole-image views."""
    resized = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    view = torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)[None]
    return view if as_uint8 else view.float() / 255


class ModelConfigLike(Protocol):
    """What :func:`inference_transform` reads of a model config (``nirnet.models.config.DetectorConfig``)."""

    preprocess: PreprocessConfig

    @property
    def view_size(self) -> int | None: ...


@dataclass(frozen=True)
class ModelInput:
    """An image as the model reads it: crops ``K x 3 x S x S`` and, for whole-image semantic models, the view."""

    crops: torch.Tensor
    view: torch.Tensor | None = None


@dataclass(frozen=True)
class InferenceTransform:
    """RGB ``PIL`` image -> :class:`ModelInput`; built by :func:`inference_transform`."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    view_size: int | None = None  # side of the whole-image view; None: the model reads crops only

    def crops(self, image: Image.Image, num_crops: int | None = None, as_uint8: bool = False) -> torch.Tensor:
        return image_crops(image, self.preprocess, num_crops, as_uint8)

    def __call__(self, image: Image.Image, num_crops: int | None = None, as_uint8: bool = False) -> ModelInput:
        view = whole_view(image, self.view_size, as_uint8) if self.view_size else None
        return ModelInput(self.crops(image, num_crops, as_uint8), view)


def inference_transform(config: ModelConfigLike | PreprocessConfig) -> InferenceTransform:
    """The one inference transform of a model config (or of a bare :class:`PreprocessConfig`: crops only)."""
    if isinstance(config, PreprocessConfig):
        return InferenceTransform(config)
    return InferenceTransform(config.preprocess, config.view_size)
