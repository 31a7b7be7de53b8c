#!/usr/bin/env bash
# Set up (Debian packages), build everything and run the whole test suite under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
# Outside referees from PyPI (Hugging Face tokenizers and transformers, TensorBoard); best
# effort: tests skip without them.
for req in tests/requirements.txt tests/requirements-torch.txt; do
  timeout 600 python3 -m pip install -q --disable-pip-version-check -r "$req" >/dev/null 2>&1 ||
    echo "test.sh: could not install $req from PyPI; the tests that need it will skip" >&2
done
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
