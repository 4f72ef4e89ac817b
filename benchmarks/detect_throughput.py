"""Folder scoring throughput of the default `nirnet detect` path (backend auto) against eager PyTorch, one run.

    python benchmarks/detect_throughput.py [--images 200] [--workers 2] [--threads 2] [--model NAME_OR_FOLDER ...]
                                           [--backends torch auto]

Writes ``--images`` synthetic 512x384 JPEGs to a temporary folder, then measures for each backend (``torch``: eager
PyTorch; ``auto``: what `nirnet detect` uses by default, ONNX Runtime on the CPU with the model exported once to the
user cache, see ``nirnet.runtime``; ``onnx``: ONNX Runtime explicitly) (a) the scoring core alone on images decoded
and cropped beforehand (``Detector.score_prepared``, images/s; "raw") and (b) the full pipeline as `nirnet detect`
runs it: decode + crop in DataLoader workers overlapped with the model. Prints both, each backend's pipeline speed
against the first one's, and the largest probability difference from the first backend over all images. Several
``--model`` are measured one after the other in the same run, each pipeline also against the first model's (a
baseline in the same run). Exit status 1 when a backend differs by more than 1e-4 or when ``--target`` is given
and a model's last backend is slower than ``target`` x its first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from nirnet.detect import Detector
from nirnet.runtime import AUTO_ENV
from nirnet.testing import synthetic_photo

TOLERANCE = 1e-4  # largest accepted probability difference between backends


def raw_throughput(detector: Detector, paths: list[Path]) -> float:
    """Images/s of the scoring core alone (:meth:`Detector.score_prepared`: batching and the forward pass, as every
    front end runs it) on ``paths`` decoded and cropped beforehand, after one warm-up call."""
    items = [detector.prepare(Image.open(p).convert("RGB")) for p in paths]
    with torch.inference_mode():
        detector.score_prepared(items[:1])
        start = time.perf_counter()
        detector.score_prepared(items)
        return len(items) / (time.perf_counter() - start)


def measure(model: str | None, backends: list[str], paths: list[Path], workers: int) -> tuple[list[tuple], Any]:
    """(rows, the model's config) for one model: a row per backend, (label, raw images/s, pipeline images/s,
    probabilities)."""
    rows = []
    for backend in backends:
        detector = Detector.from_pretrained(model, backend=backend)
        raw = raw_throughput(detector, paths[:32])
        start = time.perf_counter()
        results = list(detector.predict_paths(paths, workers=workers))
        pipeline = len(results) / (time.perf_counter() - start)
        rows.append((f"{backend} ({detector.backend})", raw, pipeline, [r.probability for r in results]))
    return rows, detector.model.config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the detect verb's default)")
    parser.add_argument(
        "--model",
        nargs="+",
        default=[None],
        help="model folders or shipped names (default: the embedded default); "
        "several are measured one after the other in the same run, the first is the baseline of the speed ratio",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["torch", "auto"], help="torch, auto and/or onnx")
    parser.add_argument("--target", type=float, default=None, help="fail below this speed-up of the last backend")
    args = parser.parse_args()
    os.environ.pop(AUTO_ENV, None)  # auto must mean what a user gets (the test suite pins it to torch)
    torch.set_num_threads(args.threads)
    failed = False
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            paths.append(Path(tmp) / f"{i:05d}.jpg")
            Image.fromarray(synthetic_photo(384, 512, seed=i)).save(paths[-1], quality=90)
        for model in args.model:
            rows, c = measure(model, args.backends, paths, args.workers)
            p = c.preprocess
            print(
                f"model {c.name}, {p.num_crops} crops per image at input scale {p.input_scale:g}, {args.threads} "
                f"threads, {args.workers} workers, {args.images} images"
            )
            base_name, _, base_pipeline, base_probs = rows[0]
            baseline = baseline or (c.name, base_pipeline)
            for name, raw, pipeline, probs in rows:
                diff = max(abs(a - b) for a, b in zip(probs, base_probs))
                failed |= diff > TOLERANCE
                print(
                    f"  {name:16s} raw {raw:6.1f} images/s, predict_paths {pipeline:6.1f} images/s "
                    f"({100 * pipeline / raw:.0f} % of raw; {pipeline / base_pipeline:.2f}x {base_name}'s pipeline; "
                    f"{pipeline / baseline[1]:.2f}x {baseline[0]}'s first; max |probability difference| {diff:.1e})"
                )
            speedup = rows[-1][2] / base_pipeline
            if args.target is not None and speedup < args.target:
                print(f"  below target: {speedup:.2f}x < {args.target:g}x")
                failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
