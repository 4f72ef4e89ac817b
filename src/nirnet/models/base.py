"""What every detector model shares: preprocessing from its config, scoring, and pickle-free save/load.

A detector is an ``nn.Module`` whose ``forward(crops, view=None, crops_per_view=1)`` returns one logit per crop,
with a :class:`~nirnet.models.config.NIRNetConfig` in ``self.config``. ``config.arch`` names its class in
:data:`ARCHITECTURES`, which is how ``from_pretrained`` rebuilds any of them (NIRNet and the baselines).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from .._atomic import atomic_write, atomic_write_text
from ..data.degrade import pad_to, resize
from ..decision import DecisionRule
from .config import DetectorConfig

ARCHITECTURES: dict[str, type] = {}


def register_architecture(name: str, cls: type) -> None:
    ARCHITECTURES[name] = cls


FROZEN_PREFIX = "semantic.backbone."
# Relative crop positions in order of preference: centre, quadrant centres, edge midpoints, corners.
CROP_POSITIONS = [
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
]
CROP_ALIGN = 16  # crop offsets are multiples of 16 so decoder/JPEG grids keep their phase w.r.t. the image


def load_trainable_state(model: nn.Module, weights: dict[str, torch.Tensor], where: str) -> None:
    """Load the trainable weights (the frozen backbone is rebuilt from its own weights, never stored), raising a
    ``ValueError`` naming ``where`` when the checkpoint and the model's layout disagree."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith(FROZEN_PREFIX)]
    if missing or unexpected:
        raise ValueError(f"{where}: checkpoint does not match the model (missing {missing}, unexpected {unexpected})")


def crop_boxes(width: int, height: int, size: int, num_crops: int) -> list[tuple[int, int]]:
    """Top-left corners of up to ``num_crops`` crops of ``size`` in a ``width`` x ``height`` image (at least
    ``size`` on each side): offsets are multiples of 16 where the image allows, duplicate positions dropped."""
    boxes: list[tuple[int, int]] = []
    for u, v in CROP_POSITIONS[:num_crops]:
        left = int(u * (width - size)) // CROP_ALIGN * CROP_ALIGN
        top = int(v * (height - size)) // CROP_ALIGN * CROP_ALIGN
        if (left, top) not in boxes:
            boxes.append((left, top))
    return boxes


def image_crops(
    image: Image.Image, size: int, num_crops: int, as_uint8: bool = False, scale: float = 1.0
) -> torch.Tensor:
    """Crops of an RGB image: ``K x 3 x size x size`` float in [0, 1] (or uint8 pixels with ``as_uint8``, a quarter
    of the memory while they wait for the model), ``K <= num_crops``, cut from the image resized by ``scale`` (a
    model's ``input_scale``; 1.0 keeps native resolution).

    Padding policy: an image smaller than the crop on either side (after the resize) is mirror-padded at the
    bottom/right to the crop size. Crop offsets are multiples of 16 where the image allows (see :func:`crop_boxes`).
    A resized crop is resampled from its own region of the original (Pillow's ``box``), which gives the pixels of
    the crop of the whole resized image without ever holding that image: a 40 MP upload stays 40 MP.
    """
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    if scale != 1.0 and width >= size and height >= size:
        fx, fy = image.width / width, image.height / height
        pieces = [
            np.asarray(
                image.resize(
                    (size, size),
                    Image.Resampling.BICUBIC,
                    box=(left * fx, top * fy, (left + size) * fx, (top + size) * fy),
                )
            )
            for left, top in crop_boxes(width, height, size, num_crops)
        ]
    else:
        if scale != 1.0:
            image = resize(image, scale)  # smaller than a crop once resized: cheap to resize whole, then pad
        arr = np.asarray(pad_to(image, size))
        boxes = crop_boxes(arr.shape[1], arr.shape[0], size, num_crops)
        pieces = [arr[t : t + size, l : l + size] for l, t in boxes]  # noqa: E741
    crops = torch.from_numpy(np.stack(pieces)).permute(0, 3, 1, 2)
    return crops.contiguous() if as_uint8 else crops.float() / 255


def semantic_view(image: Image.Image, size: int, as_uint8: bool = False) -> torch.Tensor:
    """The whole image resized (antialiased) to ``size`` x ``size``: ``1 x 3 x size x size`` in [0, 1] (uint8
    pixels with ``as_uint8``)."""
    resized = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    view = torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)[None]
    return view if as_uint8 else view.float() / 255


class DetectorModel(nn.Module):
    """Base class; subclasses set ``self.config`` and define ``forward``. ``semantic`` and ``da_head`` are
    ``None`` unless the model has a semantic branch or a Difference-Aware head."""

    config: DetectorConfig

    def __init__(self) -> None:
        super().__init__()
        # Instance attributes, not class attributes: a class attribute would shadow submodules of the same name.
        self.semantic: nn.Module | None = None
        self.da_head: nn.Module | None = None

    # ------------------------------------------------------------------ preprocessing from the config
    def crops_of(self, image: Image.Image, num_crops: int | None = None) -> torch.Tensor:
        """The crops of an RGB image that the model reads, from the config (see :func:`image_crops`)."""
        return image_crops(
            image, self.config.crop_size, num_crops or self.config.num_crops, scale=self.config.input_scale
        )

    def view_of(self, image: Image.Image) -> torch.Tensor:
        """The semantic view of an RGB image, from the config (see :func:`semantic_view`)."""
        return semantic_view(image, self.config.semantic_size)

    @torch.inference_mode()
    def score_image(self, image: Image.Image, num_crops: int | None = None) -> tuple[float, list[float]]:
        """(probability generated, per-crop logits) for one RGB image; crop logits are averaged."""
        crops = self.crops_of(image, num_crops)
        device = next(self.parameters()).device
        view = self.view_of(image).to(device) if self.config.uses_image_view else None
        logits = self(crops.to(device), view, crops_per_view=len(crops))
        return float(torch.sigmoid(logits.mean())), logits.tolist()

    # ------------------------------------------------------------------ save / load (no pickle)
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State without the frozen third-party backbone (it is rebuilt from its own weights on load)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FROZEN_PREFIX)}

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.trainable_state_dict().items()}
        atomic_write(folder / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        atomic_write_text(folder / "config.json", self.config.to_json())
        return folder

    @staticmethod
    def store_threshold(folder: str | os.PathLike, threshold: float) -> Path:
        """Write a calibrated decision threshold into a model folder's ``config.json`` (atomically)."""
        path = Path(folder) / "config.json"
        config = json.loads(path.read_text())
        config["threshold"] = DecisionRule(threshold).threshold  # refused here when outside [0, 1]
        return atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides) -> DetectorModel:
        folder = Path(folder)
        if not (folder / "config.json").is_file() and (folder / "final" / "config.json").is_file():
            raise FileNotFoundError(f"{folder} is a training run folder; its model is {folder / 'final'}")
        for needed in ("config.json", "model.safetensors"):
            if not (folder / needed).is_file():
                raise FileNotFoundError(
                    f"{folder / needed} is missing (a NIRNet folder holds config.json and model.safetensors)"
                )
        try:
            config = DetectorConfig.from_dict(json.loads((folder / "config.json").read_text())).replace(**overrides)
        except ValueError as exc:
            raise ValueError(f"{folder}: {exc}") from None
        from . import baselines, nirnet  # noqa: F401 - registers the architectures (not imported by this module)

        if config.arch not in ARCHITECTURES:
            raise ValueError(f"{folder}: unknown architecture {config.arch!r}; known: {sorted(ARCHITECTURES)}")
        model = ARCHITECTURES[config.arch](config)
        load_trainable_state(model, load_file(str(folder / "model.safetensors")), str(folder))
        return model.eval()
