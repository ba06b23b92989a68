#!/bin/sh
# Install cio from a build tree into a scratch prefix, then build and run
# consumers three ways: pkg-config (C), find_package(cio) (CMake), and C++.
set -eu
build=$1
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n 1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$tmp/c" "$src/consumer.c" \
  $(pkg-config --cflags --libs cio) -Wl,-rpath,"$libdir"
[ "$("$tmp/c")" = "installed" ]
# Stack-clash protection is handed to users where the compiler has it.
if echo 'int x;' | cc -fstack-clash-protection -x c -c -o /dev/null - 2>/dev/null; then
  pkg-config --cflags cio | grep -q -- -fstack-clash-protection
  grep -q -- -fstack-clash-protection "$libdir"/cmake/cio/cioTargets.cmake
fi
c++ -std=c++17 -Wall -Wextra -Werror -o "$tmp/cpp" "$src/consumer.cpp" \
  $(pkg-config --cflags cio) -L"$libdir" -Wl,-rpath,"$libdir" -lcio -lpthread
[ "$("$tmp/cpp")" = "from C++" ]
cmake -S "$src" -B "$tmp/cm" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
ninja -C "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/consumer" | grep -qx installed
# Man pages come with the library when the docs were built (`man cio_create_task`).
if [ -d "$build/docs/man/man3" ]; then
  test -f "$tmp/prefix/share/man/man3/cio_create_task.3" || { echo "FAIL: no man page"; exit 1; }
  if command -v man >/dev/null; then MANPATH="$tmp/prefix/share/man" man -w cio_create_task >/dev/null; fi
fi
# The optional libcurl bridge, when it was built: pkg-config cio-curl and cio::curl.
if [ -f "$libdir/pkgconfig/cio-curl.pc" ]; then
  cc -std=c11 -Wall -Wextra -Werror -o "$tmp/curl" "$src/consumer_curl.c" \
    $(pkg-config --cflags --libs cio-curl) -Wl,-rpath,"$libdir"
  [ "$("$tmp/curl")" = "curl bridge" ]
  cmake -S "$src" -B "$tmp/cmc" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" -DWITH_CURL=ON >/dev/null
  ninja -C "$tmp/cmc" >/dev/null
  LD_LIBRARY_PATH="$libdir" "$tmp/cmc/consumer_curl" | grep -qx "curl bridge"
  echo "ok: cio-curl.pc and cio::curl consumers"
fi
echo "ok: pkg-config, C++ and find_package(cio) consumers"
