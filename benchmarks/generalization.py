"""Generalisation to generators never seen in training: bench-dev, aligned protocol and raw files.

    python benchmarks/generalization.py --data ../shared/data/bench-dev \
        [--model default] [--model npr=runs/npr_tiny_cpu/final ...] [--no-aeroblade] [--out docs/results]

Scorers: every ``--model NAME=FOLDER`` (``default`` = the embedded model), the training-free AEROBLADE-style scorer
over the registry's autoencoders (calibrated on 40 held-out real-train photos), and the JPEG-trace-only sanity
scorer. Protocols: ``aligned`` (centre crop <= 512 px, JPEG 90, both classes) and ``raw`` (files as they are).
Prints and writes per-generator AUC / ACC / real-ACC / fake-ACC and means as Markdown
(``generalization.md``), JSON (``generalization.json``) and a heat map of per-generator AUC (``generalization.png``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nirnet.data.datasets import images_under, read_dataset
from nirnet.data.io import load_image
from nirnet.detect import Detector
from nirnet.eval.evaluate import score_samples
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.sanity import jpeg_trace_scorer
from nirnet.imprint.fit import is_heldout


def model_scorer(spec: str):
    name, _, folder = spec.partition("=")
    detector = Detector.from_pretrained(None if name == "default" and not folder else (folder or name))
    return name, lambda images: [p for p, _ in detector.predict_images(images)]


def aeroblade(real_train: Path):
    from nirnet.imprint.autoencoders import list_autoencoders
    from nirnet.models.baselines.aeroblade import AerobladeScorer

    names = ["taef2"] + [n for n in list_autoencoders() if n.startswith("ours:")]
    scorer = AerobladeScorer(names)
    calib = [p for p in images_under(real_train) if is_heldout(p)][:40]
    scorer.calibrate([load_image(p) for p in calib])
    return "aeroblade", scorer


def heatmap(results: dict, out_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(results)
    scorers = list(results[protocols[0]])
    subsets = [s for s in results[protocols[0]][scorers[0]] if s not in ("all",)]
    fig, axes = plt.subplots(
        1, len(protocols), figsize=(1.0 + 0.8 * len(subsets) * len(protocols), 1.2 + 0.5 * len(scorers)), squeeze=False
    )
    for ax, protocol in zip(axes[0], protocols):
        grid = np.array([[results[protocol][sc][s]["auc"] for s in subsets] for sc in scorers])
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn")
        ax.set_xticks(range(len(subsets)), subsets, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(scorers)), scorers, fontsize=8)
        for i in range(len(scorers)):
            for j in range(len(subsets)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"AUC, {protocol} protocol", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.savefig(out_path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/bench-dev")
    parser.add_argument("--real-train", default="../shared/data/real-train")
    parser.add_argument("--model", action="append", default=None, help="NAME=FOLDER, or 'default'")
    parser.add_argument("--no-aeroblade", action="store_true")
    parser.add_argument("--protocols", nargs="*", default=["aligned", "raw"])
    parser.add_argument("--out", default="out/generalization")
    args = parser.parse_args()
    start = time.time()
    samples = read_dataset(args.data)
    scorers = [model_scorer(spec) for spec in (args.model or ["default"])]
    if not args.no_aeroblade:
        scorers.append(aeroblade(Path(args.real_train)))
    scorers.append(("jpeg-trace", jpeg_trace_scorer))
    results: dict[str, dict[str, dict]] = {}
    lines = []
    for protocol in args.protocols:
        results[protocol] = {}
        for name, scorer in scorers:
            scored = score_samples(scorer, samples, PROTOCOLS[protocol])
            results[protocol][name] = scored.metrics(0.5)
            print(f"{protocol:8} {name:14} mean AUC {results[protocol][name]['mean']['auc']:.3f}", flush=True)
        subsets = [s for s in results[protocol][scorers[0][0]] if s not in ("mean", "all")]
        lines += [
            f"### {protocol} protocol",
            "",
            "| scorer | " + " | ".join(subsets) + " | mean AUC | mean ACC | real-ACC | fake-ACC |",
            "|---" * (len(subsets) + 5) + "|",
        ]
        for name, _ in scorers:
            m = results[protocol][name]
            cells = " | ".join(f"{m[s]['auc']:.3f}" for s in subsets)
            mean = m["mean"]
            lines.append(
                f"| {name} | {cells} | **{mean['auc']:.3f}** | {mean['acc']:.3f} | {mean['real_acc']:.3f} "
                f"| {mean['fake_acc']:.3f} |"
            )
        lines.append("")
    lines.append(
        f"Per-generator cells are AUC of that generator's images against all {sum(s.label == 0 for s in samples)}"
        f" real images; ACC at threshold 0.5. {len(samples)} images, {time.time() - start:.0f} s."
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "generalization.md").write_text("\n".join(lines) + "\n")
    (out / "generalization.json").write_text(json.dumps(results, indent=1))
    heatmap(results, out / "generalization.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
