"""Does a noise extractor's map look like noise, or like the scene? Compares extractors on the same crops.

    python benchmarks/noise_maps.py --extractor tiny=shipped:nirnet_tiny \
        --extractor texture=shipped:nirnet_tiny_texture --extractor denoiser=runs/denoiser/w16d5 \
        [--extractor finetuned=runs/x/final] [--out docs/results/denoiser]

An extractor is ``shipped:<model name>`` (the package's weights), a detector folder (``model.safetensors`` +
``config.json``) or a folder written by ``nirnet pretrain-denoiser``. Crops: one 128 px crop of each held-out
real-train photo (the SHA-1 rule; up to 60) and of 40 gen-train images (Stable Diffusion v1.x). Printed per
extractor and class (``engine.denoise.noise_map_stats``):

* ``edge_corr``: |correlation| between the map and the image's Laplacian (a high-pass copy of the scene: near 1;
  noise independent of the scene: near 0);
* ``low_freq``: the share of the map's power below a quarter of Nyquist (white noise: about 0.05).

With ``--out``: ``noise_maps.md`` (the table) and ``noise_maps.png`` (four crops, then each extractor's map).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nirnet.data.datasets import real_image_paths
from nirnet.data.pool import crop_pool, to_float
from nirnet.engine.denoise import denoiser_file, load_denoiser_state, noise_map_stats, noise_panel
from nirnet.imprint.fit import is_heldout
from nirnet.models import create_model
from nirnet.models.extractor import NoiseExtractor

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_extractor(spec: str) -> NoiseExtractor:
    if spec.startswith("shipped:"):
        return create_model(spec.split(":", 1)[1], pretrained=True).imprint.extractor.eval()
    folder = Path(spec)
    if denoiser_file(folder).is_file():
        state = load_denoiser_state(folder)
        width = state["net.0.weight"].shape[0]
        depth = sum(1 for k, v in state.items() if k.endswith(".weight") and v.dim() == 4)  # conv layers
        extractor = NoiseExtractor(width, depth)
        extractor.load_state_dict(state)
        return extractor.eval()
    return create_model("", pretrained=folder).imprint.extractor.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extractor", action="append", required=True, help="name=spec (see above); repeatable")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    real = [p for p in real_image_paths([SHARED / "real-train"]) if is_heldout(p)][:60]
    generated = sorted((SHARED / "gen-train").rglob("*.png"))[:40] or sorted((SHARED / "gen-train").rglob("*.*"))[:40]
    crops = {
        "real (held out)": crop_pool(real, args.crop, seed=0),
        "gen-train": crop_pool(generated, args.crop, seed=0),
    }
    lines = [
        "| extractor | class | crops | edge_corr | low_freq |",
        "|---|---|---|---|---|",
    ]
    maps = []
    start = time.time()
    for item in args.extractor:
        name, spec = item.split("=", 1)
        extractor = load_extractor(spec)
        for label, batch in crops.items():
            images = to_float(batch)
            with torch.no_grad():
                noise = torch.cat([extractor(chunk) for chunk in images.split(16)])
            stats = noise_map_stats(images, noise)
            edge, low = stats["edge_correlation"], stats["low_freq_share"]
            lines.append(f"| {name} | {label} | {len(images)} | {edge:.3f} | {low:.3f} |")
            if label.startswith("real"):
                maps.append(noise[:4])
    lines.append("| white noise (reference) | - | - | ~0 | 0.049 |")
    table = "\n".join(lines)
    print(table)
    print(f"({time.time() - start:.0f} s)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "noise_maps.md").write_text(
            f"Extractors: {', '.join(args.extractor)}\n\n{table}\n\nPanel: noise_maps.png (columns: crop, then "
            f"{', '.join(e.split('=', 1)[0] for e in args.extractor)}).\n"
        )
        noise_panel(to_float(crops["real (held out)"][:4]), maps, args.out / "noise_maps.png")


if __name__ == "__main__":
    main()
