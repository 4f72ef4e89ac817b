"""Detector models: registry, configuration, branches, losses."""

from .config import BaselineConfig, DetectorConfig, NIRNetConfig
from .registry import (
    Pretrained,
    config_from_dict,
    create_model,
    get_config,
    list_models,
    load_model,
    register_model,
)

__all__ = [
    "BaselineConfig",
    "DetectorConfig",
    "NIRNetConfig",
    "Pretrained",
    "config_from_dict",
    "create_model",
    "get_config",
    "list_models",
    "load_model",
    "register_model",
]
