#!/bin/sh
# Build cio and run the tour: every seed example, in real time, each
# program's output followed by the time it took.
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build -j "$(nproc)" >/dev/null
exec sh tools/tour.sh build
