"""Detector models: registry, configuration, branches, losses."""

from .config import NIRNetConfig
from .registry import create_model, get_config, list_models, register_model

__all__ = ["NIRNetConfig", "create_model", "get_config", "list_models", "register_model"]
