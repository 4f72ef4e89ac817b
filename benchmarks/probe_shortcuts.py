"""Shortcut check of the frozen-feature recipe: can plain statistics do what the probe does, on the same images?

    python benchmarks/probe_shortcuts.py [-c configs/nirnet_probe.yaml] [--out docs/results/probe]

The probe recipe reads every image of both classes through the aligned protocol (centre crop <= 512 px, JPEG 90).
This scores the same images with the six statistics of ``family_probes.py`` (JPEG grid and lattice, sharpness,
noise level, distinct colours per pixel, share of flat neighbouring steps) on the model's first crop and asks:

* per family, can a logistic probe on them tell the family's images from the training real photos (5-fold
  cross-validated AUC; the issue's criterion is |AUC - 0.5| <= 0.1)?
* under the recipe's leave-family-out folds, how far do they get (pooled out-of-fold AUC, next to the model's
  logit features)? With ``probe.hold_out_sources`` the folds hold real sources out too, as the recipe's threshold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from family_probes import STATS, logistic_auc
from nirnet._atomic import atomic_write_text
from nirnet.data.io import ImageLoadError, load_image
from nirnet.data.tensors import to_image
from nirnet.data.transforms import inference_transform
from nirnet.engine.config import load_config
from nirnet.engine.probe_fit import detect_columns, out_of_fold, recipe_features
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.stats import bootstrap_auc
from nirnet.models import get_config


def plain_statistics(paths: list[Path], protocol: str, model: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    key = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]
    file = cache / f"probe-plain-{key}.npz"
    if file.is_file():
        stored = np.load(file)
        return stored["x"], stored["ok"]
    read, transform = PROTOCOLS[protocol], inference_transform(get_config(model))
    rows, ok = [], []
    for i, path in enumerate(paths):
        try:
            crop = to_image(transform.crops(read(load_image(path)))[0])
        except ImageLoadError:
            rows.append([0.0] * len(STATS)), ok.append(False)
            continue
        rows.append([f(crop) for f in STATS.values()]), ok.append(True)
        if i % 200 == 0:
            print(f"statistics {i}/{len(paths)}", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, x=np.array(rows), ok=np.array(ok))
    return np.array(rows), np.array(ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_probe.yaml")
    parser.add_argument("--cache", default="runs/feature_cache")
    parser.add_argument("--out", default=None, help="folder for probe_shortcuts.md / .json")
    args = parser.parse_args()
    config = load_config(args.config)
    p = config.probe
    model, table, x, x_ok = recipe_features(config)
    plain, ok = plain_statistics(table.paths, p.protocol, config.model, Path(args.cache))
    keep = ok & x_ok
    rest = [a[keep] for a in (table.labels, table.families, table.sources, table.held, table.weights)]
    labels, families, _, held, _ = rest
    lines = [
        "## Plain statistics on the probe recipe's images (aligned protocol, the model's first crop)",
        "",
        f"Statistics: {', '.join(STATS)}. Per family: 5-fold cross-validated logistic AUC, the family's images against"
        " the training real photos (criterion |AUC - 0.5| <= 0.1).",
        "",
        "| family | images | plain-statistic AUC (95 % CI) | within 0.1 of chance |",
        "|---|---|---|---|",
    ]
    result: dict = {"families": {}}
    real = plain[keep][(labels == 0) & ~held]
    for family in sorted(set(families[labels == 1])):
        fake = plain[keep][families == family]
        auc = logistic_auc(real, fake)
        result["families"][family] = auc
        lines.append(f"| {family} | {len(fake)} | {auc[0]:.3f} ({auc[1]:.2f}-{auc[2]:.2f}) | "
                     f"{'yes' if abs(auc[0] - 0.5) <= 0.1 else 'no'} |")  # fmt: skip
    held_out = "families and real sources" if p.hold_out_sources else "families"
    lines += ["", f"Leave-family-out ({held_out} held out, the recipe's folds, full fit), pooled out-of-fold AUC:", ""]
    detect = x[keep][:, detect_columns(model, p.detect_without)]  # what the model's logit reads
    for name, features in (("plain statistics", plain[keep]), (f"the model's features ({config.model})", detect)):
        oof = out_of_fold(features, *rest, p.c, 1.0, 0, hold_out_sources=p.hold_out_sources)
        auc = bootstrap_auc(oof.labels, oof.scores)
        result[name] = auc
        lines.append(f"- {name}: {auc[0]:.3f} ({auc[1]:.2f}-{auc[2]:.2f})")
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out) / "probe_shortcuts.md", text + "\n")
        atomic_write_text(Path(args.out) / "probe_shortcuts.json", json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
