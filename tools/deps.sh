#!/bin/sh
# Install what building and testing cio needs, from Debian's packages, if it
# is missing. Runs as root (or through sudo when available).
set -eu
need="cmake ninja-build gcc clang libcmocka-dev pkg-config libclang-rt-14-dev"
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
