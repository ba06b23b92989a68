/* The Runner (asyncio.Runner) and cio_run (asyncio.run). See
 * include/cio/runner.h. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cio/runner.h"
#include "task.h"

#define RUNNER_MAGIC 0x72756e6eu
#define RUNNER_DEAD 0xdead7275u /* written before free(): a stale pointer is not "live" */

struct cio_runner {
  uint32_t magic;
  bool closed, in_run, has_opts;
  cio_loop_options opts;
  cio_loop *loop;
  int64_t start_ns;
  bool started;
  /* Ctrl-C (written by the signal handler) */
  atomic_int interrupts;
  atomic_int acked; /* the loop has seen the first one */
  struct sigaction old_sigint;
  struct cio_task *main;
};

/* The runner whose run owns SIGINT now (one at a time: the main thread's). */
static _Atomic(struct cio_runner *) sigint_runner;

/* ---- Ctrl-C --------------------------------------------------------------------------- */

static void on_sigint(int signo) {
  (void)signo;
  int saved = errno;
  struct cio_runner *r = atomic_load(&sigint_runner);
  if (!r) {
    /* A stale copy of this handler, restored by someone after the run
     * ended: do what the default action does. */
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    errno = saved;
    return;
  }
  int n = atomic_fetch_add(&r->interrupts, 1) + 1;
  if (n >= 2) {
    /* Stop waiting; a third Ctrl-C acts as the program had it. */
    sigaction(SIGINT, &r->old_sigint, NULL);
    if (!atomic_load(&r->acked)) raise(SIGINT); /* stuck in a task that never yields */
  }
  cio__poller_wake(&r->loop->poller);
  errno = saved;
}

static bool install_sigint(struct cio_runner *r) {
  if ((pid_t)syscall(SYS_gettid) != getpid()) return false; /* main thread only */
  struct sigaction cur;
  if (sigaction(SIGINT, NULL, &cur) < 0) return false;
  if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL) return false; /* the user's */
  struct cio_runner *expected = NULL;
  if (!atomic_compare_exchange_strong(&sigint_runner, &expected, r)) return false;
  atomic_store(&r->interrupts, 0);
  atomic_store(&r->acked, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &r->old_sigint);
  return true;
}

static void uninstall_sigint(struct cio_runner *r) {
  struct sigaction cur;
  sigaction(SIGINT, NULL, &cur);
  if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_sigint)
    sigaction(SIGINT, &r->old_sigint, NULL);
  atomic_store(&sigint_runner, NULL);
}

/* ---- running the main task ------------------------------------------------------------- */

struct stopper {
  struct cio__cb cb;
  cio_loop *loop;
};

static void stopper_run(struct cio__cb *cb) {
  struct stopper *s = (struct stopper *)cb;
  cio_loop_stop(s->loop);
}

/* After every iteration: deliver Ctrl-C. */
static bool check_interrupt(void *arg) {
  struct cio_runner *r = arg;
  int n = atomic_load(&r->interrupts);
  if (n == 0) return false;
  if (!atomic_load(&r->acked)) {
    atomic_store(&r->acked, 1);
    cio_task_cancel(r->main, NULL);
  }
  return n >= 2;
}

static void locals_release(struct cio__locals *l) {
  while (l && --l->refs == 0) {
    struct cio__locals *next = l->next;
    free(l);
    l = next;
  }
}

/* The main task's values become the runner's (asyncio runs every main
 * coroutine in the one Context of the runner). */
static void keep_locals(cio_loop *loop, struct cio_task *t) {
  struct cio__locals *l = t->cold ? t->cold->locals : NULL;
  if (l == loop->locals) return;
  if (l) l->refs++;
  locals_release(loop->locals);
  loop->locals = l;
}

static bool runner_ok(const struct cio_runner *r) { return r && r->magic == RUNNER_MAGIC; }

static int ensure_loop(struct cio_runner *r, const char *who) {
  if (!runner_ok(r)) return cio__fail(-EINVAL, "%s: not a live runner", who);
  if (r->closed) return cio__fail(CIO_ECLOSED, "%s: the runner is closed", who);
  if (r->loop) return 0;
  int rc = cio_loop_new(&r->loop, r->has_opts ? &r->opts : NULL);
  return rc;
}

int cio_runner_new(cio_runner **out, const cio_loop_options *opts) {
  if (!out) return cio__fail(-EINVAL, "cio_runner_new: out is NULL");
  struct cio_runner *r = calloc(1, sizeof *r);
  *out = NULL;
  if (!r) return cio__fail_static(-ENOMEM, "cio_runner_new: out of memory");
  r->magic = RUNNER_MAGIC;
  if (opts) {
    r->opts = *opts;
    r->has_opts = true;
  }
  *out = r;
  return 0;
}

cio_loop *cio_runner_get_loop(cio_runner *r) {
  return ensure_loop(r, "cio_runner_get_loop") < 0 ? NULL : r->loop;
}

int cio_runner_run(cio_runner *r, cio_task_fn main_fn, void *arg, void **result) {
  const char *who = "cio_runner_run";
  if (!runner_ok(r)) return cio__fail(-EINVAL, "%s: not a live runner", who);
  if (r->closed) return cio__fail(CIO_ECLOSED, "%s: the runner is closed", who);
  if (cio__running_loop || r->in_run)
    return cio__fail(CIO_ERUNNING, "%s: cannot be called from a running event loop", who);
  if (!main_fn) return cio__fail(-EINVAL, "%s: main function is NULL", who);
  int rc = ensure_loop(r, who);
  if (rc < 0) return rc;
  cio_loop *loop = r->loop;
  struct cio_task *t = cio_loop_create_task(loop, main_fn, arg, NULL);
  if (!t) return cio_errcode();
  if (!r->started) {
    r->started = true;
    r->start_ns = cio__loop_now(loop);
  }
  r->main = t;
  r->in_run = true;
  bool sigint = install_sigint(r);
  /* run_until_complete, plus the Ctrl-C check after each iteration: a done
   * callback stops the loop, so the batch that completes the main task
   * finishes, as in asyncio. */
  struct stopper s = {.cb.run = stopper_run, .loop = loop};
  cio__future_add_waiter(&t->fut, &s.cb);
  rc = cio__loop_run_until(loop, check_interrupt, r);
  if (!cio__future_remove_waiter(&t->fut, &s.cb)) cio__loop_unqueue(loop, &s.cb);
  int interrupts = atomic_load(&r->interrupts);
  if (sigint) uninstall_sigint(r);
  r->in_run = false;
  r->main = NULL;
  if (rc >= 0) {
    if (t->fut.state == CIO__PENDING) {
      rc = interrupts >= 2 ? cio__fail(CIO_EINTERRUPTED, "interrupted by a second SIGINT: "
                                                         "stopped waiting for the main task")
                           : cio__fail(CIO_EINVALSTATE, "the event loop stopped before the "
                                                        "main task was done");
    } else {
      keep_locals(loop, t);
      rc = cio__future_outcome(&t->fut, result);
      if (rc == -ECANCELED && interrupts > 0)
        rc = cio__fail(CIO_EINTERRUPTED, "interrupted by SIGINT: the main task was cancelled");
    }
  }
  cio_task_unref(t);
  return rc;
}

/* ---- closing ----------------------------------------------------------------------------- */

struct batch {
  cio_task **tasks;
  int n;
};

static bool batch_done(void *arg) {
  struct batch *b = arg;
  for (int i = 0; i < b->n; i++)
    if (!cio_task_done(b->tasks[i])) return false;
  return true;
}

/* asyncio's _cancel_all_tasks: cancel the tasks pending now and wait for
 * them (only them), report their errors other than cancellation. Returns
 * how many there were. */
static int cancel_round(cio_loop *loop) {
  int n = cio_all_tasks(loop, NULL, 0);
  if (n <= 0) return 0;
  cio_task **tasks = malloc((size_t)n * sizeof *tasks);
  if (!tasks) return 0; /* close() will report them */
  cio_all_tasks(loop, tasks, n);
  for (int i = 0; i < n; i++) {
    cio_task_ref(tasks[i]);
    cio_task_cancel(tasks[i], NULL);
  }
  struct batch b = {tasks, n};
  int rc = cio__loop_run_until(loop, batch_done, &b);
  (void)rc; /* a task that will not end is reported by close() */
  for (int i = 0; i < n; i++) {
    cio_task *t = tasks[i];
    if (t->fut.state == CIO__ERROR) {
      t->fut.flags |= CIO__F_RETRIEVED;
      char msg[256];
      snprintf(msg, sizeof msg, "unhandled error during cio_run() shutdown (task '%s')",
               cio_task_get_name(t));
      cio_exception_context ctx = {.message = msg, .code = t->fut.code, .error = t->fut.msg,
                                   .task = t, .future = &t->fut};
      cio_loop_call_exception_handler(loop, &ctx);
    }
    cio_task_unref(t);
  }
  free(tasks);
  return n;
}

int cio_runner_close(cio_runner *r) {
  if (!runner_ok(r)) return cio__fail(-EINVAL, "cio_runner_close: not a live runner");
  if (r->closed) return 0;
  if (r->in_run || (r->loop && r->loop->running))
    return cio__fail(CIO_ERUNNING, "cio_runner_close: the runner's loop is running");
  r->closed = true;
  cio_loop *loop = r->loop;
  if (!loop) return 0;
  r->loop = NULL;
  /* Tasks started by cleanups get one more cancellation; what is left after
   * that is reported by the loop's close. */
  if (cancel_round(loop) > 0) cancel_round(loop);
  if (loop->default_executor_shutdown) loop->default_executor_shutdown(loop, true);
  const char *trace = getenv("CIO_TRACE_RUN");
  if (r->started && trace && *trace && strcmp(trace, "0") != 0)
    fprintf(stderr, "cio_run: loop time %.3f s\n",
            (double)(cio__loop_now(loop) - r->start_ns) / 1e9);
  locals_release(loop->locals);
  loop->locals = NULL;
  cio_loop_free(loop);
  return 0;
}

int cio_runner_free(cio_runner *r) {
  if (!r) return 0;
  int rc = cio_runner_close(r);
  if (rc < 0) return rc;
  r->magic = RUNNER_DEAD;
  free(r);
  return 0;
}

/* ---- asyncio.run ------------------------------------------------------------------------- */

int cio_run_opts(cio_task_fn main_fn, void *arg, void **result, const cio_loop_options *opts) {
  if (cio__running_loop)
    return cio__fail(CIO_ERUNNING, "cio_run: an event loop is already running in this thread");
  if (!main_fn) return cio__fail(-EINVAL, "cio_run: main function is NULL");
  cio_runner *r;
  int rc = cio_runner_new(&r, opts);
  if (rc < 0) return rc;
  rc = cio_runner_run(r, main_fn, arg, result);
  bool owned = false;
  const char *failure = rc < 0 ? cio__errslot_take(rc, &owned) : NULL;
  cio_runner_free(r);
  if (failure) cio__fail_copy(rc, failure);
  if (owned) free((void *)failure);
  return rc;
}

int cio_run(cio_task_fn main_fn, void *arg, void **result) {
  return cio_run_opts(main_fn, arg, result, NULL);
}
