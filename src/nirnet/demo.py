"""A self-contained demo folder: real photos that our dependencies ship, and their simulated generated twins.

Needs nothing outside the installed packages: matplotlib ships ``grace_hopper.jpg`` and scikit-learn ships
``china.jpg`` and ``flower.jpg``. Each photo is decoded and saved as PNG in ``real/``; its twin, stamped with an
imprint drawn from the shipped imprint bank (fused and extrapolated, as in training), is saved as PNG in
``simulated/``. Both classes share the format, so the detector cannot separate them by file type.

The simulated side is not the output of any real generator: no installable package that we found ships images
made by a generator with a stated licence, and images from other repositories are never committed here. The
default model was trained on real photos and the images of real generators (``nirnet.cli.demo.TRAINED_ON`` says
which), never on simulator twins, so the demo shows the pipeline end to end, not the model's accuracy on real
generators (docs/MODEL_CARD.md has that).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .data.io import load_image_array
from .data.tensors import to_float_tensor, to_image

#: Said of every simulated twin: what it is and whether the default's training covers it.
SIMULATED_NOTE = (
    "simulated twin of the photo (the project's imprint simulator, not a real generator; the default model never "
    "trained on simulator output)"
)


@dataclass(frozen=True)
class SamplePhoto:
    path: Path
    credit: str  # who made it and under which licence


@dataclass(frozen=True)
class DemoImage:
    path: Path  # the file in the demo folder
    kind: str  # "real photo" or "simulated"
    note: str  # where it comes from, its licence, what the default model's training covers


def sample_photos() -> list[SamplePhoto]:
    """Camera photos shipped inside installed dependencies (missing ones are skipped)."""
    import matplotlib
    import sklearn

    sklearn_images = Path(sklearn.__file__).parent / "datasets" / "images"
    candidates = [
        SamplePhoto(
            Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
            "matplotlib sample data: portrait of Grace Hopper, U.S. Navy photo, public domain; a scanned print "
            "(the default called it generated until scans and official portraits joined its real class)",
        ),
        SamplePhoto(
            sklearn_images / "china.jpg",
            "scikit-learn sample image: photo by danielbuechele (Flickr), CC BY 2.0",
        ),
        SamplePhoto(
            sklearn_images / "flower.jpg",
            "scikit-learn sample image: photo by vultilion (Flickr), CC BY 2.0; a close-up, the kind of photo the "
            "default calls generated most often (it did call this one generated until its fit stopped learning "
            "that flowers are generated from one GAN's flower samples)",
        ),
    ]
    return [p for p in candidates if p.path.is_file()]


def sample_photo_paths() -> list[Path]:
    """The files of :func:`sample_photos`."""
    return [p.path for p in sample_photos()]


def make_demo_folder(out_dir: str | os.PathLike, images: int | None = None, seed: int = 0) -> list[DemoImage]:
    """Write ``images`` sample photos (default: all) as PNG in ``out_dir/real`` and one simulated twin of each in
    ``out_dir/simulated``; returns what was written, in that order."""
    from .imprint.bank import ImprintBank
    from .imprint.fusion import ImprintSimulator

    if images is not None and images < 1:
        raise ValueError(f"the demo needs at least one image, got {images}")
    photos = sample_photos()[:images]
    if not photos:
        raise FileNotFoundError("no sample photos found (they ship with matplotlib and scikit-learn)")
    out_dir = Path(out_dir)
    (out_dir / "real").mkdir(parents=True, exist_ok=True)
    (out_dir / "simulated").mkdir(parents=True, exist_ok=True)
    simulator = ImprintSimulator(ImprintBank.load())
    generator = torch.Generator().manual_seed(seed)
    written = []
    for photo in photos:
        arr = load_image_array(photo.path)
        real = out_dir / "real" / f"{photo.path.stem}.png"
        Image.fromarray(arr).save(real)
        written.append(DemoImage(real, "real photo", photo.credit))
        twin = out_dir / "simulated" / f"{photo.path.stem}_twin.png"
        to_image(simulator(to_float_tensor(arr), generator).images[0]).save(twin)
        written.append(DemoImage(twin, "simulated", SIMULATED_NOTE))
    return written
