#!/bin/sh
# Install what building and testing cio needs, from Debian's packages, if it
# is missing. Runs as root (or through sudo when available).
# `deps.sh arm64` adds the AArch64 cross toolchain, qemu-user and cmocka for
# arm64 (multiarch).
set -eu
need="cmake ninja-build gcc g++ clang libcmocka-dev pkg-config libclang-rt-14-dev doxygen liburing-dev libssl-dev openssl"
# HTTP: the libcurl bridge, its nginx-based tests, the HTTP server example.
need="$need libcurl4-openssl-dev nginx libnginx-mod-http-echo openssl curl python3 libhttp-parser-dev"
if [ "${1:-}" = arm64 ]; then
  need="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libcmocka-dev:arm64"
  dpkg --print-foreign-architectures | grep -qx arm64 || {
    [ "$(id -u)" -ne 0 ] && SUDO=sudo || SUDO=""
    $SUDO dpkg --add-architecture arm64
  }
fi
missing=""
for p in $need; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
