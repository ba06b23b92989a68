#!/bin/sh
# Build the API reference (HTML: build/docs/html/index.html) and the man
# pages (build/docs/man/man3), installing doxygen first if it is missing.
# Fails on an undocumented public name.
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
cmake -S . -B build -G Ninja -DCIO_BUILD_DOCS=ON >/dev/null
cmake --build build --target docs
echo "docs: $(pwd)/build/docs/html/index.html, man pages in build/docs/man/man3"
