#!/bin/sh
# examples/subprocess_ls lists a directory through `ls -l`, line by line:
# the same lines as ls itself prints, numbered, then the exit status.
set -eu
unset CIO_VIRTUAL_TIME
bin="$1/subprocess_ls"
dir=$(mktemp -d)
out=$(mktemp)
trap 'rm -rf "$dir" "$out" "$out.want"' EXIT
touch "$dir/alpha" "$dir/beta"
mkdir "$dir/gamma"
"$bin" "$dir" >"$out"
{ ls -l "$dir" | awk '{ printf "%d: %s\n", NR, $0 }'; echo "[ls -l exited with 0]"; } >"$out.want"
diff -u "$out.want" "$out" || { echo "FAIL: subprocess_ls output differs"; exit 1; }
# A directory that does not exist: ls says so on stderr and exits 2.
"$bin" /nonexistent-cio >"$out" 2>/dev/null
grep -qx '\[ls -l exited with 2\]' "$out" || { echo "FAIL: exit status 2 not reported"; cat "$out"; exit 1; }
echo "ok: subprocess_ls"
