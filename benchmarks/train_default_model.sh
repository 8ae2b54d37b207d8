#!/usr/bin/env bash
# Reproduces emopy's default model from scratch on this machine's CPU: builds real fer2013, trains the two
# vgg_small runs of its ensemble, evaluates each, and exports both as one model (no test-time flips:
# they cost the photo-end-to-end target).
# Reads ../shared/data/fer2013 (never part of the repository).
#   benchmarks/train_default_model.sh [RUNS_DIR] [DATA_DIR] [EXPORT_BASE]
#   (defaults: runs-default, ~/tensorflow_datasets, runs-default/export)
# About 1 h 30 min on the 2-core development machine (31 s an epoch). Rerun after a kill: each run resumes.
# Then ship it: rm -r serving/shipped/fer2013/1 && cp -r EXPORT_BASE/1 serving/shipped/fer2013/1
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs-default}
data_dir=${2:-~/tensorflow_datasets}
export_base=${3:-$runs/export}
benchmarks/build_real_fer2013.sh "$data_dir" train_default_model.sh
mkdir -p "$runs"
# The ensemble's members differ only in their epochs (and their random initialisation and batches).
members=()
for epochs in 80 90; do
  run="$runs/vgg_small$epochs"
  start=$(date +%s)
  emopy train --dataset fer2013 --model vgg_small --epochs "$epochs" --data-dir "$data_dir" --out "$run" \
    > "$run.log" 2>&1
  echo "vgg_small, $epochs epochs: trained in $(( $(date +%s) - start )) s" | tee -a "$runs/wall_times.txt"
  emopy evaluate --run "$run" --split validation | tee -a "$run.log"
  members+=("$run")
done
emopy export --run "${members[@]}" --model-base-path "$export_base"
emopy evaluate --model "$export_base" --dataset fer2013 --split validation --data-dir "$data_dir" \
  --output "$runs/evaluation-default-model.json"
