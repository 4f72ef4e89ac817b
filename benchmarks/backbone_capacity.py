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
import functools
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from family_curve import balanced_weights, oof, probe_data, probe_scores
from nirnet._atomic import atomic_write_text
from nirnet.data.families import family_of
from nirnet.data.io import ImageLoadError, load_image
from nirnet.data.transforms import inference_transform
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.stats import bootstrap_auc, bootstrap_auc_difference
from nirnet.models import get_config
from nirnet.models.semantic import create_backbone

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
                crops = transform.crops(image)
                view = content_view(image) if any(b.startswith(CONTENT) for b in todo) else None
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


Part = tuple[str, "int | None"]  # (cached feature key, leading columns kept or None for all)


def kind_matrix(features: dict[str, np.ndarray], parts: tuple[Part, ...]) -> np.ndarray:
    """The feature matrix of a kind: its parts side by side (e.g. the content control beside texture statistics)."""
    return np.concatenate([features[key][:, :columns] if columns else features[key] for key, columns in parts], 1)


@functools.cache
def part_cost_ms(key: str, shallow: bool) -> float:
    """Cost of one part: per 256 px crop of texture statistics, per whole image (224 px) of a content part."""
    if key.startswith(CONTENT):
        return crop_cost_ms(key.removeprefix(CONTENT), (), size=CONTENT_SIZE)
    return crop_cost_ms(key, TAPS[key][0 if shallow else 1])


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
    for name, parts in kinds:
        x = kind_matrix(features, parts)[index]
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
    everything = probe_data()
    specs = args.backbones + [CONTENT + b for b in args.content]
    features, ok = featurise_all(everything.paths, specs, Path(args.cache))
    n, keep, bench, bench_sources = everything.n, ok[: everything.n], everything.bench, everything.bench_sources
    data = everything.readable(ok)
    labels, families, sources, held_real = data.labels, data.families, data.sources, data.held_real
    bl = np.array([s.label for s in bench])
    bg = np.array([s.subset for s in bench])
    bsrc = np.array(bench_sources)
    seen = np.array([family_of(g) in set(families[labels == 1]) for g in bg])
    bok = ok[n:]

    kinds: list[tuple[str, tuple[Part, ...]]] = []
    for b in args.backbones:
        kinds.append((f"{b} {'/'.join(map(str, TAPS[b][0]))}", ((b, shallow_columns(b)),)))
        kinds.append((f"{b} {'/'.join(map(str, TAPS[b][1]))}", ((b, None),)))
    controls = []
    for b in args.content:
        control = (CONTENT + b, None)
        controls.append(f"{b} pooled, whole image at 224 px (content control)")
        kinds.append((controls[-1], (control,)))
        # does texture add to content? the first backbone's shallow statistics, and this one's deep, beside it
        first = args.backbones[0]
        kinds.append((f"content control + {first} shallow", (control, (first, shallow_columns(first)))))
        if b in args.backbones:
            kinds.append((f"content control + {b} deep", (control, (b, None))))
    # every cost measured here, back to back, before the probes (measured between fits it varied 1.5x)
    costs = {name: sum(part_cost_ms(key, columns is not None) for key, columns in parts) for name, parts in kinds}
    result: dict = {"n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()), "kinds": {}}
    per_group: dict[str, dict[str, list[float]]] = {}
    first_oof: dict[str, np.ndarray] = {}  # seed 0's out-of-fold scores (same images, same order, every kind)
    first_bench: dict[str, np.ndarray] = {}
    train = ((labels == 0) & ~held_real) | (labels == 1)
    weights = balanced_weights(labels[train], families[train], sources[train])
    unseen_rows = bok & ((bl == 0) | (~seen & (bl == 1)))
    for name, parts in kinds:
        x_all = kind_matrix(features, parts)
        x = x_all[:n][keep]
        aucs, baccs, bench_unseen = [], [], []
        groups = per_group.setdefault(name, {})
        for seed in args.seeds:
            y, s, g = oof(x, labels, families, sources, held_real, None, seed)
            aucs.append(bootstrap_auc(y, s)[0])
            baccs.append(0.5 * (np.mean(s[y == 1] >= 0.5) + np.mean(s[y == 0] < 0.5)))
            for fam in set(g[y == 1]):
                m = (y == 0) | (g == fam)
                groups.setdefault(fam, []).append(bootstrap_auc(y[m], s[m])[0])
            for src in set(g[y == 0]):
                m = (y == 1) | (g == src)
                groups.setdefault("real:" + src, []).append(bootstrap_auc(y[m], s[m])[0])
            bench_scores = probe_scores(x[train], labels[train], weights, x_all[n:], seed)
            bench_unseen.append(bootstrap_auc(bl[unseen_rows], bench_scores[unseen_rows])[0])
            if seed == args.seeds[0]:
                first_oof[name], first_bench[name] = s, bench_scores
        bench_auc = {}
        for title, mask in (("unseen", ~seen & (bl == 1)), ("seen", seen & (bl == 1))):
            m = bok & ((bl == 0) | mask)
            bench_auc[title] = bootstrap_auc(bl[m], first_bench[name][m])
        for group in sorted(set(bsrc[bl == 0])):
            m = bok & (((bl == 0) & (bsrc == group)) | (~seen & (bl == 1)))
            bench_auc["real:" + group] = bootstrap_auc(bl[m], first_bench[name][m])
        result["kinds"][name] = {
            "dims": int(x.shape[1]),
            "pooled": aucs,
            "first": bootstrap_auc(y, first_oof[name]),
            "balanced_acc": baccs,
            "groups": groups,
            "bench": bench_auc,
            "bench_unseen_by_seed": bench_unseen,
            "ms_per_crop": costs[name],
        }
        print(f"{name}: pooled LFO {np.mean(aucs):.3f}, bench-dev unseen {np.mean(bench_unseen):.3f}", flush=True)

    # differences against the content control on the same images (paired bootstrap, seed 0)
    control = controls[0] if controls else None
    lines = [
        "## Frozen features under leave-family-out (balanced logistic probes), and their cost",
        "",
        "LFO: pooled out-of-fold AUC; bench-dev: the probe trained on every family, unseen families against all real"
        " photos. Mean ± sd over probe seeds; intervals and differences are seed "
        f"{args.seeds[0]}'s, a difference as the paired bootstrap against {control} (same images resampled).",
        "",
        "| backbone, taps | dims | LFO AUC | seed 0 (95 % CI) | LFO minus content (CI) | balanced ACC at 0.5 |"
        " bench-dev unseen | seed 0 (CI) | bench-dev unseen minus content (CI) | bench-dev seen | ms per crop |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _ in kinds:
        k = result["kinds"][name]
        if control is not None and name != control:
            lfo_diff = bootstrap_auc_difference(y, first_oof[name], first_oof[control])
            bench_diff = bootstrap_auc_difference(
                bl[unseen_rows], first_bench[name][unseen_rows], first_bench[control][unseen_rows]
            )
            k["minus_content"] = {"lfo": lfo_diff, "bench_unseen": bench_diff}
            diffs = [f"{d[0]:+.3f} ({d[1]:+.2f} to {d[2]:+.2f})" for d in (lfo_diff, bench_diff)]
        else:
            diffs = ["", ""]
        first, unseen = k["first"], k["bench"]["unseen"]
        lines.append(
            f"| {name} | {k['dims']} | {np.mean(k['pooled']):.3f} ± {np.std(k['pooled']):.3f} | {first[0]:.3f} "
            f"({first[1]:.2f}-{first[2]:.2f}) | {diffs[0]} | {np.mean(k['balanced_acc']):.3f} | "
            f"{np.mean(k['bench_unseen_by_seed']):.3f} ± {np.std(k['bench_unseen_by_seed']):.3f} | {unseen[0]:.3f} "
            f"({unseen[1]:.2f}-{unseen[2]:.2f}) | {diffs[1]} | {k['bench']['seen'][0]:.3f} | {costs[name]:.1f} |"
        )
    lines += [
        "",
        "ms per crop: two threads, batch of four 256 px crops (a content part: per whole image at 224 px), measured "
        "back to back before the probes; parts of a combined kind add up.",
    ]
    if args.open_set:
        lines += ["", *open_set_table(kinds, features, everything.fakes, n - len(everything.fakes), args.seeds, result)]
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
