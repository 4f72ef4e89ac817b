"""What every detector model shares: scoring, and pickle-free save/load. How a model reads an image is its
config's ``preprocess`` (:mod:`nirnet.data.transforms`), not code here.

A detector is an ``nn.Module`` whose ``forward(crops, view=None, crops_per_view=1)`` returns one logit per crop,
with a :class:`~nirnet.models.config.NIRNetConfig` in ``self.config``. ``config.arch`` names its class in
:data:`ARCHITECTURES`, which is how ``from_pretrained`` rebuilds any of them (NIRNet and the baselines).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from .._atomic import atomic_write, atomic_write_text
from ..data.transforms import inference_transform
from ..decision import DecisionRule
from .config import DetectorConfig

ARCHITECTURES: dict[str, type] = {}


def register_architecture(name: str, cls: type) -> None:
    ARCHITECTURES[name] = cls


FROZEN_PREFIX = "semantic.backbone."


def load_trainable_state(model: nn.Module, weights: dict[str, torch.Tensor], where: str) -> None:
    """Load the trainable weights (the frozen backbone is rebuilt from its own weights, never stored), raising a
    ``ValueError`` naming ``where`` when the checkpoint and the model's layout disagree."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith(FROZEN_PREFIX)]
    if missing or unexpected:
        raise ValueError(f"{where}: checkpoint does not match the model (missing {missing}, unexpected {unexpected})")


class DetectorModel(nn.Module):
    """Base class; subclasses set ``self.config`` and define ``forward``. ``semantic`` and ``da_head`` are
    ``None`` unless the model has a semantic branch or a Difference-Aware head."""

    config: DetectorConfig

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
