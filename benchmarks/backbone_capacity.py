"""Capacity of the frozen texture features: EfficientNet-Lite0 against Lite1 and Lite2, shallow against deep taps.

    python benchmarks/backbone_capacity.py [--seeds 0 1 2] [--out docs/results/capacity]

The issue "Learn from many generators" asks whether, with ~6x the generated images, a larger frozen backbone or
deeper blocks beat the default's frozen Lite0 statistics under leave-family-out. Training the whole recipe per
backbone and fold costs hours here, so this script asks the cheaper question first, on the same footing as
``family_curve.py``: every image is read once through the ``aligned`` protocol, cut into the default's four
256 px crops, and described by each backbone's per-channel mean and deviation at a set of blocks (crops averaged).
A balanced logistic probe is trained per leave-family-out fold (:data:`leave_family_out.FOLDS`) and scored on the
held-out families against the held-out fifth of every real source; then trained on every family and scored on
bench-dev (generators whose family it saw, and those it did not). With ``--open-set``, the family head of
:mod:`nirnet.family` is also fitted on each kind (its leave-family-out folds, crop means as rows) and its
max-softmax "unknown family" score ranked (AUROC, known vs unseen families), as the issue "Which generator?" asks
of other feature kinds for the head. The CPU cost of each feature kind per 256 px crop
(two threads, batch of four, median of repeats) is measured in the same run.

A content control answers "what did it use": the same backbone's final pooled ImageNet features of the whole image
resized to 224 px (what the picture shows, with the texture scaled away). Where it scores as high as a texture
kind, that kind's gain may be content (portraits and illustrations against photographs), not an imprint.

Feature kinds: the default's taps (the ends of the first four stages: Lite0 blocks 0/2/4/7, Lite1/2 blocks 0/3/6/10)
and "deep" taps that add the ends of stages five and six (Lite0 10/14, Lite1/2 14/19). Deep taps are computed in
the same pass and the shallow kinds are their first columns. Features are cached in ``--cache`` per backbone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from family_curve import BENCH, GENERATED, HELD, REAL, balanced_weights, oof, probe_scores
from leave_family_out import real_source_name
from nirnet._atomic import atomic_write_text
from nirnet.data.datasets import read_dataset, real_image_paths
from nirnet.data.families import family_of
from nirnet.data.io import ImageLoadError, load_image
from nirnet.data.split import is_validation
from nirnet.data.transforms import inference_transform
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.stats import bootstrap_auc
from nirnet.models import get_config
from nirnet.models.semantic import create_backbone
from unseen_generators import read_manifest

# backbone -> (shallow taps, deep taps); shallow = ends of stages 1-4 (the default's), deep adds stages 5 and 6
TAPS = {
    "efficientnet_lite0": ((0, 2, 4, 7), (0, 2, 4, 7, 10, 14)),
    "efficientnet_lite1": ((0, 3, 6, 10), (0, 3, 6, 10, 14, 19)),
    "efficientnet_lite2": ((0, 3, 6, 10), (0, 3, 6, 10, 14, 19)),
}


def shallow_columns(backbone: str) -> int:
    """Number of leading feature columns that belong to the shallow taps (mean and std per channel, per tap)."""
    model = create_backbone(backbone, pretrained=False, taps=TAPS[backbone][0])
    return model.out_dim


CONTENT = "content:"  # prefix of a content-control kind: pooled features of the whole image at 224 px
CONTENT_SIZE = 224


def content_view(image) -> torch.Tensor:
    """The whole image resized to 224 px, ``1 x 3 x 224 x 224`` in [0, 1]."""
    small = image.convert("RGB").resize((CONTENT_SIZE, CONTENT_SIZE), Image.BICUBIC)
    return torch.from_numpy(np.array(small)).permute(2, 0, 1)[None].float() / 255


def featurise_all(paths: list[Path], backbones: list[str], cache: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Deep-tap features (or, for ``content:<backbone>``, pooled whole-image features) of every path for every
    backbone (cached per backbone), and the readable mask."""
    key = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]
    files = {b: cache / f"capacity-{b.replace(':', '-')}-{key}.npz" for b in backbones}
    todo = [b for b in backbones if not files[b].is_file()]
    if todo:
        transform = inference_transform(get_config("nirnet_tiny_texture"))
        protocol = PROTOCOLS["aligned"]
        models = {
            b: create_backbone(b.removeprefix(CONTENT), True, None, () if b.startswith(CONTENT) else TAPS[b][1]).eval()
            for b in todo
        }
        rows: dict[str, list[np.ndarray]] = {b: [] for b in todo}
        ok = []
        start = time.time()
        for i, path in enumerate(paths):
            try:
                image = protocol(load_image(path))
                crops, view = transform.crops(image), content_view(image)
                ok.append(True)
            except ImageLoadError:
                crops = view = None
                ok.append(False)
            for b, model in models.items():
                if crops is None:
                    rows[b].append(np.zeros(model.out_dim, np.float32))
                else:
                    with torch.inference_mode():
                        rows[b].append(model(view if b.startswith(CONTENT) else crops).mean(0).numpy())
            if i % 200 == 0:
                print(f"features {i}/{len(paths)} ({time.time() - start:.0f} s)", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        for b in todo:
            np.savez(files[b], x=np.array(rows[b]), ok=np.array(ok))
    loaded = {b: np.load(files[b]) for b in backbones}
    return {b: loaded[b]["x"] for b in backbones}, loaded[backbones[0]]["ok"]


def kind_matrix(features: dict[str, np.ndarray], key: str, columns: int | None) -> np.ndarray:
    """The feature matrix of a kind: ``key`` is a cached backbone, or parts ``<backbone>[@<columns>]`` joined by
    ``+`` (features side by side, e.g. the content control beside texture statistics)."""
    if "+" in key:
        parts = [part.partition("@") for part in key.split("+")]
        return np.concatenate([kind_matrix(features, b, int(c) if c else None) for b, _, c in parts], axis=1)
    return features[key][:, :columns] if columns else features[key]


def kind_cost_ms(key: str, columns: int | None) -> float:
    """Per-crop cost of a kind (a content part costs one whole image at 224 px); parts of a combined kind add up."""
    total = 0.0
    for part in key.split("+"):
        backbone, _, cols = part.partition("@")
        if backbone.startswith(CONTENT):
            total += crop_cost_ms(backbone.removeprefix(CONTENT), (), size=CONTENT_SIZE)
        else:
            total += crop_cost_ms(backbone, TAPS[backbone][0 if (cols or columns) else 1])
    return total


def crop_cost_ms(backbone: str, taps: tuple[int, ...], repeats: int = 7, size: int = 256) -> float:
    """Median wall time per ``size`` px crop of the frozen features, batch of four, on two threads."""
    model = create_backbone(backbone, True, None, taps).eval()
    x = torch.rand(4, 3, size, size)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times) / 4 * 1000


def open_set_table(kinds, features, fakes, first_fake: int, seeds: list[int], result: dict) -> list[str]:
    """Family head (C = 0.1, crop means) per feature kind: open-set AUROC of max softmax and closed-set top-1 on
    the held-out files of known families, pooled over :func:`nirnet.family.open_set_folds`, mean ± sd over seeds."""
    from sklearn.metrics import roc_auc_score

    from nirnet.family import family_images, known_score, open_set_folds

    images = family_images(["runs/corpus", "../shared/data/gen-train"])
    row = {str(Path(s.path).resolve()): first_fake + i for i, s in enumerate(fakes)}
    index = np.array([row[str(Path(im.path).resolve())] for im in images])
    names, groups = np.array([im.family for im in images]), np.array([im.group for im in images])
    lines = [
        "Family head on each feature kind (crop means, C = 0.1): open-set AUROC of max softmax (known vs unseen",
        "families) and top-1 on held-out files of known families, 5 folds pooled, mean ± sd over seeds:",
        "",
        "| backbone, taps | open-set AUROC | closed-set top-1 |",
        "|---|---|---|",
    ]
    for name, backbone, _, columns in kinds:
        x = kind_matrix(features, backbone, columns)[index]
        aurocs, top1 = [], []
        for seed in seeds:
            folds = open_set_folds(x, names, groups, parts=["texture"], c=0.1, seed=seed)
            y = np.concatenate([f["is_known"] for f in folds])
            aurocs.append(roc_auc_score(y, np.concatenate([known_score(f["logits"], "max_softmax") for f in folds])))
            hits = np.concatenate([(f["predicted"] == f["family"])[f["is_known"] == 1] for f in folds])
            top1.append(float(hits.mean()))
        result["kinds"][name]["open_set"] = {"auroc": aurocs, "top1": top1}
        lines.append(
            f"| {name} | {np.mean(aurocs):.3f} ± {np.std(aurocs):.3f} | {np.mean(top1):.3f} ± {np.std(top1):.3f} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="probe seeds (80 %% subsamples)")
    parser.add_argument("--backbones", nargs="+", default=list(TAPS), choices=list(TAPS))
    parser.add_argument(
        "--content", nargs="*", default=["efficientnet_lite1"], choices=list(TAPS), help="content-control backbones"
    )
    parser.add_argument("--open-set", action="store_true", help="also rank the family head's open-set score")
    parser.add_argument("--cache", default="runs/feature_cache", help="folder of the cached features")
    parser.add_argument("--out", default=None, help="folder for capacity.md / capacity.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    reals = list(dict.fromkeys(real_image_paths(REAL)))
    fakes = [s for src in GENERATED for s in read_dataset(src) if s.label == 1]
    bench, bench_sources = read_manifest(BENCH)
    paths = reals + [s.path for s in fakes] + [s.path for s in bench]
    specs = args.backbones + [CONTENT + b for b in args.content]
    features, ok = featurise_all(paths, specs, Path(args.cache))
    n = len(reals) + len(fakes)
    labels = np.r_[np.zeros(len(reals), int), np.ones(len(fakes), int)]
    families = np.array(["real"] * len(reals) + [family_of(s.subset) for s in fakes])
    sources = np.array([real_source_name(p) for p in reals] + ["-"] * len(fakes))
    held_real = np.array([is_validation(p, HELD) for p in reals] + [False] * len(fakes))
    keep = ok[:n]
    labels, families, sources, held_real = labels[keep], families[keep], sources[keep], held_real[keep]
    bl = np.array([s.label for s in bench])
    bg = np.array([s.subset for s in bench])
    bsrc = np.array(bench_sources)
    seen = np.array([family_of(g) in set(families[labels == 1]) for g in bg])
    bok = ok[n:]

    kinds = []
    for b in args.backbones:
        kinds.append((f"{b} {'/'.join(map(str, TAPS[b][0]))}", b, TAPS[b][0], shallow_columns(b)))
        kinds.append((f"{b} {'/'.join(map(str, TAPS[b][1]))}", b, TAPS[b][1], None))
    for b in args.content:
        kinds.append((f"{b} pooled, whole image at 224 px (content control)", CONTENT + b, (), None))
        # does texture add to content? each backbone's shallow and deep statistics beside the content control
        for other in args.backbones[:1]:
            cols = shallow_columns(other)
            kinds.append((f"content control + {other} shallow", f"{CONTENT}{b}+{other}@{cols}", (), None))
        if b in args.backbones:
            kinds.append((f"content control + {b} deep", f"{CONTENT}{b}+{b}", (), None))
    result: dict = {"n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()), "kinds": {}}
    lines = [
        "## Frozen features under leave-family-out (balanced logistic probes), and their cost",
        "",
        "| backbone, taps | dims | pooled LFO AUC, mean ± sd over seeds | seed 0 (95 % CI) | balanced ACC at 0.5 |"
        " bench-dev unseen | bench-dev seen | ms per 256 px crop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    per_group: dict[str, dict[str, list[float]]] = {}
    for name, backbone, _taps, columns in kinds:
        x_all = kind_matrix(features, backbone, columns)
        x = x_all[:n][keep]
        aucs, baccs = [], []
        groups = per_group.setdefault(name, {})
        for seed in args.seeds:
            y, s, g = oof(x, labels, families, sources, held_real, None, seed)
            triple = bootstrap_auc(y, s)
            aucs.append(triple[0])
            baccs.append(0.5 * (np.mean(s[y == 1] >= 0.5) + np.mean(s[y == 0] < 0.5)))
            if seed == args.seeds[0]:
                first = triple
            for fam in set(g[y == 1]):
                m = (y == 0) | (g == fam)
                groups.setdefault(fam, []).append(bootstrap_auc(y[m], s[m])[0])
            for src in set(g[y == 0]):
                m = (y == 1) | (g == src)
                groups.setdefault("real:" + src, []).append(bootstrap_auc(y[m], s[m])[0])
        train = ((labels == 0) & ~held_real) | (labels == 1)
        w = balanced_weights(labels[train], families[train], sources[train])
        bench_scores = probe_scores(x[train], labels[train], w, x_all[n:], args.seeds[0])
        bench_auc = {}
        for title, mask in (("unseen", ~seen & (bl == 1)), ("seen", seen & (bl == 1))):
            m = bok & ((bl == 0) | mask)
            bench_auc[title] = bootstrap_auc(bl[m], bench_scores[m])
        for group in sorted(set(bsrc[bl == 0])):
            m = bok & (((bl == 0) & (bsrc == group)) | (~seen & (bl == 1)))
            bench_auc["real:" + group] = bootstrap_auc(bl[m], bench_scores[m])
        cost = kind_cost_ms(backbone, columns)
        result["kinds"][name] = {
            "dims": int(x.shape[1]),
            "pooled": aucs,
            "first": first,
            "balanced_acc": baccs,
            "groups": groups,
            "bench": bench_auc,
            "ms_per_crop": cost,
        }
        lines.append(
            f"| {name} | {x.shape[1]} | {np.mean(aucs):.3f} ± {np.std(aucs):.3f} | {first[0]:.3f} "
            f"({first[1]:.2f}-{first[2]:.2f}) | {np.mean(baccs):.3f} | {bench_auc['unseen'][0]:.3f} "
            f"({bench_auc['unseen'][1]:.2f}-{bench_auc['unseen'][2]:.2f}) | {bench_auc['seen'][0]:.3f} | {cost:.1f} |"
        )
        print(lines[-1], flush=True)
    if args.open_set:
        lines += ["", *open_set_table(kinds, features, fakes, len(reals), args.seeds, result)]
    names = [k[0] for k in kinds]
    keys = sorted(per_group[names[0]], key=lambda f: np.mean(per_group[names[0]][f]))
    lines += ["", "Per held-out family, and per real source against all out-of-fold fakes (mean over seeds):", ""]
    lines += ["| family / real source | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in keys:
        lines.append(
            f"| {key} | " + " | ".join(f"{np.mean(per_group[k].get(key, [np.nan])):.2f}" for k in names) + " |"
        )
    lines += ["", "bench-dev, each real source against the unseen families (seed 0):", ""]
    lines += ["| real source | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in sorted(k for k in result["kinds"][names[0]]["bench"] if k.startswith("real:")):
        lines.append(f"| {key[5:]} | " + " | ".join(f"{result['kinds'][k]['bench'][key][0]:.2f}" for k in names) + " |")
    lines += [
        "",
        f"{n} training images ({result['n_real']} real, {result['n_fake']} generated), {len(bench)} bench-dev "
        f"images, {time.time() - start:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out) / "capacity.md", text + "\n")
        atomic_write_text(Path(args.out) / "capacity.json", json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
