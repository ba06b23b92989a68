/* cio — asyncio for C.
 *
 * The umbrella header. Every asyncio name that makes sense in C has a cio_
 * twin with the same meaning; where C forces a difference the area header says
 * so. Start with cio_run() (asyncio.run) in loop.h and cio_create_task() /
 * cio_sleep() in task.h; structured concurrency (TaskGroup, gather,
 * wait, wait_for, timeouts, shield, as_completed) is in group.h; sync.h has
 * asyncio's Lock, Event, Condition, Semaphore and Barrier, queue.h its
 * Queue, LifoQueue and PriorityQueue; io.h has fd waits, add_reader and
 * the sock_* calls, executor.h the thread pool (run_in_executor, to_thread),
 * stream.h open_connection, start_server and the stream reader/writer,
 * process.h create_subprocess_exec/_shell, signal.h add_signal_handler,
 * runner.h asyncio.Runner (and what cio_run does on Ctrl-C), tls.h TLS
 * contexts (ssl.SSLContext) for streams.
 */
#ifndef CIO_H
#define CIO_H

#include "cio/version.h" /* generated into the build tree, installed with the others */
#include "cio/errors.h"
#include "cio/loop.h"
#include "cio/future.h"
#include "cio/task.h"
#include "cio/group.h"
#include "cio/sync.h"
#include "cio/queue.h"
#include "cio/io.h"
#include "cio/executor.h"
#include "cio/debug.h"
#include "cio/file.h"
#include "cio/stream.h"
#include "cio/signal.h"
#include "cio/runner.h"
#include "cio/process.h"
#include "cio/tls.h"

#endif
