"""Shortcut probes: can a plain image statistic tell a training photo from its fake twin without any imprint?

    python benchmarks/pair_probes.py -c configs/nirnet_tiny_cpu.yaml [key=value ...] [--pairs 300] [--baseline]

Draws training pairs exactly as ``nirnet train`` builds them (the same dataset code, config and seeds) and scores
every crop with two fixed statistics that know nothing about imprints:

* ``jpeg_grid``: strength of an 8x8 block grid, the largest mean absolute luma step across columns / rows of one
  phase mod 8 over the median phase (a photo's compression history; a reconstruction has none);
* ``jpeg_lattice``: how strongly the 8x8 block-DCT coefficients sit on a quantisation lattice at the best of the
  64 grid alignments (compression history proper; ``jpeg_grid`` also sees a decoder's own 8-periodic pattern,
  which is imprint, not history);
* ``sharpness``: log mean absolute Laplacian of the luma over the log mean absolute gradient (a blurry decoder
  makes every twin smoother than its photo; a strong simulated imprint makes it noisier). The pair builder
  matches this statistic, so it is at chance by construction once ``match_sharpness`` is on;
* ``noise_level``: an unmatched measure of the same thing (Donoho's median absolute diagonal Haar coefficient),
  which tells whether matching one statistic removed the cue or only that statistic.

For each kind of twin (simulator, autoencoder, generated) it prints the AUC of each statistic for fake vs real over
all crops (0.5 = the statistic carries no label) with a bootstrap 95 % interval, and the paired rate at which the
fake's statistic is the larger. The goal for both: |AUC - 0.5| <= 0.05. ``--baseline`` repeats the run with the
shortcut removal switched off (``match_history=false``, ``match_sharpness=false``, no sharpness jitter,
``ae_mix=[1, 1]``) for comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from nirnet.data.degrade import SharpnessConfig, luma, noise_floor, sharpness_score
from nirnet.engine.config import load_config
from nirnet.engine.train import build_dataset
from nirnet.eval.stats import bootstrap_auc

KINDS = ("simulator", "autoencoder", "generated")


def jpeg_grid(img: Image.Image) -> float:
    """Blockiness at the best of the 8 phases (crops sit anywhere on the grid, unlike
    ``nirnet.eval.sanity.blockiness``, which assumes phase 0): max over phases of the mean |step| across that
    phase's column / row boundaries, over the median phase (both directions averaged). 1 = no grid."""
    y = luma(img)
    scores = []
    for steps in (np.abs(np.diff(y, axis=1)).mean(axis=0), np.abs(np.diff(y, axis=0)).mean(axis=1)):
        phases = np.array([steps[p::8].mean() for p in range(8)])
        scores.append(phases.max() / max(np.median(phases), 1e-6))
    return float(np.mean(scores))


def _dct_matrix(n: int = 8) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix()
_LATTICE_STEPS = np.arange(2, 25)
_LOW_AC = [(0, 1), (1, 0), (1, 1)]


def jpeg_lattice(img: Image.Image) -> float:
    """Compression history proper: how strongly the 8x8 block-DCT coefficients sit on a quantisation lattice.

    For each of the 64 grid alignments, the three lowest AC coefficients of every block are tested against
    lattice steps 2..24 (``|mean exp(2 pi i c / q)|``, 1 on a lattice, ~0 off it); the score is the best
    alignment's mean over coefficients of the best step. Unlike ``jpeg_grid`` it does not respond to a decoder's
    periodic pattern.
    """
    y = luma(img) - 128
    best = 0.0
    for dy in range(8):
        for dx in range(8):
            h, w = (y.shape[0] - dy) // 8 * 8, (y.shape[1] - dx) // 8 * 8
            blocks = y[dy : dy + h, dx : dx + w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
            coeffs = _DCT @ blocks @ _DCT.T
            scores = []
            for u, v in _LOW_AC:
                c = coeffs[..., u, v].ravel()
                phases = np.exp(2j * np.pi * c[None, :] / _LATTICE_STEPS[:, None])
                scores.append(np.abs(phases.mean(axis=1)).max())
            best = max(best, float(np.mean(scores)))
    return best


def noise_level(img: Image.Image) -> float:
    """A second, unmatched measure of fineness: log of Donoho's noise estimate (``degrade.noise_floor``)."""
    return float(np.log(noise_floor(img) + 1e-3))


PROBES = {
    "jpeg_grid": jpeg_grid,
    "jpeg_lattice": jpeg_lattice,
    "sharpness": sharpness_score,  # the statistic the pair builder matches
    "noise_level": noise_level,
}


def collect(dataset, pairs: int, max_keys: int) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Up to ``pairs`` (real, fake) crops per kind, drawn by the training keys (step, slot) in order."""
    found: dict[str, list] = {k: [] for k in KINDS}
    key = 0
    while key < max_keys and any(len(v) < pairs for k, v in found.items() if _possible(dataset, k)):
        item, kind = dataset[(key // 16, key % 16)]
        name = KINDS[kind]
        if len(found[name]) < pairs:
            found[name].append((item[0], item[1]))
        key += 1
    return {k: v for k, v in found.items() if v}


def _possible(dataset, kind: str) -> bool:
    return {
        "simulator": dataset.simulator is not None and (dataset.config.p_simulator > 0 or not dataset.recon),
        "autoencoder": bool(dataset.recon) and (dataset.simulator is None or dataset.config.p_simulator < 1),
        "generated": bool(dataset.generated) and dataset.config.p_generated > 0,
    }[kind]


def _image(crop: torch.Tensor) -> Image.Image:
    return Image.fromarray(crop.permute(1, 2, 0).numpy())


def probe(found: dict, names: list[str]) -> dict:
    report = {}
    for kind, pairs in found.items():
        images = [(_image(r), _image(x)) for r, x in pairs]
        real = {n: np.array([PROBES[n](r) for r, _ in images]) for n in names}
        fake = {n: np.array([PROBES[n](x) for _, x in images]) for n in names}
        labels = np.r_[np.zeros(len(pairs)), np.ones(len(pairs))]
        report[kind] = {}
        for name in names:
            scores = np.r_[real[name], fake[name]]
            auc, lo, hi = bootstrap_auc(labels, scores)
            report[kind][name] = {
                "auc": auc,
                "ci95": [lo, hi],
                "fake_larger": float((fake[name] > real[name]).mean()),
                "pairs": len(pairs),
            }
    return report


def print_report(title: str, report: dict) -> None:
    print(f"\n### {title}\n")
    print("| twins | probe | pairs | AUC (fake vs real) | 95 % CI | abs(AUC - 0.5) | fake larger (paired) |")
    print("|---|---|---|---|---|---|---|")
    for kind, probes in report.items():
        for name, r in probes.items():
            ok = "ok" if abs(r["auc"] - 0.5) <= 0.05 else "SHORTCUT"
            print(
                f"| {kind} | {name} | {r['pairs']} | {r['auc']:.3f} | {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} "
                f"| {abs(r['auc'] - 0.5):.3f} ({ok}) | {r['fake_larger']:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="training config (YAML)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, as for `nirnet train`")
    parser.add_argument("--pairs", type=int, default=300, help="pairs per kind of twin")
    parser.add_argument("--baseline", action="store_true", help="also run with the shortcut removal switched off")
    parser.add_argument("--probes", nargs="+", default=list(PROBES), choices=list(PROBES))
    parser.add_argument("--json", default=None, help="write the report here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    config = load_config(args.config, args.overrides)
    runs = {"training pairs as configured": config}
    if args.baseline:
        off = replace(
            config.data.pairs,
            match_history=False,
            match_sharpness=False,
            sharpness=SharpnessConfig(prob=0.0),
            ae_mix=(1.0, 1.0),
        )
        runs["without shortcut removal"] = replace(config, data=replace(config.data, pairs=off))
    reports = {}
    for title, cfg in runs.items():
        dataset = build_dataset(cfg)
        reports[title] = probe(collect(dataset, args.pairs, max_keys=20 * args.pairs), args.probes)
        print_report(title, reports[title])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(reports, handle, indent=2)
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
