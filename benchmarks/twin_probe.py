"""Do autoencoder twins teach a texture probe about unseen generators?

    python benchmarks/twin_probe.py --cache cache/recon_taef2 [--ae taef2] [--seeds 0 1 2] [--out DIR]

The question behind it: gen-train's 81 images are the only known generator, and they are not aligned with any
photo. A round trip of a real photo through a latent decoder (``nirnet imprint reconstruct``) is a fake with the
same content, size and compression as its photo: the only thing that separates the two is what the decoder did. This
script fits the logistic texture probe of ``texture_probe.py`` (frozen EfficientNet-Lite0 statistics, 640 numbers)
on three training sets and tests each on bench-dev through the aligned protocol (sd1 seen, eight unseen):

* ``gen``: real-train against gen-train (as ``texture_probe.py``);
* ``twins``: the cached photo regions against their round trips, the pair given the same JPEG quality;
* ``gen+twins``: both.

The plain-statistics probe is fitted on ``twins`` too: if it separates the twins as well, the pairs differ in a
plain cue (sharpness, noise floor) rather than in decoder structure. Features are cached per image in
``<out>/features.npz`` so reruns only fit probes.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from nirnet._atomic import atomic_write
from nirnet.data import degrade
from nirnet.data.io import load_image
from nirnet.data.recon_cache import read_recon_cache, restrict_recon_cache
from nirnet.eval.protocol import PROTOCOLS
from texture_probe import Featuriser, training_images
from unseen_generators import read_manifest, render_tables, save_tables, summarise


class FeatureStore:
    """Texture and plain features by key, kept on disk between runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, np.ndarray] = dict(np.load(path)) if path.is_file() else {}
        self.featurise: Featuriser | None = None

    def get(self, key: str, make_image) -> tuple[np.ndarray, np.ndarray]:
        if f"tex:{key}" not in self.items:
            self.featurise = self.featurise or Featuriser()
            tex, plain = self.featurise(make_image())
            self.items[f"tex:{key}"], self.items[f"plain:{key}"] = tex, np.asarray(plain)
            if len(self.items) % 400 == 0:  # features are slow: keep them if the run dies
                self.save()
        return self.items[f"tex:{key}"], self.items[f"plain:{key}"]

    def save(self) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a name
                np.savez(handle, **self.items)

        atomic_write(self.path, write)


def compressed(path, quality: int, box=None, max_side: int | None = None) -> Image.Image:
    """A training image as the probe sees it: optionally cropped, then JPEG at ``quality``."""
    img = load_image(path)
    img = img.crop(box) if box is not None else img
    img = degrade.center_crop(img, max_side) if max_side else img
    return degrade.jpeg(img, quality)


def aligned_view(path) -> Image.Image:
    """A bench-dev image through the aligned protocol (centre crop <= 512 px, JPEG 90)."""
    return PROTOCOLS["aligned"](load_image(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", required=True, help="reconstruction cache (nirnet imprint reconstruct)")
    parser.add_argument("--ae", nargs="+", default=["taef2"], help="autoencoders of the cache to use as twins")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the logistic probes")
    parser.add_argument("--out", default="runs/twins", help="folder for features.npz and twin_probe.md / .json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(out / "features.npz")

    feats: dict[str, dict[str, list]] = {s: {"texture": [], "plain": [], "y": []} for s in ("gen", "twins", "test")}

    def quality(path) -> int:  # fixed per image, so cached features stay valid when the sets grow
        return 70 + int(hashlib.sha1(str(path).encode()).hexdigest(), 16) % 31

    def add(split: str, key: str, make_image, label: float) -> None:
        tex, plain = store.get(key, make_image)
        feats[split]["texture"].append(tex)
        feats[split]["plain"].append(plain)
        feats[split]["y"].append(label)

    paths, labels = training_images(data)
    for path, label in zip(paths, labels):
        q = quality(path)
        add("gen", f"train:{path}:{q}", partial(compressed, path, q, max_side=512), label)
    cache = restrict_recon_cache(read_recon_cache(args.cache), args.ae)
    for entry in cache.values():
        q = quality(entry.image)
        for recon in entry.recons.values():
            add("twins", f"twin-real:{entry.image}:{q}", partial(compressed, entry.image, q, box=entry.box), 0)
            add("twins", f"twin-fake:{recon}:{q}", partial(compressed, recon, q), 1)
    samples, sources = read_manifest(data / "bench-dev")
    for sample in samples:
        add("test", f"test:{sample.path}", partial(aligned_view, sample.path), 0)
    store.save()
    print(
        f"features: {len(feats['gen']['y'])} gen-train set, {len(feats['twins']['y'])} twins, "
        f"{len(samples)} test; {time.time() - start:.0f} s"
    )

    seen = {"sd1"}
    results: dict[str, list[dict]] = {}
    training_sets = {"gen": ["gen"], "twins": ["twins"], "gen+twins": ["gen", "twins"]}
    for feature in ("texture", "plain"):
        x_test = np.array(feats["test"][feature])
        for name, splits in training_sets.items():
            if feature == "plain" and name != "twins":
                continue
            x = np.concatenate([np.array(feats[s][feature]) for s in splits])
            y = np.concatenate([np.array(feats[s]["y"]) for s in splits])
            label = f"{feature} probe on {name}"
            results[label] = []
            for seed in args.seeds:
                keep = np.random.default_rng(seed).random(len(x)) < 0.8
                scaler = StandardScaler().fit(x[keep])
                probe = LogisticRegression(C=args.C, max_iter=5000, class_weight="balanced")
                probe.fit(scaler.transform(x[keep]), y[keep])
                held = scaler.transform(x[~keep])
                print(
                    f"{label} seed {seed}: held-out training AUC "
                    f"{roc_auc_score(y[~keep], probe.predict_proba(held)[:, 1]):.3f}"
                )
                prob = probe.predict_proba(scaler.transform(x_test))[:, 1]
                results[label].append(summarise(prob, samples, sources, seen, 0.5))
    text = render_tables(results, seen, f"{len(samples)} test images, {time.time() - start:.0f} s.")
    print(text)
    save_tables(out, "twin_probe", text, results)


if __name__ == "__main__":
    main()
