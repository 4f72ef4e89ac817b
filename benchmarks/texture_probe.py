"""What a frozen ImageNet network's texture statistics know about unseen generators, against plain statistics.

    python benchmarks/texture_probe.py [--seeds 0 1 2] [--out docs/results/texture]

Two logistic probes are trained on the same images the same way: real-train (label 0) against gen-train's 81
Stable Diffusion v1.x images (label 1), each training image centre-cropped to <= 512 px and re-compressed once at a
JPEG quality drawn from [70, 100]. Features:

* ``texture``: what ``nirnet_tiny_texture``'s branch reads, the per-channel mean and standard deviation of
  EfficientNet-Lite0's activations after blocks 0, 2, 4 and 7 on four native-resolution 256 px crops, averaged;
* ``plain``: ten image statistics (sharpness, noise floor, JPEG blockiness, gradient energies, contrast,
  saturation, brightness), the cues a detector could use instead of an imprint.

Both are tested on bench-dev through the ``aligned`` protocol (sd1 seen, the other eight unseen), with the tables
of ``unseen_generators.py``. A seed draws an 80 % subsample of the training images for the probe (features are
computed once), so "± sd" is the spread over classifier seeds, not over feature draws. A large gap between the two
rows says the network's statistics carry something plain cues do not; it does not say what.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from nirnet.data import degrade
from nirnet.data.io import load_image
from nirnet.data.transforms import inference_transform
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.sanity import blockiness
from nirnet.models import get_config
from nirnet.models.semantic import create_backbone
from unseen_generators import read_manifest, render_tables, save_tables, summarise


def plain_stats(img: Image.Image) -> list[float]:
    luma = degrade.luma(img).astype(np.float64)
    dx, dy = np.diff(luma, axis=1), np.diff(luma, axis=0)
    rgb = np.asarray(img, dtype=np.float64)
    return [
        degrade.sharpness_score(img),
        degrade.noise_floor(img),
        blockiness(img),
        float(np.abs(dx).mean()),
        float(np.abs(dy).mean()),
        float(np.log(dx.var() + 1e-6)),
        float(luma.std()),
        float((rgb.max(2) - rgb.min(2)).mean()),
        float(rgb.mean()),
        float(np.abs(np.diff(dx, axis=1)).mean()),
    ]


class Featuriser:
    def __init__(self) -> None:
        config = get_config("nirnet_tiny_texture")
        self.transform = inference_transform(config)
        self.backbone = create_backbone(config.semantic, True, None, config.semantic_taps).eval()

    @torch.inference_mode()
    def __call__(self, img: Image.Image) -> tuple[np.ndarray, list[float]]:
        crops = self.transform.crops(img)
        return self.backbone(crops).mean(0).numpy(), plain_stats(img)


def training_images(data: Path) -> tuple[list[str], np.ndarray]:
    reals = sorted(glob.glob(str(data / "real-train" / "*" / "*")))
    fakes = sorted(glob.glob(str(data / "gen-train" / "*" / "*.png")))
    return reals + fakes, np.r_[np.zeros(len(reals)), np.ones(len(fakes))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the logistic probes")
    parser.add_argument("--out", default=None, help="folder for texture_probe.md / .json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    data = Path(args.data)
    featurise = Featuriser()
    paths, y_train = training_images(data)
    rng = np.random.default_rng(0)
    train = {"texture": [], "plain": []}
    for path in paths:
        img = degrade.center_crop(load_image(path), 512)
        img = degrade.jpeg(img, int(rng.integers(70, 101)))
        tex, plain = featurise(img)
        train["texture"].append(tex)
        train["plain"].append(plain)
    samples, sources = read_manifest(data / "bench-dev")
    protocol = PROTOCOLS["aligned"]
    test = {"texture": [], "plain": []}
    for sample in samples:
        tex, plain = featurise(protocol(load_image(sample.path)))
        test["texture"].append(tex)
        test["plain"].append(plain)
    print(f"features of {len(paths)} training and {len(samples)} test images: {time.time() - start:.0f} s")
    seen = {"sd1"}
    results: dict[str, list[dict]] = {}
    for name in ("texture", "plain"):
        x_train, x_test = np.array(train[name]), np.array(test[name])
        results[f"{name} probe"] = []
        for seed in args.seeds:
            keep = np.random.default_rng(seed).random(len(x_train)) < 0.8
            scaler = StandardScaler().fit(x_train[keep])
            probe = LogisticRegression(C=args.C, max_iter=5000, class_weight="balanced")
            probe.fit(scaler.transform(x_train[keep]), y_train[keep])
            prob = probe.predict_proba(scaler.transform(x_test))[:, 1]
            results[f"{name} probe"].append(summarise(prob, samples, sources, seen, 0.5))
    text = render_tables(
        results, seen, f"{len(paths)} training / {len(samples)} test images, {time.time() - start:.0f} s."
    )
    print(text)
    if args.out:
        save_tables(Path(args.out), "texture_probe", text, results)


if __name__ == "__main__":
    main()
