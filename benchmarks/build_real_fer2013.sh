#!/usr/bin/env bash
# Builds real fer2013 (../shared/data/fer2013, never part of the repository) into DATA_DIR unless it is there;
# says so plainly, and fails, when the real data is missing. Used by the scripts that train on real faces.
#   benchmarks/build_real_fer2013.sh DATA_DIR CALLER [CONFIG]     (CONFIG: original (default) or ferplus)
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=$1
caller=${2:-build_real_fer2013.sh}
config=${3:-original}
source_dir=../shared/data/fer2013
needs=fer2013.tar.gz
[ "$config" = ferplus ] && needs="fer2013.tar.gz and fer2013new.csv"
if [ ! -d "$data_dir/fer2013/$config" ]; then
  if [ ! -f "$source_dir/fer2013.tar.gz" ] || { [ "$config" = ferplus ] && [ ! -f "$source_dir/fer2013new.csv" ]; }; then
    echo "$caller: real fer2013 is not here ($source_dir needs $needs); nothing to train" >&2
    exit 1
  fi
  emopy build fer2013 --manual-dir "$source_dir" --config "$config" --data-dir "$data_dir"
fi
