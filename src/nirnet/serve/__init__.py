"""The NIRNet web service (optional extra ``nirnet[serve]``): ``create_app`` builds the FastAPI application,
``nirnet serve`` runs it with uvicorn."""

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
