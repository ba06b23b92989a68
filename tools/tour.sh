#!/bin/sh
# The tour of the seeds' examples, in real time: each program's output,
# then its elapsed wall time. Usage: tools/tour.sh [build-dir]
set -eu
dir=${1:-build}
examples="
hello_world say_after_sequential say_after_tasks say_after_taskgroup nested
dosomething gather_exceptions chain future_mark_done producer_consumer
coro_vs_task fetch_sync fetch_gather workers fetch_five wait_for_timeout
gather_report factorial background_tasks lock_workers to_thread
blocking_mistake wait_first_completed as_completed streams_hello
subprocess_ls subprocess_shell signals file_lines"
total=0
for name in $examples; do
  bin=$dir/examples/$name
  [ -x "$bin" ] || continue
  echo "=== $name"
  start=$(date +%s.%N)
  if [ "$name" = signals ]; then
    # Ctrl-C after a second (the tour sends it): main's cleanup runs, exit 130.
    env --default-signal=INT "$bin" ctrl-c & pid=$!
    sleep 1; kill -INT "$pid"; wait "$pid" || true
  else
    "$bin"
  fi
  end=$(date +%s.%N)
  elapsed=$(echo "$end - $start" | awk '{printf "%.3f", $1 - $3}')
  echo "--- $name took ${elapsed} s"
  echo
done
# The seed's crawler over HTTPS against a local nginx (issue 11).
sh "$(dirname "$0")/tour_crawl.sh" "$dir"
