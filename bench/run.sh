#!/bin/sh
# The one command of issue 6: install the peers from Debian (if missing),
# build cio and the peer programs, run every workload for cio and each peer,
# and write bench/results/RESULTS.md plus one PNG chart per workload.
#
#   bench/run.sh            full run (3 runs of everything; ~20 min on 2 vCPUs)
#   bench/run.sh --quick    a quick try (1 run, sizes x 0.1, short W5)
#   bench/run.sh --help     every option (bench/run.py's)
#
# Set CIO_BENCH_NO_INSTALL=1 to skip the apt-get step.
set -eu
cd "$(dirname "$0")/.."

PKGS="golang-go librust-tokio-dev python3-uvloop libuv1-dev wrk gnuplot-nox pkg-config"
PKGS="$PKGS python3-aiohttp nginx libnginx-mod-http-echo libcurl4-openssl-dev libhttp-parser-dev" # W6h (issue 11)
PKGS="$PKGS python3-aiofiles" # bench/files.sh (issue 14)
command -v cargo >/dev/null 2>&1 || PKGS="$PKGS cargo"
command -v ninja >/dev/null 2>&1 || PKGS="$PKGS ninja-build"
command -v cmake >/dev/null 2>&1 || PKGS="$PKGS cmake"
if [ "${CIO_BENCH_NO_INSTALL:-0}" != 1 ]; then
  missing=""
  for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "installing:$missing" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >&2
  fi
fi

cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j2 >&2

CIO_BENCH_COMMAND="bench/run.sh $*" exec /usr/bin/python3 bench/run.py "$@"
