#!/bin/sh
# The tour's crawler stop (tools/tour.sh): the seed's "100 URLs" claim in
# numbers, against a local nginx over HTTPS (tools/nginx.sh: a CA and a
# certificate of its own, a free port, each page answered after 0.2 s), so
# no internet is needed. Concurrently the 100 pages take about one response
# time; one by one, 20 of them already take 20 response times (100 would
# take ~20 s, so the tour does 20). Usage: tools/tour_crawl.sh [build-dir]
set -eu
bin=${1:-build}/examples/crawl
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$bin" ] || { echo "(crawl was not built: libcurl4-openssl-dev missing)"; exit 0; }
dir=$(mktemp -d)
trap 'sh "$root/tools/nginx.sh" stop "$dir"; rm -rf "$dir"' EXIT
CIO_NGINX_DELAY=0.2 sh "$root/tools/nginx.sh" start "$dir" >/dev/null
base="https://127.0.0.1:$(cat "$dir/port")/page/"
out=$(mktemp -p "$dir")
show() { # the first three lines, a count, the last two (the last is 總耗時)
  head -n 3 "$out"
  echo "... ($(($(wc -l <"$out") - 5)) more lines)"
  tail -n 2 "$out"
}
echo "=== crawl: 100 pages at once (each answered after 0.2 s)"
echo "\$ crawl --cacert ca.pem -n 100 $base"
"$bin" --cacert "$dir/ca.pem" -n 100 "$base" >"$out"
show
echo
echo "=== crawl --sequential: 20 pages one by one"
echo "\$ crawl --sequential --cacert ca.pem -n 20 $base"
"$bin" --sequential --cacert "$dir/ca.pem" -n 20 "$base" >"$out"
show
echo
