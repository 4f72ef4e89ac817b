"""Folder scoring throughput of the default `nirnet detect` path (backend auto) against eager PyTorch, one run.

    python benchmarks/detect_throughput.py [--images 200] [--workers 2] [--threads 2] [--model NAME_OR_FOLDER ...]
                                           [--backends torch auto]

Writes ``--images`` synthetic 512x384 JPEGs to a temporary folder, then measures for each backend (``torch``: eager
PyTorch; ``auto``: what `nirnet detect` uses by default, ONNX Runtime on the CPU with the model exported once to the
user cache, see ``nirnet.runtime``; ``onnx``: ONNX Runtime explicitly) (a) the raw forward pass on pre-made crops
(images/s) and (b) the full pipeline as `nirnet detect` runs it: decode + crop in DataLoader workers overlapped
with the model. Prints both, each backend's pipeline speed against the first one's, and the largest probability
difference from the first backend over all images. Several ``--model`` are measured one after the other in the same
run, each pipeline also against the first model's (a baseline in the same run). Exit status 1 when a backend
differs by more than 1e-4 or when ``--target`` is given and a model's last backend is slower than ``target`` x its
first.
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

from nirnet.data.transforms import inference_transform
from nirnet.detect import Detector
from nirnet.runtime import AUTO_ENV
from nirnet.testing import synthetic_photo

TOLERANCE = 1e-4  # largest accepted probability difference between backends


def model_inputs(
    detector: Detector, paths: list[Path]
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The crops of ``paths`` and, for models that read the whole image too, its views as `detect` feeds them: one
    per image with each crop's row (``view_index``) for models that take it, else one per crop."""
    transform = inference_transform(detector.model.config)
    inputs = [transform(Image.open(p).convert("RGB")) for p in paths]
    crops = torch.cat([i.crops for i in inputs])
    if inputs[0].view is None:
        return crops, None, None
    if getattr(detector.model, "reads_view_index", False):
        index = torch.cat([torch.full((len(i.crops),), n) for n, i in enumerate(inputs)])
        return crops, torch.cat([i.view for i in inputs]), index
    return crops, torch.cat([i.view.expand(len(i.crops), -1, -1, -1) for i in inputs]), None


def raw_throughput(
    detector: Detector, crops: torch.Tensor, views: torch.Tensor | None, index: torch.Tensor | None, images: int
) -> float:
    """Images/s of the forward pass alone on ``crops`` (the crops of ``images`` images, with their views when the
    model reads them), after one warm-up batch."""
    size = detector.batch_size

    def run(i: int) -> None:
        if views is None:
            detector.forward(crops[i : i + size], None)
        elif index is None:
            detector.forward(crops[i : i + size], views[i : i + size])
        else:  # the views of this batch's images, and each crop's row of them
            rows, local = torch.unique_consecutive(index[i : i + size], return_inverse=True)
            detector.forward(crops[i : i + size], views[rows], view_index=local)

    with torch.inference_mode():
        run(0)
        start = time.perf_counter()
        for i in range(0, len(crops), size):
            run(i)
        return images / (time.perf_counter() - start)


def measure(model: str | None, backends: list[str], paths: list[Path], workers: int) -> tuple[list[tuple], Any]:
    """(rows, the model's config) for one model: a row per backend, (label, raw images/s, pipeline images/s,
    probabilities)."""
    rows = []
    for backend in backends:
        detector = Detector.from_pretrained(model, backend=backend)
        crops, views, index = model_inputs(detector, paths[:32])
        raw = raw_throughput(detector, crops, views, index, 32)
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
                    f"  {name:16s} raw forward {raw:6.1f} images/s, predict_paths {pipeline:6.1f} images/s "
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
