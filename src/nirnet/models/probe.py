"""A linear detector on frozen features: what the whole image shows, beside the texture statistics of its crops.

Under leave-family-out on the multi-family corpus, a linear probe on two frozen ImageNet feature sets generalised
to held-out generator families better than every trained recipe (docs/RESULTS.md section 15): the pooled
features of the whole image resized to ``content_size`` (a *content* view: what is shown and how it is rendered),
and the per-channel mean and deviation of a backbone's activations at ``texture_taps`` on the native-resolution
crops (the texture statistics of ``nirnet_tiny_texture``). This model is that probe as a detector:

    logit(crop) = w . standardise([content(view) ** p, texture(crop), member(crop)]) + b

(``p``: ``content_power``, a signed power; 1 leaves the content features as they are.)

``member`` (optional) is a trained detector of our own, frozen: its ``embed`` parts and its logit on the same crops
join the features, so one linear head stacks it with the frozen backbones, and the family head reads all of them.
It is loaded from its shipped weights (or a model folder) and not saved with the probe; the SHA-256 of its weights
is recorded at save time and checked at load, because the fitted head is only valid for those weights.

The backbones are frozen and never saved (they are rebuilt from their own weights); the checkpoint holds the
standardiser (feature mean and scale) and the linear layer, a few kilobytes. Because the head is linear, the mean
of the crops' logits (how every detector scores an image) equals the logit of the crops' mean feature: the
quantity the probe was fitted on. It is fitted in closed form on cached features by ``nirnet train`` (see
:mod:`nirnet.engine.probe_fit`), not by gradient steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    # The content features raised to this power, sign kept, before the standardiser (0.5: a square root). They are
    # average-pooled ReLU activations, skewed and 43 % zeros; a square root evens their scale. Measured on the
    # default's recipe it added +0.003 ± 0.001, inside each pair's noise (docs/RESULTS.md section 24), so no
    # shipped model uses it. Cached features stay untransformed.
    content_power: float = 1.0
    texture_backbone: str = "efficientnet_lite0"  # texture statistics on the crops; "none": no texture part
    texture_taps: tuple[int, ...] = (0, 2, 4, 7)  # ignored without a texture backbone
    member: str = "none"  # a shipped model name or a model folder whose frozen features join; "none": no member
    member_parts: tuple[str, ...] = ("head_input",)  # the member's embed parts used (its logit is always added)
    member_sha256: str = ""  # of the member's model.safetensors when the probe was saved; checked at load
    # Feature groups the real/generated logit does not read (fitted with zero weight, ``probe.detect_without``): the
    # forward pass skips them; embed() (the family head's input) still computes every group.
    logit_without: tuple[str, ...] = ()
    label_smoothing: float = 0.0  # the probe is fitted by penalised logistic regression, not smoothed targets

    @classmethod
    def _upgrade(cls, data: dict) -> dict:
        for key in ("texture_taps", "member_parts", "logit_without"):
            if isinstance(data.get(key), list):  # JSON has no tuples
                data[key] = tuple(data[key])
        return data

    @property
    def has_member(self) -> bool:
        return self.member not in ("none", "", None)

    @property
    def uses_image_view(self) -> bool:
        return self.content_backbone not in ("none", "", None)

    @property
    def view_size(self) -> int | None:
        return self.content_size if self.uses_image_view else None


class FrozenProbe(DetectorModel):
    arch = "frozen_probe"
    config_class = FrozenProbeConfig
    frozen_prefixes: ClassVar[tuple[str, ...]] = ("content.", "texture.", "member.")
    reads_view_index: ClassVar[bool] = True

    def __init__(self, config: FrozenProbeConfig, semantic_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        self.content = create_backbone(c.content_backbone, semantic_pretrained)
        self.texture = create_backbone(c.texture_backbone, semantic_pretrained, None, c.texture_taps)
        self.member, self.member_digest = load_member(c) if c.has_member else (None, "")
        if self.member is not None:  # saved with the probe: its head is fitted to these member weights
            self.config = c.replace(member_sha256=self.member_digest)
        if self.content is None and self.texture is None and self.member is None:
            raise ValueError("a frozen probe needs a content or a texture backbone or a member")
        if not c.content_power > 0:  # a power <= 0 turns the many zero activations into infinities
            raise ValueError(f"content_power must be positive, got {c.content_power}")
        width = self.feature_dim
        # The standardiser, fitted with the head: scales of the texture statistics differ by orders of magnitude.
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_scale", torch.ones(width))
        self.head = nn.Linear(width, 1)

    @property
    def feature_dim(self) -> int:
        return sum(g.stop - g.start for g in self.feature_groups().values())

    def feature_groups(self) -> dict[str, slice]:
        """Column ranges of the feature groups present (``content``, ``texture``, ``member``: the member's chosen
        parts and its logit) in :meth:`raw_features`, in that order."""
        widths = {
            "content": self.content.out_dim if self.content is not None else 0,
            "texture": self.texture.out_dim if self.texture is not None else 0,
            "member": sum(self.member.part_widths()[p] for p in self.config.member_parts) + 1 if self.member else 0,
        }
        groups, start = {}, 0
        for name, width in widths.items():
            if width:
                groups[name] = slice(start, start + width)
                start += width
        return groups

    def train(self, mode: bool = True) -> FrozenProbe:
        super().train(mode)
        if self.member is not None:  # frozen: its batch norms must keep their running statistics
            self.member.eval()
        return self

    @property
    def imprint(self) -> nn.Module | None:
        """The member's noise branch, when it has one: its map is part of what the probe reads, so
        ``Detector.explain`` and the web page show it."""
        return getattr(self.member, "imprint", None)

    def noise_map(self, x: torch.Tensor) -> torch.Tensor:
        """The member's extracted noise map ``N(x)`` (for visualisation)."""
        if self.imprint is None:
            raise RuntimeError(f"{self.config.name} has no member with a noise branch")
        return self.member.noise_map(x)

    def part_widths(self) -> dict[str, int]:
        """Widths of the feature parts :meth:`embed` gives (read by the family head)."""
        return {"head_input": self.feature_dim, "texture": self.feature_dim}

    @torch.no_grad()
    def raw_features(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1
    ) -> torch.Tensor:
        """Per-crop frozen features ``[content, texture, member]`` before the standardiser; ``view`` holds one
        whole-image view per ``crops_per_view`` crops (required when the model has a content part)."""
        return self._features(tuple(self.feature_groups()), crops, view, crops_per_view)

    def _features(
        self,
        groups: tuple[str, ...],
        crops: torch.Tensor,
        view: torch.Tensor | None,
        crops_per_view: int = 1,
        view_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The raw features of the named groups, in :meth:`feature_groups` order. Crop ``i`` reads row
        ``view_index[i]`` of ``view``; without an index, each view serves the next ``crops_per_view`` crops."""
        parts = []
        if "content" in groups:
            if view is None:
                raise ValueError(f"{self.config.name} reads a whole-image view beside the crops; none was given")
            content = self.content(view)
            # (an index built from crops_per_view would fix the exported graph's view count; repeating does not)
            if view_index is None:
                parts.append(content.repeat_interleave(crops_per_view, 0))
            else:
                parts.append(content.index_select(0, view_index))
        if "texture" in groups:
            parts.append(self.texture(crops))
        if "member" in groups:
            member_parts, logits = self.member.embed(crops)
            parts += [member_parts[p] for p in self.config.member_parts] + [logits[:, None]]
        return torch.cat(parts, dim=1)

    def logit_groups(self) -> tuple[str, ...]:
        """The feature groups the real/generated logit reads (all but ``config.logit_without``)."""
        return tuple(g for g in self.feature_groups() if g not in self.config.logit_without)

    def prepare(self, raw: torch.Tensor, groups: tuple[str, ...] | None = None) -> torch.Tensor:
        """What the standardiser reads: ``raw`` features of ``groups`` (default: all, in :meth:`feature_groups`
        order) with the content columns raised to ``content_power``. Fitting applies it to the cached raw features,
        so the cache does not depend on the power."""
        groups = tuple(self.feature_groups()) if groups is None else groups
        power = self.config.content_power
        if power == 1.0 or "content" not in groups:
            return raw
        width = self.content.out_dim  # content is always the first group
        content = raw[:, :width]
        return torch.cat([torch.sign(content) * content.abs().pow(power), raw[:, width:]], dim=1)

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_scale

    def forward(
        self,
        crops: torch.Tensor,
        view: torch.Tensor | None = None,
        crops_per_view: int = 1,
        view_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (one per crop). ``view_index`` (int64, one per crop) names each crop's row of ``view``, so an
        image's view goes through the content backbone once. Groups in ``config.logit_without`` have zero weight
        and are not computed: in nirnet_stack those are Lite0 statistics its member computes on the same crops."""
        groups, spans = self.logit_groups(), self.feature_groups()
        raw = self.prepare(self._features(groups, crops, view, crops_per_view, view_index), groups)
        if len(groups) == len(spans):
            return self.head(self.standardise(raw)).squeeze(1)
        cols = torch.cat([torch.arange(spans[g].start, spans[g].stop) for g in groups])
        z = (raw - self.feature_mean[cols]) / self.feature_scale[cols]
        return z @ self.head.weight[0, cols] + self.head.bias

    @torch.no_grad()
    def embed(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(feature parts, logits) as ``NIRNet.embed`` gives them to the family head: ``texture`` = the frozen
        features, ``head_input`` = the same prepared and standardised (what the linear head reads)."""
        raw = self.raw_features(crops, view, crops_per_view)
        z = self.standardise(self.prepare(raw))
        return {"texture": raw, "head_input": z}, self.head(z).squeeze(1)

    @classmethod
    def build(cls, config: FrozenProbeConfig, semantic_pretrained: bool = True) -> FrozenProbe:
        return cls(config, semantic_pretrained=semantic_pretrained)


# How a member name (shipped model or folder) becomes (model, its folder). Set by the registry, which imports this
# module (importing the registry here would make a cycle).
_member_loader: Callable[[str], tuple[DetectorModel, Path]] | None = None


def set_member_loader(loader: Callable[[str], tuple[DetectorModel, Path]]) -> None:
    global _member_loader
    _member_loader = loader


def load_member(config: FrozenProbeConfig) -> tuple[DetectorModel, str]:
    """(the frozen member model, SHA-256 of its weights file); a ValueError when it cannot serve as a member."""
    if _member_loader is None:
        raise RuntimeError("no member loader: import nirnet.models (its registry sets it)")
    member, folder = _member_loader(config.member)
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    if config.member_sha256 and config.member_sha256 != digest:
        raise ValueError(
            f"{config.name} was fitted on other weights of its member {config.member} (SHA-256 "
            f"{config.member_sha256[:12]}..., now {digest[:12]}...): refit it (nirnet train)"
        )
    if not hasattr(member, "embed") or member.config.uses_image_view:
        raise ValueError(f"{config.member} cannot be a member: it must read the crops alone and have embed()")
    unknown = set(config.member_parts) - set(member.part_widths())
    if unknown:
        have = sorted(member.part_widths())
        raise ValueError(f"{config.member} has no feature parts {sorted(unknown)} (it has {have})")
    for parameter in member.parameters():
        parameter.requires_grad_(False)
    return member.eval(), digest
