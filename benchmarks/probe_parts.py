"""What a frozen-feature probe's verdict rests on: each feature part's share of the logit, per image.

    python benchmarks/probe_parts.py out/demo [--model nirnet_probe] [--protocol aligned|raw]

The probe's logit is linear in its standardised features, so it splits exactly into the content part (the whole
image's pooled features), the texture part (the crops' statistics) and the bias. A verdict carried by the content
part says "this looks like what generated images show", not "this carries a generator's imprint".
"""

from __future__ import annotations

import argparse

import torch

from nirnet.data.io import load_image
from nirnet.data.sources import expand_sources
from nirnet.data.transforms import inference_transform
from nirnet.detect import Detector
from nirnet.eval.protocol import PROTOCOLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="images or folders")
    parser.add_argument("--model", default="nirnet_probe", help="a frozen_probe model: shipped name or folder")
    parser.add_argument("--protocol", default="raw", choices=list(PROTOCOLS), help="what happens before the model")
    args = parser.parse_args()
    model = Detector.from_pretrained(args.model, backend="torch").model.eval()
    if not hasattr(model, "raw_features"):
        raise SystemExit(f"{args.model} is not a frozen-feature probe")
    transform, read = inference_transform(model.config), PROTOCOLS[args.protocol]
    split = model.content.out_dim if model.content is not None else 0
    weight, bias = model.head.weight[0].detach(), float(model.head.bias.detach())
    print(f"threshold {model.config.threshold:.3f}; bias {bias:+.2f}")
    print("| image | P(generated) | content part | texture part |\n|---|---|---|---|")
    parts = []
    for path in expand_sources(args.inputs).files:
        item = transform(read(load_image(path)))
        with torch.inference_mode():
            z = model.standardise(model.raw_features(item.crops, item.view, len(item.crops)).mean(0))
            content, texture = float(z[:split] @ weight[:split]), float(z[split:] @ weight[split:])
        probability = torch.sigmoid(torch.tensor(content + texture + bias)).item()
        print(f"| {path} | {probability:.3f} | {content:+.2f} | {texture:+.2f} |")
        parts.append((content, texture, probability >= model.config.threshold))
    if parts:
        content, texture, flagged = (sum(v) / len(parts) for v in zip(*parts))
        print(f"mean over {len(parts)} images: content {content:+.2f}, texture {texture:+.2f}; {flagged:.0%} flagged")


if __name__ == "__main__":
    main()
