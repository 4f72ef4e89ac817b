"""False positives on real photos of the subjects generators draw: portraits, animals, food, close-ups.

    python benchmarks/package_photos.py [--wheel scikit_image-*.whl] [--model default --model nirnet_probe]

The training photos (ImageNet, BSDS500, camera, wallpapers) rarely show what generated images show, so a detector
can learn content instead of an imprint. This scores real photographs that Python packages ship, read once from the
installed packages (matplotlib's Grace Hopper, scikit-learn's china and flower, the photos of ``make demo``) and,
with ``--wheel``, straight from a scikit-image wheel (astronaut, chelsea the cat, coffee, rocket, motorcycle, Hubble
deep field; fetch it with ``pip download scikit-image --no-deps``), through the aligned protocol, and prints each
model's probability and its verdict at the model's stored threshold. Nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import io
import zipfile

from PIL import Image

from nirnet.demo import sample_photo_paths
from nirnet.detect import Detector
from nirnet.eval.protocol import PROTOCOLS

SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg")  # fmt: skip


def package_photos(wheel: str | None) -> dict[str, Image.Image]:
    photos = {path.name: Image.open(path).convert("RGB") for path in sample_photo_paths()}
    if wheel:
        with zipfile.ZipFile(wheel) as archive:
            for name in SKIMAGE_PHOTOS:
                data = archive.read(f"skimage/data/{name}")
                photos[name] = Image.open(io.BytesIO(data)).convert("RGB")
    return photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", default=None, help="a scikit-image wheel (pip download scikit-image --no-deps)")
    parser.add_argument("--model", action="append", default=None, help="shipped name or folder (repeatable)")
    args = parser.parse_args()
    photos = package_photos(args.wheel)
    protocol = PROTOCOLS["aligned"]
    models = args.model or ["default", "nirnet_probe"]
    detectors = {m: Detector.from_pretrained(None if m == "default" else m, backend="torch") for m in models}
    print("| photo | " + " | ".join(f"{m} (threshold {d.threshold:.3f})" for m, d in detectors.items()) + " |")
    print("|---" * (len(models) + 1) + "|")
    flagged = dict.fromkeys(models, 0)
    for name, image in photos.items():
        cells = []
        for m, detector in detectors.items():
            ((probability, _),) = detector.predict_images([protocol(image)])
            generated = probability >= detector.threshold
            flagged[m] += generated
            cells.append(f"{probability:.3f} {'**generated**' if generated else 'real'}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n" + ", ".join(f"{m}: {n} of {len(photos)} called generated" for m, n in flagged.items()))


if __name__ == "__main__":
    main()
