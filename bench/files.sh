#!/bin/sh
# File I/O benchmark (issue 14): a file of SIZE MiB (default 1024) read
# sequentially in 64 KiB chunks (cio: with cio_file_read, then through a
# file stream), then 200,000 random 4 KiB reads with 64 in
# flight: cio on io_uring, cio on epoll (the thread pool), plain blocking
# pread (the limit), asyncio + aiofiles, asyncio + to_thread. The file is
# read once first, so every run reads from the page cache: this compares the
# mechanisms, not the disk.
# Usage: bench/files.sh [build-dir=build] [MiB=1024]
set -eu
build=${1:-build}
mib=${2:-1024}
bin="$build/bench/bench_file_read"
[ -x "$bin" ] || { echo "missing $bin: build first"; exit 1; }
f=$(mktemp /tmp/cio_files.XXXXXX)
trap 'rm -f "$f"' EXIT
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$f"
cat "$f" >/dev/null
# Debian's Python: python3-aiofiles is installed for it (bench/run.sh).
py=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ] && py=/usr/bin/python3
echo "files: ${mib} MiB, $(nproc) CPUs, $(uname -r)"
for round in 1 2; do
  CIO_BACKEND=uring "$bin" "$f"
  CIO_BACKEND=epoll "$bin" "$f"
  CIO_STALL_DETECTOR=0 "$bin" "$f" --blocking  # blocks its loop on purpose
  $py -c 'import aiofiles' 2>/dev/null && $py bench/peers/python/file_read.py "$f" aiofiles ||
    echo "file_read: asyncio aiofiles: skipped (apt-get install python3-aiofiles)"
  $py bench/peers/python/file_read.py "$f" to_thread
done
