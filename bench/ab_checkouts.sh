#!/usr/bin/env bash
# A/B of two checkouts of the core bench, alternated round by round (same machine load).
# Usage: bench/ab_checkouts.sh BASE_DIR ROUNDS [core_bench args...]; the bench script and
# venv are this checkout's, the code under test each checkout's src (PYTHONPATH first).
# Prints each run's bench lines prefixed with `base`/`this`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
base=$1 rounds=$2
shift 2
for round in $(seq "$rounds"); do
  for side in base this; do
    dir=$here
    [ "$side" = base ] && dir=$base
    PYTHONPATH="$dir/src:$dir/adapters/kafka/src" "$here/.venv/bin/python" \
      "$here/bench/core_bench.py" "$@" | sed -n "s/^bench: /bench: $side round$round /p"
  done
done
