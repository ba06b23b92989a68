/* Signals, two ways.
 *
 * 1. asyncio's documentation example for loop.add_signal_handler (default):
 *
 *      def ask_exit(signame, loop):
 *          print("got signal %s: exit" % signame)
 *          loop.stop()
 *      async def main():
 *          loop = asyncio.get_running_loop()
 *          for signame in {'SIGINT', 'SIGTERM'}:
 *              loop.add_signal_handler(getattr(signal, signame),
 *                                      functools.partial(ask_exit, signame, loop))
 *          await asyncio.sleep(3600)
 *
 *    The handler runs in the loop, as any callback. Stopping the loop under
 *    asyncio.run makes run() fail ("Event loop stopped before Future
 *    completed"); the clean C spelling cancels the main task instead, whose
 *    cleanup then runs.
 *
 * 2. `signals ctrl-c`: no handler at all. cio_run does what asyncio.Runner
 *    does: Ctrl-C cancels the main task, its cleanup runs, and cio_run
 *    returns CIO_EINTERRUPTED (asyncio's KeyboardInterrupt).
 *
 * examples/py/proc/signals.py is the twin; tests/example_signals.sh sends the
 * signals. */
#include <cio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static cio_task *main_task;

static void ask_exit(void *arg) {
  printf("got signal %s: exit\n", (const char *)arg);
  fflush(stdout);
  cio_task_cancel(main_task, NULL);
}

static int with_handlers(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  main_task = cio_current_task();
  int rc = cio_add_signal_handler(loop, SIGINT, ask_exit, "SIGINT");
  if (rc == 0) rc = cio_add_signal_handler(loop, SIGTERM, ask_exit, "SIGTERM");
  if (rc < 0) return rc;
  rc = cio_sleep(3600);
  if (rc == -ECANCELED) {
    printf("main: cancelled, cleaning up\n");
    cio_task_uncancel(cio_current_task()); /* handled: a clean exit */
    return 0;
  }
  return rc;
}

static int until_ctrl_c(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_sleep(3600);
  if (rc == -ECANCELED) printf("main: cancelled, cleaning up\n");
  return rc; /* let the cancellation propagate: cio_run says CIO_EINTERRUPTED */
}

int main(int argc, char **argv) {
  bool ctrl_c = argc > 1 && strcmp(argv[1], "ctrl-c") == 0;
  printf("Event loop running for 1 hour, press Ctrl+C to interrupt.\n");
  printf("pid %d: send %s to exit.\n", (int)getpid(), ctrl_c ? "SIGINT" : "SIGINT or SIGTERM");
  fflush(stdout);
  int rc = cio_run(ctrl_c ? until_ctrl_c : with_handlers, NULL, NULL);
  if (rc == CIO_EINTERRUPTED) {
    printf("interrupted\n");
    return 130; /* the shell's code for "ended by Ctrl-C" */
  }
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
