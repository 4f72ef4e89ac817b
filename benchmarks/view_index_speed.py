"""The scoring core of a view-reading model with and without ``view_index``, in one run.

    python benchmarks/view_index_speed.py [--model nirnet_stack] [--images 48] [--repeats 3] [--backend onnx]

With ``view_index`` (how ``frozen_probe`` models are scored) each image's whole-image view goes through the content
backbone once; without it (``reads_view_index`` switched off for the run, as before it existed) the view goes with
every crop. Both variants score the same synthetic 512x384 photos through ``Detector.score_prepared``, alternating,
each with its own ONNX export; prints images/s per repeat and the largest probability difference.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from PIL import Image

from nirnet.detect import Detector
from nirnet.testing import synthetic_photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="nirnet_stack")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="onnx", help="onnx or torch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = [Image.fromarray(synthetic_photo(384, 512, seed=i)) for i in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for indexed in (True, False):
            os.environ["NIRNET_CACHE"] = os.path.join(tmp, str(indexed))  # each variant exports its own graph
            detector = Detector.from_pretrained(args.model, backend=args.backend)
            cls = type(detector.model)
            if not cls.reads_view_index:
                raise SystemExit(f"error: {args.model} does not read a view index")
            cls.reads_view_index = indexed  # read by the export and by score_prepared
            items = [detector.prepare(im) for im in images]
            detector.score_prepared(items[:2])  # exports (and warms up) this variant
            runs[indexed] = (detector, items)
            cls.reads_view_index = True
        speed: dict[bool, list[float]] = {True: [], False: []}
        probabilities = {}
        for _ in range(args.repeats):
            for indexed, (detector, items) in runs.items():
                type(detector.model).reads_view_index = indexed
                start = time.perf_counter()
                probabilities[indexed] = [p for p, _ in detector.score_prepared(items)]
                speed[indexed].append(len(items) / (time.perf_counter() - start))
                type(detector.model).reads_view_index = True
    for indexed in (True, False):
        values = ", ".join(f"{v:.2f}" for v in speed[indexed])
        print(f"view_index {'on ' if indexed else 'off'}: {values} images/s")
    diff = max(abs(a - b) for a, b in zip(probabilities[True], probabilities[False]))
    print(f"max |probability difference| {diff:.1e}")


if __name__ == "__main__":
    main()
