"""CNNSpot baseline (Wang et al., "CNN-generated images are surprisingly easy to spot... for now", CVPR 2020),
written from the paper: a ResNet image classifier trained with blur and JPEG augmentation.

The paper fine-tunes an ImageNet ResNet-50; ImageNet weights cannot be downloaded here, so this starts from
random weights (torchvision's ResNet-18 layout; ``width`` scales its channels).
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import DetectorModel
from ..config import BaselineConfig
from ..extractor import BasicBlock


class CNNSpot(DetectorModel):
    arch = "cnnspot"
    config_class = BaselineConfig

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w), nn.ReLU(True), nn.MaxPool2d(3, 2, 1)
        )
        stages, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stages += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1) -> torch.Tensor:
        x = (crops - self.mean) / self.std
        return self.head(self.stages(self.stem(x)).mean(dim=(-2, -1))).squeeze(1)
