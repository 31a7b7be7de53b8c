#!/usr/bin/env bash
# fetch_ko_help.sh OUTDIR — builds a small Korean corpus from Debian's libreoffice-help-ko
# (MPL-2.0): OUTDIR/ko_train.txt, OUTDIR/ko_val.txt (paragraphs separated by blank lines, ~5% of
# pages to validation) and OUTDIR/SOURCE.md (package, version, license, sizes, digests).
#
# Idempotent: if all three outputs exist it only prints their sizes. Needs apt-get, dpkg-deb and
# python3 (standard library only); runs `apt-get update` (root) only if the download fails.
# Extraction rules: tools/corpus/extract_help_text.py.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
pkg=libreoffice-help-ko
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

print_sizes() {
  for f in ko_train.txt ko_val.txt; do
    printf '%s: %s bytes\n' "$out/$f" "$(stat -c %s "$out/$f")"
  done
}

if [ -s "$out/ko_train.txt" ] && [ -s "$out/ko_val.txt" ] && [ -s "$out/SOURCE.md" ]; then
  echo "fetch_ko_help: $out already holds the corpus; skipping"
  print_sizes
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # lets apt's sandbox user write the .deb here

if ! (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/apt.err"); then
  echo "fetch_ko_help: download failed; running apt-get update and retrying" >&2
  if [ "$(id -u)" -ne 0 ]; then
    cat "$tmp/apt.err" >&2
    echo "fetch_ko_help: apt-get update needs root" >&2
    exit 1
  fi
  apt-get update -qq
  (cd "$tmp" && apt-get download -q "$pkg" >/dev/null)
fi

debs=("$tmp"/"$pkg"_*.deb)
deb=${debs[0]}
[ -f "$deb" ] || { echo "fetch_ko_help: no .deb downloaded" >&2; exit 1; }
version=$(dpkg-deb -f "$deb" Version)
deb_sha=$(sha256sum "$deb" | cut -d' ' -f1)
dpkg-deb -x "$deb" "$tmp/root"

help_root="$tmp/root/usr/share/libreoffice/help/ko"
[ -d "$help_root" ] || { echo "fetch_ko_help: $help_root missing in $pkg $version" >&2; exit 1; }

python3 "$here/extract_help_text.py" "$help_root" "$out" \
  --package "$pkg" --version "$version" --deb-sha256 "$deb_sha"
print_sizes
