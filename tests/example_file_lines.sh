#!/bin/sh
# examples/file_lines on both back ends: the line count of the file it
# writes, and a ticker that kept running while the file was read.
set -eu
unset CIO_VIRTUAL_TIME
dir="$1"
for backend in epoll uring; do
  out=$(CIO_BACKEND=$backend timeout 30 "$dir/file_lines")
  echo "$out"
  echo "$out" | grep -q ": 1000000 lines$" || { echo "FAIL: wrong count on $backend"; exit 1; }
  echo "$out" | grep -q "the ticker ran [0-9]* times" || { echo "FAIL: no ticker line on $backend"; exit 1; }
done
echo "ok: file_lines"
