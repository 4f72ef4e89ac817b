#!/usr/bin/env bash
# Baselines and ablations of the default recipe (configs/nirnet_tiny_cpu.yaml) at one shared budget, then the
# generalisation benchmark over all of them (docs/results/). Every run uses the same real photos, autoencoder-twin
# cache, seed and number of steps; only the named setting changes. Resumable: finished runs are skipped and an
# interrupted one continues from its last checkpoint.
#   STEPS=300 scripts/run_ablations.sh            # ~8 min per run on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
NIRNET=${NIRNET:-.venv/bin/nirnet}
PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-300}
OUT=${OUT:-runs/ablations}
BASE=configs/nirnet_tiny_cpu.yaml

run() {  # run NAME CONFIG [override ...]
  local name=$1 config=$2
  shift 2
  if [ -f "$OUT/$name/final/model.safetensors" ]; then
    echo "== $name: done"
    return
  fi
  echo "== $name: training ($STEPS steps)"
  "$NIRNET" train -c "$config" --resume --no-progress optim.steps="$STEPS" run.out_dir="$OUT/$name" "$@"
}

run full $BASE
run npr configs/npr_tiny_cpu.yaml
run cnnspot configs/cnnspot_tiny_cpu.yaml
run no_simulator $BASE data.bank=none                       # autoencoder round trips only
run beta0 $BASE data.simulator.beta=0                       # fused inside the simplex, no extrapolation
run single_ae $BASE 'data.autoencoders=[taef2]'             # one imprint source (bank entry and twins)
run no_lda $BASE model_overrides.lambda_da=0                # without the difference-aware loss
run no_noise_branch $BASE model_overrides.use_noise=false
run no_frequency_branch $BASE model_overrides.use_frequency=false
run no_linear_imprint $BASE data.simulator.linear=false     # sampled imprints without their smoothing term

models=(--model default)
for dir in "$OUT"/*/final; do
  models+=(--model "$(basename "$(dirname "$dir")")=$dir")
done
"$PYTHON" benchmarks/generalization.py --data ../shared/data/bench-dev "${models[@]}" --out docs/results "$@"
