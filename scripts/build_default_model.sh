#!/usr/bin/env bash
# Rebuilds everything the package ships, from ../shared/data, on a CPU machine (2 cores). Each step runs only when
# its output is missing:
#   1. the high-fidelity autoencoders and the TAESana decoder (`imprint train-ae --family hifi --taesana`, ~70 min);
#   2. the imprint bank over taef2, taesana and the hf_* set, with copula kernels (`imprint fit`);
#   3. the autoencoder-twin cache (`imprint reconstruct`, ~20 min) and the previous default, nirnet_tiny
#      (configs/nirnet_tiny_gen.yaml, 300 steps, ~12 min; still shipped, selectable by name);
#   4. nirnet_tiny_texture (configs/nirnet_tiny_texture.yaml, 200 steps, ~12 min; the previous default);
#   5. nirnet_tiny_texture_dn: a denoiser pretrained on real photos (`pretrain-denoiser`, ~10 min),
#      then configs/nirnet_tiny_texture_dn.yaml (200 steps, ~11 min); trained at 1x (data.pairs.input_scale) and
#      saved with its registry entry's input_scale 1.5 (it reads every image resized by 1.5x; chosen after
#      training, docs/RESULTS.md section 6f). It is the default's frozen member.
#   6. the default, nirnet_stack: the pinned multi-family corpus (`data build-corpus`; set MIRROR_ROOT to a folder of
#      bare snapshots <owner>+<name>/repo on machines without network), 59 licensed Debian photos (apt-get download),
#      310 licensed photos and 594 more generated images from GitHub (sources/github-closeups.csv,
#      github-wallpapers.csv, github-portraits-animals.csv, more-generators.csv, more-generators-2.csv), then
#      configs/nirnet_stack.yaml (frozen features + a logistic head, 14 min 21 s from an empty feature cache at C 0.1)
#      and its family head (`family fit`, 4 min 27 s; both measured on a fresh 2-core machine, MODEL_CARD.md).
# Outputs go to runs/ first and are copied into the package only by this script (the CLI never writes there).
# A rebuilt model.safetensors has a new SHA-256: put it in the model's registry entry (src/nirnet/models/registry.py,
# checked on load and by tests/test_shipped.py); the script prints them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
NIRNET=.venv/bin/nirnet
DATA=../shared/data/real-train
WEIGHTS=src/nirnet/weights
if [ ! -f "$WEIGHTS/taesana_decoder.safetensors" ]; then
  $NIRNET imprint train-ae "$DATA" --family hifi --taesana --out runs/autoencoders
  $NIRNET imprint train-ae "$DATA" --family hifi-extra --out runs/autoencoders
  cp runs/autoencoders/hf_*.safetensors "$WEIGHTS/autoencoders/"
  cp runs/autoencoders/taesana_decoder.safetensors "$WEIGHTS/"
fi
if [ ! -f "$WEIGHTS/imprint_bank.safetensors" ]; then
  $NIRNET imprint fit "$DATA" --out runs/imprint_bank.safetensors   # fits the colouring kernels too
  cp runs/imprint_bank.safetensors "$WEIGHTS/imprint_bank.safetensors"
fi
[ -f cache/recon/index.json ] || $NIRNET imprint reconstruct "$DATA" --out cache/recon --limit 240
$NIRNET train -c configs/nirnet_tiny_gen.yaml run.out_dir=runs/nirnet_tiny_gen --resume --no-progress
mkdir -p "$WEIGHTS/nirnet_tiny"
cp runs/nirnet_tiny_gen/final/model.safetensors runs/nirnet_tiny_gen/final/config.json "$WEIGHTS/nirnet_tiny/"
$NIRNET train -c configs/nirnet_tiny_texture.yaml --resume --no-progress
mkdir -p "$WEIGHTS/nirnet_tiny_texture"
cp runs/nirnet_tiny_texture/final/model.safetensors runs/nirnet_tiny_texture/final/config.json \
  "$WEIGHTS/nirnet_tiny_texture/"
[ -f runs/denoiser/w16d5/denoiser.safetensors ] || \
  $NIRNET pretrain-denoiser "$DATA" --out runs/denoiser/w16d5 --width 16 --depth 5 --steps 1500
$NIRNET train -c configs/nirnet_tiny_texture_dn.yaml --resume --no-progress
mkdir -p "$WEIGHTS/nirnet_tiny_texture_dn"
cp runs/nirnet_tiny_texture_dn/final/model.safetensors runs/nirnet_tiny_texture_dn/final/config.json \
  "$WEIGHTS/nirnet_tiny_texture_dn/"
BENCH=../shared/data/bench-dev/manifest.csv
$NIRNET data build-corpus ../shared/data/train-sources.csv --out runs/corpus ${MIRROR_ROOT:+--mirror-root "$MIRROR_ROOT"} \
  --holdout "$BENCH"
$NIRNET data build-corpus sources/debian-photos.csv --out runs/photos --holdout "$BENCH"
$NIRNET data build-corpus sources/debian-portraits.csv --out runs/portraits --holdout "$BENCH"
for list in github-closeups:closeups more-generators:more more-generators-2:more2 github-wallpapers:wallpapers \
  github-portraits-animals:portraits2; do
  $NIRNET data build-corpus "sources/${list%%:*}.csv" --out "runs/${list##*:}" ${MIRROR_ROOT:+--mirror-root "$MIRROR_ROOT"} \
    --holdout "$BENCH"
done
[ -f runs/stack/s0/final/model.safetensors ] || $NIRNET train -c configs/nirnet_stack.yaml --no-progress
[ -f runs/stack_family/family_head.json ] || $NIRNET family fit --model runs/stack/s0/final --corpus runs/corpus \
  --corpus runs/more --corpus runs/more2 --extra ../shared/data/gen-train --parts head_input --rows images --c 0.1 --out runs/stack_family
mkdir -p "$WEIGHTS/nirnet_stack"
cp runs/stack_family/model.safetensors runs/stack_family/config.json runs/stack_family/family_head.json \
  runs/stack_family/family_head.safetensors "$WEIGHTS/nirnet_stack/"
sha256sum "$WEIGHTS"/*/model.safetensors
