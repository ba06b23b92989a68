#!/bin/sh
# Start a local nginx (tools/nginx.sh) in a temp dir, run the given test
# program against it, stop nginx. Usage: run.sh <test program>
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'sh "$root/tools/nginx.sh" stop "$dir"; rm -rf "$dir"' EXIT
CIO_NGINX_DELAY=0.05 sh "$root/tools/nginx.sh" start "$dir" >/dev/null
export CIO_TEST_NGINX_DIR="$dir" CIO_TEST_HTTPS_PORT="$(cat "$dir/port")"
"$@"
