#!/usr/bin/env bash
# Side-by-side runs of http_bench.py on several checkouts, alternated round by round (each
# sees the same machine load). Usage: bench/http_ab.sh ROUNDS DIR... -- [http_bench args],
# e.g. bench/http_ab.sh 3 /tmp/main . -- --sandbox fake --seconds 3 --runs 30. The bench
# script and venv are this checkout's; the server runs each DIR's code (PYTHONPATH goes
# first, and the server inherits it). Prints `bench: DIRNAME roundN NAME VALUE UNIT`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=$1
shift
dirs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do dirs+=("$1"); shift; done
[ $# -gt 0 ] && shift
for round in $(seq "$rounds"); do
  for dir in "${dirs[@]}"; do
    dir=$(cd "$dir" && pwd)
    PYTHONPATH="$dir/src:$dir/entrypoints/src:$dir/adapters/kafka/src" "$here/.venv/bin/python" \
      "$here/bench/http_bench.py" "$@" | sed -n "s/^bench: /bench: $(basename "$dir") round$round /p"
  done
done
