# Shared by the example test scripts: . "$(dirname "$0")/lib.sh"

# wait_port FILE [PID]: print the port of the "serving on 127.0.0.1:PORT"
# line a server writes to FILE, waiting up to 5 s for it (or until PID, if
# given, has exited). Prints nothing if it never came.
wait_port() {
  _p=""
  for _i in $(seq 1 100); do
    _p=$(sed -n 's/^serving on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$1")
    [ -n "$_p" ] && break
    [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && break # it exited
    sleep 0.05
  done
  echo "$_p"
}
