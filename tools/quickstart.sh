#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, fetch the Korean corpus (Debian's
# libreoffice-help-ko), prepare token shards, train recipes/ko-tiny.toml on the CPU and print a
# generated sample. Extra arguments go to `ssiat train` (e.g. --set train.steps=50).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ssiat
bash tools/corpus/fetch_ko_help.sh data/ko
for split in train val; do
  if [ ! -f "data/ko/prepared/$split/manifest.json" ]; then
    ./build/ssiat data prepare --input "data/ko/ko_$split.txt" --out "data/ko/prepared/$split"
  fi
done
run="runs/ko-tiny-$(date +%Y%m%d-%H%M%S)"
./build/ssiat train recipes/ko-tiny.toml --run-dir "$run" "$@"
echo "run directory: $run (recipe.toml, seeds.jsonl, metrics.jsonl, checkpoints/, sample.txt)"
