#!/usr/bin/env bash
# Launch `ssiat train` as NP ranks with Open MPI's mpirun (docs/launch.md).
#
#   [NP=2] [HOSTFILE=hosts] [SSIAT_BIN=...] [OMP_NUM_THREADS=...] [OVERSUBSCRIBE=1] \
#     bash recipes/launch/mpirun.sh RECIPE RUN_DIR [ssiat train options: --set k=v ... --resume]
#
# NP must equal parallel.dp × parallel.tp of the effective recipe (the run refuses otherwise).
# Ranks are placed by slot: a host's slots fill before the next host's, so adjacent ranks (one tp
# group) share a node. With HOSTFILE, give each node `slots=<GPUs per node>`
# ("node01 slots=4"). RUN_DIR and the data must be on a filesystem every node sees, and
# SSIAT_BIN must be the same build at the same path on every node.
#
#   NP              ranks to start (default 2); with train.device = "cuda", one per GPU
#   HOSTFILE        Open MPI hostfile (default: all ranks on this machine)
#   RANKS_PER_NODE  ranks on one node, for the OMP_NUM_THREADS default (default: NP without a
#                   hostfile, else NP / hosts in the hostfile, rounded up)
#   OMP_NUM_THREADS threads per rank (default: cores of this machine / RANKS_PER_NODE, at least 1)
#   SSIAT_BIN       the ssiat binary (default: `ssiat` on PATH, else <repo>/build/ssiat)
#   OVERSUBSCRIBE=1 allow more ranks than slots (tests on a small machine; never for speed)
#
# Exported to every rank: OMP_NUM_THREADS, PATH, LD_LIBRARY_PATH and every NCCL_* variable set
# here (Open MPI forwards OMPI_MCA_* by itself). Exit status: mpirun's (0 only when every rank
# exited 0). Example, two CPU ranks of ko-tiny with its one-rank global batch of 8:
#   bash recipes/launch/mpirun.sh recipes/ko-tiny.toml runs/dp2 \
#     --set parallel.dp=2 --set train.micro_batch=4
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: [NP=2] [HOSTFILE=hosts] bash $0 RECIPE RUN_DIR [--set k=v ...] [--resume]" >&2
  exit 2
fi
recipe="$1"
run_dir="$2"
shift 2

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
np="${NP:-2}"
case "$np" in
  '' | *[!0-9]* | 0) echo "mpirun.sh: NP must be a positive integer, got '$np'" >&2; exit 2 ;;
esac

# The binary: SSIAT_BIN, else ssiat on PATH, else the repository's build (CMake puts the CLI at
# the top of the build directory). An absolute path, so remote nodes find the same file.
bin="${SSIAT_BIN:-}"
if [ -z "$bin" ]; then
  if command -v ssiat >/dev/null 2>&1; then
    bin="$(command -v ssiat)"
  else
    bin="$repo/build/ssiat"
  fi
fi
if [ ! -x "$bin" ]; then
  echo "mpirun.sh: no ssiat binary at '$bin' (build it: cmake -S . -B build -G Ninja && cmake --build build --target ssiat, or set SSIAT_BIN)" >&2
  exit 2
fi
case "$bin" in /*) ;; *) bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" ;; esac

args=(-np "$np")
if [ -n "${HOSTFILE:-}" ]; then
  if [ ! -r "$HOSTFILE" ]; then
    echo "mpirun.sh: HOSTFILE '$HOSTFILE' is not readable" >&2
    exit 2
  fi
  args+=(--hostfile "$HOSTFILE")
  hosts="$(grep -cEv '^[[:space:]]*(#|$)' "$HOSTFILE" || true)"
  [ "$hosts" -ge 1 ] || { echo "mpirun.sh: HOSTFILE '$HOSTFILE' names no host" >&2; exit 2; }
  per_node="${RANKS_PER_NODE:-$(((np + hosts - 1) / hosts))}"
else
  per_node="${RANKS_PER_NODE:-$np}"
fi
# By slot: ranks 0..slots-1 on the first host, and so on (tp groups stay inside a node). No
# binding: mpirun would otherwise pin each rank, and all of its OpenMP threads, to one core.
args+=(--map-by slot --bind-to none)
[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
[ "${OVERSUBSCRIBE:-0}" = 1 ] && args+=(--oversubscribe)

if [ -z "${OMP_NUM_THREADS:-}" ]; then
  threads=$(($(nproc) / per_node))
  [ "$threads" -ge 1 ] || threads=1
  export OMP_NUM_THREADS="$threads"
fi
args+=(-x OMP_NUM_THREADS)
[ -n "${PATH:-}" ] && args+=(-x PATH)
[ -n "${LD_LIBRARY_PATH:-}" ] && args+=(-x LD_LIBRARY_PATH)
# One -x per variable: Open MPI 4.1's -x takes a single name.
while IFS= read -r name; do
  case "$name" in NCCL_*) args+=(-x "$name") ;; esac
done < <(compgen -e)

exec mpirun "${args[@]}" "$bin" train "$recipe" --run-dir "$run_dir" "$@"
