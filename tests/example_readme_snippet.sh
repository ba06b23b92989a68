#!/bin/sh
# The README's first snippet is what a new user copies first: it must build
# cleanly with -Wall -Wextra -Wpedantic -Werror against the in-tree headers
# and library, and print "1" then "2" (run under the virtual clock).
set -eu
bin=$(cd "$1/.." && pwd)           # the build directory (we get its examples/)
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The first ```c block of README.md.
awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on { print }' "$src/README.md" >"$tmp/snippet.c"
[ -s "$tmp/snippet.c" ] || { echo "FAIL: no C snippet in README.md"; exit 1; }
cc=${CC:-cc}
san=$(sed -n 's/^CIO_SANITIZE:[A-Z]*=//p' "$bin/CMakeCache.txt" 2>/dev/null || true)
flags=""
[ -n "$san" ] && flags="-fsanitize=$san"
$cc -std=c11 -Wall -Wextra -Wpedantic -Werror $flags -I"$src/include" -I"$bin/include" -c "$tmp/snippet.c" -o "$tmp/snippet.o" ||
  { echo "FAIL: the README snippet does not compile cleanly"; exit 1; }
libs="-lpthread -lm -ldl"
grep -q '^CIO_HAVE_LIBURING:INTERNAL=TRUE' "$bin/CMakeCache.txt" 2>/dev/null && libs="$libs -luring"
$cc $flags "$tmp/snippet.o" "$bin/libcio.a" $libs -o "$tmp/snippet" ||
  { echo "FAIL: the README snippet does not link"; exit 1; }
out=$(CIO_VIRTUAL_TIME=1 ASAN_OPTIONS=detect_leaks=1 "$tmp/snippet")
[ "$out" = "$(printf '1\n2')" ] || { echo "FAIL: output was: $out"; exit 1; }
echo "README snippet: builds with -Wall -Wextra -Wpedantic -Werror, prints 1 2"
