#!/usr/bin/env bash
# One command for the training-step benchmark: ssiat against eager PyTorch (CPU, float32, same
# thread count). Installs tools/bench/requirements.txt into python3 if torch is missing, builds
# `ssiat` (Release, tests off) in build-bench, runs tools/bench/bench_train.py with any arguments
# given (recipes, --steps, --warmup, --threads, --set, --no-record) and so appends to docs/perf.md.
# Env: PYTHON (default python3), JOBS (build parallelism, default 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${PYTHON:-python3}"
build="$root/build-bench"

if ! "$py" -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "run_bench: installing $root/tools/bench/requirements.txt into $("$py" -c 'import sys; print(sys.executable)')" >&2
  "$py" -m pip install -q -r "$root/tools/bench/requirements.txt"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSIAT_BUILD_TESTS=OFF \
    >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "run_bench: cmake configure failed" >&2; exit 1; }
fi
cmake --build "$build" -j"${JOBS:-2}" --target ssiat >"$log" 2>&1 \
  || { tail -n 30 "$log" >&2; echo "run_bench: building ssiat failed" >&2; exit 1; }

"$py" "$root/tools/bench/bench_train.py" --ssiat "$build/ssiat" "$@"
