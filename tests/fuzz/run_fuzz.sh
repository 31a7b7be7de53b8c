#!/usr/bin/env bash
# Builds one libFuzzer target tests/fuzz/fuzz_<TARGET>.cpp with the sources it needs (under
# AddressSanitizer and UndefinedBehaviorSanitizer) and runs it for a fixed time. Targets:
#   bpe         the BPE tokenizer, with every tokenizer/*.cpp (seeds: tests/fuzz/corpus/)
#   recipe      load_recipe on bytes: core/recipe.cpp (+ core/fs.cpp, distributed/mesh.cpp), toml++ compiled in
#               (seeds: recipes/*.toml, tests/fuzz/corpus_recipe/)
#   checkpoint  the checkpoint manifest reader: core/checkpoint_manifest.cpp with core/hash.cpp
#               and core/fs.cpp, no HDF5 (seeds: tests/fuzz/corpus_checkpoint/)
#
# Usage: tests/fuzz/run_fuzz.sh [SECONDS=20] [BUILD_DIR=build/fuzz] [TARGET=bpe]
#   SECONDS 0 builds only. Environment: FUZZ_CXX (default: clang++, else clang++-19..14),
#   FUZZ_JOBS (parallel compiles, default nproc), FUZZ_ARGS (extra libFuzzer flags).
# Exit status: 0 no failure; 1 a crash, sanitizer report, property violation or build error;
#   77 clang++ or the libFuzzer runtime is missing (ctest: SKIP_RETURN_CODE 77).
# The committed seeds are read only; inputs the fuzzer finds go to BUILD_DIR/corpus_<TARGET> and
# a failing input to BUILD_DIR/<TARGET>-crash-* (reproduce: BUILD_DIR/fuzz_<TARGET> FILE).
# Targets built into one BUILD_DIR keep separate objects, so ctest may run them in parallel.
set -euo pipefail

seconds="${1:-20}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-$root/build/fuzz}"
target="${3:-bpe}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"

skip() { echo "run_fuzz.sh: SKIPPED: $*" >&2; exit 77; }

# 1. Toolchain: clang++ with the libFuzzer runtime (Debian: clang, libclang-rt-14-dev).
cxx="${FUZZ_CXX:-}"
if [[ -z "$cxx" ]]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$c" >/dev/null 2>&1; then cxx="$c"; break; fi
  done
fi
if [[ -z "$cxx" ]] || ! command -v "$cxx" >/dev/null 2>&1; then
  skip "no clang++ found (install clang; set FUZZ_CXX to choose one)"
fi
probe="$build/probe_$target"
mkdir -p "$probe"
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
"$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >"$probe/log" 2>&1 ||
  skip "$cxx cannot link -fsanitize=fuzzer,address,undefined (libFuzzer runtime missing? Debian: libclang-rt-14-dev): $(head -c 300 "$probe/log")"

# 2. Build: one object per source, recompiled when it is older than its source or any header
# (compiled in parallel), then one link.
# Per target: sources, the headers they depend on, extra compile flags and libraries, the
# committed seed directories and the largest input.
seeds=()
case "$target" in
  bpe)
    srcs=("$root/tests/fuzz/fuzz_bpe.cpp" "$root"/tokenizer/*.cpp)
    headers=("$root"/tokenizer/*.h "$root/kernels/check.h" "$0")
    read -ra extra_flags <<<"$(pkg-config --cflags libutf8proc 2>/dev/null || true)"
    read -ra libs <<<"$(pkg-config --libs libutf8proc 2>/dev/null || echo -lutf8proc)"
    libs+=(-lcrypto)
    seeds=("$root/tests/fuzz/corpus")
    max_len=512
    ;;
  recipe)
    srcs=("$root/tests/fuzz/fuzz_recipe.cpp" "$root/core/recipe.cpp" "$root/core/fs.cpp" "$root/distributed/mesh.cpp")
    headers=("$root/core/recipe.h" "$root/core/device.h" "$root/kernels/backend.h" "$root/distributed/mesh.h" "$root/core/fs.h" "$root/core/error.h" "$root/kernels/check.h" "$0")
    # toml++ compiled in, so its parser runs under the sanitizers, with two exceptions for known
    # toml++ 3.3.0 bugs (Debian's version) that the release build turns into a ConfigError:
    #   NDEBUG                     its debug assertion in parse_key() fires on "[\n" before the
    #                              parse error it reports in release;
    #   -fno-sanitize=unreachable  is_non_ascii_horizontal_whitespace() reaches TOML_UNREACHABLE
    #                              for some non-ASCII characters where a key or whitespace is
    #                              expected (marzer/tomlplusplus#190, #295, fixed upstream after
    #                              3.3.0; core/recipe.cpp refuses malformed UTF-8 before toml++).
    extra_flags=(-DTOML_HEADER_ONLY=1 -DNDEBUG -fno-sanitize=unreachable)
    libs=()
    seeds=("$root/recipes" "$root/tests/fuzz/corpus_recipe")
    max_len=4096
    ;;
  checkpoint)
    srcs=("$root/tests/fuzz/fuzz_checkpoint.cpp" "$root/core/checkpoint_manifest.cpp" "$root/core/hash.cpp"
          "$root/core/fs.cpp")
    headers=("$root/core/checkpoint.h" "$root/core/checkpoint_detail.h" "$root/core/hash.h" "$root/core/fs.h"
             "$root/core/error.h" "$root/kernels/check.h" "$0")
    extra_flags=()
    libs=(-lcrypto)
    seeds=("$root/tests/fuzz/corpus_checkpoint")
    max_len=4096
    ;;
  *)
    echo "run_fuzz.sh: unknown target '$target' (bpe, recipe, checkpoint)" >&2
    exit 1
    ;;
esac
# shellcheck disable=SC2054  # the commas belong to -fsanitize=
cxxflags=(-std=c++20 -O1 -g -w -fno-omit-frame-pointer
          -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
          -I"$root" "${extra_flags[@]}")
obj_of() { echo "$build/obj_$target/$(basename "$1" .cpp).o"; }
mkdir -p "$build/obj_$target"
stale=()
for s in "${srcs[@]}"; do
  o="$(obj_of "$s")"
  if [[ ! -f "$o" || "$s" -nt "$o" ]]; then stale+=("$s"); continue; fi
  for h in "${headers[@]}"; do
    if [[ "$h" -nt "$o" ]]; then stale+=("$s"); break; fi
  done
done
bin="$build/fuzz_$target"
if [[ ${#stale[@]} -gt 0 || ! -x "$bin" ]]; then
  start=$(date +%s)
  if [[ ${#stale[@]} -gt 0 ]]; then
    export cxx build target CXXFLAGS_JOINED="${cxxflags[*]}"
    # shellcheck disable=SC2016  # expanded by the inner bash
    printf '%s\0' "${stale[@]}" | xargs -0 -n1 -P "${FUZZ_JOBS:-$(nproc)}" bash -c \
      '$cxx $CXXFLAGS_JOINED -c "$1" -o "$build/obj_$target/$(basename "$1" .cpp).o" || exit 255' _
  fi
  objs=()
  for s in "${srcs[@]}"; do objs+=("$(obj_of "$s")"); done
  "$cxx" "${cxxflags[@]}" "${objs[@]}" -o "$bin.tmp" "${libs[@]}" -lpthread
  mv "$bin.tmp" "$bin"
  echo "run_fuzz.sh: compiled ${#stale[@]} of ${#srcs[@]} sources and linked $bin with $cxx in $(( $(date +%s) - start )) s"
fi
[[ "$seconds" == 0 ]] && exit 0

# 3. Run. libFuzzer's own default failure code is 77, which ctest would read as "skipped", so
# failures are mapped to 1.
corpus="$build/corpus_$target"
mkdir -p "$corpus"
existing_seeds=()
for d in "${seeds[@]}"; do [[ -d "$d" ]] && existing_seeds+=("$d"); done
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rc=0
# shellcheck disable=SC2086
"$bin" "$corpus" "${existing_seeds[@]}" \
  -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=4096 \
  -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$build/$target-" -print_final_stats=1 \
  ${FUZZ_ARGS:-} || rc=$?
if [[ $rc -ne 0 ]]; then
  echo "run_fuzz.sh: FAILED (fuzzer exit $rc); failing input in $build/ ($target-crash-*, -timeout-*, -leak-*, -oom-*); reproduce: $bin FILE" >&2
  exit 1
fi
echo "run_fuzz.sh: $target: no failure in $seconds s"
