"""The NIRNet web service (optional extra ``nirnet[serve]``): ``create_app`` builds the FastAPI application,
``nirnet serve`` runs it with uvicorn. ``ServeConfig`` imports without the extra; ``create_app`` needs it."""

from __future__ import annotations

from typing import Any

from .config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imported on use: it needs FastAPI, which the extra installs
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
