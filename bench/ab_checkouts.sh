#!/usr/bin/env bash
# Side-by-side runs of the core bench on several checkouts, alternated round by round (each
# sees the same machine load). Usage: bench/ab_checkouts.sh ROUNDS DIR... -- [core_bench
# args]; the bench script and venv are this checkout's, the code under test each DIR's src
# (PYTHONPATH goes first). Prints each run's bench lines as `bench: DIRNAME roundN NAME ...`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=$1
shift
dirs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do dirs+=("$1"); shift; done
[ $# -gt 0 ] && shift
for round in $(seq "$rounds"); do
  for dir in "${dirs[@]}"; do
    PYTHONPATH="$dir/src:$dir/adapters/kafka/src" "$here/.venv/bin/python" \
      "$here/bench/core_bench.py" "$@" | sed -n "s/^bench: /bench: $(basename "$dir") round$round /p"
  done
done
