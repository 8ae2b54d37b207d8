#!/usr/bin/env bash
# Trains every still-image model of the zoo on real fer2013, one after another, on this machine's CPU:
# the runs behind README's "Real faces" table. Reads ../shared/data/fer2013 (never part of the repository).
#   benchmarks/train_real.sh [RUNS_DIR] [DATA_DIR]      (defaults: runs-real, ~/tensorflow_datasets)
# Each run resumes where it stopped if the script is started again after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs-real}
data_dir=${2:-~/tensorflow_datasets}
benchmarks/build_real_fer2013.sh "$data_dir" train_real.sh
mkdir -p "$runs"
# name, epochs: the first four take about 35 minutes on 2 cores, vgg_small (the default model's run) about an
# hour more; vgg (about 7 minutes an epoch here) only when EMOPY_WITH_VGG is set.
for entry in cnn:12 landmarks:25 multi_input:10 capsnet:3 vgg_small:40 ${EMOPY_WITH_VGG:+vgg:2}; do
  model=${entry%%:*}
  epochs=${entry##*:}
  start=$(date +%s)
  emopy train --dataset fer2013 --model "$model" --epochs "$epochs" --data-dir "$data_dir" --out "$runs/$model" \
    > "$runs/$model.log" 2>&1
  echo "$model: trained in $(( $(date +%s) - start )) s" | tee -a "$runs/wall_times.txt"
  emopy evaluate --run "$runs/$model" --split validation >> "$runs/$model.log" 2>&1
done
