"""How often models call real photos generated, as a user scores them (raw files, each model's stored threshold).

    python benchmarks/real_false_positives.py --model default --model aug=runs/aug/blur1/final \
        --set close-ups=runs/macro/real,runs/debclose/real --set bench-dev=../shared/data/bench-dev/real

Every photo set is scored by every model; per set and model it prints the share called generated with a Wilson 95 %
interval, and each model's difference to the first model's share on the same photos with a paired bootstrap
interval (photos resampled). Unreadable files are reported and left out. ``--csv`` writes one row per photo and
model. Photos of sets the models trained on say nothing about unseen photos: name sets they never saw.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from nirnet.data.io import IMAGE_EXTENSIONS
from nirnet.detect import Detector


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (sensible at 0 or n hits, unlike the normal approximation)."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(base: np.ndarray, other: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, ...]:
    """(mean(other) - mean(base), 2.5 %, 97.5 %) of two flag vectors over the same photos, photos resampled."""
    base, other = np.asarray(base, float), np.asarray(other, float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(base), size=(rounds, len(base)))
    diffs = other[draws].mean(1) - base[draws].mean(1)
    return float(other.mean() - base.mean()), float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def photos_of(folders: list[str]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise SystemExit(f"--set: {folder} is not a folder")
        found += sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=FOLDER, a folder, or 'default'")
    parser.add_argument("--set", action="append", required=True, help="NAME=FOLDER[,FOLDER...] of real photos")
    parser.add_argument("--csv", default=None, help="write one row per photo and model here")
    args = parser.parse_args()
    models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model)
    sets = {name: photos_of(folders.split(",")) for name, folders in (s.split("=", 1) for s in args.set)}
    flags: dict[tuple[str, str], dict[Path, bool]] = {}
    rows = []
    for name, where in models.items():
        detector = Detector.from_pretrained(None if where == "default" else where, backend="torch")
        for set_name, paths in sets.items():
            flags[name, set_name] = {}
            for path, pred in zip(paths, detector.predict_paths(paths, workers=0)):
                if not pred.ok:
                    print(f"skipped {path}: {pred.error}")
                    continue
                flags[name, set_name][path] = pred.probability >= detector.threshold
                rows.append([name, set_name, str(path), f"{pred.probability:.6f}", f"{detector.threshold:.6f}"])
    first = next(iter(models))
    print("| photos | model | called generated | share (Wilson 95 %) | minus " + first + " (paired 95 %) |")
    print("|---|---|---:|---|---|")
    for set_name in sets:
        for name in models:
            mine = flags[name, set_name]
            hits, n = sum(mine.values()), len(mine)
            low, high = wilson(hits, n)
            common = [p for p in mine if p in flags[first, set_name]]
            diff = "-"
            if name != first and common:
                d, lo, hi = paired_difference(
                    np.array([flags[first, set_name][p] for p in common]), np.array([mine[p] for p in common])
                )
                diff = f"{d:+.3f} ({lo:+.3f} to {hi:+.3f})"
            print(f"| {set_name} | {name} | {hits} of {n} | {hits / max(n, 1):.3f} ({low:.2f}-{high:.2f}) | {diff} |")
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["model", "set", "path", "probability", "threshold"])
            writer.writerows(rows)


if __name__ == "__main__":
    main()
