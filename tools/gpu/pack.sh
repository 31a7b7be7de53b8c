#!/usr/bin/env bash
# Pack a GPU build of ssiat into .gpu/ (ignored) for the device tool's `carry` (tools/gpu/README.md).
# Runs HERE, on the machine without a GPU. Steps:
#   1. configure and build build-gpu/ (Release, SSIAT_CUDA=ON, sm_90a, ccache when present),
#      targets ssiat test_cuda test_kernels;
#   2. assemble .gpu/ from scratch: bin/ (the three binaries, stripped), lib/ (every shared library
#      they need per ldd, except glibc's, which must come from the GPU machine, and the CUDA/NVIDIA
#      ones, which the GPU machine provides), lib/compat/ (libstdc++, libgcc_s: used there only if
#      its own are too old), recipes/ (gpu-*.toml, ko-tiny-byte.toml), data/ko-byte/{train,val}
#      (tests/data's Korean sample, byte tokenizer, for the CUDA training smoke run), BUILDINFO;
#   3. compress every file over 256 KiB (xz -9e: python3's lzma can unpack it anywhere; zstd -19
#      with SSIAT_PACK_COMPRESS=zstd), write MANIFEST (sha256 of each unpacked file), print the
#      sizes and fail if .gpu/ is over 60 MiB or the tree that travels over 63 MiB.
# Compressed files are cached by content hash (SSIAT_PACK_CACHE, default ~/.cache/ssiat-gpu-pack),
# so a second run only rebuilds what changed. Idempotent: .gpu/ is rebuilt whole each time.
# Env: SSIAT_PACK_BUILD=DIR  take the binaries from an existing build DIR (no configure/build;
#                            missing test binaries are then warnings) — to check this script;
#      SSIAT_PACK_JOBS (default 2), SSIAT_PACK_COMPRESS (xz|zstd), SSIAT_PACK_CACHE.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="$root/.gpu"
targets=(ssiat test_cuda test_kernels)
compress="${SSIAT_PACK_COMPRESS:-xz}"
cache="${SSIAT_PACK_CACHE:-${HOME:-/tmp}/.cache/ssiat-gpu-pack}"
max_pack=$((60 * 1024 * 1024))
max_tree=$((63 * 1024 * 1024))
big=$((256 * 1024))
die() { echo "pack: $*" >&2; exit 1; }

case "$compress" in
  xz) command -v xz >/dev/null || die "xz not found (or set SSIAT_PACK_COMPRESS=zstd)"; ext=xz ;;
  zstd) command -v zstd >/dev/null || die "zstd not found (or set SSIAT_PACK_COMPRESS=xz)"; ext=zst ;;
  *) die "SSIAT_PACK_COMPRESS=$compress: expected xz or zstd" ;;
esac

# --- 1. build -------------------------------------------------------------------------------
if [ -n "${SSIAT_PACK_BUILD:-}" ]; then
  build="$(cd "$SSIAT_PACK_BUILD" && pwd)" || die "SSIAT_PACK_BUILD=$SSIAT_PACK_BUILD: no such directory"
  strict=0
  echo "pack: using the existing build $build (no build step)"
else
  build="$root/build-gpu"
  strict=1
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  echo "pack: configuring $build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSIAT_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90a "${launcher[@]}" >"$log" 2>&1 \
    || { tail -n 40 "$log" >&2; die "cmake configure failed (log above)"; }
  echo "pack: building ${targets[*]} (-j${SSIAT_PACK_JOBS:-2})"
  cmake --build "$build" -j"${SSIAT_PACK_JOBS:-2}" --target "${targets[@]}" >"$log" 2>&1 \
    || { tail -n 60 "$log" >&2; die "build failed (log above)"; }
fi

bins=()
for t in "${targets[@]}"; do
  if [ -x "$build/$t" ]; then
    bins+=("$build/$t")
  elif [ "$strict" = 1 ]; then
    die "$build/$t was not built"
  else
    echo "pack: warning: $build/$t missing, not packed" >&2
  fi
done
[ -x "$build/ssiat" ] || die "$build/ssiat missing"

# --- 2. which shared libraries travel ----------------------------------------------------------
# glibc (must be the GPU machine's own, matching its loader); CUDA/NVIDIA (provided there);
# compat (carried, used there only when its copies are older than what the binaries need).
is_glibc() { [[ "$1" =~ ^(linux-vdso|linux-gate|ld-linux|libc\.so|libm\.so|libmvec\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libutil\.so|libanl\.so|libnss_|libBrokenLocale) ]]; }
is_nvidia() { [[ "$1" =~ ^(libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libcudnn|libnccl\.so|libnvrtc|libnvJitLink|libnvidia-|libcufft|libcurand|libcusparse|libcusolver) ]]; }
is_compat() { [[ "$1" =~ ^(libstdc\+\+\.so|libgcc_s\.so) ]]; }

declare -A lib_path=() lib_kind=() nvidia_needed=()
for b in "${bins[@]}"; do
  while IFS= read -r line; do
    # "	libfoo.so.1 => /path/libfoo.so.1 (0x...)"  |  "	/lib64/ld-linux-x86-64.so.2 (0x...)"
    name="$(awk '{print $1}' <<<"$line")"
    [ -n "$name" ] || continue
    name="$(basename "$name")"
    if [[ "$line" == *"not found"* ]]; then
      is_nvidia "$name" && { nvidia_needed[$name]=1; continue; }
      die "ldd $(basename "$b"): $name not found here"
    fi
    is_glibc "$name" && continue
    if is_nvidia "$name"; then nvidia_needed[$name]=1; continue; fi
    path="$(awk '$2 == "=>" {print $3}' <<<"$line")"
    [ -n "$path" ] && [ -f "$path" ] || continue
    lib_path[$name]="$path"
    if is_compat "$name"; then lib_kind[$name]=compat; else lib_kind[$name]=lib; fi
  done < <(ldd "$b")
done
# cuBLASLt is not linked but loaded with dlopen at the first GEMM (kernels/cuda/cublaslt_api.h), so
# ldd does not list it: name it here (the major version of the toolkit we built with), so that
# run.sh puts its directory on LD_LIBRARY_PATH there.
if grep -q "cublasLtMatmulAlgoGetHeuristic" "$build/ssiat"; then  # the dlsym names of the loader
  nvcc_major="$(/usr/local/cuda/bin/nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"
  nvidia_needed[libcublasLt.so.${nvcc_major:-13}]=1
elif [ "$strict" = 1 ]; then
  die "$build/ssiat has no CUDA backend (no cuBLASLt loader in it): was it configured with SSIAT_CUDA=ON?"
fi

# --- 3. assemble .gpu/ -------------------------------------------------------------------------
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib/compat" "$out/recipes" "$out/data" "$cache"
manifest="$out/MANIFEST"
printf '# path (unpacked, relative to .gpu)\tstored as\tsha256 of the unpacked file\tbytes\n' >"$manifest"

# store SRC DEST_REL: copy SRC to .gpu/DEST_REL, compressed (DEST_REL.$ext) when over 256 KiB.
store() {
  local src="$1" rel="$2" sum bytes stored cached
  sum="$(sha256sum <"$src" | awk '{print $1}')"
  bytes="$(stat -Lc %s "$src")"
  if [ "$bytes" -gt "$big" ]; then
    stored="$rel.$ext"
    cached="$cache/$sum.$ext"
    if [ ! -s "$cached" ]; then
      echo "pack: compressing $rel ($((bytes / 1024)) KiB)"
      if [ "$ext" = xz ]; then
        xz -9e -T1 -c <"$src" >"$cached.tmp"
      else
        zstd -19 -q -c <"$src" >"$cached.tmp"
      fi
      mv "$cached.tmp" "$cached"
    fi
    cp "$cached" "$out/$stored"
  else
    stored="$rel"
    cp -L "$src" "$out/$stored"
  fi
  printf '%s\t%s\t%s\t%s\n' "$rel" "$stored" "$sum" "$bytes" >>"$manifest"
}

tmpd="$(mktemp -d)"
trap 'rm -rf "$tmpd" ${log:+"$log"}' EXIT
for b in "${bins[@]}"; do
  n="$(basename "$b")"
  cp "$b" "$tmpd/$n"
  command -v strip >/dev/null && strip --strip-unneeded "$tmpd/$n" 2>/dev/null || true
  chmod +x "$tmpd/$n"
  store "$tmpd/$n" "bin/$n"
done
for name in $(printf '%s\n' "${!lib_path[@]}" | sort); do
  if [ "${lib_kind[$name]}" = compat ]; then store "${lib_path[$name]}" "lib/compat/$name"
  else store "${lib_path[$name]}" "lib/$name"; fi
done
for r in recipes/gpu-*.toml recipes/ko-tiny-byte.toml; do
  [ -f "$r" ] && cp "$r" "$out/recipes/"
done

# Tiny prepared data (byte tokenizer) for the CUDA training smoke run; the packed ssiat runs here
# (it finds this machine's libcublasLt), else the run there skips that step.
ld_here="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if LD_LIBRARY_PATH="$ld_here" "$build/ssiat" data prepare --input tests/data/ko_sample.txt \
     --out "$out/data/ko-byte/train" >"$tmpd/data.log" 2>&1 \
   && LD_LIBRARY_PATH="$ld_here" "$build/ssiat" data prepare --input tests/data/ko_heldout.txt \
     --out "$out/data/ko-byte/val" >>"$tmpd/data.log" 2>&1; then
  echo "pack: prepared $out/data/ko-byte/{train,val} (byte tokenizer)"
else
  cat "$tmpd/data.log" >&2
  rm -rf "$out/data/ko-byte"
  echo "pack: warning: could not prepare the smoke-run data; run.sh will skip that step" >&2
fi

glibcxx_needed="$(for b in "${bins[@]}"; do objdump -T "$b" 2>/dev/null; done \
  | grep -o 'GLIBCXX_[0-9.]*' | sort -t. -k3,3n -u | tail -n 1 || true)"
glibc_needed="$(for b in "${bins[@]}"; do objdump -T "$b" 2>/dev/null; done \
  | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -n 1 || true)"
{
  echo "commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$( [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ] && echo +dirty)"
  echo "packed_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host=$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}"), $(ldd --version 2>/dev/null | head -n 1)"
  echo "source_dir=$root"
  echo "build_dir=$build"
  echo "cuda_architectures=$(grep -s '^CMAKE_CUDA_ARCHITECTURES:' "$build/CMakeCache.txt" | cut -d= -f2)"
  echo "nvcc=$( (/usr/local/cuda/bin/nvcc --version 2>/dev/null || true) | grep -o 'release [0-9.]*' | head -n 1)"
  echo "needs_nvidia=$(printf '%s\n' "${!nvidia_needed[@]}" | sort | tr '\n' ' ')"
  echo "needs_glibc=$glibc_needed"
  echo "needs_glibcxx=$glibcxx_needed"
  echo "compression=$compress"
} >"$out/BUILDINFO"

# --- 4. sizes ----------------------------------------------------------------------------------
echo "pack: contents of .gpu (stored bytes):"
(cd "$out" && find . -type f -printf '%s\t%P\n' | sort -rn | awk -F'\t' '{printf "  %8.1f KiB  %s\n", $1/1024, $2}')
pack_bytes="$(find "$out" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')"
unpacked_bytes="$(awk -F'\t' 'NR>1 {s+=$4} END {print s+0}' "$manifest")"
tree_bytes="$(git ls-files -co --exclude-standard -z | du --files0-from=- -cb 2>/dev/null | tail -n 1 | cut -f1)"
awk -v p="$pack_bytes" -v u="$unpacked_bytes" -v t="$tree_bytes" 'BEGIN {
  printf "pack: .gpu %.1f MiB stored (%.1f MiB unpacked); the tree that travels beside it %.1f MiB\n",
         p / 1048576, u / 1048576, t / 1048576 }'
[ "$pack_bytes" -le "$max_pack" ] || die ".gpu is $pack_bytes bytes, over the 60 MiB limit"
[ $((pack_bytes + tree_bytes)) -le "$max_tree" ] || die "tree + .gpu = $((pack_bytes + tree_bytes)) bytes, over 63 MiB (the device tool takes 64 MiB)"
echo "pack: ok. Device call: see tools/gpu/README.md (carry [\".gpu\"])"
