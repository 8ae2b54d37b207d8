#!/usr/bin/env bash
# Builds real fer2013 (../shared/data/fer2013, never part of the repository) into DATA_DIR unless it is there;
# says so plainly, and fails, when the real data is missing. Used by the scripts that train on real faces.
#   benchmarks/build_real_fer2013.sh DATA_DIR CALLER
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=$1
caller=${2:-build_real_fer2013.sh}
source_dir=../shared/data/fer2013
if [ ! -d "$data_dir/fer2013/original" ]; then
  if [ ! -f "$source_dir/fer2013.tar.gz" ]; then
    echo "$caller: real fer2013 is not here ($source_dir/fer2013.tar.gz is missing); nothing to train" >&2
    exit 1
  fi
  emopy build fer2013 --manual-dir "$source_dir" --config original --data-dir "$data_dir"
fi
