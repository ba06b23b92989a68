#!/bin/sh
# End to end: examples/crawl against a local nginx over HTTPS
# (tools/nginx.sh, pages answered after 0.2 s). 100 URLs at once must take
# about one response time (well under 100 x 0.2 s), 10 one by one at least
# 10 x 0.2 s; every page is counted in characters (UTF-8), in URL order.
# Skipped (passes) when crawl was not built (no libcurl).
set -eu
unset CIO_VIRTUAL_TIME  # real time: the example runs as users run it
dir="$1"
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$dir/crawl" ] || { echo "skipped: crawl not built (no libcurl)"; exit 0; }
tmp=$(mktemp -d)
trap 'sh "$root/tools/nginx.sh" stop "$tmp"; rm -rf "$tmp"' EXIT
CIO_NGINX_DELAY=0.2 sh "$root/tools/nginx.sh" start "$tmp" >/dev/null
base="https://127.0.0.1:$(cat "$tmp/port")/page/"
# The page for /page/N has 123 characters plus the digits of N (in bytes it
# is longer: it has Chinese text).
expect() {
  for i in $(seq 1 "$1"); do echo "$base$i:$((123 + ${#i})) 字元"; done
}
timeout 30 "$dir/crawl" --cacert "$tmp/ca.pem" -n 100 "$base" >"$tmp/out"
expect 100 | diff -u - "$(sed '$d' "$tmp/out" >"$tmp/lines"; echo "$tmp/lines")" ||
  { echo "FAIL: concurrent output differs"; exit 1; }
t=$(sed -n 's/^總耗時:\([0-9.]*\) 秒$/\1/p' "$tmp/out")
[ -n "$t" ] || { echo "FAIL: no 總耗時 line"; cat "$tmp/out"; exit 1; }
awk -v t="$t" 'BEGIN { exit !(t >= 0.2 && t < 5) }' ||
  { echo "FAIL: 100 concurrent pages took $t s (expected about 0.2 s, < 5 s)"; exit 1; }
timeout 30 "$dir/crawl" --sequential --cacert "$tmp/ca.pem" -n 10 "$base" >"$tmp/out"
expect 10 | diff -u - "$(sed '$d' "$tmp/out" >"$tmp/lines"; echo "$tmp/lines")" ||
  { echo "FAIL: sequential output differs"; exit 1; }
ts=$(sed -n 's/^總耗時:\([0-9.]*\) 秒$/\1/p' "$tmp/out")
awk -v t="$ts" 'BEGIN { exit !(t >= 2.0 && t < 10) }' ||
  { echo "FAIL: 10 sequential pages took $ts s (expected >= 2 s)"; exit 1; }
# A refused connection is reported per URL, with curl's message, exit 1.
if "$dir/crawl" https://127.0.0.1:1/ >"$tmp/out" 2>"$tmp/err"; then
  echo "FAIL: crawl succeeded against a closed port"; exit 1
fi
grep -q "Couldn't connect to server" "$tmp/err" || { echo "FAIL:"; cat "$tmp/err"; exit 1; }
echo "ok: crawl, 100 at once in $t s, 10 one by one in $ts s"
