"""Do more views of an image at inference rank bench-dev's unseen generators better? Crops per image, horizontal-flip
averaging and a seed ensemble, for models that already exist (no training).

    python benchmarks/inference_views.py --model runs/texture/dnf_s0/final,runs/texture/dnf_s1/final,... \\
        [--scale 1.5] [--flip] [--logits runs/views.json]

Every image goes through the aligned protocol (centre crop <= 512 px, JPEG 90, both classes), is resized by
``--scale`` (the model's input scale) and cut into all 13 crop positions the package knows (centre first, as
``crop_boxes`` orders them); the per-crop logits are kept (``--logits``, JSON), so each row below is an average of
the first ``k`` crops' logits, as ``Detector`` does with ``num_crops = k``. Pooled unseen AUC (``sd1`` seen), per
seed and mean ± sd over seeds; the ensemble averages the seeds' image logits. With ``--flip`` every crop is also
scored mirrored (twice the cost) and the two are averaged.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from nirnet._atomic import atomic_write_text
from nirnet.data.transforms import inference_transform
from nirnet.eval.evaluate import crop_samples
from nirnet.eval.protocol import PROTOCOLS
from nirnet.models import load_model
from unseen_generators import read_manifest


def crop_logits(folder: str, images, scale: float, flip: bool) -> list[list[float]]:
    """Per image, the logits of its crops at every position (mirrored crops when ``flip``)."""
    model = load_model(folder, input_scale=scale).eval()
    transform = inference_transform(model.config)
    rows = []
    with torch.inference_mode():
        for image in images:
            crops = transform.crops(image, len(transform.preprocess.positions))
            rows.append(model(crops.flip(-1) if flip else crops).tolist())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="comma-separated model folders (seeds of one recipe)")
    parser.add_argument("--scale", type=float, default=1.5, help="input scale the models read at")
    parser.add_argument("--flip", action="store_true", help="also score mirrored crops")
    parser.add_argument("--crops", type=int, nargs="+", default=[1, 4, 9, 13], help="crops per image to compare")
    parser.add_argument("--data", default="../shared/data/bench-dev")
    parser.add_argument("--logits", default=None, help="JSON file of per-crop logits (reused when present)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    samples, _ = read_manifest(Path(args.data))
    labels = np.array([s.label for s in samples])
    unseen = (labels == 0) | (np.array([s.subset for s in samples]) != "sd1")
    folders = args.model.split(",")
    views = [False, True] if args.flip else [False]
    stored = json.loads(Path(args.logits).read_text()) if args.logits and Path(args.logits).is_file() else {}
    missing = [(f, v) for f in folders for v in views if f"{f}#flip={v}" not in stored]
    if missing:
        protocol = PROTOCOLS["aligned"]
        images = [protocol.finish(img, None) for img in crop_samples(samples, protocol)]
        for folder, flip in missing:
            start = time.time()
            stored[f"{folder}#flip={flip}"] = crop_logits(folder, images, args.scale, flip)
            print(f"scored {folder} (flip {flip}) in {time.time() - start:.0f} s", flush=True)
            if args.logits:
                atomic_write_text(args.logits, json.dumps(stored))

    def auc(image_logits: np.ndarray) -> float:
        return roc_auc_score(labels[unseen], image_logits[unseen])

    def image_logits(folder: str, k: int, flip: bool) -> np.ndarray:
        rows = [np.mean(r[:k]) for r in stored[f"{folder}#flip=False"]]
        if flip:
            rows = [(a + np.mean(r[:k])) / 2 for a, r in zip(rows, stored[f"{folder}#flip=True"])]
        return np.array(rows)

    print(f"pooled unseen AUC at input scale {args.scale:g}, {len(folders)} seeds, {int(unseen.sum())} images")
    print("| crops per image | flip | per seed | mean ± sd | seed ensemble |")
    print("|---|---|---|---|---|")
    for flip in views:
        for k in args.crops:
            per_seed = [auc(image_logits(f, k, flip)) for f in folders]
            spread = np.std(per_seed, ddof=1) if len(per_seed) > 1 else 0.0
            ensemble = auc(np.mean([image_logits(f, k, flip) for f in folders], axis=0))
            seeds = " / ".join(f"{v:.3f}" for v in per_seed)
            print(
                f"| {k} | {'yes' if flip else 'no'} | {seeds} | {np.mean(per_seed):.3f} ± {spread:.3f} "
                f"| {ensemble:.3f} |"
            )


if __name__ == "__main__":
    main()
