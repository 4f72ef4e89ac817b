"""Imprint sources side by side: held-out PSNR, residual energy, residual power spectrum and held-out NLL.

For every source of an imprint bank (default: the shipped one) this reads the held-out residuals that
`nirnet imprint fit` cached (the same crops, seed 0; computed here if missing) and prints a Markdown table:

* PSNR of the round trip on the held-out crops (8-bit quantised reconstruction);
* residual energy: mean |r| and RMS in 8-bit levels;
* the share of the residual's power above half the Nyquist frequency (blur puts it low, texture puts it high);
* held-out NLL of the bank's learned Laplace (nats per value; from the bank file);
* the RMS gap (decades) between the source's mean log spectrum and TAEF2's, when TAEF2 is in the bank.

It also draws every source's radially averaged residual power spectrum in one plot (``--plot``).

    python benchmarks/ae_sources.py [--bank runs/imprint_bank.safetensors] [--plot docs/results/imprint/spectra.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from nirnet.data.datasets import images_under  # noqa: E402
from nirnet.imprint.autoencoders import create_autoencoder  # noqa: E402
from nirnet.imprint.bank import ImprintBank  # noqa: E402
from nirnet.imprint.fit import FitConfig, residual_set, split_crops  # noqa: E402
from nirnet.imprint.plots import radial_spectrum  # noqa: E402
from nirnet.imprint.train_ae import psnr_of  # noqa: E402


def high_frequency_share(r: torch.Tensor) -> float:
    """Fraction of the grey residual's power at radial frequency above half the Nyquist frequency."""
    grey = r.float().mean(dim=1)
    power = torch.fft.fft2(grey - grey.mean(dim=(-2, -1), keepdim=True)).abs().pow(2)
    h, w = grey.shape[-2:]
    fy = torch.fft.fftfreq(h).abs()[:, None]
    fx = torch.fft.fftfreq(w).abs()[None, :]
    high = (torch.sqrt(fy**2 + fx**2) > 0.25).expand(h, w)
    return float(power[..., high].sum() / power.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/real-train")
    parser.add_argument("--bank", default=None, help="imprint bank (default: the shipped one)")
    parser.add_argument("--cache", default="cache/residuals")
    parser.add_argument("--plot", default=None, help="write the spectra plot here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    bank = ImprintBank.load(args.bank)
    _, held_crops, _, n_held = split_crops(images_under(Path(args.data)), FitConfig(seed=0))
    spectra, rows = {}, []
    for entry in bank.entries:
        held = residual_set(create_autoencoder(entry.name), held_crops, args.cache)
        spectra[entry.name] = radial_spectrum(held.r).mean(axis=0)
        rows.append(
            {
                "name": entry.name,
                "stride": entry.stride,
                "psnr": psnr_of(held.r),
                "mean_abs": float(held.r.abs().mean() * 255),
                "rms": float(held.r.pow(2).mean().sqrt() * 255),
                "hf_share": high_frequency_share(held.r),
                "nll": entry.heldout_nll.get("learned_laplace", float("nan")),
            }
        )
    reference = spectra.get("taef2")
    print("| source | stride | held-out PSNR (dB) | mean abs r (8-bit) | RMS r (8-bit) | power above Nyquist/2 | "
          "held-out NLL | spectrum gap to TAEF2 (decades) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        gap = (
            float(np.sqrt(np.mean((spectra[row["name"]] - reference) ** 2))) if reference is not None else float("nan")
        )
        print(
            f"| {row['name']} | {row['stride']} | {row['psnr']:.2f} | {row['mean_abs']:.2f} | {row['rms']:.2f} | "
            f"{row['hf_share']:.3f} | {row['nll']:.4f} | {gap:.3f} |"
        )
    print(f"\n{len(held_crops)} held-out crops ({n_held} photos), residual centre {held_crops.shape[-1] - 32} px")
    if args.plot:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        frequency = (np.arange(len(next(iter(spectra.values())))) + 0.5) / len(next(iter(spectra.values())))
        for name, spectrum in spectra.items():
            style = {"color": "black", "linewidth": 2.5} if name == "taef2" else {"linewidth": 1.2}
            ax.plot(frequency, spectrum, label=name, **style)
        ax.set_xlabel("radial frequency (fraction of the corner frequency)")
        ax.set_ylabel("log10 residual power")
        ax.set_title("Residual power spectra of the imprint sources (held-out crops)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
