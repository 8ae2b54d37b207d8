#!/usr/bin/env bash
# Reproduces emopy's shipped `ferplus` model on this machine's CPU: builds real fer2013 with FER+'s votes, trains
# the three vgg_small runs of its ensemble on the vote shares (soft targets) in emopy's label names (fer2013's seven
# plus contempt), evaluates each on FER+ PublicTest (majority labels), and exports them as one model.
# Reads ../shared/data/fer2013 (never part of the repository).
#   benchmarks/train_ferplus_model.sh [RUNS_DIR] [DATA_DIR] [EXPORT_BASE]
#   (defaults: runs-ferplus, ~/tensorflow_datasets, runs-ferplus/export)
# Rerun after a kill: each run resumes. Then ship it:
#   rm -rf serving/shipped/ferplus/1 && cp -r EXPORT_BASE/1 serving/shipped/ferplus/1
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs-ferplus}
data_dir=${2:-~/tensorflow_datasets}
export_base=${3:-$runs/export}
epochs=${EPOCHS:-35}
benchmarks/build_real_fer2013.sh "$data_dir" train_ferplus_model.sh ferplus
mkdir -p "$runs"
# The members differ in their augmentation (a: standard; b and c: tight, faces cut at the edges and mirrored back,
# as tightly cropped photos come out), their random initialisation and batches.
members=()
for member in a:standard b:tight c:tight; do
  run="$runs/vgg_small_votes_${member%%:*}"
  start=$(date +%s)
  emopy train --dataset fer2013/ferplus --labels fer2013_contempt --targets votes --model vgg_small \
    --augmentation "${member#*:}" --epochs "$epochs" --data-dir "$data_dir" --out "$run" >> "$run.log" 2>&1
  echo "$run: $epochs epochs trained in $(( $(date +%s) - start )) s" | tee -a "$runs/wall_times.txt"
  emopy evaluate --run "$run" --split validation | tee -a "$run.log"
  members+=("$run")
done
# int8 weights in the Recognizer's TFLite copy keep three members within 20 MB and 3 ms a face.
emopy export --run "${members[@]}" --int8-tflite --model-base-path "$export_base"
emopy evaluate --model "$export_base" --dataset fer2013/ferplus --split validation --data-dir "$data_dir" \
  --output "$runs/evaluation-ferplus-model.json"
