#!/usr/bin/env bash
# Installs every Debian package that ssiat's build, tests and corpus scripts need.
# Idempotent: packages already present are skipped; safe to run again. Needs root (Debian 12).
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates python3
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  libopenblas-dev libopenblas-openmp-dev
  libsentencepiece-dev sentencepiece
  libgtest-dev libgmock-dev
  libutf8proc-dev
  libsodium-dev
  libssl-dev
  nlohmann-json3-dev
  libtomlplusplus-dev
  libcli11-dev
  libcairo2-dev
  clang libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: installed ${missing[*]}"
else
  echo "setup: all ${#pkgs[@]} packages present"
fi
