"""Unseen-generator detection on bench-dev with error bars: pooled and mean AUC with bootstrap 95 % intervals,
per generator, per real source, balanced accuracy at each model's stored threshold, and mean ± sd over seeds.

    python benchmarks/unseen_generators.py --model default \\
        --model copula=runs/a/final,runs/b/final,runs/c/final [--seen sd1] [--out docs/results/unseen]

A ``--model`` takes ``NAME=FOLDER[,FOLDER...]``: several folders are several training seeds of one recipe (each is
scored; the table shows seed 1's intervals and the mean ± sd of the point values over seeds). ``A+B`` in place of a
folder is an ensemble: the mean of the two models' probabilities. With ``--cache DIR`` each folder's scores are
kept (keyed by its weights) and reused, so models can be scored as they finish and tables merged later. ``default``
is the embedded model. Every image of both classes goes through the ``aligned`` protocol (centre crop <= 512 px,
JPEG 90). ``--seen`` generators are reported apart and left out of the unseen numbers (a model trained on gen-train
has seen ``sd1``). The JPEG-trace scorer (a model-free sanity check) is reported as |AUC - 0.5| per generator: far
from 0 means the aligned protocol still leaks compression history there.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from nirnet.data.datasets import Sample
from nirnet.detect import Detector
from nirnet.eval.evaluate import score_samples
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.sanity import jpeg_trace_scorer
from nirnet.eval.stats import balanced_accuracy, bootstrap_auc, bootstrap_auc_difference, bootstrap_mean_auc


def real_source_group(source: str) -> str:
    """bench-dev's real sources, with the three Debian wallpaper packages (1,280-5,312 px photos) as one group."""
    for key in ("Kodak", "McMaster", "Urban100"):
        if source.startswith(key):
            return key
    return "large photos" if source.startswith("Debian") else source


def read_manifest(root: Path) -> tuple[list[Sample], list[str]]:
    samples, sources = [], []
    with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = int(row["label"])
            samples.append(Sample(root / row["path"], label, row["generator"]))
            sources.append(real_source_group(row["source"]) if label == 0 else row["generator"])
    return samples, sources


def summarise(scores: np.ndarray, samples, sources, seen: set[str], threshold: float | None) -> dict:
    labels = np.array([s.label for s in samples])
    gens = np.array([s.subset for s in samples])
    src = np.array(sources)
    ok = ~np.isnan(scores)
    real = scores[(labels == 0) & ok]
    unseen_mask = (labels == 1) & ok & ~np.isin(gens, list(seen))
    out: dict = {"n_real": int(len(real)), "n_unseen_fake": int(unseen_mask.sum())}
    fake = scores[unseen_mask]
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    out["pooled_auc"] = bootstrap_auc(y, np.r_[real, fake])
    by_gen = {g: scores[(gens == g) & ok] for g in sorted(set(gens[labels == 1]))}
    unseen = {g: v for g, v in by_gen.items() if g not in seen}
    out["mean_auc"] = bootstrap_mean_auc(real, unseen)
    out["generators"] = {
        g: bootstrap_auc(np.r_[np.zeros(len(real)), np.ones(len(v))], np.r_[real, v]) for g, v in by_gen.items()
    }
    out["real_sources"] = {}
    for group in sorted(set(src[labels == 0])):
        r = scores[(src == group) & (labels == 0) & ok]
        out["real_sources"][group] = bootstrap_auc(np.r_[np.zeros(len(r)), np.ones(len(fake))], np.r_[r, fake])
    if threshold is not None:
        out["threshold"] = threshold
        out["balanced_acc"] = balanced_accuracy(y, np.r_[real, fake], threshold)
        out["real_acc"] = float((real < threshold).mean())
        out["unseen_fake_acc"] = float((fake >= threshold).mean())
    return out


def fmt(triple) -> str:
    return f"{triple[0]:.3f} ({triple[1]:.2f}-{triple[2]:.2f})"


def render_tables(results: dict[str, list[dict]], seen: set[str], footer: str) -> str:
    """Markdown tables of :func:`summarise` results (one list of seed results per recipe)."""
    first = next(iter(results.values()))[0]
    gens = list(first["generators"])
    groups = list(first["real_sources"])
    lines = [
        f"Aligned protocol; unseen = every generator but {sorted(seen)}; 95 % bootstrap intervals (images "
        "resampled within each class, 1000 rounds) in brackets. With several seeds: first seed's intervals, "
        "then mean ± sd of the point values over seeds.",
        "",
        "| model | seeds | pooled unseen AUC | mean unseen AUC | pooled, mean ± sd over seeds | balanced ACC "
        "| real-ACC | unseen fake-ACC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        pooled = np.array([r["pooled_auc"][0] for r in runs])
        spread = f"{pooled.mean():.3f} ± {pooled.std(ddof=1):.3f}" if len(runs) > 1 else "-"
        acc = [r.get("balanced_acc") for r in runs]
        acc_txt = f"{np.mean(acc):.3f}" if acc[0] is not None else "-"
        ra = f"{np.mean([r['real_acc'] for r in runs]):.3f}" if "real_acc" in runs[0] else "-"
        fa = f"{np.mean([r['unseen_fake_acc'] for r in runs]):.3f}" if "unseen_fake_acc" in runs[0] else "-"
        lines.append(
            f"| {name} | {len(runs)} | {fmt(runs[0]['pooled_auc'])} | {fmt(runs[0]['mean_auc'])} | {spread} "
            f"| {acc_txt} | {ra} | {fa} |"
        )
    lines += ["", "Per generator (AUC against all real images; seen generators marked *):", ""]
    lines.append("| model | " + " | ".join(g + ("*" if g in seen else "") for g in gens) + " |")
    lines.append("|---" * (len(gens) + 1) + "|")
    for name, runs in results.items():
        if name == "jpeg-trace":
            cells = [f"abs {abs(runs[0]['generators'][g][0] - 0.5):.2f}" for g in gens]
        else:
            cells = [
                f"{np.mean([r['generators'][g][0] for r in runs]):.2f}"
                + (f" ± {np.std([r['generators'][g][0] for r in runs], ddof=1):.2f}" if len(runs) > 1 else "")
                for g in gens
            ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Per real source (all unseen fakes against that source's photos):", ""]
    lines.append("| model | " + " | ".join(groups) + " |")
    lines.append("|---" * (len(groups) + 1) + "|")
    for name, runs in results.items():
        cells = []
        for g in groups:
            values = [r["real_sources"][g][0] for r in runs]
            cells.append(
                fmt(runs[0]["real_sources"][g])
                if len(runs) == 1
                else f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", footer]
    return "\n".join(lines)


def save_tables(out: Path, stem: str, text: str, results: dict) -> None:
    """``out/stem.md`` (the tables) and ``out/stem.json`` (every number behind them)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text + "\n", encoding="utf-8")
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


@functools.lru_cache(maxsize=8)
def data_fingerprint(data: str) -> str:
    """SHA-256 of a benchmark folder's contents: every file's relative path and bytes, in sorted order (bench-dev,
    79 MB, in under a second), so cached scores follow the images, not the folder's name or a fresh copy's mtimes."""
    root = Path(data)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_file(cache: str | None, folder: str | None, data: str) -> Path | None:
    """Where a model folder's scores are cached: keyed by its weights, its config and the benchmark's contents
    (``data`` is the benchmark folder, optionally followed by ``@variant`` for another way of scoring it)."""
    if cache is None or folder is None:
        return None
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json"):
        digest.update((Path(folder) / name).read_bytes())
    base, at, variant = data.partition("@")
    digest.update(f"{data_fingerprint(base)}{at}{variant}".encode())
    return Path(cache) / f"{digest.hexdigest()[:24]}-scores.json"


def model_scores(
    name: str, folder: str | None, samples, protocol, cache: str | None, data: str, backend: str = "torch"
):
    """(probability per sample, NaN where unreadable; the model's stored threshold), from the cache when there."""
    cached = _cache_file(cache, folder, data)
    if cached is not None and cached.is_file():
        stored = json.loads(cached.read_text())
        return np.array([np.nan if v is None else v for v in stored["scores"]]), stored["threshold"]
    detector = Detector.from_pretrained(folder if folder else (None if name == "default" else name), backend=backend)
    scored = score_samples(lambda ims, d=detector: [p for p, _ in d.predict_images(ims)], samples, protocol)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        values = [None if np.isnan(v) else float(v) for v in scored.scores]
        cached.write_text(json.dumps({"folder": str(folder), "scores": values, "threshold": detector.threshold}))
    return scored.scores, detector.threshold


def paired_lines(scores: dict[str, np.ndarray], samples, seen: set[str]) -> list[str]:
    """Each model's pooled unseen AUC minus the first model's, as a paired bootstrap on the images both scored
    (first seed of each), so what the images share cancels."""
    names = list(scores)
    if len(names) < 2:
        return []
    labels = np.array([s.label for s in samples])
    unseen = (labels == 0) | ~np.isin([s.subset for s in samples], list(seen))
    lines = [f"Pooled unseen AUC minus {names[0]}'s, paired bootstrap on the same images (first seed):", ""]
    for name in names[1:]:
        both = unseen & ~np.isnan(scores[name]) & ~np.isnan(scores[names[0]])
        d = bootstrap_auc_difference(labels[both], scores[name][both], scores[names[0]][both])
        lines.append(f"- {name}: {d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f})")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/bench-dev")
    parser.add_argument("--model", action="append", default=None, help="NAME=FOLDER[,FOLDER...] or 'default'")
    parser.add_argument("--seen", nargs="*", default=["sd1"], help="generators seen in training")
    parser.add_argument("--no-jpeg-trace", action="store_true")
    parser.add_argument("--backend", default="torch", help="torch, or onnx (ONNX Runtime: same scores, faster on CPUs)")
    parser.add_argument("--out", default=None, help="folder for unseen.md and unseen.json")
    parser.add_argument(
        "--cache", default=None, help="folder of per-model results keyed by the weights' SHA-256 (score once, merge)"
    )
    args = parser.parse_args()
    start = time.time()
    samples, sources = read_manifest(Path(args.data))
    seen = set(args.seen)
    protocol = PROTOCOLS["aligned"]
    results: dict[str, list[dict]] = defaultdict(list)
    first_scores: dict[str, np.ndarray] = {}  # each model's first seed, for the paired differences
    for spec in args.model or ["default"]:
        name, _, folders = spec.partition("=")
        for folder in folders.split(",") if folders else [None]:
            parts = folder.split("+") if folder else [None]
            scored = [
                model_scores(name, part, samples, protocol, args.cache, args.data, args.backend) for part in parts
            ]
            # "A+B": an ensemble, the mean of the members' probabilities (and of their thresholds).
            scores = np.mean([sc for sc, _ in scored], axis=0)
            threshold = float(np.mean([t for _, t in scored]))
            results[name].append(summarise(scores, samples, sources, seen, threshold))
            first_scores.setdefault(name, scores)
            print(f"{name} {folder or ''}: pooled unseen AUC {fmt(results[name][-1]['pooled_auc'])}", flush=True)
    if not args.no_jpeg_trace:
        scored = score_samples(jpeg_trace_scorer, samples, protocol)
        results["jpeg-trace"].append(summarise(scored.scores, samples, sources, seen, None))

    footer = paired_lines(first_scores, samples, seen) + [f"{len(samples)} images, {time.time() - start:.0f} s."]
    text = render_tables(results, seen, "\n".join(footer))
    print(text)
    if args.out:
        save_tables(Path(args.out), "unseen", text, results)


if __name__ == "__main__":
    main()
