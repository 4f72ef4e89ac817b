"""Frequency branch (AIDE-style): DCT patch ranking, fixed SRM high-pass filters, a small CNN.

1. Cut the crop into 32x32 patches with stride 16 (grey = mean of RGB for ranking).
2. Score each patch by its frequency-weighted log DCT energy ``sum_ij (i + j) * log(1 + |C_ij|)``: high-frequency
   detail (and imprint) scores high, flat patches score low.
3. Keep the 2 highest- and the 2 lowest-scoring patches; filter each with the 30 SRM high-pass kernels; encode
   with a shared small CNN; ``f_f = concat(mean over high patches, mean over low patches)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (``D @ x`` is the DCT of a column vector ``x``)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def extract_patches(x: torch.Tensor, size: int = 32, stride: int = 16) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x P x C x size x size`` (row-major patch order)."""
    n, c = x.shape[:2]
    patches = x.unfold(2, size, stride).unfold(3, size, stride)  # N C Ph Pw s s
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(n, -1, c, size, size)


def patch_scores(patches: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """Frequency-weighted log DCT energy of each patch (``N x P x C x s x s`` -> ``N x P``)."""
    grey = patches.mean(dim=2)
    coeffs = dct @ grey @ dct.T
    size = dct.shape[0]
    weight = (torch.arange(size)[:, None] + torch.arange(size)[None, :]).to(coeffs)
    return (torch.log1p(coeffs.abs()) * weight).sum(dim=(-2, -1))


def select_patches(
    x: torch.Tensor, dct: torch.Tensor, size: int = 32, stride: int = 16, k: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest- and ``k`` lowest-scoring patches: two ``N x k x C x size x size`` tensors.

    Highest first, lowest first. Selection uses ``topk`` (it exports to ONNX, a sort does not); exactly tied scores
    (flat images) may be broken differently by PyTorch and other runtimes.
    """
    patches = extract_patches(x, size, stride)
    scores = patch_scores(patches, dct)
    k = min(k, scores.shape[1])
    order = torch.topk(scores, k, dim=1, largest=True, sorted=True).indices
    low_order = torch.topk(scores, k, dim=1, largest=False, sorted=True).indices

    def first_k(idx: torch.Tensor) -> torch.Tensor:
        return torch.gather(patches, 1, idx[:, :k, None, None, None].expand(-1, -1, *patches.shape[2:]))

    return first_k(order), first_k(low_order)


def srm_kernels() -> torch.Tensor:
    """The 30 basic SRM high-pass kernels (Fridrich & Kodovsky's rich model), each ``5 x 5``, as ``30 x 5 x 5``.

    8 first-order, 4 second-order, 8 third-order, SQUARE 3x3, 4 EDGE 3x3, SQUARE 5x5, 4 EDGE 5x5.
    """
    kernels: list[torch.Tensor] = []
    centre = 2
    eight = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)]

    def line(direction: tuple[int, int], offsets: list[int], values: list[float], scale: float) -> torch.Tensor:
        k = torch.zeros(5, 5)
        for off, val in zip(offsets, values):
            k[centre + off * direction[0], centre + off * direction[1]] += val / scale
        return k

    kernels += [line(d, [0, 1], [-1, 1], 1) for d in eight]
    kernels += [line(d, [-1, 0, 1], [1, -2, 1], 2) for d in [(0, 1), (1, 0), (1, 1), (1, -1)]]
    kernels += [line(d, [-1, 0, 1, 2], [1, -3, 3, -1], 3) for d in eight]
    square3 = torch.tensor([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], dtype=torch.float32) / 4
    kernels.append(F.pad(square3, (1, 1, 1, 1)))
    edge3 = square3.clone()
    edge3[2] = 0
    kernels += [F.pad(torch.rot90(edge3, r), (1, 1, 1, 1)) for r in range(4)]
    square5 = (
        torch.tensor(
            [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]],
            dtype=torch.float32,
        )
        / 12
    )
    kernels.append(square5)
    edge5 = square5.clone()
    edge5[3:] = 0
    kernels += [torch.rot90(edge5, r) for r in range(4)]
    out = torch.stack(kernels)
    assert out.shape == (30, 5, 5)
    return out


class FrequencyBranch(nn.Module):
    """DCT-ranked patches -> SRM residuals -> small CNN -> ``f_f`` of size ``2 * width``."""

    def __init__(self, width: int = 64, patch: int = 32, stride: int = 16, k: int = 2) -> None:
        super().__init__()
        self.patch, self.stride, self.k = patch, stride, k
        self.register_buffer("dct", dct_matrix(patch), persistent=False)
        # Fixed filters applied to the grey patch; they are not trained (and not saved).
        self.register_buffer("srm", srm_kernels()[:, None], persistent=False)
        self.encoder = nn.Sequential(
            nn.Conv2d(30, width // 2, 3, padding=1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``N x 3 x H x W`` in [0, 1] with ``H, W >= patch``."""
        high, low = select_patches(x, self.dct, self.patch, self.stride, self.k)
        n = x.shape[0]
        both = torch.cat([high, low], dim=1).mean(dim=2, keepdim=True).flatten(0, 1)  # (N*2k) x 1 x s x s
        features = self.encoder(F.conv2d(both * 255, self.srm, padding=2) / 16).view(n, 2, self.k, -1)
        return features.mean(dim=2).flatten(1)
