#!/bin/sh
# End to end: examples/echo_server on an ephemeral loopback port, serving
# three connections, and examples/echo_client sending lines to 127.0.0.1 and
# to "localhost" (resolved in the thread pool). Bounded: the server exits
# after its third connection, and is killed after 20 s in any case.
set -eu
. "$(dirname "$0")/lib.sh"
unset CIO_VIRTUAL_TIME  # real time: the examples run as users run them
dir="$1"
out=$(mktemp)
got=$(mktemp)
trap 'kill "$srv" 2>/dev/null || true; rm -f "$out" "$got"' EXIT
timeout 20 "$dir/echo_server" 127.0.0.1 0 3 >"$out" 2>&1 &
srv=$!
port=$(wait_port "$out")
[ -n "$port" ] || { echo "FAIL: the server did not start"; cat "$out"; exit 1; }
timeout 10 "$dir/echo_client" 127.0.0.1 "$port" 3 >"$got"
timeout 10 "$dir/echo_client" localhost "$port" 2 >>"$got"
timeout 10 "$dir/echo_client" 127.0.0.1 "$port" 0 >>"$got"
printf '%s\n' "connected to 127.0.0.1:$port" "reply: line 1" "reply: line 2" "reply: line 3" \
  "connected to localhost:$port" "reply: line 1" "reply: line 2" "connected to 127.0.0.1:$port" |
  diff -u - "$got" || { echo "FAIL: client output differs"; exit 1; }
wait "$srv" || { echo "FAIL: the server exited with $?"; cat "$out"; exit 1; }
# Refused: nothing listens any more.
if timeout 10 "$dir/echo_client" 127.0.0.1 "$port" 1 >/dev/null 2>"$got"; then
  echo "FAIL: the client connected to a closed port"; exit 1
fi
grep -q "Connection refused" "$got" || { echo "FAIL: no 'Connection refused' message:"; cat "$got"; exit 1; }
echo "ok: echo_server + echo_client"
