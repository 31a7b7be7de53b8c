#!/usr/bin/env bash
# bench_tokenizer.sh CORPUS_DIR [VOCAB] [THREADS] [-- extra bench_tokenizer.py options]
# ssiat's tokenizer against SentencePiece (spm_train BPE and unigram, spm_encode): training wall
# time, CPU time and peak RSS; encode MB/s at 1 and THREADS threads; compression on held-out
# text; id-for-id agreement of spm_encode on ssiat's tokenizer.model. VOCAB defaults to 32000,
# THREADS to the CPU count.
# CORPUS_DIR is what tools/corpus/export_assembly_bills.sh writes: bills_{train,heldout}_lines.txt
# are used when present, otherwise bills_{train,heldout}.txt with their blank lines dropped.
# Env: SSIAT_BIN (default build/ssiat; not built here), PYTHON (default python3), WORK (default
# runs/bench-tokenizer). Writes WORK/result.json; the rules are in tools/bench/bench_tokenizer.py.
set -euo pipefail
if [ $# -lt 1 ] || [[ $1 == -* ]]; then
  echo "usage: $0 CORPUS_DIR [VOCAB] [THREADS] [-- bench_tokenizer.py options]" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
corpus=$1; shift
vocab=32000; threads=$(nproc)
if [ $# -gt 0 ] && [ "$1" != -- ]; then vocab=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != -- ]; then threads=$1; shift; fi
[ "${1:-}" = -- ] && shift
py="${PYTHON:-python3}"
work="${WORK:-$root/runs/bench-tokenizer}"
mkdir -p "$work"

pick() {  # pick NAME: prints the line-per-sentence file for bills_NAME
  if [ -s "$corpus/bills_${1}_lines.txt" ]; then
    echo "$corpus/bills_${1}_lines.txt"
  elif [ -s "$corpus/bills_${1}.txt" ]; then
    grep -v '^[[:space:]]*$' "$corpus/bills_${1}.txt" >"$work/${1}_lines.txt"
    echo "$work/${1}_lines.txt"
  else
    echo "bench_tokenizer: no bills_${1}[_lines].txt in $corpus" >&2
    exit 1
  fi
}
train=$(pick train)
heldout=$(pick heldout)

cd "$root"
exec "$py" "$root/tools/bench/bench_tokenizer.py" --train "$train" --heldout "$heldout" \
  --vocab "$vocab" --threads "$threads" --ssiat "${SSIAT_BIN:-build/ssiat}" --work "$work" "$@"
