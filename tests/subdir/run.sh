#!/bin/sh
# Configure and build tests/subdir (add_subdirectory of the cio source tree)
# and run it; cio's own tests, examples and benchmarks must not be built.
set -eu
cio_src=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake -S "$here" -B "$tmp/b" -G Ninja -DCIO_SOURCE_DIR="$cio_src" >"$tmp/log" 2>&1 ||
  { cat "$tmp/log"; exit 1; }
ninja -C "$tmp/b" -j 2 consumer >>"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
out=$("$tmp/b/consumer")
echo "$out" | grep -qx "subdir [0-9]*\.[0-9]*\.[0-9]*" || { echo "FAIL: consumer printed '$out'"; exit 1; }
for t in test_task hello_world bench_spawn; do
  if ninja -C "$tmp/b" -t targets all | grep -q "^$t:"; then
    echo "FAIL: target $t is defined in a subproject build"; exit 1
  fi
done
echo "ok: add_subdirectory consumer ($out), no tests/examples/benchmarks"
