#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, fetch the Korean corpus (Debian's
# libreoffice-help-ko), learn a 4,096-piece BPE tokenizer from it, prepare token shards, train
# recipes/ko-tiny.toml on the CPU and print a generated sample, then sign the run's
# init-provenance attestation (a key made once in keys/, never overwritten), verify it, and plot
# the run's curves to its plot.png.
# Extra arguments go to `ssiat train` (e.g. --set train.steps=50).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ssiat
bash tools/corpus/fetch_ko_help.sh data/ko
# (Re)learn the tokenizer unless a loadable one is there (one written by an older ssiat is not);
# shards prepared with another tokenizer go with it.
if ! echo 씨앗 | ./build/ssiat tokenizer encode --tokenizer data/ko/tokenizer >/dev/null 2>&1; then
  ./build/ssiat tokenizer train --input data/ko/ko_train.txt --vocab-size 4096 --out data/ko/tokenizer --seed 20261123 -q --force
  rm -rf data/ko/prepared-bpe
fi
for split in train val; do
  if [ ! -f "data/ko/prepared-bpe/$split/manifest.json" ]; then
    ./build/ssiat data prepare --input "data/ko/ko_$split.txt" --out "data/ko/prepared-bpe/$split" --tokenizer data/ko/tokenizer
  fi
done
run="runs/ko-tiny-$(date +%Y%m%d-%H%M%S)"
./build/ssiat train recipes/ko-tiny.toml --run-dir "$run" "$@"
[ -f keys/quickstart.key ] || { mkdir -p keys && ./build/ssiat keygen --out keys/quickstart; }
./build/ssiat attest "$run" --key keys/quickstart.key --out "$run/attestation.json"
./build/ssiat verify "$run/attestation.json" --pubkey keys/quickstart.pub --checkpoint "$run"
./build/ssiat plot "$run"
echo "run directory: $run (recipe.toml, seeds.jsonl, chain.jsonl, metrics.jsonl, tb/, plot.png, checkpoints/, sample.txt, attestation.json)"
