#!/bin/sh
# Real-time check of examples/blocking_mistake.c: with sleep(1) inside a task
# the first tick comes only after the sleep (about 1.0 s instead of 0.2 s);
# with either fix every tick is on time (0.2 s apart, at most 0.15 s late).
set -eu
unset CIO_VIRTUAL_TIME  # real time: the examples run as users run them
bin="$1/blocking_mistake"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bin" >"$out" 2>&1 || { echo "FAIL: blocking_mistake exited with $?"; cat "$out"; exit 1; }
cat "$out"
awk '
  /^-- / { part++; next }
  / s: tick [1-5]/ {
    t = $1 + 0; i = $4 + 0; want = 0.2 * i
    if (part == 1) {
      if (i == 1 && t < 0.95) { printf "FAIL: part 1 tick 1 at %.2f s: the blocking sleep did not stall the loop\n", t; bad = 1 }
      if (i == 1) stalled = 1
    } else if (t < want - 0.01 || t > want + 0.15) {
      printf "FAIL: part %d tick %d at %.2f s, expected %.2f s\n", part, i, t, want; bad = 1
    }
    ticks[part]++
  }
  / s: worker done$/ {
    t = $1 + 0
    if (t < 0.99 || t > 1.15) { printf "FAIL: part %d worker done at %.2f s\n", part, t; bad = 1 }
  }
  END {
    if (part != 3 || !stalled) { print "FAIL: expected three parts and a stall in the first"; bad = 1 }
    for (p = 1; p <= 3; p++) if (ticks[p] != 5) { printf "FAIL: part %d has %d ticks\n", p, ticks[p]; bad = 1 }
    exit bad
  }' "$out"
echo "ok: blocking_mistake"
