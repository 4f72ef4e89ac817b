"""Baselines written from their papers, trained and evaluated by the same engine as NIRNet."""

from .cnnspot import CNNSpot
from .npr import NPRNet

__all__ = ["CNNSpot", "NPRNet"]
