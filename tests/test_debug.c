/* Debug mode, the stall detector, task trees and dumps (src/debug.c).
 * Each debug report is triggered on purpose and its text checked. Slow
 * callbacks and stalls need real time: the durations are kept short. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cio_test.h"
#include "arch/switch.h" /* CIO_ASAN / CIO_TSAN */
#include "debug.h"       /* cio__fp_walk */
#include "error.h"       /* cio__errslot_clear */

/* ---- capturing reports --------------------------------------------------------------- */

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static char reports[8192];

static void capture(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  pthread_mutex_lock(&cap_lock);
  size_t len = strlen(reports);
  if (ctx->created_at)
    snprintf(reports + len, sizeof reports - len, "%s (created at %s)\n", ctx->message,
             ctx->created_at);
  else
    snprintf(reports + len, sizeof reports - len, "%s\n", ctx->message);
  pthread_mutex_unlock(&cap_lock);
}

static cio_loop *debug_loop(bool debug) {
  cio_loop *loop;
  cio_loop_options o = {.debug = debug, .slow_callback_duration = 0.05};
  assert_int_equal(cio_loop_new(&loop, &o), 0);
  assert_int_equal(cio_loop_set_debug(loop, debug), 0); /* whatever CIO_DEBUG says */
  cio_loop_set_exception_handler(loop, capture, NULL);
  reports[0] = 0;
  return loop;
}

static void run_task(cio_loop *loop, cio_task *t) {
  assert_non_null(t);
  assert_int_equal(cio_loop_run_until_complete(loop, cio_task_future(t)), 0);
}

static double real_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Exported (the tests link with -rdynamic) so that stacks name them. */
__attribute__((noinline)) void debug_test_spin(double seconds) {
  double end = real_now() + seconds;
  while (real_now() < end) /* mostly in this function's own loop, not in libc */
    for (volatile int i = 0; i < 200000; i++) {
    }
}

/* ---- slow steps and callbacks ----------------------------------------------------------- */

static int slow_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  debug_test_spin(0.08);
  int rc = cio_sleep(0.001); /* gives control back here */
  debug_test_spin(0.08);
  return rc;
}

static void test_slow_task_step(void **state) {
  (void)state;
  cio_loop *loop = debug_loop(true);
  cio_task_options o = {.name = "slowpoke"};
  int line = __LINE__ + 1;
  cio_task *t = cio_loop_create_task(loop, slow_body, NULL, &o);
  run_task(loop, t);
  char want[128];
  snprintf(want, sizeof want, "Executing task 'slowpoke' (created at %s:%d) took 0.", __FILE__,
           line);
  assert_non_null(strstr(reports, want));
  assert_non_null(strstr(reports, "it gave control back at:"));
  assert_non_null(strstr(reports, "it finished")); /* the second step */
#if !defined(CIO_ASAN) && !defined(CIO_TSAN) && !defined(CIO_SWITCH_UCONTEXT)
  assert_non_null(strstr(reports, "slow_body") ? "" : strstr(reports, "cio_sleep"));
#endif
  cio_task_unref(t);
  cio_loop_free(loop);
}

void debug_test_slow_cb(void *arg) {
  (void)arg;
  debug_test_spin(0.08);
}

static void test_slow_callback(void **state) {
  (void)state;
  cio_loop *loop = debug_loop(true);
  assert_int_equal(cio_call_soon(loop, debug_test_slow_cb, (void *)0x1234, NULL), 0);
  assert_int_equal(cio_loop_stop(loop), 0);
  assert_int_equal(cio_loop_run_forever(loop), 0);
  assert_non_null(strstr(reports, "Executing callback debug_test_slow_cb(0x1234) took 0."));
  cio_loop_free(loop);
}

static void test_slow_not_reported_when_off_or_fast(void **state) {
  (void)state;
  cio_loop *loop = debug_loop(false);
  cio_task *t = cio_loop_create_task(loop, slow_body, NULL, NULL);
  run_task(loop, t);
  cio_task_unref(t);
  assert_string_equal(reports, "");
  /* Debug mode with a generous threshold: nothing either. */
  assert_int_equal(cio_loop_set_debug(loop, true), 0);
  assert_int_equal(cio_loop_set_slow_callback_duration(loop, 5.0), 0);
  assert_true(cio_loop_get_slow_callback_duration(loop) == 5.0);
  t = cio_loop_create_task(loop, slow_body, NULL, NULL);
  run_task(loop, t);
  cio_task_unref(t);
  assert_string_equal(reports, "");
  assert_int_equal(cio_loop_set_slow_callback_duration(loop, -1), -EINVAL);
  cio_loop_free(loop);
}

/* ---- tasks and futures left behind ----------------------------------------------------------- */

static cio_future *never_completed;

static int await_forever(void *arg, void **result) {
  (void)arg;
  (void)result;
  never_completed = cio_future_new(cio_get_running_loop());
  return cio_await(never_completed, NULL);
}

static void test_pending_task_and_future_at_close(void **state) {
  (void)state;
  cio_loop *loop = debug_loop(true);
  cio_task_options o = {.name = "stuck"};
  int line = __LINE__ + 1;
  cio_task *t = cio_loop_create_task(loop, await_forever, NULL, &o);
  assert_int_equal(cio_loop_stop(loop), 0);
  assert_int_equal(cio_loop_run_forever(loop), 0); /* one pass: the task suspends */
  assert_int_equal(cio_loop_close(loop), 0);
  char want[160];
  snprintf(want, sizeof want,
           "Task was destroyed but it is pending (task 'stuck') (created at %s:%d)", __FILE__,
           line);
  assert_non_null(strstr(reports, want));
  snprintf(want, sizeof want, "was never completed: the loop closes with it pending (created by "
           "task 'stuck', created at %s:%d)", __FILE__, line);
  assert_non_null(strstr(reports, want));
  cio_future_unref(never_completed);
  cio_task_unref(t);
  cio_loop_free(loop);
}

static int fail_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_raise(-EIO, "disk on fire");
}

static void test_failed_task_released_unread(void **state) {
  (void)state;
  cio_loop *loop = debug_loop(true);
  cio_task_options o = {.name = "failer"};
  int line = __LINE__ + 1;
  cio_task *t = cio_loop_create_task(loop, fail_body, NULL, &o);
  run_task(loop, t);
  assert_string_equal(reports, "");
  cio_task_unref(t); /* nobody read the error */
  char want[160];
  snprintf(want, sizeof want, "Task exception was never retrieved (task 'failer') (created at %s:%d)",
           __FILE__, line);
  assert_non_null(strstr(reports, want));
  cio_loop_free(loop);
}

static void test_failed_task_handle_leaked(void **state) {
  (void)state;
  cio_loop *loop = debug_loop(true);
  cio_task_options o = {.name = "leaky"};
  int line = __LINE__ + 1;
  cio_task *t = cio_loop_create_task(loop, fail_body, NULL, &o);
  run_task(loop, t);
  cio_loop_free(loop); /* the handle is still held: its error would be lost */
  char want[200];
  snprintf(want, sizeof want,
           "Task exception was never retrieved (task 'leaky', created at %s:%d): the loop is "
           "freed and the task's handle was never released",
           __FILE__, line);
  assert_non_null(strstr(reports, want));
  reports[0] = 0;
  cio_task_unref(t); /* reported once, not again */
  assert_string_equal(reports, "");
}

/* ---- calls from the wrong thread ----------------------------------------------------------------- */

struct wrong_thread {
  cio_loop *loop;
  cio_future *fut;
  int rc_soon, rc_set, rc_task;
};

static void nothing(void *arg) { (void)arg; }
static int nothing_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static void *wrong_thread_main(void *arg) {
  struct wrong_thread *w = arg;
  w->rc_soon = cio_call_soon(w->loop, nothing, NULL, NULL);
  w->rc_set = cio_future_set_result(w->fut, NULL);
  cio_task *t = cio_loop_create_task(w->loop, nothing_task, NULL, NULL);
  w->rc_task = t ? 0 : cio_errcode();
  /* A thread's last error message is not freed when the thread exits
   * (src/error.c keeps it in a plain thread-local): drop it here. */
  cio__errslot_clear(&cio__thread_slot);
  return NULL;
}

static int spawn_wrong_thread(void *arg, void **result) {
  (void)result;
  struct wrong_thread *w = arg;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, wrong_thread_main, w), 0);
  pthread_join(th, NULL);
  return 0;
}

static void test_wrong_thread(void **state) {
  (void)state;
  skip_if_emulated("threads under qemu-user");
  cio_loop *loop = debug_loop(true);
  struct wrong_thread w = {.loop = loop, .fut = cio_future_new(loop)};
  cio_task *t = cio_loop_create_task(loop, spawn_wrong_thread, &w, NULL);
  run_task(loop, t);
  assert_int_equal(w.rc_soon, CIO_ERUNTIME);
  assert_int_equal(w.rc_set, CIO_ERUNTIME);
  assert_int_equal(w.rc_task, CIO_ERUNTIME);
  assert_non_null(strstr(reports, "Non-thread-safe operation cio_call_soon invoked on an event "
                                  "loop other than the current one"));
  assert_non_null(strstr(reports, "Non-thread-safe operation cio_future_set_result"));
  assert_non_null(strstr(reports, "Non-thread-safe operation cio_loop_create_task"));
  assert_false(cio_future_done(w.fut));
  /* From the loop's own thread, and while the loop is not running, fine. */
  assert_int_equal(cio_future_set_result(w.fut, NULL), 0);
  cio_future_unref(w.fut);
  cio_task_unref(t);
  cio_loop_free(loop);
}

/* ---- creation sites cost nothing off, and the functions stay usable ------------------------------- */

static void test_site_macros_keep_functions(void **state) {
  (void)state;
  cio_task *(*create)(cio_task_fn, void *, const cio_task_options *) = cio_create_task;
  cio_task *(*create_on)(cio_loop *, cio_task_fn, void *, const cio_task_options *) =
      cio_loop_create_task;
  assert_non_null(create);
  cio_loop *loop = debug_loop(true);
  cio_task *t = create_on(loop, nothing_task, NULL, NULL); /* no site: still fine */
  run_task(loop, t);
  cio_task_unref(t);
  t = (cio_loop_create_task)(loop, fail_body, NULL, NULL);
  run_task(loop, t);
  cio_task_unref(t);
  assert_non_null(strstr(reports, "Task exception was never retrieved"));
  assert_null(strstr(reports, "created at")); /* no site known */
  cio_loop_free(loop);
}

/* ---- the stall detector ----------------------------------------------------------------------------- */

/* Run fn with stderr going to a file; return what was written (static). */
static char stall_out[16384];
static void with_stderr_captured(void (*fn)(void *), void *arg) {
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  fflush(stderr);
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  size_t n = fread(stall_out, 1, sizeof stall_out - 1, tmp);
  stall_out[n] = 0;
  fclose(tmp);
}

static int spinner(void *arg, void **result) {
  (void)result;
  debug_test_spin(*(double *)arg);
  return 0;
}

struct stall_run {
  double threshold;
  cio_task_fn fn;
  double arg;
  const char *name;
};

static void stall_run(void *p) {
  struct stall_run *s = p;
  cio_loop *loop;
  cio_loop_options o = {.stall_threshold = s->threshold};
  assert_int_equal(cio_loop_new(&loop, &o), 0);
  assert_true(cio_loop_get_stall_threshold(loop) == s->threshold);
  cio_task_options to = {.name = s->name};
  cio_task *t = cio_loop_create_task(loop, s->fn, &s->arg, &to);
  run_task(loop, t);
  /* Let the watchdog see the loop come back. */
  cio_task *u = cio_loop_create_task(loop, s->fn == spinner ? nothing_task : nothing_task, NULL, NULL);
  run_task(loop, u);
  usleep((useconds_t)(s->threshold * 1e6));
  cio_task_unref(u);
  cio_task_unref(t);
  cio_loop_free(loop);
}

static void test_stall_names_task_and_stack(void **state) {
  (void)state;
  skip_if_emulated("threads under qemu-user");
  if (getenv("CIO_STALL_DETECTOR") && strcmp(getenv("CIO_STALL_DETECTOR"), "0") == 0) skip();
  struct stall_run s = {.threshold = 1.0, .fn = spinner, .arg = 1.5, .name = "spinner"};
  with_stderr_captured(stall_run, &s);
  if (!strstr(stall_out, "came back")) fprintf(stderr, "%s", stall_out);
  assert_non_null(strstr(stall_out, "cio: stall: the event loop has not come back to its poll for 1."));
#if !defined(CIO_TSAN) /* TSan holds signals back until a safe point: no stack there */
  assert_non_null(strstr(stall_out, "task 'spinner' holds it; its stack:"));
  assert_non_null(strstr(stall_out, "debug_test_spin"));
#endif
  assert_non_null(strstr(stall_out, "cio: stall: the event loop came back after"));
  /* Once per stall. */
  char *first = strstr(stall_out, "has not come back");
  assert_null(strstr(first + 1, "has not come back"));
}

static int blocker(void *arg, void **result) {
  (void)result;
  double t0 = real_now();
  usleep((useconds_t)(*(double *)arg * 1e6)); /* the mistake: blocks the loop */
  *(double *)arg = real_now() - t0;           /* how long it really slept */
  return 0;
}

static void test_stall_in_syscall_is_not_cut_short(void **state) {
  (void)state;
  skip_if_emulated("threads under qemu-user");
  if (getenv("CIO_STALL_DETECTOR") && strcmp(getenv("CIO_STALL_DETECTOR"), "0") == 0) skip();
  struct stall_run s = {.threshold = 0.2, .fn = blocker, .arg = 0.6, .name = "blocker"};
  with_stderr_captured(stall_run, &s);
  assert_non_null(strstr(stall_out, "task 'blocker' holds it; its stack:"));
  assert_non_null(strstr(stall_out, "sleep")); /* usleep / clock_nanosleep */
  assert_true(s.arg >= 0.59); /* no EINTR: the stack was read through /proc */
}

static int idler(void *arg, void **result) {
  (void)result;
  return cio_sleep(*(double *)arg); /* idle in epoll */
}

static void test_idle_loop_is_not_a_stall(void **state) {
  (void)state;
  skip_if_emulated("threads under qemu-user");
  struct stall_run s = {.threshold = 0.05, .fn = idler, .arg = 0.5, .name = "idler"};
  with_stderr_captured(stall_run, &s);
  assert_null(strstr(stall_out, "stall"));
}


/* A lost wake-up: work from another thread waits in the inbox while the
 * loop sleeps in its poll. The watchdog reports it and wakes the loop. The
 * post is made by hand: a thread queues a callback and marks a wake-up as
 * already sent without sending it (what a post whose eventfd write was
 * wrongly skipped leaves behind). Without the watchdog the loop would
 * sleep until the wait's 3 s timeout. */
struct lost {
  struct cio__cb cb; /* first: the callback finds the record */
  cio_loop *loop;
  cio_future *fut;
  double waited;
};

static void lost_cb_run(struct cio__cb *cb) {
  struct lost *l = (struct lost *)cb;
  assert_int_equal(cio_future_set_result(l->fut, NULL), 0);
}

static void *lost_poster(void *arg) {
  struct lost *l = arg;
  usleep(50000); /* the loop sleeps by now */
  pthread_mutex_lock(&l->loop->inbox_lock);
  cio__queue_push(&l->loop->inbox, &l->cb);
  atomic_store(&l->loop->inbox_nonempty, true);
  atomic_store(&l->loop->inbox_signaled, true); /* "a wake-up is on its way": none is */
  pthread_mutex_unlock(&l->loop->inbox_lock);
  return NULL;
}

static int lost_main(void *arg, void **result) {
  (void)result;
  struct lost *l = arg;
  l->fut = cio_future_new(l->loop);
  assert_non_null(l->fut);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, lost_poster, l), 0);
  double t0 = real_now();
  int rc = cio_wait_for(l->fut, 3.0, NULL);
  l->waited = real_now() - t0;
  pthread_join(th, NULL);
  cio_future_unref(l->fut);
  return rc;
}

static void lost_noop(void *arg) { (void)arg; }

static void lost_run(void *p) {
  struct lost *l = p;
  cio_loop_options o = {.stall_threshold = 0.2};
  assert_int_equal(cio_loop_new(&l->loop, &o), 0);
  /* A cross-thread call was made: no deadlock report while it sleeps. */
  assert_int_equal(cio_call_soon_threadsafe(l->loop, lost_noop, NULL), 0);
  cio_task *t = cio_loop_create_task(l->loop, lost_main, l, NULL);
  run_task(l->loop, t);
  cio_task_unref(t);
  cio_loop_free(l->loop);
}

static void test_lost_wakeup_reported(void **state) {
  (void)state;
  skip_if_emulated("threads under qemu-user");
  if (getenv("CIO_STALL_DETECTOR") && strcmp(getenv("CIO_STALL_DETECTOR"), "0") == 0) skip();
  struct lost l = {.cb.run = lost_cb_run};
  with_stderr_captured(lost_run, &l);
  if (!strstr(stall_out, "lost wake-up")) fprintf(stderr, "%s", stall_out);
  assert_non_null(strstr(stall_out, "cio: stall: the event loop has slept in its poll for 0."));
  assert_non_null(strstr(stall_out, "waited in its inbox (a lost wake-up); waking it"));
  assert_true(l.waited < 1.5); /* woken by the watchdog, not by the timeout */
}

static void test_stall_detector_off(void **state) {
  (void)state;
  cio_loop *loop;
  cio_loop_options o = {.no_stall_detector = true};
  assert_int_equal(cio_loop_new(&loop, &o), 0);
  assert_true(cio_loop_get_stall_threshold(loop) == 0.0);
  assert_int_equal(cio_loop_set_stall_threshold(loop, 0.5), 0);
  assert_true(cio_loop_get_stall_threshold(loop) == 0.5);
  assert_int_equal(cio_loop_set_stall_threshold(loop, -1), -EINVAL);
  assert_int_equal(cio_loop_set_stall_threshold(NULL, 1), -EINVAL);
  cio_loop_free(loop);
}

/* ---- task tree and dumps ------------------------------------------------------------------------------ */

static int leaf(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_sleep(10);
}

static int middle(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task_options o = {.name = "leaf"};
  cio_task *t = cio_create_task(leaf, NULL, &o);
  int rc = cio_await(t, NULL);
  cio_task_unref(t);
  return rc;
}

static char tree_out[8192];

static int tree_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task_options om = {.name = "middle"}, os = {.name = "sibling"};
  cio_task *m = cio_create_task(middle, NULL, &om);
  cio_task *s = cio_create_task(leaf, NULL, &os);
  int rc = cio_sleep(0.1);
  FILE *f = fmemopen(tree_out, sizeof tree_out, "w");
  int n = cio_loop_print_task_tree(cio_get_running_loop(), f);
  fclose(f);
  assert_int_equal(n, 4);
  cio_task_cancel(m, NULL);
  cio_task_cancel(s, NULL);
  if (cio_await(m, NULL) == 12345) abort();
  if (cio_await(s, NULL) == 12345) abort();
  cio_task_unref(m);
  cio_task_unref(s);
  return rc;
}

static void test_task_tree(void **state) {
  (void)state;
  cio_loop_options o = {.virtual_time = true, .debug = true};
  cio_task_options om = {.name = "main"};
  cio_loop *loop;
  assert_int_equal(cio_loop_new(&loop, &o), 0);
  cio_task *t = cio_loop_create_task(loop, tree_main, NULL, &om);
  run_task(loop, t);
  cio_task_unref(t);
  cio_loop_free(loop);
  /* main created middle and sibling; middle awaits leaf. */
  const char *want[] = {"cio: task tree (4 pending task(s))\n",
                        "└── (T) main [running]",
                        "    ├── (T) middle [suspended, awaiting task 'leaf']",
                        "    │   └── (T) leaf [suspended, waiting (sleep, lock, queue, fd...)]",
                        "    └── (T) sibling [suspended, waiting"};
  const char *p = tree_out;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const char *q = strstr(p, want[i]);
    if (!q) fail_msg("missing '%s' in:\n%s", want[i], tree_out);
    p = q + strlen(want[i]);
  }
  assert_non_null(strstr(tree_out, "(created at "));
}

static int dump_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  assert_int_equal(cio_loop_dump_on_signal(loop, SIGUSR1), 0);
  cio_task_options o = {.name = "napper"};
  cio_task *t = cio_create_task(leaf, NULL, &o);
  assert_int_equal(cio_sleep(0.01), 0);
  raise(SIGUSR1);
  for (int i = 0; i < 20; i++) assert_int_equal(cio_sleep(0.005), 0);
  assert_int_equal(cio_loop_dump_on_signal(loop, 0), 0); /* disarm */
  assert_int_equal(cio_loop_dump_on_signal(loop, SIGKILL), -EINVAL);
  cio_task_cancel(t, NULL);
  if (cio_await(t, NULL) == 12345) abort();
  cio_task_unref(t);
  return 0;
}

static void dump_run(void *arg) {
  (void)arg;
  assert_int_equal(cio_run(dump_main, NULL, NULL), 0);
}

static void test_dump_on_signal(void **state) {
  (void)state;
  with_stderr_captured(dump_run, NULL);
  assert_non_null(strstr(stall_out, "cio: task dump (signal)"));
  assert_non_null(strstr(stall_out, "task 'napper': suspended"));
  assert_non_null(strstr(stall_out, "cio: task tree (2 pending task(s))"));
  assert_non_null(strstr(stall_out, "(T) napper"));
  signal(SIGUSR1, SIG_DFL);
}

/* The frame walker reads frame records from a stack it does not trust (a
 * signal may land anywhere, e.g. inside posix_spawn): a saved frame pointer
 * near the top of the address space must end the walk, not wrap the bounds
 * check and be followed (it crashed test_process under ASan). */
static void test_frame_walk_never_wraps(void **state) {
  (void)state;
  uintptr_t stack[8] = {0};
  stack[0] = UINTPTR_MAX - 15; /* saved fp: above the stack, 16 from the top */
  stack[1] = 0x1234;           /* return address */
  uintptr_t pcs[8];
  uintptr_t lo = (uintptr_t)stack, hi = (uintptr_t)(stack + 8);
  int n = cio__fp_walk(lo, 0x1000, lo, hi, pcs, 8);
  assert_int_equal(n, 2);
  assert_true(pcs[0] == 0x1000 && pcs[1] == 0x1234);
  stack[0] = UINTPTR_MAX - 7;
  assert_int_equal(cio__fp_walk(lo, 0x1000, lo, hi, pcs, 8), 2);
  /* A proper two-frame chain is still followed. */
  stack[0] = (uintptr_t)(stack + 4);
  stack[4] = (uintptr_t)(stack + 6);
  stack[5] = 0x5678;
  stack[6] = 0; /* the end of the chain */
  n = cio__fp_walk(lo, 0x1000, lo, hi, pcs, 8);
  assert_int_equal(n, 3);
  assert_true(pcs[2] == 0x5678);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slow_task_step),
      cmocka_unit_test(test_slow_callback),
      cmocka_unit_test(test_slow_not_reported_when_off_or_fast),
      cmocka_unit_test(test_pending_task_and_future_at_close),
      cmocka_unit_test(test_failed_task_released_unread),
      cmocka_unit_test(test_failed_task_handle_leaked),
      cmocka_unit_test(test_wrong_thread),
      cmocka_unit_test(test_site_macros_keep_functions),
      cmocka_unit_test(test_stall_names_task_and_stack),
      cmocka_unit_test(test_stall_in_syscall_is_not_cut_short),
      cmocka_unit_test(test_idle_loop_is_not_a_stall),
      cmocka_unit_test(test_stall_detector_off),
      cmocka_unit_test(test_lost_wakeup_reported),
      cmocka_unit_test(test_task_tree),
      cmocka_unit_test(test_frame_walk_never_wraps),
      cmocka_unit_test(test_dump_on_signal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
