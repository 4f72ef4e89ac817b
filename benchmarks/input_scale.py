"""Choose a model's ``input_scale`` (the factor every image is resized by before its crops) on a validation split,
then show what each scale does on bench-dev.

    nirnet train -c configs/nirnet_tiny_texture_dn.yaml data.validation=0.25 run.seed=S run.out_dir=runs/scale/val_sS
    python benchmarks/input_scale.py --val runs/scale/val_s0,runs/scale/val_s1,runs/scale/val_s2 \\
        --model default=runs/texture/dnf_s0/final,runs/texture/dnf_s1/final --scales 1 1.5 2 --out docs/results/scale

Validation: each ``--val`` run folder holds a model trained without its ``validation/manifest.csv`` images (a
quarter of real-train and of gen-train, split by file name). Those images, through the same aligned protocol as
bench-dev (centre crop <= 512 px, JPEG 90, both classes), are scored at every scale: AUC with a bootstrap 95 %
interval per run, and mean ± sd over runs, without looking at bench-dev. The validation fakes come from the known
generator (gen-train), so this checks a scale on unseen *images* of that generator (it should cost nothing there),
not on unseen generators; bench-dev (``--model``, several folders = seeds) shows the latter. Because a scale read
off bench-dev is tuned on it, the bench-dev table comes with a two-fold cross-fit: the scale is chosen on half of
the generators and real photos and scored on the other half (see :func:`crossfit`). With ``--cache`` every score is
kept per model, image set and scale (bench-dev at scale 1 shares unseen_generators.py's cache entries).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from nirnet._atomic import atomic_write_text
from nirnet.data.datasets import read_dataset
from nirnet.data.split import is_validation
from nirnet.detect import Detector
from nirnet.eval.evaluate import crop_samples, score_samples
from nirnet.eval.protocol import PROTOCOLS, robustness_grid
from nirnet.eval.stats import bootstrap_auc
from nirnet.models import load_model
from unseen_generators import _cache_file, read_manifest, summarise


def detector_at(folder: str, scale: float) -> Detector:
    return Detector(load_model(folder, input_scale=scale))


def degradation(label: str | None):
    """(protocol, transform) for a robustness-grid cell (``jpeg70``, ``resize0.5``, ...; None: the clean protocol),
    applied to both classes after the protocol's crop, as ``nirnet eval --robustness`` does."""
    protocol = PROTOCOLS["aligned"]
    if label is None:
        return protocol, None
    for family, name, _, transform in robustness_grid():
        if name == label:
            return (replace(protocol, jpeg_quality=None) if family == "jpeg" else protocol), transform
    raise SystemExit(f"--degrade: unknown cell {label!r}; one of {[c[1] for c in robustness_grid()]}")


def score_at(
    folder: str, scale: float, samples, cropped, cache: str | None = None, data: str = "", degrade: str | None = None
) -> tuple[np.ndarray, float]:
    """(probabilities of ``samples``, NaN where unreadable; the model's threshold) for the model in ``folder`` read
    at ``scale``, after the robustness cell ``degrade`` if given; with ``cache``, kept per weights, benchmark, scale
    and cell (scale 1 without a cell shares unseen_generators.py's cache entries)."""
    key = data + ("" if scale == 1.0 else f"@input_scale={scale:g}") + (f"@{degrade}" if degrade else "")
    cached = _cache_file(cache, folder, key) if data else None
    if cached is not None and cached.is_file():
        stored = json.loads(cached.read_text())
        return np.array([np.nan if v is None else v for v in stored["scores"]]), stored["threshold"]
    detector = detector_at(folder, scale)
    protocol, transform = degradation(degrade)
    scorer = lambda images: [p for p, _ in detector.predict_images(images)]  # noqa: E731
    scores = score_samples(scorer, samples, protocol, transform, cropped=cropped).scores
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        values = [None if np.isnan(v) else float(v) for v in scores]
        atomic_write_text(cached, json.dumps({"folder": folder, "scores": values, "threshold": detector.threshold}))
    return scores, detector.threshold


def validation_samples(run: Path, max_real: int, seed: int = 0):
    """The run's held-out images: every fake, and at most ``max_real`` reals drawn at random (fixed seed)."""
    samples = read_dataset(run / "validation" / "manifest.csv")
    real = [s for s in samples if s.label == 0]
    fake = [s for s in samples if s.label == 1]
    if len(real) > max_real:
        keep = np.random.default_rng(seed).choice(len(real), max_real, replace=False)
        real = [real[i] for i in sorted(keep)]
    return real + fake


def validate(runs: list[Path], scales: list[float], max_real: int, cache: str | None) -> dict:
    rows: dict[str, list] = {str(s): [] for s in scales}
    for run in runs:
        samples = validation_samples(run, max_real)
        cropped = crop_samples(samples, PROTOCOLS["aligned"])
        labels = np.array([s.label for s in samples])
        for scale in scales:
            start = time.time()
            data = f"{run / 'validation'}:max_real={max_real}"
            scores, _ = score_at(str(run / "final"), scale, samples, cropped, cache, data)
            ok = ~np.isnan(scores)
            auc = bootstrap_auc(labels[ok], scores[ok])
            rows[str(scale)].append({"run": str(run), "auc": auc, "seconds": time.time() - start})
            print(f"validation {run.name} scale {scale:g}: AUC {auc[0]:.3f} ({auc[1]:.2f}-{auc[2]:.2f})", flush=True)
    return rows


def bench(
    models: list[str], scales: list[float], data: str, seen: set[str], cache: str | None, degrade: str | None
) -> dict:
    samples, sources = read_manifest(Path(data))
    cropped = crop_samples(samples, PROTOCOLS["aligned"])
    out: dict[str, dict[str, list]] = {}
    for spec in models:
        name, _, folders = spec.partition("=")
        for scale in scales:
            for folder in folders.split(","):
                scores, threshold = score_at(folder, scale, samples, cropped, cache, data, degrade)
                result = summarise(scores, samples, sources, seen, threshold)
                result["scores"] = [None if np.isnan(v) else float(v) for v in scores]
                out.setdefault(name, {}).setdefault(str(scale), []).append(result)
                print(f"bench-dev {name} {folder} scale {scale:g}: pooled unseen AUC {result['pooled_auc'][0]:.3f}")
    return out


def crossfit(benchmark: dict, scales: list[float], data: str, seen: set[str]) -> dict:
    """Two-fold cross-fitting of the scale choice on bench-dev itself: the unseen generators are split into two
    groups (alternating in name order) and the real photos into two halves (by file name); the scale with the
    best pooled AUC on one half is scored on the other, against scale 1 on that same half. A choice that only
    fits noise would not carry over between halves that share no image."""
    samples, _ = read_manifest(Path(data))
    labels = np.array([s.label for s in samples])
    gens = np.array([s.subset for s in samples])
    unseen = sorted(set(gens[labels == 1]) - seen)
    halves = [
        ((labels == 0) & np.array([not is_validation(s.path, 0.5) for s in samples])) | np.isin(gens, unseen[0::2]),
        ((labels == 0) & np.array([is_validation(s.path, 0.5) for s in samples])) | np.isin(gens, unseen[1::2]),
    ]

    def auc(scores: list, mask: np.ndarray) -> float:
        values = np.array([np.nan if v is None else v for v in scores], dtype=float)
        keep = mask & ~np.isnan(values)
        return float(roc_auc_score(labels[keep], values[keep]))

    out: dict[str, list[dict]] = {}
    for name, by_scale in benchmark.items():
        for seed in range(len(by_scale[str(scales[0])])):
            for pick, score in ((0, 1), (1, 0)):
                on_pick = {s: auc(by_scale[str(s)][seed]["scores"], halves[pick]) for s in scales}
                chosen = max(scales, key=on_pick.get)
                out.setdefault(name, []).append(
                    {
                        "seed": seed,
                        "chosen": chosen,
                        "held_out_auc": auc(by_scale[str(chosen)][seed]["scores"], halves[score]),
                        "held_out_auc_scale_1": auc(by_scale[str(1.0)][seed]["scores"], halves[score]),
                    }
                )
    return out


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f}" + (f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else "")


def render(validation: dict, benchmark: dict, scales: list[float], chosen: float | None, folds: dict) -> str:
    lines = []
    if validation:
        lines += [
            "Validation (held-out real-train and gen-train images, aligned protocol): AUC per run (95 % bootstrap "
            "interval), and mean ± sd over runs.",
            "",
            "| input_scale | "
            + " | ".join(Path(r["run"]).name for r in next(iter(validation.values())))
            + " | mean ± sd |",
            "|---" * (len(next(iter(validation.values()))) + 2) + "|",
        ]
        for scale in scales:
            rows = validation[str(scale)]
            cells = [f"{r['auc'][0]:.3f} ({r['auc'][1]:.2f}-{r['auc'][2]:.2f})" for r in rows]
            mark = " (best)" if scale == chosen else ""
            lines.append(f"| {scale:g}{mark} | " + " | ".join(cells) + f" | {mean_sd([r['auc'][0] for r in rows])} |")
        lines.append("")
    if benchmark:
        groups = sorted(next(iter(next(iter(benchmark.values())).values()))[0]["real_sources"])
        lines += [
            "bench-dev, unseen generators (report only): pooled AUC, mean ± sd over seeds (first seed's interval), "
            "and per real source.",
            "",
            "| model | input_scale | seeds | pooled unseen AUC | first seed | " + " | ".join(groups) + " |",
            "|---" * (len(groups) + 5) + "|",
        ]
        for name, by_scale in benchmark.items():
            for scale in scales:
                runs = by_scale[str(scale)]
                pooled = [r["pooled_auc"][0] for r in runs]
                first = runs[0]["pooled_auc"]
                per_source = [mean_sd([r["real_sources"][g][0] for r in runs]) for g in groups]
                lines.append(
                    f"| {name} | {scale:g} | {len(runs)} | {mean_sd(pooled)} | {first[0]:.3f} ({first[1]:.2f}-"
                    f"{first[2]:.2f}) | " + " | ".join(per_source) + " |"
                )
    if folds:
        lines += [
            "",
            "Cross-fitted on bench-dev (scale chosen on one half of the generators and real photos, scored on the "
            "other; both directions, every seed): pooled unseen AUC on the held-out half.",
            "",
            "| model | folds | scales chosen | held-out half, chosen scale | held-out half, scale 1 | difference |",
            "|---|---|---|---|---|---|",
        ]
        for name, rows in folds.items():
            chosen_auc = [r["held_out_auc"] for r in rows]
            base_auc = [r["held_out_auc_scale_1"] for r in rows]
            diff = [a - b for a, b in zip(chosen_auc, base_auc)]
            picks = ", ".join(f"{r['chosen']:g}" for r in rows)
            lines.append(
                f"| {name} | {len(rows)} | {picks} | {mean_sd(chosen_auc)} | {mean_sd(base_auc)} | {mean_sd(diff)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val", default="", help="comma-separated run folders trained with data.validation > 0")
    parser.add_argument("--model", action="append", default=[], help="NAME=FOLDER[,FOLDER...] scored on bench-dev")
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0, 1.5, 2.0])
    parser.add_argument("--max-real", type=int, default=120, help="real validation images per run (all fakes kept)")
    parser.add_argument("--data", default="../shared/data/bench-dev")
    parser.add_argument("--seen", nargs="*", default=["sd1"])
    parser.add_argument("--out", default=None, help="folder for input_scale.md and input_scale.json")
    parser.add_argument("--cache", default=None, help="folder of bench-dev scores per model and scale (reused)")
    parser.add_argument("--degrade", default=None, help="a robustness-grid cell applied to bench-dev (e.g. resize0.5)")
    args = parser.parse_args()
    start = time.time()
    runs = [Path(r) for r in args.val.split(",") if r]
    validation = validate(runs, args.scales, args.max_real, args.cache) if runs else {}
    chosen = None
    if validation:
        chosen = max(args.scales, key=lambda s: np.mean([r["auc"][0] for r in validation[str(s)]]))
        print(f"highest mean validation AUC at input_scale {chosen:g}")
    benchmark = (
        bench(args.model, args.scales, args.data, set(args.seen), args.cache, args.degrade) if args.model else {}
    )
    several = len(args.scales) > 1 and 1.0 in args.scales
    folds = crossfit(benchmark, args.scales, args.data, set(args.seen)) if benchmark and several else {}
    text = render(validation, benchmark, args.scales, chosen, folds) + f"\n\n{time.time() - start:.0f} s."
    if args.degrade:
        text = f"bench-dev degraded by `{args.degrade}` (both classes, after the protocol's crop).\n\n" + text
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "input_scale.md", text + "\n")
        result = {"best_on_validation": chosen, "validation": validation, "bench_dev": benchmark, "crossfit": folds}
        atomic_write_text(out / "input_scale.json", json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
