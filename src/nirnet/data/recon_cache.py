"""Reading the cache of autoencoder round trips (built by :func:`nirnet.imprint.recon_cache.build_recon_cache`).

The reader lives in ``data`` because the pair builder needs it, and ``data`` must not import ``imprint`` (which
imports ``data``): the build side stays with the autoencoders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReconEntry:
    image: Path
    box: tuple[int, int, int, int]
    recons: dict[str, Path]


def read_recon_cache(cache_dir: str | os.PathLike) -> dict[str, ReconEntry]:
    """``{image path: ReconEntry}`` of a cache built by :func:`build_recon_cache`."""
    cache_dir = Path(cache_dir)
    index = json.loads((cache_dir / "index.json").read_text())
    return {
        e["image"]: ReconEntry(Path(e["image"]), tuple(e["box"]), {k: cache_dir / v for k, v in e["recons"].items()})
        for e in index["entries"]
        if e["recons"]
    }


def restrict_recon_cache(cache: dict[str, ReconEntry], names: list[str]) -> dict[str, ReconEntry]:
    """Only the round trips through the named autoencoders (images left with none are dropped)."""
    kept = {}
    for key, entry in cache.items():
        recons = {name: path for name, path in entry.recons.items() if name in names}
        if recons:
            kept[key] = ReconEntry(entry.image, entry.box, recons)
    return kept
