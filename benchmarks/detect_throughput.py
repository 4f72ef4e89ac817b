"""Folder scoring throughput of the default `nirnet detect` path (backend auto) against eager PyTorch, one run.

    python benchmarks/detect_throughput.py [--images 200] [--workers 2] [--threads 2] [--model FOLDER]
                                           [--backends torch auto]

Writes ``--images`` synthetic 512x384 JPEGs to a temporary folder, then measures for each backend (``torch``: eager
PyTorch; ``auto``: what `nirnet detect` uses by default, ONNX Runtime on the CPU with the model exported once to the
user cache, see ``nirnet.runtime``; ``onnx``: ONNX Runtime explicitly) (a) the raw forward pass on pre-made crops
(images/s) and (b) the full pipeline as `nirnet detect` runs it: decode + crop in DataLoader workers overlapped
with the model. Prints both, each backend's pipeline speed against the first one's, and the largest probability
difference from the first backend over all images. Exit status 1 when a backend differs by more than 1e-4 or when
``--target`` is given and the last backend is slower than ``target`` x the first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from nirnet.data.transforms import inference_transform
from nirnet.detect import Detector
from nirnet.runtime import AUTO_ENV
from nirnet.testing import synthetic_photo

TOLERANCE = 1e-4  # largest accepted probability difference between backends


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
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the detect verb's default)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["torch", "auto"], help="torch, auto and/or onnx")
    parser.add_argument("--target", type=float, default=None, help="fail below this speed-up of the last backend")
    args = parser.parse_args()
    os.environ.pop(AUTO_ENV, None)  # auto must mean what a user gets (the test suite pins it to torch)
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
            rows.append((f"{backend} ({detector.backend})", raw, pipeline, [r.probability for r in results]))
    c, p = detector.model.config, detector.model.config.preprocess
    print(
        f"model {c.name}, {p.num_crops} crops per image at input scale {p.input_scale:g}, {args.threads} threads, "
        f"{args.workers} workers, {args.images} images"
    )
    base_name, _, base_pipeline, base_probs = rows[0]
    failed = False
    for name, raw, pipeline, probs in rows:
        diff = max(abs(a - b) for a, b in zip(probs, base_probs))
        failed |= diff > TOLERANCE
        print(
            f"{name:16s} raw forward {raw:6.1f} images/s, predict_paths {pipeline:6.1f} images/s "
            f"({100 * pipeline / raw:.0f} % of raw; {pipeline / base_pipeline:.2f}x {base_name}'s pipeline; "
            f"max |probability difference| {diff:.1e})"
        )
    speedup = rows[-1][2] / base_pipeline
    if args.target is not None and speedup < args.target:
        print(f"below target: {speedup:.2f}x < {args.target:g}x")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
