"""Training configuration: YAML files with dotted ``key=value`` overrides, resolved into dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.degrade import DegradeConfig
from ..data.pairs import PairConfig
from ..imprint.fusion import SimulatorConfig


@dataclass
class DataConfig:
    real: list[str] = field(default_factory=list)  # folders of real photos (recursive) or datasets (label 0 used)
    recon_cache: str | None = None  # autoencoder twins (`nirnet imprint reconstruct`)
    generated: str | None = None  # optional dataset whose label-1 images are real generated images
    bank: str | None = None  # imprint bank (default: the shipped one); "none" disables the simulator
    limit: int | None = None  # use at most this many real images
    # Only these autoencoders, both as bank entries and as cached twins (None: all); for single-source ablations.
    autoencoders: list[str] | None = None
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
class TrainConfig:
    model: str = "nirnet_tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def _build(cls, data: dict[str, Any], where: str):
    if not dataclasses.is_dataclass(cls):
        return data
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown keys {unknown}; known: {sorted(known)}")
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        current = getattr(defaults, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            kwargs[name] = _build(type(current), value, f"{where}.{name}".lstrip("."))
        elif isinstance(current, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML file (optional) and apply ``a.b.c=value`` overrides (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return _build(TrainConfig, tree, "")


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


__all__ = ["DataConfig", "DegradeConfig", "OptimConfig", "RunConfig", "TrainConfig", "dump_config", "load_config"]
