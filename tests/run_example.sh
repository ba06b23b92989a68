#!/bin/sh
# Run an example under the virtual clock and compare its output with the
# expected file. The expected file holds the stdout lines, then a last line
# "# loop time: S.SSS" with the loop time cio_run reports (CIO_TRACE_RUN=1).
# Wall-clock times (HH:MM:SS, as the seeds print them) are masked.
set -eu
bin=$1
expected=$2
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err" "$out.want" "$out.got"' EXIT
# CIO_RUN_PREFIX: an emulator for cross builds (qemu-aarch64 -L ...).
CIO_VIRTUAL_TIME=1 CIO_TRACE_RUN=1 ${CIO_RUN_PREFIX:-} "$bin" >"$out" 2>"$err" || {
  echo "FAIL: $bin exited with $?"; cat "$err"; exit 1; }
loop_time=$(sed -n 's/^cio_run: loop time \(.*\) s$/\1/p' "$err" | tail -n 1)
{ cat "$out"; echo "# loop time: $loop_time"; } | sed 's/[0-9][0-9]:[0-9][0-9]:[0-9][0-9]/HH:MM:SS/g' >"$out.got"
sed 's/[0-9][0-9]:[0-9][0-9]:[0-9][0-9]/HH:MM:SS/g' "$expected" >"$out.want"
if ! diff -u "$out.want" "$out.got"; then
  echo "FAIL: output of $(basename "$bin") differs from $expected"
  grep -v '^cio_run: loop time' "$err" || true
  exit 1
fi
if grep -v '^cio_run: loop time' "$err" | grep -q .; then
  echo "FAIL: $(basename "$bin") wrote to stderr:"; grep -v '^cio_run: loop time' "$err"; exit 1
fi
echo "ok: $(basename "$bin")"
