"""Model configuration: architecture *and* preprocessing, so transforms are derived from the model.

:class:`DetectorConfig` holds what every detector has (crops, training label smoothing, decision threshold);
:class:`NIRNetConfig` adds NIRNet's branches and its Difference-Aware Loss, :class:`BaselineConfig` the width of a
baseline CNN. ``DetectorConfig.from_dict`` picks the class from the ``arch`` key of a saved ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

from ..decision import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class DetectorConfig:
    name: str = "detector"
    arch: str = "nirnet"  # the model class (see nirnet.models.base.ARCHITECTURES): nirnet, npr, cnnspot
    # --- preprocessing (inference transforms come from here)
    crop_size: int = 256  # crop side in pixels of the image as read (after input_scale)
    num_crops: int = 4  # crops per image at inference; logits are averaged
    # Every image is resized by this factor (bicubic) before its crops are taken, in training (after the JPEG step)
    # and at inference; 1.0 reads native pixels. The shipped default reads at 1.5 (docs/RESULTS.md section 6f).
    input_scale: float = 1.0
    label_smoothing: float = 0.1  # training targets pulled towards 0.5
    # --- decision
    threshold: float = DEFAULT_THRESHOLD  # probability threshold, replaced by `nirnet eval --calibrate`
    extra: dict = field(default_factory=dict)

    ARCHS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not self.input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {self.input_scale}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> DetectorConfig:
        """The config of ``data`` (a saved ``config.json``), of the class its ``arch`` needs."""
        if cls is DetectorConfig:
            arch = data.get("arch", "nirnet")
            for config_class in (NIRNetConfig, BaselineConfig):
                if arch in config_class.ARCHS:
                    return config_class.from_dict(data)
            raise ValueError(f"unknown architecture {arch!r}")
        data = cls._upgrade(dict(data))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {unknown}")
        return cls(**data)

    @classmethod
    def _upgrade(cls, data: dict) -> dict:
        """Keys of older ``config.json`` files, mapped to today's (nothing to do by default)."""
        return data

    @classmethod
    def from_file(cls, path: str | Path) -> DetectorConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def uses_image_view(self) -> bool:
        """Whether inference must supply a resized whole-image view (besides the crops)."""
        return False

    def replace(self, **changes) -> DetectorConfig:
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"{self.name} ({type(self).__name__}) has no setting {', '.join(unknown)}")
        return replace(self, **changes)


@dataclass(frozen=True)
class BaselineConfig(DetectorConfig):
    """A baseline CNN (NPR, CNNSpot): one width; no branches, no Difference-Aware Loss."""

    width: int = 32  # channels of the first stage

    ARCHS: ClassVar[tuple[str, ...]] = ("npr", "cnnspot")

    @classmethod
    def _upgrade(cls, data: dict) -> dict:
        # Baselines used to be saved with NIRNet's whole config; their width was ``encoder_width``.
        if "encoder_width" in data:
            data["width"] = data["encoder_width"]
        nirnet_only = {f.name for f in fields(NIRNetConfig)} - {f.name for f in fields(cls)}
        return {k: v for k, v in data.items() if k not in nirnet_only}


@dataclass(frozen=True)
class NIRNetConfig(DetectorConfig):
    name: str = "nirnet_tiny"
    semantic_size: int = 224  # side of the resized whole-image view for the semantic branch
    # --- noise branch (NIE)
    use_noise: bool = True
    noise_width: int = 16
    noise_depth: int = 3
    # Keep N(x) as it starts (e.g. a pretrained denoiser, `init.noise_extractor` in training): weights and BatchNorm
    # statistics are not trained, so its map stays noise; the encoder behind it still learns.
    noise_frozen: bool = False
    encoder_width: int = 16
    encoder_blocks: int = 1
    encoder_stem: str = "conv"  # "conv" (3x3 stride 2) or "patchify" (4x4 stride 4, cheaper)
    # --- frequency branch
    use_frequency: bool = True
    freq_width: int = 32
    freq_patch: int = 32
    freq_stride: int = 16
    freq_k: int = 2
    # --- semantic branch
    semantic: str = "efficientnet_lite0"  # or open_clip:<model>, timm:<model>, none
    semantic_weights: str | None = None  # local weights file for open_clip / timm
    semantic_dim: int = 64
    # What the semantic backbone sees. "crops": the native-resolution crops of the other branches, in training and at
    # inference (training only ever has crops, so this is the view a trained branch knows). "image": the whole image
    # resized to semantic_size, for models trained elsewhere on whole-image views.
    semantic_view: str = "crops"
    # How backbone activations become a feature. "final": the backbone's pooled output (resized to semantic_size).
    # "stats": per-channel mean and standard deviation of the activations after each block in semantic_taps, on the
    # crops at native resolution (texture statistics of a frozen ImageNet network; no resizing, so the low-level
    # traces a generator leaves survive). "stats" supports efficientnet_lite0.
    semantic_pool: str = "final"
    semantic_taps: tuple[int, ...] = ()
    # --- head and losses
    head_hidden: int = 128
    dropout: float = 0.1
    # Stay-Positive (Rajan & Lee 2025): the last layer's weights over the (non-negative, post-ReLU) head features are
    # kept >= 0, so a feature can only add evidence of "generated"; missing real detail cannot push towards it.
    stay_positive: bool = False
    lambda_da: float = 0.1  # weight of the Difference-Aware Loss
    da_encoder: str = "taef2"  # frozen encoder E_fix of L_DA (any autoencoder of nirnet.imprint's registry)
    da_latent_channels: int = 32  # latent width of da_encoder
    da_grid: int = 2  # the latent difference is average-pooled to da_grid x da_grid
    da_crop: int = 64  # L_DA runs on sub-crops of this side (keeps E_fix cheap)
    da_pairs: int = 4  # pairs per batch that L_DA uses
    # Predict the da_grid x da_grid latent difference cell by cell from the noise encoder's feature map pooled to the
    # same grid (False: one MLP on the globally pooled f_n, which cannot know where in the crop a change is).
    da_spatial: bool = False
    da_centred: bool = False  # centre target and prediction over the batch: learn what differs between twins

    ARCHS: ClassVar[tuple[str, ...]] = ("nirnet",)

    @classmethod
    def _upgrade(cls, data: dict) -> dict:
        if isinstance(data.get("semantic_taps"), list):  # JSON has no tuples
            data["semantic_taps"] = tuple(data["semantic_taps"])
        return data

    @property
    def uses_image_view(self) -> bool:
        return self.semantic not in ("none", "", None) and self.semantic_view == "image"
