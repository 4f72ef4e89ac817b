"""Detector models: registry, configuration, branches, losses."""

from .config import BaselineConfig, DetectorConfig, NIRNetConfig
from .registry import create_model, get_config, list_models, register_model

__all__ = [
    "BaselineConfig",
    "DetectorConfig",
    "NIRNetConfig",
    "create_model",
    "get_config",
    "list_models",
    "register_model",
]
