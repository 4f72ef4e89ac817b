"""A self-contained demo folder: real photos that our dependencies ship, and their simulated generated twins.

Needs nothing outside the installed packages: matplotlib ships ``grace_hopper.jpg`` and scikit-learn ships
``china.jpg`` and ``flower.jpg``. Each photo is decoded and saved as PNG in ``real/``; its twin, stamped with an
imprint drawn from the shipped imprint bank (fused and extrapolated, as in training), is saved as PNG in
``simulated/``. Both classes share the format, so the detector cannot separate them by file type.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from .data.io import load_image_array
from .data.tensors import to_float_tensor, to_image


def sample_photo_paths() -> list[Path]:
    """Photos shipped inside installed dependencies (missing ones are skipped)."""
    import matplotlib
    import sklearn

    candidates = [
        Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
        Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg",
        Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg",
    ]
    return [p for p in candidates if p.is_file()]


def make_demo_folder(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    from .imprint.bank import ImprintBank
    from .imprint.fusion import ImprintSimulator

    out_dir = Path(out_dir)
    (out_dir / "real").mkdir(parents=True, exist_ok=True)
    (out_dir / "simulated").mkdir(parents=True, exist_ok=True)
    simulator = ImprintSimulator(ImprintBank.load())
    generator = torch.Generator().manual_seed(seed)
    for path in sample_photo_paths():
        arr = load_image_array(path)
        Image.fromarray(arr).save(out_dir / "real" / f"{path.stem}.png")
        fake = simulator(to_float_tensor(arr), generator).images[0]
        to_image(fake).save(out_dir / "simulated" / f"{path.stem}_twin.png")
    return out_dir
