"""The model registry, in the timm style: one decorated function per model name.

    @register_model(NIRNet, pretrained=Pretrained("my_model", sha256="..."))
    def my_model() -> NIRNetConfig:
        return NIRNetConfig(name="my_model", noise_width=8)

The decorator records the entry: the architecture class (a :class:`~nirnet.models.base.DetectorModel` subclass,
whose ``config_class`` and ``arch`` it names), the function as the config factory, and where the shipped weights
are (a folder under the package's ``weights/`` or a path, with the SHA-256 of its ``model.safetensors``). Everything
else goes through the entries: :func:`create_model` builds or loads a model, :func:`load_model` loads any saved
folder by its ``arch``, :func:`config_from_dict` picks a saved config's class. Adding a model is one decorated
function, here or in any module of yours that is imported before ``create_model`` is called with its name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data.transforms import PreprocessConfig
from .base import DetectorModel, read_config_json
from .baselines.cnnspot import CNNSpot
from .baselines.npr import NPRNet
from .config import BaselineConfig, DetectorConfig, NIRNetConfig
from .nirnet import NIRNet
from .probe import FrozenProbe, FrozenProbeConfig, set_member_loader

SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "weights"


@dataclass(frozen=True)
class Pretrained:
    """Shipped weights: ``folder`` (a name under the package's ``weights/``, or a path) holding ``config.json`` and
    ``model.safetensors``, whose SHA-256 is ``sha256`` (checked on load: a rebuilt model must update its entry)."""

    folder: str | os.PathLike
    sha256: str

    @property
    def path(self) -> Path:
        return SHIPPED_MODELS / self.folder


@dataclass(frozen=True)
class ModelEntry:
    name: str
    architecture: type[DetectorModel]
    config: Callable[[], DetectorConfig]
    pretrained: Pretrained | None = None


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    architecture: type[DetectorModel], pretrained: Pretrained | None = None
) -> Callable[[Callable[[], DetectorConfig]], Callable[[], DetectorConfig]]:
    """Register the decorated config factory under its function name (see the module docstring)."""

    def decorate(factory: Callable[[], DetectorConfig]) -> Callable[[], DetectorConfig]:
        if factory.__name__ in _MODELS:
            raise ValueError(f"model {factory.__name__!r} is registered twice")
        _MODELS[factory.__name__] = ModelEntry(factory.__name__, architecture, factory, pretrained)
        return factory

    return decorate


def list_models(pretrained: bool = False) -> list[str]:
    """Registered model names (``pretrained``: only those with shipped weights present)."""
    return sorted(n for n, e in _MODELS.items() if not pretrained or _has_weights(e))


def _has_weights(entry: ModelEntry) -> bool:
    return entry.pretrained is not None and (entry.pretrained.path / "model.safetensors").is_file()


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name]


def architecture(arch: str) -> type[DetectorModel]:
    """The class saved as ``arch`` in a ``config.json`` (any registered model's architecture)."""
    classes = {e.architecture.arch: e.architecture for e in _MODELS.values()}
    if arch not in classes:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(classes)}")
    return classes[arch]


def config_from_dict(data: dict) -> DetectorConfig:
    """A saved ``config.json`` as the config class its ``arch`` needs (older layouts upgraded)."""
    return architecture(data.get("arch", "nirnet")).config_class.from_dict(data)


def get_config(name: str, **overrides) -> DetectorConfig:
    entry = model_entry(name)
    return entry.config().replace(arch=entry.architecture.arch, **overrides)


def load_model(folder: str | os.PathLike, **overrides) -> DetectorModel:
    """Load any folder written by ``save_pretrained`` (the class comes from its ``arch``)."""
    folder = Path(folder)
    arch = read_config_json(folder).get("arch", "nirnet")
    try:
        cls = architecture(arch)
    except ValueError as exc:
        raise ValueError(f"{folder}: {exc}") from None
    return cls.from_pretrained(folder, **overrides)


def pretrained_folder(name: str) -> Path:
    """The folder of ``name``'s shipped weights, after checking them against the entry's SHA-256."""
    entry = model_entry(name)
    if not _has_weights(entry):
        where = entry.pretrained.path if entry.pretrained else "its registry entry names none"
        raise FileNotFoundError(f"no shipped weights for {name!r} ({where})")
    folder = entry.pretrained.path
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    if digest != entry.pretrained.sha256:
        raise ValueError(
            f"{folder / 'model.safetensors'} has SHA-256 {digest}, its registry entry {entry.pretrained.sha256}: "
            "after rebuilding shipped weights, update the entry's sha256"
        )
    return folder


def create_model(name: str, pretrained: bool | str | os.PathLike | None = None, **overrides) -> DetectorModel:
    """Build a registered model.

    ``pretrained``: ``None``/``False`` = fresh weights (the semantic backbone still gets its ImageNet weights unless
    ``semantic_pretrained=False`` is passed); ``True`` = the weights shipped for ``name`` (its entry's folder); a
    path = a folder written by ``save_pretrained``.
    """
    semantic_pretrained = overrides.pop("semantic_pretrained", True)
    if pretrained is True:
        return load_model(pretrained_folder(name), **overrides)
    if pretrained:
        return load_model(pretrained, **overrides)
    return model_entry(name).architecture.build(get_config(name, **overrides), semantic_pretrained)


def model_folder(name_or_path: str | os.PathLike) -> Path:
    """A model folder as given, or a shipped model's folder (checked against its entry's SHA-256)."""
    return Path(name_or_path) if Path(name_or_path).is_dir() else pretrained_folder(str(name_or_path))


def _load_member(name: str) -> tuple[DetectorModel, Path]:
    """A frozen probe's member: a model folder, or a shipped model's folder."""
    folder = model_folder(name)
    return load_model(folder), folder


set_member_loader(_load_member)


@register_model(
    NIRNet,
    pretrained=Pretrained(
        "nirnet_tiny",
        sha256="89b9b97714147c236d49e0a28522bede92cba61a043437ff621b6707f3d15efc",
    ),
)
def nirnet_tiny() -> NIRNetConfig:
    """Trainable on 2 CPU cores; the first embedded default. Noise + frequency branches only: it is trained on aligned
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


@register_model(NIRNet)
def nirnet_tiny_semantic() -> NIRNetConfig:
    """nirnet_tiny plus the frozen EfficientNet-Lite0 semantic branch on a 128 px view of the image."""
    return nirnet_tiny().replace(name="nirnet_tiny_semantic", semantic="efficientnet_lite0", semantic_size=128)


@register_model(
    NIRNet,
    pretrained=Pretrained(
        "nirnet_tiny_texture",
        sha256="2477163414d8c5bd0961742062343d56147ad02e5b644a344b89ffc6e7d62482",
    ),
)
def nirnet_tiny_texture() -> NIRNetConfig:
    """nirnet_tiny plus a frozen texture branch: per-channel mean and standard deviation of EfficientNet-Lite0's
    activations after blocks 0, 2, 4 and 7 (strides 2-16; the later blocks are never run), on the native-resolution
    crops in training and at inference. A logistic probe on these statistics (real-train against gen-train)
    separated bench-dev's unseen generators far better than any trained branch (docs/RESULTS.md)."""
    return nirnet_tiny().replace(
        name="nirnet_tiny_texture", semantic="efficientnet_lite0", semantic_pool="stats", semantic_taps=(0, 2, 4, 7)
    )


@register_model(
    NIRNet,
    pretrained=Pretrained(
        "nirnet_tiny_texture_dn",
        sha256="85f4ed02beabfc67359f53ebfdaabfcb9944d1bbdfd46753e420e95c406abbe4",
    ),
)
def nirnet_tiny_texture_dn() -> NIRNetConfig:
    """nirnet_tiny_texture whose noise extractor is a 5-layer, 16-channel DnCNN-style denoiser pretrained by
    self-supervised denoising on real photos (`nirnet pretrain-denoiser`) and kept frozen, so N(x) stays a map of
    noise rather than of the scene; train with `init.noise_extractor` (configs/nirnet_tiny_texture_dn.yaml). Reads
    every image upscaled 1.5x, chosen after training at 1x (docs/RESULTS.md section 6f; its training config keeps
    `data.pairs.input_scale: 1.0`)."""
    return nirnet_tiny_texture().replace(
        name="nirnet_tiny_texture_dn", noise_width=16, noise_depth=5, noise_frozen=True, input_scale=1.5
    )


@register_model(NIRNet)
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


@register_model(
    FrozenProbe,
    pretrained=Pretrained(
        "nirnet_probe",
        sha256="7162581c8e8b63f1bb8dda0b75fd62fe84216909a447cdf3eb02ad67ef7a5e48",
    ),
)
def nirnet_probe() -> FrozenProbeConfig:
    """A linear detector on frozen features, fitted on the multi-family corpus (configs/nirnet_probe.yaml): the
    pooled EfficientNet-Lite1 features of the whole image at 224 px beside EfficientNet-Lite0's texture statistics
    (blocks 0/2/4/7) of four 256 px crops; its threshold is fitted on leave-family-out folds. Ranks held-out
    generator families better than nirnet_tiny_texture_dn but leans on what a picture shows (docs/RESULTS.md section
    16); nirnet_stack, the default, supersedes it."""
    return FrozenProbeConfig(name="nirnet_probe")


@register_model(
    FrozenProbe,
    pretrained=Pretrained(
        "nirnet_stack",
        sha256="42752dd66b494c5aa9413ae060eb089dd7cc0533321f919845e2488b9ec4c997",
    ),
)
def nirnet_stack() -> FrozenProbeConfig:
    """The embedded default. nirnet_probe's frozen features with the previous default detector
    (nirnet_tiny_texture_dn, frozen) as a member: its branch features and logit on the same crops join them, fitted
    on the multi-family corpus (configs/nirnet_stack.yaml). The real/generated logit reads the content and member
    features (texture statistics encode the real source and lowered it with real sources held out); the family head
    reads all three. Its threshold comes from folds that hold out generator families and real photo sources
    (docs/RESULTS.md sections 17-24). Reads every image upscaled 1.5x, as its member does."""
    return FrozenProbeConfig(name="nirnet_stack", member="nirnet_tiny_texture_dn", logit_without=("texture",)).replace(
        input_scale=1.5
    )


@register_model(NPRNet)
def npr_tiny() -> BaselineConfig:
    """Baseline: Neighbouring Pixel Relationships (NPR, Tan et al. 2024) with a truncated ResNet, CPU-sized."""
    return BaselineConfig(name="npr_tiny", arch="npr", width=32)


@register_model(CNNSpot)
def cnnspot_tiny() -> BaselineConfig:
    """Baseline: CNNSpot (Wang et al. 2020), a ResNet-18 image classifier (random init: no ImageNet weights offline),
    trained with blur + JPEG augmentation (configs/cnnspot_tiny_cpu.yaml)."""
    return BaselineConfig(name="cnnspot_tiny", arch="cnnspot", width=32)


@register_model(NIRNet)
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


@register_model(FrozenProbe)
def test_probe() -> FrozenProbeConfig:
    """A frozen-feature model for tests: Lite0 content at 64 px and Lite0 texture statistics of two 64 px crops."""
    return FrozenProbeConfig(
        name="test_probe",
        preprocess=PreprocessConfig(crop_size=64, num_crops=2),
        content_backbone="efficientnet_lite0",
        content_size=64,
        texture_taps=(0, 2),
    )
