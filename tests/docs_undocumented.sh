#!/bin/sh
# The docs build fails on an undocumented public name: run Doxygen with the
# project's configuration plus a header declaring one undocumented function
# (after a documented one) and expect a failure naming it.
set -eu
doxyfile=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/cio"
cat >"$tmp/cio/extra.h" <<'H'
/* cio — a header a helper forgot to document. */
#ifndef CIO_EXTRA_H
#define CIO_EXTRA_H

/* Documented. Returns 0. */
int cio_documented_thing(void);

int cio_undocumented_thing(void);

#endif
H
{ cat "$doxyfile"; echo "INPUT += $tmp/cio/extra.h"; echo "OUTPUT_DIRECTORY = $tmp/out"; } >"$tmp/Doxyfile"
if doxygen "$tmp/Doxyfile" >"$tmp/log" 2>&1; then
  echo "FAIL: doxygen accepted an undocumented public function"; cat "$tmp/log"; exit 1
fi
grep -q "cio_undocumented_thing.*not documented" "$tmp/log" || { echo "FAIL: no warning naming it"; cat "$tmp/log"; exit 1; }
if grep -q "cio_documented_thing" "$tmp/log"; then echo "FAIL: documented one flagged"; cat "$tmp/log"; exit 1; fi
echo "ok: the docs build fails on an undocumented public name"
