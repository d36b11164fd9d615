#!/usr/bin/env bash
# Installs the Debian 12 packages inferd needs and builds it into ./build.
# Run as root or with sudo available. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(gcc clang libclang-rt-14-dev meson ninja-build pkg-config check
      libpcre2-dev libjansson-dev libssl-dev libutf8proc-dev libxxhash-dev liburing-dev
      flatbuffers-compiler python3-flatbuffers python3
      systemtap-sdt-dev libbpf-dev bpftool llvm libelf-dev zlib1g-dev libmicrohttpd-dev
      valgrind)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ -f build/build.ninja ] || meson setup build
ninja -C build
