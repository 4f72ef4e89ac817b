"""Model configuration: architecture *and* preprocessing, so transforms are derived from the model.

:class:`DetectorConfig` holds what every detector has (how it reads an image, training label smoothing, decision
threshold); :class:`NIRNetConfig` adds NIRNet's branches and its Difference-Aware Loss, :class:`BaselineConfig` the
width of a baseline CNN. Which class a saved ``config.json`` needs is decided by its ``arch`` through the model
registry (:func:`nirnet.models.registry.config_from_dict`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..data.transforms import PREPROCESS_KEYS, PreprocessConfig
from ..decision import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class DetectorConfig:
    name: str = "detector"
    arch: str = "nirnet"  # the model class, named by the registry's entries: nirnet, npr, cnnspot
    # How the model reads an image (crops, input scale, ...): the inference transforms and the training crops.
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    label_smoothing: float = 0.1  # training targets pulled towards 0.5
    # --- decision
    threshold: float = DEFAULT_THRESHOLD  # probability threshold, replaced by `nirnet eval --calibrate`
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> DetectorConfig:
        """The config of ``data`` (a saved ``config.json``, older layouts upgraded) as this class."""
        if cls is DetectorConfig:
            raise TypeError("the arch of a config.json decides its class: use nirnet.models.config_from_dict")
        data = cls._upgrade(_nest_preprocess(dict(data)))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {unknown}")
        data["preprocess"] = PreprocessConfig.from_dict(data.get("preprocess", {}))
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

    @property
    def view_size(self) -> int | None:
        """Side of that whole-image view, or ``None`` when the model reads crops only."""
        return None

    def replace(self, **changes: Any) -> DetectorConfig:
        """A copy with ``changes``. Preprocessing settings may be given by their own names (``crop_size=128``,
        ``input_scale=1.5``: what ``model_overrides`` in a training config and ``create_model`` overrides use) or
        as ``preprocess=`` (a :class:`PreprocessConfig` or a dict of changes)."""
        shorthand = {k: changes.pop(k) for k in list(changes) if k in PREPROCESS_KEYS}
        nested = changes.pop("preprocess", None)
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"{self.name} ({type(self).__name__}) has no setting {', '.join(unknown)}")
        preprocess = nested if isinstance(nested, PreprocessConfig) else self.preprocess
        if isinstance(nested, dict):
            shorthand = {**nested, **shorthand}
        if shorthand:
            preprocess = preprocess.replace(**shorthand)
        return replace(self, preprocess=preprocess, **changes)


def _nest_preprocess(data: dict) -> dict:
    """Migration: ``config.json`` files written before :class:`PreprocessConfig` kept ``crop_size``,
    ``num_crops`` and ``input_scale`` at the top level; they move into ``preprocess`` (the other preprocessing
    settings were fixed then, and their defaults are those fixed values)."""
    flat = {k: data.pop(k) for k in list(data) if k in PREPROCESS_KEYS}
    if flat:
        data["preprocess"] = {**flat, **data.get("preprocess", {})}
    return data


@dataclass(frozen=True)
class BaselineConfig(DetectorConfig):
    """A baseline CNN (NPR, CNNSpot): one width; no branches, no Difference-Aware Loss."""

    width: int = 32  # channels of the first stage

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
    # traces a generator leaves survive). "stats" supports efficientnet_lite0/1/2.
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

    @classmethod
    def _upgrade(cls, data: dict) -> dict:
        if isinstance(data.get("semantic_taps"), list):  # JSON has no tuples
            data["semantic_taps"] = tuple(data["semantic_taps"])
        return data

    @property
    def uses_image_view(self) -> bool:
        return self.semantic not in ("none", "", None) and self.semantic_view == "image"

    @property
    def view_size(self) -> int | None:
        return self.semantic_size if self.uses_image_view else None
