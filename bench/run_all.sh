#!/usr/bin/env bash
# Run every benchmark (python -m bench): route_path, routing, holds, state, scale, delivery.
# Each prints its figures and writes bench/results/<name>.json. Loopback only; stops by itself.
#   bench/run_all.sh            full sizes (run on a quiet machine)
#   bench/run_all.sh --small    smoke sizes
#   bench/run_all.sh --only routing,state
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
# a hard upper bound on the whole run (the benchmarks bound themselves too)
exec timeout --signal=TERM --kill-after=60 "${BENCH_TIMEOUT_S:-7200}" "$PY" -m bench "$@"
