"""Folder scoring throughput of `Detector.predict_paths` vs the model's raw forward throughput, per backend.

    python benchmarks/detect_throughput.py [--images 200] [--workers 2] [--model FOLDER] [--backends torch onnx]

Writes ``--images`` synthetic 512x384 JPEGs to a temporary folder, then measures for each backend (``torch``: eager
PyTorch; ``onnx``: ONNX Runtime, the model exported once to the user cache, see ``nirnet.runtime``) (a) the raw
forward pass on pre-made crops (images/s, the model's crops per image) and (b) the full pipeline: decode + crop in
DataLoader workers overlapped with the model. Prints both, their ratio (target >= 90 %) and each backend's speed
against the first one's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from nirnet.data.transforms import inference_transform
from nirnet.detect import Detector
from nirnet.testing import synthetic_photo


def raw_throughput(detector: Detector, crops: torch.Tensor, images: int) -> float:
    """Images/s of the forward pass alone on ``crops`` (the crops of ``images`` images), after one warm-up batch."""
    with torch.inference_mode():
        detector.forward(crops[: detector.batch_size])
        start = time.perf_counter()
        for i in range(0, len(crops), detector.batch_size):
            detector.forward(crops[i : i + detector.batch_size])
        return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"], help="torch and/or onnx")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            paths.append(Path(tmp) / f"{i:05d}.jpg")
            Image.fromarray(synthetic_photo(384, 512, seed=i)).save(paths[-1], quality=90)
        for backend in args.backends:
            detector = Detector.from_pretrained(args.model, backend=backend)
            crops = torch.cat(
                [inference_transform(detector.model.config).crops(Image.open(p).convert("RGB")) for p in paths[:32]]
            )
            raw = raw_throughput(detector, crops, 32)
            start = time.perf_counter()
            results = list(detector.predict_paths(paths, workers=args.workers))
            pipeline = len(results) / (time.perf_counter() - start)
            rows.append((backend, raw, pipeline))
    c, p = detector.model.config, detector.model.config.preprocess
    print(
        f"model {c.name}, {p.num_crops} crops per image at input scale {p.input_scale:g}, {args.threads} threads, "
        f"{args.workers} workers, {args.images} images"
    )
    for backend, raw, pipeline in rows:
        print(
            f"{backend:6s} raw forward {raw:6.1f} images/s, predict_paths {pipeline:6.1f} images/s "
            f"({100 * pipeline / raw:.0f} % of raw; {pipeline / rows[0][2]:.2f}x {rows[0][0]}'s pipeline)"
        )


if __name__ == "__main__":
    main()
