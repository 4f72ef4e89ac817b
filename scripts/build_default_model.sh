#!/usr/bin/env bash
# Rebuilds everything the package ships, from ../shared/data, on a CPU machine (2 cores): our autoencoders and the
# imprint bank with its copula kernels (only when missing; hours), the autoencoder-twin cache (~20 min) and the
# default nirnet_tiny model (configs/nirnet_tiny_gen.yaml, 300 steps, ~12 min).
set -euo pipefail
cd "$(dirname "$0")/.."
NIRNET=.venv/bin/nirnet
DATA=../shared/data/real-train
BANK=src/nirnet/weights/imprint_bank.safetensors
[ -f src/nirnet/weights/autoencoders/deconv_s8_kl.safetensors ] \
  || $NIRNET imprint train-ae "$DATA" --steps 1500 --out src/nirnet/weights/autoencoders
[ -f "$BANK" ] || $NIRNET imprint fit "$DATA" --out "$BANK"   # fits the colouring kernels too
$NIRNET imprint reconstruct "$DATA" --out cache/recon --limit 240
$NIRNET train -c configs/nirnet_tiny_gen.yaml run.out_dir=runs/nirnet_tiny_gen --resume --no-progress
mkdir -p src/nirnet/weights/nirnet_tiny
cp runs/nirnet_tiny_gen/final/model.safetensors runs/nirnet_tiny_gen/final/config.json src/nirnet/weights/nirnet_tiny/
