"""Do simulator twins, or the noise map, earn a place in the frozen-feature detector? Leave-family-out, paired.

    python benchmarks/probe_ablation.py [-c configs/nirnet_probe.yaml] [--seeds 0 1 2] [--out docs/results/probe]

The issue "Learn from many generators" asks the paper's claims again at the corpus's scale: simulator twins on and
off with one family and with all families, and the noise branch on and off with all families. The shipped probe
recipe (``nirnet_probe``: frozen content and texture features, one linear logit) makes these questions cheap and
exactly paired, because a fit takes seconds once features are cached:

* **simulator twins**: every training real photo, after the protocol's centre crop, stamped with an imprint of the
  shipped imprint bank (fused and extrapolated as in training: alpha 1, beta 0.3, gamma 0.2-1, two models per
  twin), then the protocol's JPEG 90 like its photo: an aligned pair that differs only by the imprint. The twins
  join the generated rows as one more family ("simulator", never held out).
* **noise map**: statistics of ``N(x)``, the residual of the shipped default's frozen, pretrained denoiser, on the
  model's four crops: per-channel deviation, mean absolute value and kurtosis, the radially averaged log power
  spectrum in 16 bands and the spectrum's energy at the periods 8, 4 and 2 px (decoder grids), crops averaged;
  appended to the probe's features.

* **matched generated images** (a shortcut check, not a claim of the paper): each generated training image, after
  the protocol's crop, brought to a random training photo's fineness and noise floor (the trained recipe's
  ``match_generated``, colour noise) before the JPEG; test rows stay as a user gives them. With
  ``probe_shortcuts.py``'s cache present, the plain-statistic probe per family is reported before and after.

Each variant is scored with :func:`nirnet.engine.probe_fit.out_of_fold` (the recipe's folds and held-out real
photos, balanced weights; with ``probe.hold_out_sources`` every real source held out in turn too; the features the
recipe's logit reads, i.e. without its ``probe.detect_without`` groups) for every seed (an 80 % subsample of
the training rows per seed), and against the plain probe with the paired bootstrap of the AUC difference (the
same out-of-fold images, seed 0). "One family" trains on gen-train's family (sd1) alone, on the folds that do
not hold it out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from family_probes import STATS, logistic_auc
from nirnet._atomic import atomic_write_text
from nirnet.data import degrade
from nirnet.data.families import LEAVE_OUT_FOLDS
from nirnet.data.io import ImageLoadError, load_image
from nirnet.data.tensors import to_float_tensor, to_image
from nirnet.data.transforms import inference_transform
from nirnet.engine.config import load_config
from nirnet.engine.probe_fit import detect_columns, out_of_fold, recipe_features
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.stats import bootstrap_auc, bootstrap_auc_difference
from nirnet.imprint.bank import ImprintBank
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig
from nirnet.models import create_model

BASE = "the recipe's logit features"
SIMULATOR = SimulatorConfig(alpha=1.0, beta=0.3, b_min=0.001, gamma=(0.2, 1.0), models_per_sample=2)
BANDS = 16


def cached(file: Path, compute) -> tuple[np.ndarray, ...]:
    """The arrays ``compute()`` returns, kept in ``file`` and read back from it on later runs."""
    if not file.is_file():
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, *compute())
    stored = np.load(file)
    return tuple(stored[name] for name in stored.files)  # in the order they were saved


def twin_features(model, paths: list[Path], protocol: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The probe's features of a simulator twin of each photo (centre crop, imprint, then the protocol's JPEG)."""
    simulator = ImprintSimulator(ImprintBank.load(None), SIMULATOR)
    read, transform = PROTOCOLS[protocol], inference_transform(model.config)
    rows, ok = [], []
    for i, path in enumerate(paths):
        try:
            region = read.crop(load_image(path))
        except ImageLoadError:
            rows.append(np.zeros(model.feature_dim, np.float32)), ok.append(False)
            continue
        generator = torch.Generator().manual_seed(seed * 1_000_003 + i)
        twin = to_image(simulator(to_float_tensor(region), generator).images[0])
        item = transform(read.finish(twin))
        with torch.inference_mode():
            rows.append(model.raw_features(item.crops, item.view, len(item.crops)).mean(0).numpy()), ok.append(True)
        if i % 100 == 0:
            print(f"twins {i}/{len(paths)}", flush=True)
    return np.array(rows), np.array(ok)


def matched_generated(model, table, protocol: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probe features, plain statistics, ok) of every generated row after the trained recipe's matching: the
    image, after the protocol's crop, brought to a random training photo's fineness and noise floor (colour noise),
    then the protocol's JPEG. What a user gives the model is not matched, so only training rows use these."""
    read, transform = PROTOCOLS[protocol], inference_transform(model.config)
    photos = [table.paths[i] for i in np.flatnonzero((table.labels == 0) & ~table.held)]
    rows, stats, ok = [], [], []
    for i, index in enumerate(np.flatnonzero(table.labels == 1)):
        rng = np.random.default_rng([seed, i])
        try:
            fake = read.crop(load_image(table.paths[index]))
            real = read.crop(load_image(photos[int(rng.integers(len(photos)))]))
        except ImageLoadError:
            rows.append(np.zeros(model.feature_dim, np.float32)), stats.append([0.0] * len(STATS)), ok.append(False)
            continue
        fake = degrade.match_noise_floor(degrade.match_sharpness(fake, real), real, rng, colour=True)
        item = transform(read.finish(fake))
        with torch.inference_mode():
            rows.append(model.raw_features(item.crops, item.view, len(item.crops)).mean(0).numpy())
        stats.append([f(to_image(item.crops[0])) for f in STATS.values()]), ok.append(True)
        if i % 100 == 0:
            print(f"matched {i}", flush=True)
    return np.array(rows), np.array(stats), np.array(ok)


def noise_statistics(noise: torch.Tensor) -> np.ndarray:
    """Statistics of noise maps ``K x 3 x S x S`` (crops averaged): per-channel deviation, mean |N| and kurtosis,
    the radially averaged log power spectrum in :data:`BANDS` bands, and the log power at periods 8, 4 and 2 px."""
    n = noise.double()
    std = n.std(dim=(-2, -1))
    kurt = ((n - n.mean(dim=(-2, -1), keepdim=True)) ** 4).mean(dim=(-2, -1)) / std.pow(4).clamp_min(1e-12)
    power = torch.fft.fft2(n).abs().pow(2).mean(1)  # K x S x S, channels averaged
    size = power.shape[-1]
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt() / 0.5**0.5 * 0.999
    band = (radius * BANDS).long().clamp(max=BANDS - 1)
    radial = torch.stack([power[:, band == b].mean(-1) for b in range(BANDS)], 1)
    peaks = [power[:, size // p, 0] + power[:, 0, size // p] for p in (8, 4, 2)]
    parts = [std, n.abs().mean(dim=(-2, -1)), kurt.log(), radial.log(), torch.stack(peaks, 1).log()]
    return torch.cat(parts, 1).mean(0).float().numpy()


def noise_features(model, paths: list[Path], protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`noise_statistics` of the shipped default's frozen denoiser on each image's crops."""
    denoiser = create_model("nirnet_tiny_texture_dn", pretrained=True).imprint.extractor.eval()
    read, transform = PROTOCOLS[protocol], inference_transform(model.config)
    rows, ok = [], []
    for i, path in enumerate(paths):
        try:
            crops = transform.crops(read(load_image(path)))
        except ImageLoadError:
            rows.append(None), ok.append(False)
            continue
        with torch.inference_mode():
            rows.append(noise_statistics(denoiser(crops))), ok.append(True)
        if i % 200 == 0:
            print(f"noise {i}/{len(paths)}", flush=True)
    width = next(len(r) for r in rows if r is not None)
    return np.array([r if r is not None else np.zeros(width, np.float32) for r in rows]), np.array(ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_probe.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subsample", type=float, default=0.8, help="share of training rows per seed")
    parser.add_argument("--cache", default="runs/feature_cache", help="folder of the twin and noise features")
    parser.add_argument("--out", default=None, help="folder for probe_ablation.md / .json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    config = load_config(args.config)
    p = config.probe
    model, table, x, ok = recipe_features(config)
    key = hashlib.sha256("\n".join(map(str, table.paths)).encode()).hexdigest()[:16]
    photos = np.flatnonzero((table.labels == 0) & ~table.held)
    twins, twins_ok = cached(
        Path(args.cache) / f"probe-twins-{key}.npz",
        lambda: twin_features(model, [table.paths[i] for i in photos], p.protocol),
    )
    noise, noise_ok = cached(
        Path(args.cache) / f"probe-noise-{key}.npz", lambda: noise_features(model, table.paths, p.protocol)
    )
    matched, matched_stats, matched_ok = cached(
        Path(args.cache) / f"probe-matched-{key}.npz", lambda: matched_generated(model, table, p.protocol)
    )
    # the columns the recipe's logit reads (probe.detect_without), for the rows and for the twins and matched images
    columns = detect_columns(model, p.detect_without)
    x, twins, matched = x[:, columns], twins[:, columns], matched[:, columns]
    keep = ok & noise_ok
    generated_rows = np.flatnonzero(table.labels == 1)
    x_matched = x.copy()
    x_matched[generated_rows] = matched
    keep_matched = keep.copy()
    keep_matched[generated_rows] &= matched_ok
    base = (x, table.labels, table.families, table.sources, table.held, table.weights)
    rows = photos[twins_ok]
    n_fams = len(set(table.families[table.labels == 1]))
    # twins: one more family, weighted like any other (each family the same total weight)
    fake_total = table.weights[table.labels == 1].sum() / n_fams
    with_twins = (
        np.r_[x, twins[twins_ok]],
        np.r_[table.labels, np.ones(len(rows), int)],
        np.r_[table.families, ["simulator"] * len(rows)],
        np.r_[table.sources, ["-"] * len(rows)],
        np.r_[table.held, np.zeros(len(rows), bool)],
        np.r_[table.weights, np.full(len(rows), fake_total / len(rows))],
    )
    keep_twins = np.r_[keep, np.ones(len(rows), bool)]
    # the one-family rows use the folds that do not hold sd1 out, with and without twins alike
    sd1_folds = [fold for fold in LEAVE_OUT_FOLDS if "sd1" not in fold]
    every = LEAVE_OUT_FOLDS
    variants = {
        BASE: ([a[keep] for a in base], None, every, None),
        "+ simulator twins": ([a[keep_twins] for a in with_twins], None, every, None),
        "+ noise-map statistics": ([np.c_[x, noise][keep], *[a[keep] for a in base[1:]]], None, every, None),
        "trained on matched generated images": (
            [x_matched[keep_matched], *[a[keep_matched] for a in base[1:]]],
            None,
            every,
            x[keep_matched],
        ),
        "one family (sd1)": ([a[keep] for a in base], {"sd1"}, sd1_folds, None),
        "one family (sd1) + simulator twins": (
            [a[keep_twins] for a in with_twins],
            {"sd1", "simulator"},
            sd1_folds,
            None,
        ),
    }
    result: dict = {"variants": {}, "n_twins": int(len(rows))}
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (arrays, allowed, folds, test_features) in variants.items():
        aucs = []
        for seed in args.seeds:
            oof = out_of_fold(
                *arrays, p.c, args.subsample, seed, folds, allowed, test_features, hold_out_sources=p.hold_out_sources
            )
            y, s, used = oof.labels, oof.scores, oof.folds
            aucs.append(bootstrap_auc(y, s)[0])
            if seed == args.seeds[0]:
                scores[name] = (y, s)
                first = bootstrap_auc(y, s)
        result["variants"][name] = {"pooled": aucs, "first": first, "folds": used}
        print(f"{name}: {np.mean(aucs):.3f} ± {np.std(aucs):.3f}", flush=True)
    pairs = {
        "+ simulator twins": BASE,
        "+ noise-map statistics": BASE,
        "trained on matched generated images": BASE,
        "one family (sd1) + simulator twins": "one family (sd1)",
    }
    lines = [
        "## Simulator twins and the noise map in the frozen-feature detector (leave-family-out, paired)",
        "",
        f"Model {config.model}; held out in each fold: "
        + ("generator families and, fit by fit, each real source." if p.hold_out_sources else "generator families."),
        "",
        f"Pooled out-of-fold AUC, mean ± sd over seeds {args.seeds} ({args.subsample:.0%} subsamples); interval and "
        "difference: the first seed's, the difference as a paired bootstrap on the same out-of-fold images.",
        "",
        "| variant | folds | pooled AUC | first seed (95 % CI) | minus its baseline (paired, 95 % CI) |",
        "|---|---|---|---|---|",
    ]
    for name, v in result["variants"].items():
        diff = ""
        if name in pairs:
            (y, s), (y0, s0) = scores[name], scores[pairs[name]]
            assert np.array_equal(y, y0)  # twins are never test rows: the same images in the same order
            d = bootstrap_auc_difference(y, s, s0)
            v["minus_baseline"] = d
            diff = f"{d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f})"
        f = v["first"]
        lines.append(
            f"| {name} | {len(v['folds'])} | {np.mean(v['pooled']):.3f} ± {np.std(v['pooled']):.3f} | "
            f"{f[0]:.3f} ({f[1]:.2f}-{f[2]:.2f}) | {diff} |"
        )
    plain_file = Path(args.cache) / f"probe-plain-{key}.npz"  # written by probe_shortcuts.py
    if plain_file.is_file():
        plain = np.load(plain_file)["x"]
        real = plain[(table.labels == 0) & ~table.held & keep]
        within = {}
        for family in sorted(set(table.families[table.labels == 1])):
            rows_f = (table.families[generated_rows] == family) & matched_ok
            before = logistic_auc(real, plain[generated_rows][rows_f])[0]
            after = logistic_auc(real, matched_stats[rows_f])[0]
            within[family] = (before, after)
        result["plain_probe_matched"] = within
        n_before = sum(abs(b - 0.5) <= 0.1 for b, _ in within.values())
        n_after = sum(abs(a - 0.5) <= 0.1 for _, a in within.values())
        lines += [
            "",
            "Plain statistics (probe_shortcuts.py's six) of each family against the training photos, 5-fold logistic "
            f"AUC, families within 0.1 of chance: {n_before} of {len(within)} as read, {n_after} of {len(within)} "
            "after matching; per family (as read -> matched): "
            + ", ".join(f"{f} {b:.2f} -> {a:.2f}" for f, (b, a) in within.items()),
        ]
    lines += ["", f"{len(rows)} simulator twins of the training photos; {time.time() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out) / "probe_ablation.md", text + "\n")
        atomic_write_text(Path(args.out) / "probe_ablation.json", json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
