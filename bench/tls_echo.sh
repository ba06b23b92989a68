#!/bin/sh
# TLS echo benchmark: server CPU per request on established TLS connections.
# Servers: examples/echo_server --tls (cio streams over OpenSSL), asyncio's
# start_server(ssl=) (bench/peers/python/echo_server.py --tls), and Go's
# crypto/tls (bench/peers/go, when `go` is installed). Load:
# bench/tls_echo_load (cio TLS client, closed loop, one 64-byte request in
# flight per connection, handshakes done before the clock starts), with 1
# and 50 connections. Server on CPU 0, load on CPU 1. Each server is
# measured twice per connection count, alternately. Loopback only.
# The figure is the server's CPU time (user + system, /proc/PID/stat) over
# the measured seconds divided by the requests served: lower is better, and
# it does not depend on how fast the load generator is.
#
# Usage: bench/tls_echo.sh [build-dir=build] [seconds=3]
set -eu
build=${1:-build}
secs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
load="$build/bench/bench_tls_echo_load"
cio_srv="$build/examples/echo_server"
for b in "$cio_srv" "$load"; do
  [ -x "$b" ] || { echo "missing $b: build first (ninja -C $build)"; exit 1; }
done
command -v openssl >/dev/null || { echo "needs the openssl command"; exit 1; }
tmp=$(mktemp -d)
srv=""
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null || true; rm -rf "$tmp"' EXIT
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $ec -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req $ec -keyout "$tmp/key.pem" -out "$tmp/srv.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/ext.cnf"
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -out "$tmp/cert.pem" -days 2 -extfile "$tmp/ext.cnf" 2>/dev/null
cert="$tmp/cert.pem"
key="$tmp/key.pem"

pin_srv="taskset -c 0"
pin_load="taskset -c 1"
if ! taskset -c 0,1 true 2>/dev/null; then pin_srv=""; pin_load=""; fi

go_bin=""
if command -v go >/dev/null; then
  go_bin="$tmp/peer-go"
  (cd "$root/bench/peers/go" && go build -o "$go_bin" .) || go_bin=""
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME CMD... (CMD may contain PORT) -> prints the load line
run() {
  name=$1
  conns=$2
  shift 2
  port=$(free_port)
  cmd=$(echo "$*" | sed "s/PORT/$port/g")
  # shellcheck disable=SC2086
  $pin_srv $cmd >"$tmp/out" 2>&1 &
  srv=$!
  for i in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.1)" 2>/dev/null && break
    sleep 0.05
  done
  line=$($pin_load "$load" "$tmp/ca.pem" "$port" "$conns" "$secs" 64 "$srv" 2>&1) || line="FAILED: $line"
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  srv=""
  printf '  %-8s %s\n' "$name" "$line"
}

echo "TLS echo: 64-byte request/response over TLS 1.3 (P-256 certificate), ${secs} s per run, $(nproc) CPUs, $(uname -r), $(openssl version)"
for conns in 1 50; do
  echo "connections=$conns"
  for round in 1 2; do
    run cio "$conns" "$cio_srv" --tls "$cert" "$key" 127.0.0.1 PORT
    run asyncio "$conns" python3 "$root/bench/peers/python/echo_server.py" PORT --tls "$cert" "$key"
    if [ -n "$go_bin" ]; then
      run go "$conns" env GOMAXPROCS=1 "$go_bin" echo PORT "$cert" "$key"
    fi
  done
done
