"""What every detector model shares: scoring, and pickle-free save/load. How a model reads an image is its
config's ``preprocess`` (:mod:`nirnet.data.transforms`), not code here.

A detector is an ``nn.Module`` whose ``forward(crops, view=None, crops_per_view=1)`` returns one logit per crop,
with its config (a :class:`~nirnet.models.config.DetectorConfig` of ``config_class``) in ``self.config``. The class
says its ``arch`` name; the model registry (:mod:`nirnet.models.registry`) maps saved folders back to classes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from .._atomic import atomic_write, atomic_write_text
from ..data.transforms import inference_transform
from ..decision import DecisionRule
from .config import DetectorConfig

FROZEN_PREFIX = "semantic.backbone."


def load_trainable_state(model: nn.Module, weights: dict[str, torch.Tensor], where: str) -> None:
    """Load the trainable weights (the frozen backbone is rebuilt from its own weights, never stored), raising a
    ``ValueError`` naming ``where`` when the checkpoint and the model's layout disagree."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    frozen = getattr(model, "frozen_prefixes", (FROZEN_PREFIX,))
    missing = [k for k in missing if not k.startswith(frozen)]
    if missing or unexpected:
        raise ValueError(f"{where}: checkpoint does not match the model (missing {missing}, unexpected {unexpected})")


class DetectorModel(nn.Module):
    """Base class; subclasses set ``self.config`` and define ``forward``. ``semantic`` and ``da_head`` are
    ``None`` unless the model has a semantic branch or a Difference-Aware head."""

    config: DetectorConfig
    arch: ClassVar[str]  # the name saved as ``config.arch``; the registry finds the class by it
    config_class: ClassVar[type[DetectorConfig]] = DetectorConfig
    # State-dict prefixes of frozen third-party backbones: rebuilt from their own weights, never saved.
    frozen_prefixes: ClassVar[tuple[str, ...]] = (FROZEN_PREFIX,)
    # Whether forward takes ``view_index`` (each crop's row of ``view``), so an image's whole-image view is read
    # once however many crops it has; models without it get one view per crop.
    reads_view_index: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        # Instance attributes, not class attributes: a class attribute would shadow submodules of the same name.
        self.semantic: nn.Module | None = None
        self.da_head: nn.Module | None = None

    @torch.inference_mode()
    def score_image(self, image: Image.Image, num_crops: int | None = None) -> tuple[float, list[float]]:
        """(probability generated, per-crop logits) for one RGB image, read by the config's
        :func:`~nirnet.data.transforms.inference_transform`; crop logits are averaged."""
        read = inference_transform(self.config)(image, num_crops)
        device = next(self.parameters()).device
        view = read.view.to(device) if read.view is not None else None
        logits = self(read.crops.to(device), view, crops_per_view=len(read.crops))
        return float(torch.sigmoid(logits.mean())), logits.tolist()

    # ------------------------------------------------------------------ save / load (no pickle)
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State without the frozen third-party backbone (it is rebuilt from its own weights on load)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self.frozen_prefixes)}

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
    def build(cls, config: DetectorConfig, semantic_pretrained: bool = True) -> DetectorModel:
        """A fresh model of ``config``; ``semantic_pretrained=False`` gives a frozen backbone random weights (tests,
        or weights loaded later). Models without a backbone ignore it."""
        return cls(config)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides) -> DetectorModel:
        """Load a folder written by :meth:`save_pretrained` as this class (``overrides`` change its config). Any
        architecture: :func:`nirnet.models.registry.load_model`, which picks the class from the folder."""
        if cls is DetectorModel:
            raise TypeError("DetectorModel is abstract: use nirnet.models.load_model(folder), which finds the class")
        folder = Path(folder)
        data = read_config_json(folder)
        try:
            config = cls.config_class.from_dict(data).replace(**overrides)
        except ValueError as exc:
            raise ValueError(f"{folder}: {exc}") from None
        if config.arch != cls.arch:
            raise ValueError(f"{folder}: a {config.arch!r} model, not {cls.arch!r} ({cls.__name__})")
        model = cls(config)
        load_trainable_state(model, load_file(str(folder / "model.safetensors")), str(folder))
        return model.eval()


def read_config_json(folder: Path) -> dict:
    """The ``config.json`` of a model folder, after checking that the folder holds a model."""
    if not (folder / "config.json").is_file() and (folder / "final" / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is a training run folder; its model is {folder / 'final'}")
    for needed in ("config.json", "model.safetensors"):
        if not (folder / needed).is_file():
            raise FileNotFoundError(
                f"{folder / needed} is missing (a NIRNet folder holds config.json and model.safetensors)"
            )
    return json.loads((folder / "config.json").read_text())
