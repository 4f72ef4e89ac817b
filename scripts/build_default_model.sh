#!/usr/bin/env bash
# Rebuilds everything the package ships, from ../shared/data, on a CPU machine (about 1.5 hours on 2 cores):
# our autoencoders, the imprint bank, the autoencoder-twin cache, and the default nirnet_tiny model.
set -euo pipefail
cd "$(dirname "$0")/.."
NIRNET=.venv/bin/nirnet
DATA=../shared/data/real-train
[ -f src/nirnet/weights/autoencoders/deconv_s8_kl.safetensors ] || $NIRNET imprint train-ae "$DATA" --steps 1500
[ -f src/nirnet/weights/imprint_bank.safetensors ] || $NIRNET imprint fit "$DATA"
$NIRNET imprint reconstruct "$DATA" --out cache/recon --limit 400
$NIRNET train -c configs/nirnet_tiny_cpu.yaml --resume --no-progress
mkdir -p src/nirnet/weights/nirnet_tiny
cp runs/nirnet_tiny_cpu/final/model.safetensors runs/nirnet_tiny_cpu/final/config.json src/nirnet/weights/nirnet_tiny/
