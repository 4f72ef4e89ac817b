"""NIRNet: detect AI-generated images from the implicit noise-based imprint of generative models.

The public API is imported lazily so that ``import nirnet`` stays light (no training or server extras).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load_image": "nirnet.data.io",
    "ImageLoadError": "nirnet.data.io",
    "read_dataset": "nirnet.data.datasets",
    "create_model": "nirnet.models.registry",
    "list_models": "nirnet.models.registry",
    "NIRNetConfig": "nirnet.models.config",
    "Detector": "nirnet.detect",
    "Prediction": "nirnet.detect",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nirnet' has no attribute {name!r}")
