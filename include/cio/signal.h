/* cio — Unix signals in the event loop (asyncio's loop.add_signal_handler).
 *
 * A handler added with cio_add_signal_handler() runs as an ordinary loop
 * callback (it may create tasks, complete futures, stop the loop), never in
 * signal context. The loop reads the signal from a signalfd: the signal is
 * blocked in the thread that runs the loop, and every thread cio creates (the
 * default executor, executors from cio_executor_new, name resolution) blocks
 * all asynchronous signals from the moment it is created, so a handler works
 * whether the thread pool started before or after it was added. Threads of
 * your own: create them after adding the handler (they inherit the blocked
 * mask), or block the signal in them; should one of them receive the signal
 * anyway, cio's stand-in disposition forwards it to the loop's thread, so it
 * is not lost and does not kill the process.
 *
 * Rules (asyncio's): handlers are added from the main thread (the one whose
 * thread id is the process id); one handler per signal, a second add
 * replaces the first; a signal is handled by one loop at a time.
 * While a handler is installed the loop is never reported as deadlocked (a
 * signal may still wake it), and, under the virtual clock, time jumps only
 * after a 5 ms real-time poll, as with any watched fd.
 *
 * Removing the last handler of a signal (or closing the loop) restores the
 * disposition and the blocked state the signal had before the first add.
 * Children started with cio_subprocess_exec() begin with an empty signal
 * mask whatever the loop blocks.
 */
#ifndef CIO_SIGNAL_H
#define CIO_SIGNAL_H

#include <stdbool.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run fn(arg) in `loop` each time signal `signo` arrives (signals that arrive
 * while the callback is queued may be merged into one call, as the kernel
 * merges standard signals). Replaces a handler already set for signo on this
 * loop. Does not suspend. Returns 0, or:
 *   -EINVAL       loop or fn NULL, signo out of range, SIGKILL or SIGSTOP
 *                 (cannot be caught), SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP
 *                 (synchronous faults), or a real-time signal reserved by the
 *                 C library;
 *   CIO_ECLOSED   the loop is closed;
 *   CIO_ERUNTIME  not called from the main thread (asyncio's RuntimeError);
 *   -EBUSY        another loop handles signo;
 *   -ENOMEM, -EMFILE/-ENFILE (creating the signalfd), or an error of the
 *                 poller registration (see cio_add_reader). */
CIO_NODISCARD int cio_add_signal_handler(cio_loop *loop, int signo, cio_callback_fn fn,
                                         void *arg);

/* Remove the handler of signo from loop, restoring the signal's previous
 * disposition and blocked state. A call already queued by a signal that
 * arrived before the removal does not run. Does not suspend. Returns 1 if a
 * handler was removed, 0 if there was none, -EINVAL (loop NULL or signo out
 * of range). */
int cio_remove_signal_handler(cio_loop *loop, int signo);

#ifdef __cplusplus
}
#endif
#endif
