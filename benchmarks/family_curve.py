"""Leave-family-out and the diversity curve with frozen features: does each added generator family still pay?

    python benchmarks/family_curve.py [--seeds 0 1 2] [--draws 3] [--out docs/results/families]

A cheap companion of ``leave_family_out.py`` (which trains the whole recipe per fold): every image is read once
through the ``aligned`` protocol (centre crop <= 512 px, JPEG 90, both classes alike) and described by the default's
frozen texture statistics (EfficientNet-Lite0 block 0/2/4/7 channel means and deviations, 4 crops averaged, as
``texture_probe.py``) and, as a shortcut check, by ten plain image statistics. Logistic probes are then trained per
fold of :data:`leave_family_out.FOLDS` on the other families' images against the training fifth of every real
source (balanced: each family, and each real source, the same total weight) and scored on the held-out families
against the held-out real photos (the same ``data.validation`` split as the recipe). Reported:

* pooled out-of-fold AUC and per-family AUC, for the texture probe and the plain-statistic probe, over seeds
  (a seed draws 80 % of the training images);
* the diversity curve: pooled out-of-fold AUC against the number of training families (1, 2, 4, 8, all), each
  point the mean ± sd over ``--draws`` random family draws per fold; "sd1 only" is gen-train's family alone;
* bench-dev: the probe trained on every family, split into the generators whose family it saw and those it did not.

Features are cached in ``--cache`` (keyed by the image list). Frozen features plus a linear probe are not the
shipped recipe: these numbers say what the data can teach, not what the default learned.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from leave_family_out import FOLDS, real_source_name
from nirnet._atomic import atomic_write_text
from nirnet.data.balance import source_weights
from nirnet.data.datasets import read_dataset, real_image_paths
from nirnet.data.families import family_of
from nirnet.data.io import ImageLoadError, load_image
from nirnet.data.split import is_validation
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.stats import bootstrap_auc
from texture_probe import Featuriser
from unseen_generators import read_manifest

REAL = ["../shared/data/real-train", "runs/corpus", "runs/photos"]
GENERATED = ["../shared/data/gen-train", "runs/corpus"]
BENCH = Path("../shared/data/bench-dev")
HELD = 0.2


@dataclass
class ProbeData:
    """The images of the frozen-feature probes: training reals and fakes, then bench-dev, in ``paths`` order, with
    the per-row arrays of the first ``n`` (training) rows; :meth:`readable` drops the rows that failed to load."""

    paths: list[Path]
    n: int
    labels: np.ndarray
    families: np.ndarray
    sources: np.ndarray
    held_real: np.ndarray
    fakes: list
    bench: list
    bench_sources: list[str]

    def readable(self, ok: np.ndarray) -> ProbeData:
        keep = ok[: self.n]
        rows = (self.labels[keep], self.families[keep], self.sources[keep], self.held_real[keep])
        return replace(self, labels=rows[0], families=rows[1], sources=rows[2], held_real=rows[3])


def probe_data() -> ProbeData:
    """Real photos of every training source, the generated images of gen-train and the corpus, then bench-dev."""
    reals = list(dict.fromkeys(real_image_paths(REAL)))
    fakes = [s for src in GENERATED for s in read_dataset(src) if s.label == 1]
    bench, bench_sources = read_manifest(BENCH)
    return ProbeData(
        paths=reals + [s.path for s in fakes] + [s.path for s in bench],
        n=len(reals) + len(fakes),
        labels=np.r_[np.zeros(len(reals), int), np.ones(len(fakes), int)],
        families=np.array(["real"] * len(reals) + [family_of(s.subset) for s in fakes]),
        sources=np.array([real_source_name(p) for p in reals] + ["-"] * len(fakes)),
        held_real=np.array([is_validation(p, HELD) for p in reals] + [False] * len(fakes)),
        fakes=fakes,
        bench=bench,
        bench_sources=bench_sources,
    )


def featurise(paths: list[Path], cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(texture features, plain statistics, ok mask) of every path through the aligned protocol, cached."""
    key = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]
    file = cache / f"features-{key}.npz"
    if file.is_file():
        stored = np.load(file)
        return stored["texture"], stored["plain"], stored["ok"]
    featuriser, protocol = Featuriser(), PROTOCOLS["aligned"]
    texture, plain, ok = [], [], []
    for i, path in enumerate(paths):
        try:
            t, p = featuriser(protocol(load_image(path)))
            texture.append(t), plain.append(p), ok.append(True)
        except ImageLoadError:
            texture.append(np.zeros_like(texture[0]) if texture else np.zeros(640)), plain.append([0.0] * 10)
            ok.append(False)
        if i % 200 == 0:
            print(f"features {i}/{len(paths)}", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, texture=np.array(texture), plain=np.array(plain), ok=np.array(ok))
    return np.array(texture), np.array(plain), np.array(ok)


def probe_scores(x_train, y_train, w_train, x_test, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keep = rng.random(len(y_train)) < 0.8
    scaler = StandardScaler().fit(x_train[keep])
    model = LogisticRegression(C=0.1, max_iter=3000)
    model.fit(scaler.transform(x_train[keep]), y_train[keep], sample_weight=w_train[keep] * keep.sum())
    return model.predict_proba(scaler.transform(x_test))[:, 1]


def balanced_weights(labels: np.ndarray, families: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Each family the same total weight among fakes, each real source among reals; both classes sum to 1."""
    w = np.zeros(len(labels))
    fake = labels == 1
    for fam in set(families[fake]):
        m = fake & (families == fam)
        w[m] = 1.0 / m.sum()
    w[~fake] = source_weights([Path(s) / "x" for s in sources[~fake]])
    for cls in (0, 1):
        w[labels == cls] /= w[labels == cls].sum()
    return w


def oof(x, labels, families, sources, held_real, train_families, seed: int, folds: list[int] | None = None):
    """Out-of-fold (labels, scores, groups) over ``folds`` (default: all); ``train_families[k]``: the families
    fold k trains on (None: every family not held out)."""
    ys, ss, gs = [], [], []
    for k, fold in enumerate(FOLDS):
        if folds is not None and k not in folds:
            continue
        allowed = train_families[k] if train_families else set(families[labels == 1]) - set(fold)
        train = ((labels == 0) & ~held_real) | ((labels == 1) & np.isin(families, list(allowed)))
        test = ((labels == 0) & held_real) | ((labels == 1) & np.isin(families, fold))
        w = balanced_weights(labels[train], families[train], sources[train])
        s = probe_scores(x[train], labels[train], w, x[test], seed)
        ys.append(labels[test]), ss.append(s), gs.append(np.where(labels[test] == 1, families[test], sources[test]))
    return np.concatenate(ys), np.concatenate(ss), np.concatenate(gs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--cache", default="runs/feature_cache")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    start = time.time()
    data = probe_data()
    texture, plain, ok = featurise(data.paths, Path(args.cache))
    n, keep, bench, bench_sources = data.n, ok[: data.n], data.bench, data.bench_sources
    data = data.readable(ok)
    labels, families, sources, held_real = data.labels, data.families, data.sources, data.held_real
    feats = {"texture": texture[:n][keep], "plain": plain[:n][keep]}
    result: dict = {"n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()), "lfo": {}, "curve": {}}

    lines = ["## Leave-family-out with frozen features (logistic probes)", ""]
    lines += ["| features | pooled out-of-fold AUC, seed 0 | mean ± sd over seeds |", "|---|---|---|"]
    per_family: dict[str, dict[str, list[float]]] = {}
    for name, x in feats.items():
        aucs = []
        for seed in args.seeds:
            y, s, g = oof(x, labels, families, sources, held_real, None, seed)
            triple = bootstrap_auc(y, s)
            aucs.append(triple[0])
            if seed == args.seeds[0]:
                first = triple
            for fam in set(g[y == 1]):
                m = (y == 0) | (g == fam)
                per_family.setdefault(name, {}).setdefault(fam, []).append(bootstrap_auc(y[m], s[m])[0])
            for src in set(g[y == 0]):
                m = (y == 1) | (g == src)
                per_family.setdefault(name, {}).setdefault("real:" + src, []).append(bootstrap_auc(y[m], s[m])[0])
        result["lfo"][name] = {"pooled": aucs, "first": first, "groups": per_family[name]}
        lines.append(
            f"| {name} | {first[0]:.3f} ({first[1]:.2f}-{first[2]:.2f}) | {np.mean(aucs):.3f} ± {np.std(aucs):.3f} |"
        )
    groups = sorted(per_family["texture"], key=lambda f: np.mean(per_family["texture"][f]))
    lines += ["", "Per held-out family, and per real source (against all out-of-fold fakes), mean over seeds:", ""]
    lines += ["| family / real source | texture probe | plain-statistic probe |", "|---|---|---|"]
    for fam in groups:
        lines.append(f"| {fam} | {np.mean(per_family['texture'][fam]):.3f} | {np.mean(per_family['plain'][fam]):.3f} |")

    # the diversity curve
    rng = np.random.default_rng(0)
    all_families = sorted(set(families[labels == 1]))
    lines += ["", "## Diversity curve (texture probe, pooled out-of-fold AUC)", ""]
    lines += ["| training families per fold | draws | pooled AUC, mean ± sd over draws |", "|---|---|---|"]
    sizes = [1, 2, 4, 8, 0]
    for size in sizes:
        values = []
        for draw in range(args.draws if size else 1):
            chosen = []
            for fold in FOLDS:
                pool = [f for f in all_families if f not in fold]
                chosen.append(set(pool) if not size else set(rng.choice(pool, min(size, len(pool)), replace=False)))
            y, s, _ = oof(feats["texture"], labels, families, sources, held_real, chosen, draw)
            values.append(bootstrap_auc(y, s)[0])
        label = str(size) if size else "all not held out"
        result["curve"][label] = values
        lines.append(f"| {label} | {len(values)} | {np.mean(values):.3f} ± {np.std(values):.3f} |")
    # gen-train's family alone, on the folds that do not hold it out
    folds = [k for k, fold in enumerate(FOLDS) if "sd1" not in fold]
    y, s, _ = oof(feats["texture"], labels, families, sources, held_real, [{"sd1"}] * len(FOLDS), 0, folds)
    result["curve"]["sd1 only"] = [bootstrap_auc(y, s)[0]]
    lines.append(f"| sd1 only (folds {', '.join(map(str, folds))}) | 1 | {result['curve']['sd1 only'][0]:.3f} |")

    # bench-dev: trained on every family and every training-fifth real photo
    bx = texture[n:]
    bok = ok[n:]
    train = (labels == 0) & ~held_real | (labels == 1)
    w = balanced_weights(labels[train], families[train], sources[train])
    bench_scores = probe_scores(feats["texture"][train], labels[train], w, bx, 0)
    seen_families = set(families[labels == 1])
    bl = np.array([s.label for s in bench])
    bg = np.array([s.subset for s in bench])
    seen = np.array([family_of(x) in seen_families for x in bg])
    lines += ["", "## bench-dev, texture probe trained on every family (aligned protocol)", ""]
    lines += ["| generators | AUC against all real |", "|---|---|"]
    for title, mask in (("seen families", seen & (bl == 1)), ("unseen families", ~seen & (bl == 1))):
        m = bok & ((bl == 0) | mask)
        triple = bootstrap_auc(bl[m], bench_scores[m])
        result[f"bench_{title}"] = triple
        gens = sorted(set(bg[mask]))
        lines.append(f"| {title} ({', '.join(gens)}) | {triple[0]:.3f} ({triple[1]:.2f}-{triple[2]:.2f}) |")
    src = np.array(bench_sources)
    for group in sorted(set(src[bl == 0])):
        m = bok & (((bl == 0) & (src == group)) | (~seen & (bl == 1)))
        lines.append(f"| real source {group} vs unseen | {bootstrap_auc(bl[m], bench_scores[m])[0]:.3f} |")
    lines += [
        "",
        f"{n} training images ({result['n_real']} real, {result['n_fake']} generated), {time.time() - start:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out) / "family_curve.md", text + "\n")
        atomic_write_text(Path(args.out) / "family_curve.json", json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
