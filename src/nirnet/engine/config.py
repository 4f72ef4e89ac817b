"""Training configuration: YAML files with dotted ``key=value`` overrides, resolved into dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from ..data.degrade import DegradeConfig
from ..data.pairs import PairConfig
from ..imprint.fusion import SimulatorConfig


@dataclass
class DataConfig:
    real: list[str] = field(default_factory=list)  # folders of real photos (recursive) or datasets (label 0 used)
    recon_cache: str | None = None  # autoencoder twins (`nirnet imprint reconstruct`)
    # optional datasets (one or a list) whose label-1 images are real generated images
    generated: str | list[str] | None = None
    # Draw generated images with each family the same weight (nirnet.data.families) and real photos with each
    # source folder the same weight, instead of uniformly over files.
    balance: bool = False
    min_family_images: int = 8  # a smaller family gets a proportionally smaller weight when balancing
    # Generator families left out of training (the leave-family-out protocol trains without them).
    exclude_families: list[str] = field(default_factory=list)
    bank: str | None = None  # imprint bank (default: the shipped one); "none" disables the simulator
    limit: int | None = None  # use at most this many real images
    # Only these autoencoders, both as bank entries and as cached twins (None: all); for single-source ablations.
    autoencoders: list[str] | None = None
    # Share of the real and generated images held out of training by file name (nirnet.data.split), listed in
    # <out_dir>/validation/manifest.csv for choices that must not be made on a benchmark.
    validation: float = 0.0
    pairs: PairConfig = field(default_factory=PairConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)


@dataclass
class OptimConfig:
    steps: int = 1000
    batch_pairs: int = 16  # aligned pairs per step (the batch holds twice as many images)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    grad_clip: float = 5.0


@dataclass
class RunConfig:
    out_dir: str = "runs/nirnet"
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    workers: int = 2
    device: str = "auto"  # auto, cpu, cuda
    amp: str = "bf16"  # on CUDA: bf16, fp16 or none
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None  # torch CPU threads in the training process


@dataclass
class InitConfig:
    # Pretrained weights for the noise extractor (`nirnet pretrain-denoiser`); trained further with the detector.
    noise_extractor: str | None = None


@dataclass
class ProbeConfig:
    """How a frozen-feature model (``arch: frozen_probe``) is fitted; ignored by every other model."""

    # What happens to every image, of both classes alike, before its features are taken (nirnet.eval.protocol):
    # "aligned" = centre crop to <= 512 px and JPEG 90, the same footing as the evaluation.
    protocol: str = "aligned"
    c: float = 0.1  # inverse L2 strength of the logistic regression (features standardised first)
    subsample: float = 1.0  # share of training rows drawn by run.seed (< 1: a seed's spread can be measured)
    # Per-image features, reused by every later fit with the same backbones and protocol (resumes a crash).
    feature_cache: str = "runs/feature_cache/probe"
    # Fit the decision threshold on the out-of-fold scores of leave-family-out folds (nirnet.data.families
    # LEAVE_OUT_FOLDS; needs data.validation > 0 for the held-out real photos): a verdict for unseen generators.
    calibrate: bool = True
    # Hold each real source folder out as well (every fold once per source): the threshold then comes from photos
    # of sources the model never saw, as a user's are. Held-out families alone keep the real photos' sources in
    # training, and a threshold fitted there called about half of bench-dev's photos generated (RESULTS 17).
    hold_out_sources: bool = False
    # Feature groups (content, texture, member) the real/generated logit leaves out (weight 0); they are still
    # computed and standardised, so the family head reads them. Texture statistics encode the real source: with
    # sources held out they lowered the stack's detection, while they help it name families (RESULTS 17).
    detect_without: list[str] = field(default_factory=list)
    # Post-processed copies of every training row, both classes alike, each a cell of the robustness grid applied
    # after the protocol's crop and before its JPEG (e.g. [blur1, blur2]): the copies join the training rows of
    # every fit, never the scored ones, so a blurred or recompressed photo stops looking like a generated image.
    augment: list[str] = field(default_factory=list)
    augment_weight: float = 1.0  # each copy's sampling weight relative to its original's
    # Generator families whose training images teach the logit nothing through the content features: in every fit
    # their content features are set to the weighted centre of the other training rows (standardised), so only the
    # other features learn from them; held-out images are scored as they are, and the standardiser is unchanged.
    # For families whose every image shows one subject (FastGAN's flowers), which otherwise teach "this subject is
    # generated" and flag real photos of it (RESULTS 25).
    content_blind: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    model: str = "nirnet_tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init: InitConfig = field(default_factory=InitConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


class ConfigError(ValueError):
    """A training config that cannot be used: unreadable YAML, an unknown key or a value of the wrong type."""


def _forbid_unknown_keys(cls: type) -> None:
    """Mark ``cls`` and every dataclass nested in it so that pydantic rejects keys they do not define (a typo
    in a YAML key must be an error, not a silently ignored setting)."""
    if not dataclasses.is_dataclass(cls):
        return
    cls.__pydantic_config__ = {"extra": "forbid"}
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        _forbid_unknown_keys(type(default))


def _adapter() -> TypeAdapter:
    # Validation with type coercion by pydantic: the dataclasses stay plain (the library does not need pydantic
    # to *use* a config), and YAML's "1e-4" (a string in YAML 1.1) becomes the float the field asks for.
    _forbid_unknown_keys(TrainConfig)
    return TypeAdapter(TrainConfig)


def _build(tree: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a nested dict; a bad value or key raises ``ValueError`` naming the dotted key,
    what was expected and what was given."""
    try:
        return _adapter().validate_python(tree)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:3]:
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "unexpected_keyword_argument":
                problems.append(f"unknown key {key!r}")
            else:
                problems.append(f"{key}: {error['msg'].lower()} (got {error.get('input')!r})")
        more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise ConfigError("config: " + "; ".join(problems) + more) from None


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML file (optional) and apply ``a.b.c=value`` overrides (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    try:
        if path is not None:
            tree = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: a training config must be a YAML mapping (sections model, data, optim, run)")
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not key=value")
            key, raw = item.split("=", 1)
            _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from None
    return _build(tree)


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_config(config: TrainConfig) -> str:
    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return yaml.safe_dump(plain(to_dict(config)), sort_keys=False)


__all__ = [
    "ConfigError",
    "DataConfig",
    "DegradeConfig",
    "OptimConfig",
    "ProbeConfig",
    "RunConfig",
    "TrainConfig",
    "dump_config",
    "load_config",
]
