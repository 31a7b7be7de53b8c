#!/usr/bin/env bash
# export_assembly_bills.sh OUTDIR [--lines] [--heldout-every N] [...] — Korean corpus from PyPI's
# korean-assembly-bills 0.1.0 (CC-BY-4.0): OUTDIR/bills_train.txt, OUTDIR/bills_heldout.txt (one
# document per bill, documents separated by blank lines, every 20th bill held out), with --lines
# also OUTDIR/bills_{train,heldout}_lines.txt (no blank lines; for spm_train), and
# OUTDIR/SOURCE.md (package, version, license, digest, counts).
#
# The package's wheel ships no data (its loader downloads from GitHub); the sdist on PyPI holds
# the parquet files, so this fetches the sdist with `pip download --no-binary` (PyPI only) and
# checks its sha256. Installs pyarrow into python3 (pip, PyPI) if it is missing.
# Idempotent: if the outputs asked for exist it only prints their sizes. Other options go to
# tools/corpus/export_assembly_bills.py, which states the extraction rules.
set -euo pipefail

if [ $# -lt 1 ] || [[ $1 == -* ]]; then
  echo "usage: $0 OUTDIR [--lines] [--heldout-every N] [--keep-duplicates] [--no-title]" >&2
  exit 2
fi
out=$1
shift
pkg=korean-assembly-bills
version=0.1.0
sdist_sha256=a00e9eb3d2f724d3c232c576074afe901bbf3a74871291e66e81b4afe1616a2f
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${PYTHON:-python3}

want=(bills_train.txt bills_heldout.txt SOURCE.md)
for arg in "$@"; do
  [ "$arg" = --lines ] && want+=(bills_train_lines.txt bills_heldout_lines.txt)
done

print_sizes() {
  for f in "${want[@]}"; do
    [ "$f" = SOURCE.md ] && continue
    printf '%s: %s bytes, %s lines\n' "$out/$f" "$(stat -c %s "$out/$f")" "$(wc -l <"$out/$f")"
  done
}

have_all=1
for f in "${want[@]}"; do [ -s "$out/$f" ] || have_all=0; done
if [ $have_all = 1 ]; then
  echo "export_assembly_bills: $out already holds the corpus; skipping"
  print_sizes
  exit 0
fi

if ! "$py" -c 'import pyarrow' 2>/dev/null; then
  echo "export_assembly_bills: installing pyarrow into $("$py" -c 'import sys; print(sys.prefix)')" >&2
  "$py" -m pip install -q --disable-pip-version-check pyarrow
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
  -d "$tmp" "$pkg==$version" >/dev/null
sdist="$tmp/korean_assembly_bills-$version.tar.gz"
[ -f "$sdist" ] || { echo "export_assembly_bills: pip did not fetch $sdist" >&2; exit 1; }
got=$(sha256sum "$sdist" | cut -d' ' -f1)
if [ "$got" != "$sdist_sha256" ]; then
  echo "export_assembly_bills: $sdist has sha256 $got, expected $sdist_sha256" >&2
  exit 1
fi
data="korean_assembly_bills-$version/data"
tar -xzf "$sdist" -C "$tmp" "$data/bills.parquet" "$data/bill_texts.parquet"

mkdir -p "$out"
"$py" "$here/export_assembly_bills.py" "$tmp/$data" "$out" "$@" \
  --package "$pkg" --version "$version" --sdist-sha256 "$sdist_sha256"
