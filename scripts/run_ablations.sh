#!/usr/bin/env bash
# Baselines and ablations of the default recipe (configs/nirnet_tiny_cpu.yaml) at one shared budget, then the
# generalisation benchmark over them (docs/results/). Every run uses the same real photos, autoencoder-twin cache,
# seed and number of steps; only the named setting changes. Resumable: finished runs are skipped and an interrupted
# one continues from its last checkpoint. Extra arguments go to the baseline comparison (e.g. --no-aeroblade).
#   STEPS=300 scripts/run_ablations.sh     # 2 CPU cores: ~9 min per nirnet_tiny run, ~20 min for NPR / CNNSpot
#   ONLY="full npr" scripts/run_ablations.sh   # a subset of the runs (evaluation covers every finished run)
set -euo pipefail
cd "$(dirname "$0")/.."
NIRNET=${NIRNET:-.venv/bin/nirnet}
PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-300}
OUT=${OUT:-runs/ablations}
ONLY=${ONLY:-}
BASE=configs/nirnet_tiny_cpu.yaml
DATA=../shared/data/bench-dev

run() {  # run NAME CONFIG [override ...]
  local name=$1 config=$2
  shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then
    return
  fi
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
run sim_only_no_linear $BASE data.pairs.p_simulator=1.0 data.simulator.linear=false  # no smoothing cue at all
run no_noise_branch $BASE model_overrides.use_noise=false
run no_frequency_branch $BASE model_overrides.use_frequency=false
if [ -n "${EXTRA:-}" ]; then  # not part of the committed tables (time); EXTRA=1 adds it
  run no_linear_imprint $BASE data.simulator.linear=false   # sampled imprints without their smoothing term
fi

# Publish the finished runs' final weights (small safetensors + config) so the tables can be re-run without training.
PUBLISH=benchmarks/models
published() {  # --model NAME=FOLDER for each published run among the arguments
  for name in "$@"; do
    [ -f "$PUBLISH/$name/model.safetensors" ] && printf -- '--model\n%s\n' "$name=$PUBLISH/$name"
  done
}
for dir in "$OUT"/*/final; do
  name=$(basename "$(dirname "$dir")")
  mkdir -p "$PUBLISH/$name"
  cp "$dir/model.safetensors" "$dir/config.json" "$PUBLISH/$name/"
done
mapfile -t baselines < <(published full npr cnnspot)
mapfile -t ablations < <(published full no_simulator beta0 single_ae no_lda sim_only_no_linear no_noise_branch \
  no_frequency_branch no_linear_imprint)
# The default model and the baselines, both protocols, with the training-free scorers.
"$PYTHON" benchmarks/generalization.py --data $DATA --model default "${baselines[@]}" --out docs/results/baselines "$@"
# The ablations, aligned protocol (the one that cannot be won by the file format).
"$PYTHON" benchmarks/generalization.py --data $DATA "${ablations[@]}" --protocols aligned --no-aeroblade \
  --out docs/results/ablations
