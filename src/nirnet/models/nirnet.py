"""The NIRNet hybrid detector: noise (NIE) + frequency + semantic branches and an MLP head.

Input convention: crops ``N x 3 x c x c`` in [0, 1] at native resolution for the noise and frequency branches,
and a view ``M x 3 x S x S`` in [0, 1] of the whole image for the semantic branch (by default the crops
themselves). The output is one logit per crop (positive = generated).
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
from ..data.degrade import pad_to
from .config import NIRNetConfig
from .extractor import ImprintExtractor
from .frequency import FrequencyBranch
from .semantic import SemanticBranch, create_backbone

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


def image_crops(image: Image.Image, size: int, num_crops: int) -> torch.Tensor:
    """Native-resolution crops of an RGB image: ``K x 3 x size x size`` float in [0, 1], ``K <= num_crops``.

    Padding policy: an image smaller than the crop on either side is mirror-padded at the bottom/right to the crop
    size (never resized). Crop offsets are multiples of 16 where the image allows; duplicate positions are dropped.
    """
    image = pad_to(image, size)
    arr = np.asarray(image)
    height, width = arr.shape[:2]
    boxes: list[tuple[int, int]] = []
    for u, v in CROP_POSITIONS[:num_crops]:
        left = int(u * (width - size)) // CROP_ALIGN * CROP_ALIGN
        top = int(v * (height - size)) // CROP_ALIGN * CROP_ALIGN
        if (left, top) not in boxes:
            boxes.append((left, top))
    crops = np.stack([arr[t : t + size, l : l + size] for l, t in boxes])  # noqa: E741
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255


def semantic_view(image: Image.Image, size: int) -> torch.Tensor:
    """The whole image resized (antialiased) to ``size`` x ``size``: ``1 x 3 x size x size`` in [0, 1]."""
    resized = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)[None].float() / 255


def _mlp(cin: int, hidden: int, cout: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, cout))


class NIRNet(nn.Module):
    def __init__(self, config: NIRNetConfig, semantic_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        self.imprint = (
            ImprintExtractor(c.noise_width, c.noise_depth, c.encoder_width, c.encoder_blocks, c.encoder_stem)
            if c.use_noise
            else None
        )
        self.frequency = (
            FrequencyBranch(c.freq_width, c.freq_patch, c.freq_stride, c.freq_k) if c.use_frequency else None
        )
        backbone = create_backbone(c.semantic, semantic_pretrained, c.semantic_weights)
        self.semantic = SemanticBranch(backbone, c.semantic_size, c.semantic_dim) if backbone is not None else None
        dims = [m.out_dim for m in (self.imprint, self.frequency, self.semantic) if m is not None]
        if not dims:
            raise ValueError("NIRNet needs at least one branch (noise, frequency or semantic)")
        self.head = _mlp(sum(dims), c.head_hidden, 1, c.dropout)
        self.da_head = (
            _mlp(self.imprint.out_dim, c.head_hidden, c.da_latent_channels * c.da_grid**2)
            if self.imprint is not None and c.lambda_da > 0
            else None
        )
        if self.da_head is not None:
            # Running RMS of the L_DA target, updated by DifferenceAwareLoss; saved so training resumes exactly.
            self.register_buffer("da_scale", torch.zeros(c.da_latent_channels * c.da_grid**2))

    # ------------------------------------------------------------------ forward
    def features(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1
    ) -> dict[str, torch.Tensor]:
        """Branch features of ``crops``; ``view`` holds one semantic view per ``crops_per_view`` crops."""
        out: dict[str, torch.Tensor] = {}
        if self.imprint is not None:
            out["noise"], out["f_n"] = self.imprint(crops)
        if self.frequency is not None:
            out["f_f"] = self.frequency(crops)
        if self.semantic is not None:
            f_s = self.semantic(crops if view is None else view)
            out["f_s"] = f_s.repeat_interleave(crops_per_view, dim=0) if view is not None else f_s
        return out

    def classify(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [feats[k] for k in ("f_n", "f_f", "f_s") if k in feats]
        return self.head(torch.cat(parts, dim=1)).squeeze(1)

    def forward(self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1) -> torch.Tensor:
        """Logits (one per crop)."""
        return self.classify(self.features(crops, view, crops_per_view))

    def noise_map(self, x: torch.Tensor) -> torch.Tensor:
        """The extracted noise map ``N(x)`` (for visualisation); needs the noise branch."""
        if self.imprint is None:
            raise RuntimeError("this model has no noise branch")
        return self.imprint.extractor(x)

    # ------------------------------------------------------------------ preprocessing from the config
    def crops_of(self, image: Image.Image, num_crops: int | None = None) -> torch.Tensor:
        """Native-resolution crops of an RGB image, from the config (see :func:`image_crops`)."""
        return image_crops(image, self.config.crop_size, num_crops or self.config.num_crops)

    def view_of(self, image: Image.Image) -> torch.Tensor:
        """The semantic view of an RGB image, from the config (see :func:`semantic_view`)."""
        return semantic_view(image, self.config.semantic_size)

    @torch.inference_mode()
    def score_image(self, image: Image.Image, num_crops: int | None = None) -> tuple[float, list[float]]:
        """(probability generated, per-crop logits) for one RGB image; crop logits are averaged."""
        crops = self.crops_of(image, num_crops)
        device = next(self.head.parameters()).device
        view = self.view_of(image).to(device) if self.semantic is not None else None
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

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides) -> NIRNet:
        folder = Path(folder)
        for needed in ("config.json", "model.safetensors"):
            if not (folder / needed).is_file():
                raise FileNotFoundError(
                    f"{folder / needed} is missing (a NIRNet folder holds config.json and model.safetensors)"
                )
        config = NIRNetConfig.from_dict(json.loads((folder / "config.json").read_text())).replace(**overrides)
        model = cls(config)
        missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
        missing = [k for k in missing if not k.startswith(FROZEN_PREFIX)]
        if missing or unexpected:
            raise ValueError(
                f"{folder}: checkpoint does not match the config (missing {missing}, unexpected {unexpected})"
            )
        return model.eval()
