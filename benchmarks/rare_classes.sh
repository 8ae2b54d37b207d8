#!/usr/bin/env bash
# Does adding InfoGAN faces of the rare classes help? Trains two vgg_small runs on FER+ with one recipe (the shipped
# ferplus members' first, at --epochs), one of them also on INFOGAN_RUN's disgust and contempt faces
# (--add-generated), then scores both on FER+ PublicTest (overall and per class) and on wild_dev's real photos
# (disgust and contempt recall), and prints them side by side (benchmarks/rare_classes.py).
# Reads ../shared/data (fer2013 with FER+'s votes, and wild_dev; never part of the repository).
#   benchmarks/rare_classes.sh INFOGAN_RUN [RUNS_DIR] [DATA_DIR] [PER_CLASS]
#   (defaults: runs-rare, ~/tensorflow_datasets, 1000 faces of each class; EPOCHS=8 by default)
# Rerun after a kill: each run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
infogan=$1
runs=${2:-runs-rare}
data_dir=${3:-~/tensorflow_datasets}
per_class=${4:-1000}
epochs=${EPOCHS:-8}
wild=../shared/data/wild_dev
if [ ! -f "$wild/labels.csv" ]; then
  echo "rare_classes.sh: wild_dev is not here ($wild/labels.csv); nothing to compare on real photos" >&2
  exit 1
fi
benchmarks/build_real_fer2013.sh "$data_dir" rare_classes.sh ferplus
mkdir -p "$runs"
for arm in baseline generated; do
  extra=()
  [ "$arm" = generated ] && extra=(--add-generated "$infogan:disgust=$per_class,contempt=$per_class")
  emopy train --dataset fer2013/ferplus --labels fer2013_contempt --targets votes --model vgg_small \
    --augmentation standard --epochs "$epochs" --seed 0 --data-dir "$data_dir" --out "$runs/$arm" "${extra[@]}" \
    >> "$runs/$arm.log" 2>&1
  emopy evaluate --run "$runs/$arm" --split validation --output "$runs/$arm-publictest.json"
  [ -d "$runs/$arm-export/1" ] || emopy export --run "$runs/$arm" --model-base-path "$runs/$arm-export" > /dev/null
  emopy evaluate --model "$runs/$arm-export" --photos "$wild/photos" --labels "$wild/labels.csv" \
    --output "$runs/$arm-wild_dev.json"
done
python benchmarks/rare_classes.py "$runs"
