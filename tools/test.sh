#!/bin/sh
# Build cio and run every test with ctest.
#   tools/test.sh            the normal build (build/)
#   tools/test.sh asan       AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   tools/test.sh ucontext   the portable ucontext context switch (build-ucontext/)
#   tools/test.sh tsan       ThreadSanitizer (build-tsan/)
#   tools/test.sh clang      clang with -Werror (build-clang/)
#   tools/test.sh arm64      cross-built for AArch64, run under qemu-user (build-arm64/)
#   tools/test.sh debug      the normal build with CIO_DEBUG=1 (debug mode in every loop);
#                            fails if debug mode reported anything the tests did not ask for
#   tools/test.sh uring      the normal build, every test on the io_uring back end
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
flavour=${1:-default}
jobs=$(nproc)
case $flavour in
  default)  dir=build;          opts="" ;;
  uring)    dir=build;          opts=""; export CIO_BACKEND=uring ;;
  asan)     dir=build-asan;     opts="-DCIO_SANITIZE=address,undefined -DCIO_BUILD_BENCH=OFF" ;;
  ucontext) dir=build-ucontext; opts="-DCIO_SWITCH=ucontext -DCIO_BUILD_BENCH=OFF" ;;
  tsan)     dir=build-tsan;     opts="-DCIO_SANITIZE=thread -DCIO_BUILD_BENCH=OFF"
            # The tests where threads meet: cross-thread calls, loops in
            # threads, the executor, the stall watchdog. (TSan caps fibers+threads at 8128, so
            # the 10,000-task tests cannot run under it.)
            filter="-R test_(loop|executor|io|sock|hardening|debug|curl|signal|process|runner)" ;;
  clang)    dir=build-clang;    opts="-DCIO_WERROR=ON"; export CC=clang ;;
  arm64)    dir=build-arm64;    opts="-DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCIO_BUILD_BENCH=OFF -DCIO_TLS=OFF"
            # For the assembly switch and the layers on it. The I/O layer's
            # tests need threads and live sockets, which qemu-user does not
            # run reliably (a plain pthread_create hangs on recent kernels);
            # that layer has no architecture-specific code. Nor do signals,
            # processes and the Runner (qemu-user emulates vfork and signals).
            # TLS is off there (its tests need live sockets too; no
            # libssl-dev:arm64).
            filter="-E (test_(executor|io|sock|stream|server|signal|process|runner|file)|example_(streams_hello|subprocess_shell|file_lines))"
            sh tools/deps.sh arm64 ;;
  debug)    dir=build;          opts=""
            # Slow steps over 1.5 s only: the shared CI machine is noisy and a
            # few tests block the loop on purpose (test_debug checks 0.1 s).
            export CIO_DEBUG=1 CIO_SLOW_CALLBACK_DURATION=${CIO_SLOW_CALLBACK_DURATION:-1.5}
            log="$dir/debug-suite.log"
            verbose="-V" ;;
  *) echo "usage: tools/test.sh [asan|ucontext|tsan|clang|arm64|debug|uring]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja $opts >/dev/null
ninja -C "$dir" -j "$jobs"
# Leak checking stays on under ASan; stack-switching tasks are known to ASan.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# The stall watchdog wakes a loop that lost a cross-thread wake-up and says
# so: in the tests that is a bug to fail on, not one to pass over.
lost_wakeups() {
  if grep -n "a lost wake-up" "$dir/Testing/Temporary/LastTest.log"; then
    echo "the stall watchdog reported a lost wake-up (full output: $dir/Testing/Temporary/LastTest.log)" >&2
    exit 1
  fi
}
if [ -z "${log:-}" ]; then
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" ${filter:-}
  lost_wakeups
  exit 0
fi
# Debug flavour: the whole output is kept, then searched for debug mode's own
# reports (test_debug triggers them on purpose, into its own handler).
rc=0
ctest --test-dir "$dir" --output-on-failure -j "$jobs" $verbose ${filter:-} >"$log" 2>&1 || rc=$?
tail -n 3 "$log"
lost_wakeups
if grep -nE "Executing (task|callback)|was never completed|Non-thread-safe operation|handle was never released|task created at:" "$log"; then
  echo "debug mode reported the lines above (full output: $log)" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || { grep -E "\*\*\*|Failed|FAILED" "$log" >&2; echo "full output: $log" >&2; }
exit "$rc"
