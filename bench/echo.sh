#!/bin/sh
# Echo benchmark: examples/echo_server (cio streams, one task per connection)
# and bench/sock_echo (the same on the sock_* calls) against bench/epoll_echo
# (a minimal hand-written epoll server: the physical limit),
# under bench/echo_load (C, epoll, closed loop: one 64-byte request in flight
# per connection) with 1, 50 and 1,000 connections. Server on CPU 0, load on
# CPU 1 (taskset). The servers run alternately, each twice per
# connection count, so that drift on a shared machine hits both alike.
# Loopback only. Short runs: about 3 s each, ~40 s in all.
#
# Usage: bench/echo.sh [build-dir=build] [seconds=3] [size=64]
set -eu
build=${1:-build}
secs=${2:-3}
size=${3:-64}
cio_srv="$build/examples/echo_server"
sock_srv="$build/bench/bench_sock_echo"
epoll_srv="$build/bench/bench_epoll_echo"
load="$build/bench/bench_echo_load"
for b in "$cio_srv" "$sock_srv" "$epoll_srv" "$load"; do
  [ -x "$b" ] || { echo "missing $b: build first (ninja -C $build)"; exit 1; }
done
pin_srv="taskset -c 0"
pin_load="taskset -c 1"
if ! taskset -c 0,1 true 2>/dev/null; then pin_srv=""; pin_load=""; fi
out=$(mktemp)
srv=""
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -f "$out"' EXIT

# run NAME BINARY CONNS -> prints the load line, sets $rps
run() {
  : >"$out"
  $pin_srv timeout $((secs * 3 + 30)) "$2" 127.0.0.1 0 >"$out" 2>&1 &
  srv=$!
  port=""
  for i in $(seq 1 100); do
    port=$(sed -n 's/^serving on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "$1 did not start:"; cat "$out"; exit 1; }
  line=$($pin_load "$load" 127.0.0.1 "$port" "$3" "$secs" "$size")
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  srv=""
  printf '  %-6s %s\n' "$1" "$line"
  rps=$(echo "$line" | sed -n 's/.*rps=\([0-9]*\).*/\1/p')
}

echo "echo benchmark: ${size}-byte request/response, ${secs} s per run, $(nproc) CPUs, $(uname -r)"
for conns in 1 50 1000; do
  echo "connections=$conns"
  best_cio=0
  best_sock=0
  best_epoll=0
  for round in 1 2; do
    run cio "$cio_srv" "$conns"
    [ "$rps" -gt "$best_cio" ] && best_cio=$rps
    run sock "$sock_srv" "$conns"
    [ "$rps" -gt "$best_sock" ] && best_sock=$rps
    run epoll "$epoll_srv" "$conns"
    [ "$rps" -gt "$best_epoll" ] && best_epoll=$rps
  done
  awk -v c="$best_cio" -v s="$best_sock" -v e="$best_epoll" -v n="$conns" \
    'BEGIN { printf "  => conns=%d best rps: cio streams %d, cio sock_* %d, epoll %d, streams/sock = %.2f, streams/epoll = %.2f\n", n, c, s, e, s ? c / s : 0, e ? c / e : 0 }'
done
