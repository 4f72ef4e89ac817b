"""Leave-family-out: how well a training recipe detects generator families it never trained on.

    python benchmarks/leave_family_out.py -c configs/nirnet_tiny_texture_dn_families.yaml --seeds 0 1 2 \\
        --runs runs/lfo --out docs/results/lfo [--folds 0 3] [--store-threshold FOLDER]

The recipe's generator families (``nirnet.data.families``) are split into :data:`FOLDS`; every family is held out
exactly once. For each fold and seed the recipe is trained without that fold's families
(``data.exclude_families``) and without a fixed fifth of every real source's photos (``data.validation=0.2``, chosen
by file name, the same photos for every fold), then scored on the held-out families' images against those held-out
photos, both through the ``aligned`` protocol (centre crop <= 512 px, JPEG 90). A finished fold is not trained
again (``--resume``) and its scores are cached beside its run.

Reported: per held-out family AUC with a bootstrap 95 % interval; pooled out-of-fold AUC (every fold's held-out
fakes and real photos together, so one threshold must serve every fold); the mean of the per-fold AUCs; AUC per
real source (that source's held-out photos against the out-of-fold fakes); the threshold that maximises balanced
accuracy on the pooled out-of-fold scores, and balanced accuracy, real-ACC and fake-ACC at it and at 0.5. With
several seeds: the first seed's intervals, and mean ± sd over seeds. ``--store-threshold`` writes the threshold
(fitted on all seeds' out-of-fold scores) into a model folder's config, so the verdict users get is set for
generators the model did not see.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from nirnet._atomic import atomic_write_text
from nirnet.data.datasets import Sample
from nirnet.data.families import LEAVE_OUT_FOLDS, family_of
from nirnet.engine.config import load_config
from nirnet.engine.train import generated_samples, training_images
from nirnet.eval.metrics import best_threshold
from nirnet.eval.stats import balanced_accuracy, bootstrap_auc

FOLDS = LEAVE_OUT_FOLDS  # the folds of generator families (nirnet.data.families)
REAL_HELD = 0.2


def fold_overrides(fold: int, seed: int, out_dir: Path, steps: int | None, recipe: list[str] = ()) -> list[str]:
    """The recipe's own overrides (a variant of the config), then the fold's (which win)."""
    families = ",".join(FOLDS[fold])
    extra = [f"optim.steps={steps}"] if steps else []
    return [
        *recipe,
        f"data.exclude_families=[{families}]",
        f"data.validation={REAL_HELD}",
        f"run.seed={seed}",
        f"run.out_dir={out_dir}",
        *extra,
    ]


def train_fold(config: str, overrides: list[str], out_dir: Path) -> None:
    if (out_dir / "final" / "model.safetensors").is_file():
        return
    cmd = [sys.executable, "-m", "nirnet.cli.main", "train", "-c", config, *overrides, "--resume", "--no-progress"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def held_out_samples(config: str, overrides: list[str], fold: int) -> tuple[list[Sample], list[str]]:
    """(samples, group) to score: every image of the fold's families (group = family) and the held-out real
    photos of every source (group = the source folder's name)."""
    # the data the recipe reads (a variant may change it), with every family present so the fold's can be scored
    cfg = load_config(config, [o for o in overrides if o.startswith("data.") and "exclude_families" not in o])
    samples = generated_samples(cfg)
    _, _, real_held, _ = training_images(cfg, samples)
    held = set(FOLDS[fold])
    fakes = [s for s in samples if family_of(s.subset) in held]
    samples = [Sample(p, 0, "real") for p in dict.fromkeys(real_held)] + fakes
    groups = [real_source_name(p) for p in dict.fromkeys(real_held)] + [family_of(s.subset) for s in fakes]
    return samples, groups


def real_source_name(path: Path) -> str:
    """The folder a real photo lies in (``imagenet``, ``camera``); a built corpus's ``real/real`` is named after
    the corpus folder."""
    path = Path(path)
    return path.parents[2].name if path.parent.name == "real" and path.parents[1].name == "real" else path.parent.name


def fold_scores(run: Path, samples: list[Sample], backend: str, model: str | None = None) -> np.ndarray:
    """Scores of ``model`` (default: the fold's own trained model, ``run/final``), cached in ``run``. A fixed
    ``model`` scores the same held-out images for every seed (the split does not depend on it), so another
    seed's cache of this fold is reused when it holds the same model and images."""
    cache = run / "lfo_scores.json"
    keys = [str(s.path) for s in samples]
    candidates = [cache] + (sorted(run.parent.parent.glob(f"s*/{run.name}/lfo_scores.json")) if model else [])
    for file in candidates:
        stored = json.loads(file.read_text()) if file.is_file() else {}
        if stored.get("paths") == keys and stored.get("model") == model:
            if file != cache:
                atomic_write_text(cache, json.dumps(stored))
            return np.array([np.nan if v is None else v for v in stored["scores"]])
    from nirnet.detect import Detector
    from nirnet.eval.evaluate import score_samples
    from nirnet.eval.protocol import PROTOCOLS

    detector = Detector.from_pretrained(model or str(run / "final"), backend=backend)
    scored = score_samples(lambda ims: [p for p, _ in detector.predict_images(ims)], samples, PROTOCOLS["aligned"])
    values = [None if np.isnan(v) else float(v) for v in scored.scores]
    atomic_write_text(cache, json.dumps({"paths": keys, "scores": values, "model": model}))
    return scored.scores


def summarise(folds: list[dict]) -> dict:
    """Numbers of one seed from its folds' (labels, scores, groups)."""
    y = np.concatenate([f["labels"] for f in folds])
    s = np.concatenate([f["scores"] for f in folds])
    g = np.concatenate([f["groups"] for f in folds])
    ok = ~np.isnan(s)
    y, s, g = y[ok], s[ok], g[ok]
    out: dict = {"pooled_auc": bootstrap_auc(y, s), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
    out["fold_auc"] = []
    for f in folds:
        keep = ~np.isnan(f["scores"])
        out["fold_auc"].append(bootstrap_auc(f["labels"][keep], f["scores"][keep])[0])
    out["mean_fold_auc"] = float(np.mean(out["fold_auc"]))
    out["families"] = {}
    for f in folds:
        keep = ~np.isnan(f["scores"])
        labels, scores, groups = f["labels"][keep], f["scores"][keep], f["groups"][keep]
        real = scores[labels == 0]
        for family in sorted(set(groups[labels == 1])):
            fake = scores[(labels == 1) & (groups == family)]
            out["families"][family] = (
                *bootstrap_auc(np.r_[np.zeros(len(real)), np.ones(len(fake))], np.r_[real, fake]),
                len(fake),
            )
    out["real_sources"] = {}
    fake = s[y == 1]
    for source in sorted(set(g[y == 0])):
        real = s[(y == 0) & (g == source)]
        labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
        out["real_sources"][source] = (*bootstrap_auc(labels, np.r_[real, fake]), len(real) // len(folds))
    threshold = best_threshold(y, s)
    out["threshold"] = threshold
    for name, t in (("fitted", threshold), ("0.5", 0.5)):
        out[f"at_{name}"] = {
            "balanced_acc": balanced_accuracy(y, s, t),
            "real_acc": float((s[y == 0] < t).mean()),
            "fake_acc": float((s[y == 1] >= t).mean()),
        }
    return out


def fmt(triple) -> str:
    return f"{triple[0]:.3f} ({triple[1]:.2f}-{triple[2]:.2f})"


def spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def render(results: dict[int, dict], config: str, threshold: float, footer: str) -> str:
    seeds = sorted(results)
    first = results[seeds[0]]
    pooled = spread([r["pooled_auc"][0] for r in results.values()])
    lines = [
        f"Leave-family-out for {config}: {len(FOLDS)} folds, seeds {seeds}; aligned protocol; 95 % bootstrap "
        "intervals (first seed) in brackets, mean ± sd over seeds after them.",
        "",
        "| | value |",
        "|---|---|",
        f"| pooled out-of-fold AUC | {fmt(first['pooled_auc'])}; {pooled} |",
        f"| mean of per-fold AUCs | {spread([r['mean_fold_auc'] for r in results.values()])} |",
        f"| per-fold AUC (seed {seeds[0]}) | {', '.join(f'{v:.3f}' for v in first['fold_auc'])} |",
        f"| threshold fitted on all seeds' out-of-fold scores | {threshold:.3f} |",
    ]
    for name in ("fitted", "0.5"):
        for key in ("balanced_acc", "real_acc", "fake_acc"):
            values = [r[f"at_{name}"][key] for r in results.values()]
            lines.append(f"| {key.replace('_', ' ')} at the {name} threshold (per-seed fit) | {spread(values)} |")
    lines += ["", "Per held-out family (its images against the fold's held-out real photos):", ""]
    lines += ["| family | fold | images | AUC (first seed) | mean ± sd over seeds |", "|---|---|---|---|---|"]
    for family, triple in sorted(first["families"].items(), key=lambda kv: kv[1][0]):
        fold = next(i for i, f in enumerate(FOLDS) if family in f)
        values = [r["families"][family][0] for r in results.values()]
        lines.append(f"| {family} | {fold} | {triple[3]} | {fmt(triple)} | {spread(values)} |")
    lines += ["", "Per real source (its held-out photos against all out-of-fold fakes):", ""]
    lines += ["| source | photos | AUC (first seed) | mean ± sd over seeds |", "|---|---|---|---|"]
    for source, triple in first["real_sources"].items():
        values = [r["real_sources"][source][0] for r in results.values()]
        lines.append(f"| {source} | {triple[3]} | {fmt(triple)} | {spread(values)} |")
    lines += ["", footer]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_tiny_texture_dn_families.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config: a variant of the recipe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--folds", type=int, nargs="*", default=None, help="only these folds (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="override optim.steps (cheaper, not the recipe)")
    parser.add_argument("--runs", default="runs/lfo", help="folder for the fold runs")
    parser.add_argument("--out", default=None, help="folder for lfo.md and lfo.json")
    parser.add_argument("--backend", default="onnx", help="scoring backend: onnx (faster on CPUs) or torch")
    parser.add_argument("--score-only", action="store_true", help="do not train; use the fold runs that exist")
    parser.add_argument(
        "--model",
        default=None,
        help="score this fixed model (a folder or a shipped name, e.g. nirnet_tiny_texture_dn) on every fold's "
        "held-out images instead of training: a baseline on the same images (it may have trained on some families)",
    )
    parser.add_argument("--store-threshold", default=None, help="model folder whose stored threshold to set")
    args = parser.parse_args()
    start = time.time()
    folds = args.folds if args.folds is not None else list(range(len(FOLDS)))
    per_seed: dict[int, list[dict]] = defaultdict(list)
    absent: set[int] = set()  # folds none of whose families the recipe's data holds
    for seed in args.seeds:
        for fold in folds:
            run = Path(args.runs) / f"s{seed}" / f"fold{fold}"
            overrides = fold_overrides(fold, seed, run, args.steps, args.overrides)
            if fold in absent:
                continue
            samples, groups = held_out_samples(args.config, overrides, fold)  # listed once, scored below
            if not any(s.label == 1 for s in samples):
                print(f"fold {fold} ({', '.join(FOLDS[fold])}): no image of its families in the data, left out")
                absent.add(fold)
                continue
            if args.model is None and not args.score_only:
                train_fold(args.config, overrides, run)
            if args.model is None and not (run / "final" / "model.safetensors").is_file():
                print(f"seed {seed} fold {fold}: no finished run at {run}, left out", flush=True)
                continue
            scores = fold_scores(run, samples, args.backend, args.model)
            labels = np.array([s.label for s in samples])
            per_seed[seed].append({"labels": labels, "scores": scores, "groups": np.array(groups)})
            auc = bootstrap_auc(labels[~np.isnan(scores)], scores[~np.isnan(scores)])
            print(f"seed {seed} fold {fold} ({', '.join(FOLDS[fold])}): AUC {fmt(auc)}", flush=True)
    complete = {seed: f for seed, f in per_seed.items() if len(f) == len(set(folds) - absent)}
    if not complete:
        raise SystemExit("no seed has every fold scored")
    results = {seed: summarise(f) for seed, f in complete.items()}
    y = np.concatenate([x["labels"] for f in complete.values() for x in f])
    s = np.concatenate([x["scores"] for f in complete.values() for x in f])
    threshold = best_threshold(y[~np.isnan(s)], s[~np.isnan(s)])
    footer = f"{len(y)} scorings, {time.time() - start:.0f} s (training included when it ran)."
    recipe = f"the fixed model `{args.model}`" if args.model else "`" + " ".join([args.config, *args.overrides]) + "`"
    text = render(results, recipe, threshold, footer)
    print(text)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "lfo.md", text + "\n")
        payload = {"config": args.config, "folds": FOLDS, "threshold": threshold, "seeds": results}
        atomic_write_text(out / "lfo.json", json.dumps(payload, indent=1, default=float))
    if args.store_threshold:
        from nirnet.models.base import DetectorModel

        path = DetectorModel.store_threshold(args.store_threshold, threshold)
        print(f"stored threshold {threshold:.4f} in {path}")


if __name__ == "__main__":
    main()
