"""NPR baseline (Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for
Generalizable Deepfake Detection", CVPR 2024), written from the paper.

Up-sampling layers make neighbouring pixels of a 2x2 cell depend on each other. NPR exposes this with the
residual ``x - up(down(x))`` (nearest down- then up-sampling by 2), and a small ResNet classifies that residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..base import DetectorModel
from ..config import BaselineConfig
from ..extractor import BasicBlock


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """``x - nearest_up(nearest_down(x))`` for sides that are even (odd sides are cropped by one pixel)."""
    h, w = x.shape[-2:]
    x = x[..., : h - h % 2, : w - w % 2]
    return x - F.interpolate(x[..., ::2, ::2], scale_factor=2, mode="nearest")


class NPRNet(DetectorModel):
    arch = "npr"
    config_class = BaselineConfig

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        # The paper truncates ResNet-50 after its second stage; this is the same shape at CPU size.
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True))
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1), BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width, 1)
        )
        self.head = nn.Linear(2 * width, 1)

    def forward(self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1) -> torch.Tensor:
        # The residual is a few levels of 1/255; a fixed gain brings it near unit scale.
        features = self.stages(self.stem(npr_residual(crops) * 16)).mean(dim=(-2, -1))
        return self.head(features).squeeze(1)
