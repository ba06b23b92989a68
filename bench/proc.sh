#!/bin/sh
# Subprocess benchmarks: cio vs asyncio vs Go's os/exec (Go skipped if not
# installed). Short runs. Usage: sh bench/proc.sh [build-dir] [children] [MiB]
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
n=${2:-10000}
mib=${3:-256}
py=${PYTHON:-python3}
echo "== spawn + wait of $n 'true' children, 100 at a time"
printf 'cio:     '; "$dir/bench/bench_proc_spawn" "$n"
printf 'asyncio: '; $py bench/peers/python/proc.py spawn "$n"
if command -v go >/dev/null; then
  (cd bench/peers/go_proc && go build -o "../../../$dir/bench/go_proc" . )
  printf 'go:      '; "$dir/bench/go_proc" spawn "$n"
fi
echo "== communicate $mib MiB through cat (best of 3)"
printf 'cio:     '; "$dir/bench/bench_proc_communicate" "$mib"
printf 'asyncio: '; $py bench/peers/python/proc.py communicate "$mib"
if command -v go >/dev/null; then
  printf 'go:      '; "$dir/bench/go_proc" communicate "$mib"
fi
