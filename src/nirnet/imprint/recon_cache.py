"""On-disk cache of autoencoder round trips of real photos: the "autoencoder twin" half of the training fakes.

Autoencoders are far too slow to run inside a training step on a CPU, so ``build_recon_cache`` runs each one once
over a region of each real image and stores the result losslessly:

    <cache>/index.json                 {"region": R, "entries": [{"image": path, "box": [l, t, r, b],
                                                                  "recons": {ae_name: "ae/stem.png"}}]}
    <cache>/<ae name>/<image stem>.png the reconstruction of that box, quantised to 8 bits like a saved image

The region is a centred box of at most ``region`` pixels a side, aligned to 16 px so every decoder grid starts at
the box's corner.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .._atomic import atomic_write, atomic_write_text
from ..data.io import ImageLoadError, load_image
from ..data.recon_cache import ReconEntry, read_recon_cache, restrict_recon_cache  # noqa: F401 - re-exported
from ..data.tensors import to_float_tensor, to_image
from .autoencoders import Reconstructor, create_autoencoder

ALIGN = 16


def centre_box(width: int, height: int, region: int) -> tuple[int, int, int, int]:
    w, h = min(width, region), min(height, region)
    left = (width - w) // 2 // ALIGN * ALIGN
    top = (height - h) // 2 // ALIGN * ALIGN
    return left, top, left + w, top + h


def _stem(path: Path) -> str:
    # Names can repeat across folders; a short hash of the full path keeps them apart.
    return f"{path.stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def build_recon_cache(
    autoencoders: Sequence[str | Reconstructor],
    image_paths: Sequence[str | Path],
    out_dir: str | os.PathLike,
    region: int = 384,
    on_image: Callable[[str], None] | None = None,
    **ae_kwargs,
) -> Path:
    """Reconstruct ``region`` boxes of ``image_paths`` with each autoencoder; resumable (existing files are kept)."""
    out_dir = Path(out_dir)
    index_path = out_dir / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {"region": region, "entries": []}
    if index["region"] != region:
        raise ValueError(f"{out_dir} was built with region {index['region']}, not {region}")
    by_image = {e["image"]: e for e in index["entries"]}
    models = [create_autoencoder(a, **ae_kwargs) if isinstance(a, str) else a for a in autoencoders]
    for path in map(Path, image_paths):
        try:
            img = load_image(path)
        except ImageLoadError:
            continue
        box = centre_box(*img.size, region)
        entry = by_image.setdefault(str(path), {"image": str(path), "box": list(box), "recons": {}})
        x = to_float_tensor(img.crop(box))
        for ae in models:
            rel = f"{ae.name.replace(':', '_')}/{_stem(path)}.png"
            if ae.name in entry["recons"] and (out_dir / rel).is_file():
                continue
            with torch.inference_mode():
                recon = ae.reconstruct(x)[0]
            image = to_image(recon)
            atomic_write(out_dir / rel, lambda tmp, im=image: im.save(tmp, format="PNG"))
            entry["recons"][ae.name] = rel
        if on_image:
            on_image(str(path))
        index["entries"] = list(by_image.values())
        atomic_write_text(index_path, json.dumps(index))
    return index_path
