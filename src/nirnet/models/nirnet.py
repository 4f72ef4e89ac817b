"""The NIRNet hybrid detector: noise (NIE) + frequency + semantic branches and an MLP head.

Input convention: crops ``N x 3 x c x c`` in [0, 1] at native resolution for the noise and frequency branches,
and, only for ``semantic_view="image"`` models, a view ``M x 3 x S x S`` in [0, 1] of the whole image for the
semantic branch (otherwise it reads the crops themselves, as in training). The output is one logit per crop
(positive = generated).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import DetectorModel
from .config import NIRNetConfig
from .extractor import ImprintExtractor
from .frequency import FrequencyBranch
from .semantic import SemanticBranch, create_backbone


class SpatialDifferenceHead(nn.Module):
    """L_DA's predictor for a spatial target: the difference of two noise-encoder feature maps, pooled to the
    target's ``grid x grid`` cells, mapped cell by cell (shared weights) to the latent channels. Output flattened in
    the target's order (channel-major, then rows, then columns)."""

    def __init__(self, cin: int, hidden: int, latent_channels: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.cell = _mlp(cin, hidden, latent_channels)

    def forward(self, feature_diff: torch.Tensor) -> torch.Tensor:
        cells = nn.functional.adaptive_avg_pool2d(feature_diff, self.grid)  # N x C x g x g
        out = self.cell(cells.permute(0, 2, 3, 1))  # N x g x g x latent
        return out.permute(0, 3, 1, 2).flatten(1)


class NonNegativeLinear(nn.Linear):
    """``nn.Linear`` whose weights act as ``relu(weight)``: each (non-negative) input can only raise the output.

    Written as a forward-time clamp rather than a clamp after each optimiser step, so that every code path
    (training, inference, ONNX export) sees the same constrained layer; it is saved as a plain Linear.
    """

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            self.weight.abs_()  # start inside the constraint, so no unit starts dead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.clamp_min(0), self.bias)


def _mlp(cin: int, hidden: int, cout: int, dropout: float = 0.0, positive: bool = False) -> nn.Sequential:
    last = NonNegativeLinear(hidden, cout) if positive else nn.Linear(hidden, cout)
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), last)


class NIRNet(DetectorModel):
    arch = "nirnet"
    config_class = NIRNetConfig

    def __init__(self, config: NIRNetConfig, semantic_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        self.imprint = (
            ImprintExtractor(
                c.noise_width, c.noise_depth, c.encoder_width, c.encoder_blocks, c.encoder_stem, c.noise_frozen
            )
            if c.use_noise
            else None
        )
        self.frequency = (
            FrequencyBranch(c.freq_width, c.freq_patch, c.freq_stride, c.freq_k) if c.use_frequency else None
        )
        if c.semantic_view not in ("crops", "image"):
            raise ValueError(f"semantic_view must be 'crops' or 'image', got {c.semantic_view!r}")
        if c.semantic_pool not in ("final", "stats") or (c.semantic_pool == "stats") != bool(c.semantic_taps):
            raise ValueError("semantic_pool must be 'final' (no taps) or 'stats' (with semantic_taps)")
        if c.semantic_pool == "stats" and c.semantic_view != "crops":
            raise ValueError("semantic_pool 'stats' reads native-resolution crops: semantic_view must be 'crops'")
        backbone = create_backbone(c.semantic, semantic_pretrained, c.semantic_weights, c.semantic_taps)
        input_size = None if c.semantic_pool == "stats" else c.semantic_size
        self.semantic = SemanticBranch(backbone, input_size, c.semantic_dim) if backbone is not None else None
        dims = [m.out_dim for m in (self.imprint, self.frequency, self.semantic) if m is not None]
        if not dims:
            raise ValueError("NIRNet needs at least one branch (noise, frequency or semantic)")
        self.head = _mlp(sum(dims), c.head_hidden, 1, c.dropout, positive=c.stay_positive)
        self.da_head: nn.Module | None = None
        if self.imprint is not None and c.lambda_da > 0:
            self.da_head = (
                SpatialDifferenceHead(self.imprint.out_dim, c.head_hidden, c.da_latent_channels, c.da_grid)
                if c.da_spatial
                else _mlp(self.imprint.out_dim, c.head_hidden, c.da_latent_channels * c.da_grid**2)
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

    @classmethod
    def build(cls, config: NIRNetConfig, semantic_pretrained: bool = True) -> NIRNet:
        return cls(config, semantic_pretrained=semantic_pretrained)

    @torch.no_grad()
    def embed(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, crops_per_view: int = 1
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(per-crop feature parts, logits), the logits exactly :meth:`forward`'s. Parts: ``head_input`` (the
        branch features the real/generated head reads), ``hidden`` (its hidden layer) and, for models with a
        semantic branch, ``texture`` (the frozen backbone's output before its trainable projection). Read by the
        family head (:mod:`nirnet.family`); nothing here changes the detector's output."""
        feats: dict[str, torch.Tensor] = {}
        if self.imprint is not None:
            _, feats["f_n"] = self.imprint(crops)
        if self.frequency is not None:
            feats["f_f"] = self.frequency(crops)
        parts: dict[str, torch.Tensor] = {}
        if self.semantic is not None:
            raw = self.semantic.raw(crops if view is None else view)
            f_s = self.semantic.proj(raw)
            if view is not None:
                raw, f_s = raw.repeat_interleave(crops_per_view, 0), f_s.repeat_interleave(crops_per_view, 0)
            feats["f_s"], parts["texture"] = f_s, raw
        parts["head_input"] = torch.cat([feats[k] for k in ("f_n", "f_f", "f_s") if k in feats], dim=1)
        parts["hidden"] = self.head[1](self.head[0](parts["head_input"]))  # Linear, ReLU (dropout is off in eval)
        return parts, self.classify(feats)

    def part_widths(self) -> dict[str, int]:
        """Widths of the feature parts :meth:`embed` gives (read by the family head); ``texture`` only with a
        semantic branch."""
        widths = {"head_input": self.head[0].in_features, "hidden": self.head[0].out_features}
        if self.semantic is not None:
            widths["texture"] = self.semantic.backbone.out_dim
        return widths

    def noise_map(self, x: torch.Tensor) -> torch.Tensor:
        """The extracted noise map ``N(x)`` (for visualisation); needs the noise branch."""
        if self.imprint is None:
            raise RuntimeError("this model has no noise branch")
        return self.imprint.extractor(x)
