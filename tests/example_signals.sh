#!/bin/sh
# Real-time check of examples/signals.c: the add_signal_handler example ends
# cleanly on SIGTERM and on SIGINT (exit 0, the handler's line, then main's
# cleanup), and without handlers Ctrl-C cancels the main task (its cleanup
# line) and the program exits 130. With a CPython >= 3.13 at hand
# (CIO_PYTHON), examples/py/proc/signals.py must print the same lines.
set -eu
unset CIO_VIRTUAL_TIME
bin="$1/signals"
here=$(dirname "$0")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
check() { # check program mode signal expected-status expected-lines...
  prog=$1; mode=$2; sig=$3; want_status=$4; shift 4
  # (a background job of a non-interactive shell starts with SIGINT ignored,
  # and then neither cio nor asyncio takes it over: give it the default back)
  env --default-signal=INT $prog $mode >"$out" 2>&1 &
  pid=$!
  for i in $(seq 1 200); do grep -q '^pid ' "$out" && break; sleep 0.05; done
  sleep ${CIO_SIGNAL_DELAY:-0.1}
  kill -"$sig" "$pid"
  status=0
  wait "$pid" || status=$?
  [ "$status" = "$want_status" ] || { echo "FAIL: $prog $mode on SIG$sig exited $status, expected $want_status"; cat "$out"; exit 1; }
  printf '%s\n' "$@" | diff -u - "$(sed 's/^pid [0-9]*:/pid N:/' "$out" >"$out.x"; echo "$out.x")" ||
    { echo "FAIL: $prog $mode on SIG$sig: output differs"; exit 1; }
  rm -f "$out.x"
  echo "ok: $prog $mode SIG$sig"
}
head='Event loop running for 1 hour, press Ctrl+C to interrupt.'
check "$bin" "" TERM 0 "$head" "pid N: send SIGINT or SIGTERM to exit." "got signal SIGTERM: exit" "main: cancelled, cleaning up"
check "$bin" "" INT 0 "$head" "pid N: send SIGINT or SIGTERM to exit." "got signal SIGINT: exit" "main: cancelled, cleaning up"
check "$bin" ctrl-c INT 130 "$head" "pid N: send SIGINT to exit." "main: cancelled, cleaning up" "interrupted"
py=${CIO_PYTHON:-}
CIO_SIGNAL_DELAY=1  # CPython takes longer to reach asyncio.run
if [ -n "$py" ]; then
  check "$py $here/../examples/py/proc/signals.py" "" TERM 0 "$head" "pid N: send SIGINT or SIGTERM to exit." "got signal SIGTERM: exit" "main: cancelled, cleaning up"
  check "$py $here/../examples/py/proc/signals.py" ctrl-c INT 130 "$head" "pid N: send SIGINT to exit." "main: cancelled, cleaning up" "interrupted"
fi
