#!/bin/sh
# examples/http_server with real clients (curl, Python's http.client):
# keep-alive, pipelining, bodies, each bad-input case, a client that never
# reads, 1,000 keep-alive connections. See tests/http/check_http_server.py.
# Skipped (passes) when http_server was not built (no libhttp-parser-dev).
set -eu
unset CIO_VIRTUAL_TIME
dir="$1"
[ -x "$dir/http_server" ] || { echo "skipped: http_server not built (no libhttp-parser-dev)"; exit 0; }
exec timeout 50 python3 "$(dirname "$0")/http/check_http_server.py" "$dir/http_server"
