#!/usr/bin/env bash
# with_coretype.sh CORETYPE [L2_SIZE] -- CMD...: runs CMD with OpenBLAS forced onto the kernels of
# CORETYPE (and OPENBLAS_L2_SIZE if given), as some machines of this project set in their
# environment. Exits 77 (ctest: skipped) when this CPU lacks the instructions that core type's
# kernels need, since forcing it there would die of SIGILL rather than test anything.
# Used by ctest only for the thread-count tests (issue 7): the bits must not depend on the thread
# count whichever kernels OpenBLAS runs.
set -euo pipefail
core="$1"; shift
l2=""
if [ "$1" != "--" ]; then l2="$1"; shift; fi
[ "$1" = "--" ] && shift
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
need=()
case "$core" in
  Prescott) need=(pni) ;;
  Nehalem) need=(sse4_2) ;;
  Sandybridge) need=(avx) ;;
  Haswell|Zen) need=(avx2 fma) ;;
  SkylakeX) need=(avx512f avx512bw avx512dq avx512vl avx512cd) ;;
  Cooperlake) need=(avx512f avx512bw avx512dq avx512vl avx512_bf16) ;;
  *) echo "with_coretype: unknown core type $core" >&2; exit 2 ;;
esac
for f in "${need[@]}"; do
  if [[ "$flags" != *" $f "* ]]; then
    echo "with_coretype: skipped: this CPU lacks '$f', which OpenBLAS's $core kernels need"
    exit 77
  fi
done
export OPENBLAS_CORETYPE="$core"
if [ -n "$l2" ]; then export OPENBLAS_L2_SIZE="$l2"; else unset OPENBLAS_L2_SIZE; fi
exec "$@"
