"""Folder scoring throughput of `Detector.predict_paths` vs the model's raw forward throughput.

    python benchmarks/detect_throughput.py [--images 200] [--workers 2] [--model FOLDER]

Writes ``--images`` synthetic 512x384 JPEGs to a temporary folder, then measures (a) the raw forward pass on
pre-made crops (images/s, the model's crops per image) and (b) the full pipeline: decode + crop in DataLoader
workers overlapped with the model. Prints both and their ratio (target >= 90 %).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from nirnet.detect import Detector
from nirnet.testing import synthetic_photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = Detector.from_pretrained(args.model)
    crops_per_image = detector.model.config.num_crops
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            paths.append(Path(tmp) / f"{i:05d}.jpg")
            Image.fromarray(synthetic_photo(384, 512, seed=i)).save(paths[-1], quality=90)
        crops = torch.cat([detector.model.crops_of(Image.open(p).convert("RGB")) for p in paths[:32]])
        with torch.inference_mode():
            detector.model(crops[: detector.batch_size])
            start = time.perf_counter()
            for i in range(0, len(crops), detector.batch_size):
                detector.model(crops[i : i + detector.batch_size])
            raw = 32 / (time.perf_counter() - start)
        start = time.perf_counter()
        results = list(detector.predict_paths(paths, workers=args.workers))
        pipeline = len(results) / (time.perf_counter() - start)
    print(f"model {detector.name}, {crops_per_image} crops per image, {args.threads} threads, {args.workers} workers")
    print(f"raw forward:   {raw:7.1f} images/s")
    print(f"predict_paths: {pipeline:7.1f} images/s ({100 * pipeline / raw:.0f} % of raw), {len(results)} images")


if __name__ == "__main__":
    main()
