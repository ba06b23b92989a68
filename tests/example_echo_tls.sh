#!/bin/sh
# End to end over TLS: a CA and a server certificate for localhost and
# 127.0.0.1 made here with the openssl command; examples/echo_server --tls
# serving two connections; examples/echo_client --tls trusting that CA, by
# IP address and by name; Python's ssl module as a client (another TLS
# program); and a client trusting another CA, which must fail with the
# certificate error (that connection never reaches the handler).
set -eu
. "$(dirname "$0")/lib.sh"
unset CIO_VIRTUAL_TIME  # real time: the examples run as users run them
dir="$1"
command -v openssl >/dev/null || { echo "SKIP: no openssl command"; exit 0; }
tmp=$(mktemp -d)
srv=""
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cd "$tmp"
q() { "$@" >/dev/null 2>&1 || { echo "FAIL: $*"; "$@"; exit 1; }; }
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
q openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj "/CN=cio example CA"
q openssl req $ec -keyout key.pem -out srv.csr -subj "/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
q openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 \
  -extfile ext.cnf
q openssl req -x509 $ec -keyout other.key -out other.pem -days 2 -subj "/CN=another CA"

conns=2
py=$(command -v python3 || true)
[ -n "$py" ] && conns=3
timeout 20 "$dir/echo_server" --tls cert.pem key.pem 127.0.0.1 0 $conns >out 2>&1 &
srv=$!
port=$(wait_port out "$srv")
if [ -z "$port" ] && grep -q "built without TLS" out; then
  echo "SKIP: cio was built without TLS (CIO_TLS=OFF)"; exit 0
fi
[ -n "$port" ] || { echo "FAIL: the server did not start"; cat out; exit 1; }
# A CA the server's certificate does not come from: refused, with the reason.
if timeout 10 "$dir/echo_client" --tls other.pem 127.0.0.1 "$port" 1 >/dev/null 2>err; then
  echo "FAIL: a client trusting another CA connected"; exit 1
fi
grep -q "certificate verify failed.*unable to get local issuer certificate" err ||
  { echo "FAIL: no certificate error message:"; cat err; exit 1; }
timeout 10 "$dir/echo_client" --tls ca.pem 127.0.0.1 "$port" 3 >got
timeout 10 "$dir/echo_client" --tls ca.pem localhost "$port" 2 >>got
printf '%s\n' "connected to 127.0.0.1:$port" "reply: line 1" "reply: line 2" "reply: line 3" \
  "connected to localhost:$port" "reply: line 1" "reply: line 2" |
  diff -u - got || { echo "FAIL: client output differs"; exit 1; }
if [ -n "$py" ]; then
  got=$(timeout 10 "$py" -c "
import socket, ssl
ctx = ssl.create_default_context(cafile='ca.pem')
with ctx.wrap_socket(socket.create_connection(('127.0.0.1', $port)), server_hostname='localhost') as s:
    s.sendall(b'from python\n')
    data = b''
    while not data.endswith(b'\n'):
        data += s.recv(100)
    print(data.decode().strip(), s.version())
") || { echo "FAIL: the Python ssl client failed"; exit 1; }
  [ "$got" = "from python TLSv1.3" ] || { echo "FAIL: Python client got '$got'"; exit 1; }
fi
wait "$srv" || { echo "FAIL: the server exited with $?"; cat out; exit 1; }
srv=""
echo "ok: echo_server --tls + echo_client --tls"
