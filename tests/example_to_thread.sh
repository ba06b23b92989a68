#!/bin/sh
# Real-time check of examples/to_thread.c: while a worker thread sleeps 1 s,
# both tickers tick at 0.2, 0.4, 0.6, 0.8 s (timers never fire early; allow
# 0.15 s late on a busy machine), and to_thread returns after about 1 s.
set -eu
unset CIO_VIRTUAL_TIME  # real time: the examples run as users run them
bin="$1/to_thread"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bin" >"$out" 2>&1 || { echo "FAIL: to_thread exited with $?"; cat "$out"; exit 1; }
cat "$out"
awk '
  function check(t, want, what) {
    if (t < want - 0.01 || t > want + 0.15) { printf "FAIL: %s at %.2f s, expected %.2f s\n", what, t, want; bad = 1 }
  }
  / s: tick [AB][1-4]$/ { i = substr($4, 2) + 0; check($1 + 0, 0.2 * i, $3 " " $4); ticks++ }
  / s: to_thread returned$/ { check($1 + 0, 1.0, "to_thread returned"); returned = 1 }
  /^start blocking_io/ { started = 1 }
  /^blocking_io complete/ { completed = 1 }
  END {
    if (ticks != 8) { print "FAIL: " ticks " ticks, expected 8"; bad = 1 }
    if (!returned || !started || !completed) { print "FAIL: missing lines"; bad = 1 }
    exit bad
  }' "$out"
echo "ok: to_thread"
