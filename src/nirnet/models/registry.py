"""Model registry in the timm style: ``@register_model`` functions return a config; ``create_model`` builds it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..data.transforms import PreprocessConfig
from .config import BaselineConfig, DetectorConfig, NIRNetConfig

_MODELS: dict[str, Callable[[], DetectorConfig]] = {}
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "weights"


def register_model(fn: Callable[[], DetectorConfig]) -> Callable[[], DetectorConfig]:
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_config(name: str, **overrides) -> DetectorConfig:
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name]().replace(**overrides)


def create_model(name: str, pretrained: bool | str | os.PathLike | None = None, **overrides):
    """Build a registered model.

    ``pretrained``: ``None``/``False`` = fresh weights (the semantic backbone still gets its ImageNet weights unless
    ``semantic_pretrained=False`` is passed); ``True`` = the weights shipped in the package for ``name``; a path =
    a folder written by ``save_pretrained``.
    """
    from . import baselines, nirnet  # noqa: F401 - registers the architectures
    from .base import ARCHITECTURES, DetectorModel

    semantic_pretrained = overrides.pop("semantic_pretrained", True)
    if pretrained is True:
        folder = SHIPPED_MODELS / name
        if not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"no shipped weights for {name!r} (looked in {folder})")
        return DetectorModel.from_pretrained(folder, **overrides)
    if pretrained:
        return DetectorModel.from_pretrained(pretrained, **overrides)
    config = get_config(name, **overrides)
    if config.arch == "nirnet":
        return ARCHITECTURES["nirnet"](config, semantic_pretrained=semantic_pretrained)
    return ARCHITECTURES[config.arch](config)


@register_model
def nirnet_tiny() -> NIRNetConfig:
    """Trainable on 2 CPU cores; the embedded default. Noise + frequency branches only: it is trained on aligned
    pairs whose content is identical, where a semantic branch has nothing to learn (see nirnet_tiny_semantic for
    the measured ablation), and EfficientNet-Lite0 alone would cost more than the rest of the model on a CPU.
    L_DA goes through the TAEF2 encoder on 64 px sub-crops of 4 pairs per batch, predicted cell by cell and
    centred over the batch (model folders saved before these options load with them off)."""
    return NIRNetConfig(
        name="nirnet_tiny",
        noise_width=8,
        encoder_width=16,
        encoder_stem="patchify",
        freq_width=32,
        semantic="none",
        da_spatial=True,
        da_centred=True,
    )


@register_model
def nirnet_tiny_semantic() -> NIRNetConfig:
    """nirnet_tiny plus the frozen EfficientNet-Lite0 semantic branch on a 128 px view of the image."""
    return nirnet_tiny().replace(name="nirnet_tiny_semantic", semantic="efficientnet_lite0", semantic_size=128)


@register_model
def nirnet_tiny_texture() -> NIRNetConfig:
    """nirnet_tiny plus a frozen texture branch: per-channel mean and standard deviation of EfficientNet-Lite0's
    activations after blocks 0, 2, 4 and 7 (strides 2-16; the later blocks are never run), on the native-resolution
    crops in training and at inference. A logistic probe on these statistics (real-train against gen-train)
    separated bench-dev's unseen generators far better than any trained branch (docs/RESULTS.md)."""
    return nirnet_tiny().replace(
        name="nirnet_tiny_texture", semantic="efficientnet_lite0", semantic_pool="stats", semantic_taps=(0, 2, 4, 7)
    )


@register_model
def nirnet_tiny_texture_dn() -> NIRNetConfig:
    """nirnet_tiny_texture whose noise extractor is a 5-layer, 16-channel DnCNN-style denoiser pretrained by
    self-supervised denoising on real photos (`nirnet pretrain-denoiser`) and kept frozen, so N(x) stays a map of
    noise rather than of the scene; train with `init.noise_extractor` (configs/nirnet_tiny_texture_dn.yaml). Reads
    every image upscaled 1.5x, chosen after training at 1x (docs/RESULTS.md section 6f; its training config keeps
    `data.pairs.input_scale: 1.0`)."""
    return nirnet_tiny_texture().replace(
        name="nirnet_tiny_texture_dn", noise_width=16, noise_depth=5, noise_frozen=True, input_scale=1.5
    )


@register_model
def nirnet_base() -> NIRNetConfig:
    """Larger variant for GPU training: a 17-layer denoiser, a noise encoder of METHOD.md's shape (stem + 2 residual
    stages) at width 64 with 3 blocks per stage (ResNet-class, far below ResNet-50's parameter count), a wider
    frequency branch and a CLIP ViT-L/14 semantic branch (weights from a local file)."""
    return NIRNetConfig(
        name="nirnet_base",
        preprocess=PreprocessConfig(crop_size=256, num_crops=8),
        noise_width=64,
        noise_depth=17,
        encoder_width=64,
        encoder_blocks=3,
        freq_width=256,
        semantic="open_clip:ViT-L-14",
        semantic_dim=256,
        head_hidden=512,
        da_pairs=16,
        da_crop=128,
    )


@register_model
def npr_tiny() -> BaselineConfig:
    """Baseline: Neighbouring Pixel Relationships (NPR, Tan et al. 2024) with a truncated ResNet, CPU-sized."""
    return BaselineConfig(name="npr_tiny", arch="npr", width=32)


@register_model
def cnnspot_tiny() -> BaselineConfig:
    """Baseline: CNNSpot (Wang et al. 2020), a ResNet-18 image classifier (random init: no ImageNet weights offline),
    trained with blur + JPEG augmentation (configs/cnnspot_tiny_cpu.yaml)."""
    return BaselineConfig(name="cnnspot_tiny", arch="cnnspot", width=32)


@register_model
def test_nirnet() -> NIRNetConfig:
    """A few-kilobyte model for tests: every branch present, random semantic backbone."""
    return NIRNetConfig(
        name="test_nirnet",
        preprocess=PreprocessConfig(crop_size=64, num_crops=2),
        semantic_size=64,
        noise_width=4,
        encoder_width=4,
        freq_width=8,
        semantic_dim=8,
        head_hidden=16,
        da_pairs=2,
        da_crop=32,
        da_encoder="ours:nearest_s8",  # shipped with the package, so tests need no third-party weights
        da_latent_channels=8,
    )
