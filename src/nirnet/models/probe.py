"""A linear detector on frozen features: what the whole image shows, beside the texture statistics of its crops.

Under leave-family-out on the multi-family corpus, a linear probe on two frozen ImageNet feature sets generalised
to held-out generator families better than every trained recipe (docs/RESULTS.md section 15): the pooled
features of the whole image resized to ``content_size`` (a *content* view: what is shown and how it is rendered),
and the per-channel mean and deviation of a backbone's activations at ``texture_taps`` on the native-resolution
crops (the texture statistics of ``nirnet_tiny_texture``). This model is that probe as a detector:

    logit(crop) = w . standardise([content(view), texture(crop)]) + b

The backbones are frozen and never saved (they are rebuilt from their own weights); the checkpoint holds the
standardiser (feature mean and scale) and the linear layer, a few kilobytes. Because the head is linear, the mean
of the crops' logits (how every detector scores an image) equals the logit of the crops' mean feature: the
quantity the probe was fitted on. It is fitted in closed form on cached features by ``nirnet train`` (see
:mod:`nirnet.engine.probe_fit`), not by gradient steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import DetectorModel
from .config import DetectorConfig
from .semantic import create_backbone


@dataclass(frozen=True)
class FrozenProbeConfig(DetectorConfig):
    name: str = "nirnet_probe"
    arch: str = "frozen_probe"
    content_backbone: str = "efficientnet_lite1"  # pooled output on the whole image; "none": no content part
    content_size: int = 224
    texture_backbone: str = "efficientnet_lite0"  # texture statistics on the crops; "none": no texture part
    texture_taps: tuple[int, ...] = (0, 2, 4, 7)  # ignored without a texture backbone
    label_smoothing: float = 0.0  # the probe is fitted by penalised logistic regression, not smoothed targets

    @classmethod
    def _upgrade(cls, data: dict) -> dict:
        if isinstance(data.get("texture_taps"), list):  # JSON has no tuples
            data["texture_taps"] = tuple(data["texture_taps"])
        return data

    @property
    def uses_image_view(self) -> bool:
        return self.content_backbone not in ("none", "", None)

    @property
    def view_size(self) -> int | None:
        return self.content_size if self.uses_image_view else None


class FrozenProbe(DetectorModel):
    arch = "frozen_probe"
    config_class = FrozenProbeConfig
    frozen_prefixes: ClassVar[tuple[str, ...]] = ("content.", "texture.")

    def __init__(self, config: FrozenProbeConfig, semantic_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        self.content = create_backbone(c.content_backbone, semantic_pretrained)
        self.texture = create_backbone(c.texture_backbone, semantic_pretrained, None, c.texture_taps)
        if self.content is None and self.texture is None:
            raise ValueError("a frozen probe needs a content or a texture backbone")
        width = self.feature_dim
        # The standardiser, fitted with the head: scales of the texture statistics differ by orders of magnitude.
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_scale", torch.ones(width))
        self.head = nn.Linear(width, 1)

    @property
    def feature_dim(self) -> int:
        return sum(b.out_dim for b in (self.content, self.texture) if b is not None)

    def part_widths(self) -> dict[str, int]:
        """Widths of the feature parts :meth:`embed` gives (read by the family head)."""
        return {"head_input": self.feature_dim, "texture": self.feature_dim}

    @torch.no_grad()
    def raw_features(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1
    ) -> torch.Tensor:
        """Per-crop frozen features ``[content, texture]`` before the standardiser; ``view`` holds one whole-image
        view per ``crops_per_view`` crops (required when the model has a content part)."""
        parts = []
        if self.content is not None:
            if view is None:
                raise ValueError(f"{self.config.name} reads a whole-image view beside the crops; none was given")
            parts.append(self.content(view).repeat_interleave(crops_per_view, dim=0))
        if self.texture is not None:
            parts.append(self.texture(crops))
        return torch.cat(parts, dim=1)

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_scale

    def forward(self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1) -> torch.Tensor:
        """Logits (one per crop)."""
        return self.head(self.standardise(self.raw_features(crops, view, crops_per_view))).squeeze(1)

    @torch.no_grad()
    def embed(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(feature parts, logits) as ``NIRNet.embed`` gives them to the family head: ``texture`` = the frozen
        features, ``head_input`` = the same standardised (what the linear head reads)."""
        raw = self.raw_features(crops, view, crops_per_view)
        z = self.standardise(raw)
        return {"texture": raw, "head_input": z}, self.head(z).squeeze(1)

    @classmethod
    def build(cls, config: FrozenProbeConfig, semantic_pretrained: bool = True) -> FrozenProbe:
        return cls(config, semantic_pretrained=semantic_pretrained)
