"""Noise-based Imprint Extractor (NIE): a denoiser-style residual network and a small encoder of its noise map.

``NoiseExtractor`` follows DnCNN's residual learning: the network predicts the *noise* of an image (what a
denoiser would remove), so its output ``N(x)`` is the high-frequency part where generator imprints live, with
the content largely gone. ``NoiseEncoder`` (a ResNet stem and two residual stages) turns ``N(x)`` into ``f_n``.
"""

from __future__ import annotations

import torch
from torch import nn


class NoiseExtractor(nn.Module):
    """``N(x)``: conv-ReLU, ``depth - 2`` conv-BN-ReLU, conv; input and output ``N x 3 x H x W``.

    ``frozen``: the weights and BatchNorm statistics never change in training (for a pretrained denoiser, which
    the detector's loss would otherwise turn back into a map of the scene within a few hundred steps).
    """

    def __init__(self, width: int = 16, depth: int = 3, frozen: bool = False) -> None:
        super().__init__()
        self.frozen = frozen
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(max(0, depth - 2)):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, 3, 3, padding=1))
        self.net = nn.Sequential(*layers)
        if frozen:
            self.requires_grad_(False)

    def train(self, mode: bool = True) -> NoiseExtractor:
        return super().train(mode and not self.frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centred input; the output is in "pixel levels / 255" like the residuals of the simulator.
        # channels_last roughly halves the time of these narrow full-resolution convolutions on CPU (measured).
        return self.net((x - 0.5).contiguous(memory_format=torch.channels_last))


class PointwiseProjection(nn.Module):
    """A strided 1x1 convolution written as subsampling + ``nn.Linear`` over channels.

    Why not ``nn.Conv2d(kernel_size=1)``: on some CPUs oneDNN's 1x1 weight-gradient kernel (jit_avx2_1x1
    bwd_weights) deadlocks in its OpenMP region (seen with torch 2.14 on 2 cores); a matrix multiply is as fast here.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.linear = nn.Linear(cin, cout, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(PointwiseProjection(cin, cout, stride), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class NoiseEncoder(nn.Module):
    """A stem + two residual stages (``blocks`` blocks each) over the noise map, global average pooled.

    ``stem="conv"``: the ResNet-style 3x3 stride-2 convolution. ``stem="patchify"``: a 4x4 stride-4 convolution,
    which sees all 16 phases of each 4x4 cell (so periodic decoder patterns survive) at a fraction of the cost.
    """

    def __init__(self, width: int = 16, blocks: int = 1, stem: str = "conv", noise_gain: float = 32.0) -> None:
        super().__init__()
        # Noise maps are ~1e-2 in [0, 1] units; a fixed gain brings them to about unit scale.
        self.noise_gain = noise_gain
        if stem not in ("conv", "patchify"):
            raise ValueError(f"stem must be 'conv' or 'patchify', got {stem!r}")
        first = nn.Conv2d(3, width, 3, 2, 1, bias=False) if stem == "conv" else nn.Conv2d(3, width, 4, 4, bias=False)
        self.stem = nn.Sequential(first, nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        cin = width
        for cout in (2 * width, 4 * width):
            stages += [BasicBlock(cin, cout, 2)] + [BasicBlock(cout, cout, 1) for _ in range(blocks - 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_dim = cin

    def feature_map(self, noise: torch.Tensor) -> torch.Tensor:
        """The last stage's map before global pooling, ``N x out_dim x h x w``."""
        return self.stages(self.stem(noise * self.noise_gain))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.feature_map(noise).mean(dim=(-2, -1))


class ImprintExtractor(nn.Module):
    """``x -> (N(x), f_n)``."""

    def __init__(
        self,
        width: int = 16,
        depth: int = 3,
        encoder_width: int = 16,
        encoder_blocks: int = 1,
        stem: str = "conv",
        frozen: bool = False,
    ) -> None:
        super().__init__()
        self.extractor = NoiseExtractor(width, depth, frozen)
        self.encoder = NoiseEncoder(encoder_width, encoder_blocks, stem)
        self.out_dim = self.encoder.out_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = self.extractor(x)
        return noise, self.encoder(noise)
