/* Layer 6: structured concurrency (include/cio/group.h).
 *
 * The tests named after a scenario of tests/py/group_traces.py must produce
 * the trace CPython's asyncio produces for it (quoted in the test): the same
 * events, in the same order, at the same virtual times. A ticker task
 * ("k0 k1 ...", one entry per loop iteration) pins down the number of loop
 * iterations between events. The other tests cover what CPython 3.13 does
 * not have (TaskGroup.cancel), where cio deliberately differs (the fixed
 * cpython bugs, errors that must not be lost), and misuse.
 *
 * Assertions are made after the loop has run: a task records what it saw in
 * the trace (check() adds "FAIL@line" when a condition does not hold).
 */
#include "cio_test.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "task.h" /* internal: for the white-box checks of leftovers */

#define check(cond)                                 \
  do {                                              \
    if (!(cond)) trace("FAIL@%d:%s", __LINE__, #cond); \
  } while (0)

static const char *N(int rc) { return cio_err_name(rc); }

/* ---- common task bodies (twins of the Python helpers) ------------------------------ */

struct spec {
  const char *name;
  double delay;
  double cleanup; /* sleeper: seconds of cleanup after a cancellation */
};

static int ticker(void *arg, void **result) {
  (void)result;
  for (intptr_t i = 0; i < (intptr_t)arg; i++) {
    trace("k%ld", (long)i);
    int rc = cio_sleep(0);
    if (rc < 0) return rc;
  }
  return 0;
}

static int child(void *arg, void **result) {
  struct spec *s = arg;
  trace("%s+", s->name);
  int rc = cio_sleep(s->delay);
  if (rc < 0) return rc;
  trace("%s-@%g", s->name, now());
  *result = (void *)s->name;
  return 0;
}

static int sleeper(void *arg, void **result) {
  (void)result;
  struct spec *s = arg;
  int rc = cio_sleep(s->delay);
  if (rc == 0) {
    trace("%s-@%g", s->name, now());
    return 0;
  }
  if (rc != -ECANCELED) return rc;
  trace("%s!@%g", s->name, now());
  if (s->cleanup > 0) {
    /* The request was delivered once: this sleep is not interrupted. */
    rc = cio_sleep(s->cleanup);
    if (rc < 0) return rc; /* interrupted (asyncio.run's shutdown, say) */
    trace("%s.@%g", s->name, now());
  }
  return -ECANCELED;
}

static int fail_after(void *arg, void **result) {
  (void)result;
  struct spec *s = arg;
  int rc = cio_sleep(s->delay);
  if (rc < 0) return rc;
  trace("%sx@%g", s->name, now());
  return cio_raise(-EINVAL, "%s", s->name);
}

static int quick_value(void *arg, void **result) {
  int rc = cio_sleep(0);
  if (rc < 0) return rc;
  *result = arg;
  return 0;
}

static int value(void *arg, void **result) {
  *result = arg;
  return 0;
}

/* "a,b": the messages of a group's errors (the ValueError arguments). */
static const char *eg_msgs(cio_taskgroup *tg) {
  static char buf[256];
  size_t n, len = 0;
  const cio_group_error *e = cio_taskgroup_errors(tg, &n);
  buf[0] = 0;
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? "," : "", e[i].msg);
  return buf;
}

static cio_task *self(void) { return cio_current_task(); }

static int run(cio_task_fn fn) { return run_virtual(fn, NULL); }

/* An exception handler that records what it is told. */
static int handler_calls;
static char handler_msg[512];
static int handler_code;
static char handler_error[256];

static void recording_handler(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)arg;
  handler_calls++;
  snprintf(handler_msg, sizeof handler_msg, "%s", ctx->message ? ctx->message : "");
  handler_code = ctx->code;
  snprintf(handler_error, sizeof handler_error, "%s", ctx->error ? ctx->error : "");
}

static void record_exceptions(void) {
  handler_calls = 0;
  handler_msg[0] = handler_error[0] = 0;
  handler_code = 0;
  cio_loop_set_exception_handler(cio_get_running_loop(), recording_handler, NULL);
}

static int setup(void **state) {
  (void)state;
  trace_clear();
  return 0;
}

/* ==== TaskGroup ========================================================================= */

/* tg_basic: body a+ b+ a-@1 b-@2 joined@2 */
static int tg_basic_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 2, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  cio_task *ta = NULL, *tb = NULL;
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    /* References: the group forgets a child once it saw it finish. */
    ta = cio_task_ref(cio_taskgroup_create_task(tg, child, &a, NULL));
    tb = cio_task_ref(cio_taskgroup_create_task(tg, child, &b, NULL));
    check(cio_taskgroup_pending(tg) == 2);
    trace("body");
  }
  trace("joined@%g", now());
  check(rc == 0);
  check(cio_taskgroup_pending(tg) == 0);
  void *r = NULL;
  check(cio_task_result(ta, &r) == 0 && r == a.name);
  check(cio_task_result(tb, &r) == 0 && r == b.name);
  check(cio_taskgroup_errors(tg, NULL) == NULL);
  cio_taskgroup_free(tg);
  cio_task_unref(ta);
  cio_task_unref(tb);
  return rc;
}

static void test_tg_basic(void **state) {
  (void)state;
  assert_code(run(tg_basic_main), 0);
  assert_trace("body a+ b+ a-@1 b-@2 joined@2");
  assert_time(2.0);
}

/* tg_hops: body k0 q k1 k2 y k3 k4 joined k5 */
static int quick(void *arg, void **result) {
  (void)arg;
  (void)result;
  trace("q");
  return 0;
}

static int two_yields(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_sleep(0);
  if (rc == 0) rc = cio_sleep(0);
  if (rc < 0) return rc;
  trace("y");
  return 0;
}

static int tg_hops_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(ticker, (void *)6, NULL);
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, quick, NULL, NULL);
    cio_taskgroup_create_task(tg, two_yields, NULL, NULL);
    trace("body");
  }
  trace("joined");
  cio_taskgroup_free(tg);
  if (rc == 0) rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_tg_hops(void **state) {
  (void)state;
  assert_code(run(tg_hops_main), 0);
  assert_trace("body k0 q k1 k2 y k3 k4 joined k5");
}

/* tg_child_fails: ax@1 b!@1 body!@1 eg[a]@1 cancelling=0 after@2
 * A child fails while the parent is suspended in the group's body: the body
 * is interrupted, the sibling cancelled, join reports the error, and the
 * group's cancellation of the parent is withdrawn. */
static int tg_child_fails_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 5, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  cio_task *ta = NULL;
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    ta = cio_taskgroup_create_task(tg, fail_after, &a, NULL);
    cio_taskgroup_create_task(tg, sleeper, &b, NULL);
    rc = cio_sleep(10);
    if (rc == -ECANCELED) trace("body!@%g", now());
  }
  if (rc == CIO_EGROUP) trace("eg[%s]@%g cancelling=%d", eg_msgs(tg), now(), cio_task_cancelling(self()));
  size_t n;
  const cio_group_error *e = cio_taskgroup_errors(tg, &n);
  check(n == 1 && e[0].code == -EINVAL && e[0].task == ta && strcmp(e[0].msg, "a") == 0);
  check(strstr(cio_errmsg(), "unhandled errors in a TaskGroup (1 sub-error)") != NULL);
  check(strstr(cio_errmsg(), "EINVAL: a") != NULL);
  cio_taskgroup_free(tg);
  rc = cio_sleep(1);
  if (rc < 0) return rc;
  trace("after@%g", now());
  return 0;
}

static void test_tg_child_fails(void **state) {
  (void)state;
  assert_code(run(tg_child_fails_main), 0);
  assert_trace("ax@1 b!@1 body!@1 eg[a]@1 cancelling=0 after@2");
  assert_time(2.0);
}

/* tg_two_fail: k0 k1 k2 k3 ax@1 bx@1 c!@1 eg[a,b]@1
 * Two children fail in the same loop iteration: both errors are kept. */
static int tg_two_fail_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 1, 0}, c = {"c", 5, 0};
  cio_task *tk = cio_create_task(ticker, (void *)4, NULL);
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, fail_after, &a, NULL);
    cio_taskgroup_create_task(tg, fail_after, &b, NULL);
    cio_taskgroup_create_task(tg, sleeper, &c, NULL);
  }
  if (rc == CIO_EGROUP) trace("eg[%s]@%g", eg_msgs(tg), now());
  check(strstr(cio_errmsg(), "(2 sub-errors)") != NULL);
  cio_taskgroup_free(tg);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_tg_two_fail(void **state) {
  (void)state;
  assert_code(run(tg_two_fail_main), 0);
  assert_trace("k0 k1 k2 k3 ax@1 bx@1 c!@1 eg[a,b]@1");
}

/* tg_outer_cancel: body a!@1 b!@1 a.@1.5 parent!@1.5 cancelling=1 p-cancelled@1.5
 * The parent is cancelled from outside while it waits in join: the children
 * are cancelled, join waits for their cleanup, then returns -ECANCELED. */
static int tg_outer_parent(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0.5}, b = {"b", 5, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, sleeper, &a, NULL);
    cio_taskgroup_create_task(tg, sleeper, &b, NULL);
    trace("body");
  }
  cio_taskgroup_free(tg);
  if (rc == -ECANCELED) trace("parent!@%g cancelling=%d", now(), cio_task_cancelling(self()));
  return rc;
}

static int tg_outer_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *p = cio_create_task(tg_outer_parent, NULL, NULL);
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  cio_task_cancel(p, NULL);
  rc = cio_await(p, NULL);
  if (rc == -ECANCELED) trace("p-cancelled@%g", now());
  cio_task_unref(p);
  return 0;
}

static void test_tg_outer_cancel(void **state) {
  (void)state;
  assert_code(run(tg_outer_cancel_main), 0);
  assert_trace("body a!@1 b!@1 a.@1.5 parent!@1.5 cancelling=1 p-cancelled@1.5");
}

/* tg_outer_cancel_child_failing: ax@1 b!@1 eg[a]@1 cancelling=1 recancelled@1
 * The parent is cancelled from outside while a child is failing (the failing
 * child does it): join reports the error AND re-arms the outer cancel. */
static cio_task *the_parent;

static int cancel_parent_then_fail(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  cio_task_cancel(the_parent, NULL);
  trace("ax@%g", now());
  return cio_raise(-EINVAL, "a");
}

static int tg_outer_cancel_child_failing_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec b = {"b", 5, 0};
  the_parent = self();
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, cancel_parent_then_fail, NULL, NULL);
    cio_taskgroup_create_task(tg, sleeper, &b, NULL);
  }
  if (rc == CIO_EGROUP)
    trace("eg[%s]@%g cancelling=%d", eg_msgs(tg), now(), cio_task_cancelling(self()));
  cio_taskgroup_free(tg);
  rc = cio_sleep(1);
  if (rc == 0) trace("not-cancelled");
  if (rc == -ECANCELED) {
    trace("recancelled@%g", now());
    cio_task_uncancel(self()); /* handled: end normally */
  }
  return 0;
}

static void test_tg_outer_cancel_child_failing(void **state) {
  (void)state;
  assert_code(run(tg_outer_cancel_child_failing_main), 0);
  assert_trace("ax@1 b!@1 eg[a]@1 cancelling=1 recancelled@1");
}

/* tg_outer_cancel_in_body_while_failing:
 *   ax@1 cancel body!@1 cancelling=2 eg[a]@1 cancelling=1 recancelled@1 */
static int canceller(void *arg, void **result) {
  (void)result;
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  trace("cancel");
  cio_task_cancel(arg, NULL);
  return 0;
}

static int tg_outer_cancel_in_body_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  cio_task *c = NULL;
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, fail_after, &a, NULL);
    c = cio_create_task(canceller, self(), NULL);
    rc = cio_sleep(10);
    if (rc == -ECANCELED) trace("body!@%g cancelling=%d", now(), cio_task_cancelling(self()));
  }
  if (rc == CIO_EGROUP)
    trace("eg[%s]@%g cancelling=%d", eg_msgs(tg), now(), cio_task_cancelling(self()));
  if (rc == -ECANCELED) trace("cancelled@%g cancelling=%d", now(), cio_task_cancelling(self()));
  cio_taskgroup_free(tg);
  rc = cio_sleep(1);
  if (rc == 0) trace("not-cancelled");
  if (rc == -ECANCELED) {
    trace("recancelled@%g", now());
    cio_task_uncancel(self());
  }
  cio_task_unref(c);
  return 0;
}

static void test_tg_outer_cancel_in_body_while_failing(void **state) {
  (void)state;
  assert_code(run(tg_outer_cancel_in_body_main), 0);
  assert_trace("ax@1 cancel body!@1 cancelling=2 eg[a]@1 cancelling=1 recancelled@1");
}

/* tg_nested: ox@1 ix@1 s!@1 eg[o,[i]]@1
 * Nested groups failing at the same time: the inner one reports its own
 * error to its body, which fails in the outer group; neither swallows the
 * other's cancellation. */
static char inner_errors[128];

static int inner_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec i = {"i", 1, 0}, s = {"s", 5, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, fail_after, &i, NULL);
    cio_taskgroup_create_task(tg, sleeper, &s, NULL);
  }
  snprintf(inner_errors, sizeof inner_errors, "%s", eg_msgs(tg));
  cio_taskgroup_free(tg);
  return rc;
}

static int tg_nested_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec o = {"o", 1, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, fail_after, &o, NULL);
    cio_taskgroup_create_task(tg, inner_body, NULL, NULL);
    rc = cio_sleep(10);
  }
  size_t n;
  const cio_group_error *e = cio_taskgroup_errors(tg, &n);
  char buf[256] = "";
  size_t len = 0;
  for (size_t k = 0; k < n; k++) {
    if (e[k].code == CIO_EGROUP)
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%s[%s]", k ? "," : "", inner_errors);
    else
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", k ? "," : "", e[k].msg);
  }
  if (rc == CIO_EGROUP) trace("eg[%s]@%g", buf, now());
  check(n == 2 && e[1].code == CIO_EGROUP && strstr(e[1].msg, "EINVAL: i") != NULL);
  check(cio_task_cancelling(self()) == 0);
  cio_taskgroup_free(tg);
  return 0;
}

static void test_tg_nested(void **state) {
  (void)state;
  assert_code(run(tg_nested_main), 0);
  assert_trace("ox@1 ix@1 s!@1 eg[o,[i]]@1");
}

/* tg_body_error: a!@1 a.@1.5 eg[body]@1.5
 * The body fails: the children are cancelled and the body's error joins
 * the group's (with no task). */
static int tg_body_error_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0.5};
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, sleeper, &a, NULL);
    rc = cio_sleep(1);
    if (rc < 0) break;
    rc = cio_raise(-EINVAL, "body");
  }
  if (rc == CIO_EGROUP) trace("eg[%s]@%g", eg_msgs(tg), now());
  size_t n;
  const cio_group_error *e = cio_taskgroup_errors(tg, &n);
  check(n == 1 && e[0].task == NULL && e[0].code == -EINVAL);
  check(strstr(cio_errmsg(), "the group body: EINVAL: body") != NULL);
  cio_taskgroup_free(tg);
  return 0;
}

static void test_tg_body_error(void **state) {
  (void)state;
  assert_code(run(tg_body_error_main), 0);
  assert_trace("a!@1 a.@1.5 eg[body]@1.5");
}

/* A child cancelled on its own is not an error and cancels nobody. */
static int tg_child_cancelled_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0}, b = {"b", 2, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_task *ta = cio_taskgroup_create_task(tg, sleeper, &a, NULL);
    cio_taskgroup_create_task(tg, sleeper, &b, NULL);
    rc = cio_sleep(1);
    cio_task_cancel(ta, NULL);
  }
  trace("rc=%s@%g", N(rc), now());
  cio_taskgroup_free(tg);
  return 0;
}

static void test_tg_child_cancelled(void **state) {
  (void)state;
  assert_code(run(tg_child_cancelled_main), 0);
  assert_trace("a!@1 b-@2 rc=OK@2");
}

/* Adding tasks: not entered, shutting down, finished; misuse codes. */
static int tg_states_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, f = {"f", 0.5, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  check(cio_taskgroup_create_task(tg, value, NULL, NULL) == NULL);
  check(cio_errcode() == CIO_EINVALSTATE && strstr(cio_errmsg(), "not been entered"));
  check(cio_taskgroup_join(tg, 0) == CIO_EINVALSTATE);
  check(cio_taskgroup_create_task(NULL, value, NULL, NULL) == NULL && cio_errcode() == -EINVAL);
  check(cio_taskgroup_enter(NULL) == -EINVAL);
  check(cio_taskgroup_join(NULL, 0) == -EINVAL);
  check(cio_taskgroup_cancel(NULL) == -EINVAL);
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    check(cio_taskgroup_enter(tg) == CIO_EINVALSTATE);
    check(cio_taskgroup_create_task(tg, NULL, NULL, NULL) == NULL && cio_errcode() == -EINVAL);
    cio_taskgroup_create_task(tg, fail_after, &f, NULL);
    cio_taskgroup_create_task(tg, sleeper, &a, NULL);
    rc = cio_sleep(1); /* f fails at 0.5: shutting down */
    check(rc == -ECANCELED);
    check(cio_taskgroup_create_task(tg, value, NULL, NULL) == NULL);
    check(cio_errcode() == CIO_EINVALSTATE && strstr(cio_errmsg(), "shutting down"));
  }
  check(rc == CIO_EGROUP);
  check(cio_taskgroup_create_task(tg, value, NULL, NULL) == NULL);
  check(cio_errcode() == CIO_EINVALSTATE && strstr(cio_errmsg(), "is finished"));
  check(cio_taskgroup_join(tg, 0) == CIO_EINVALSTATE);
  check(cio_taskgroup_cancel(tg) == 0); /* after exit: does nothing */
  cio_taskgroup *tg2 = cio_taskgroup_new();
  CIO_WITH_TASKGROUP(tg2, rc) { rc = 5; } /* a positive body status passes */
  check(rc == 5);
  cio_taskgroup_free(tg2);
  check(cio_task_cancelling(self()) == 0);
  cio_taskgroup_free(tg);
  check(cio_taskgroup_free(NULL) == 0);
  trace("done");
  return 0;
}

static void test_tg_states(void **state) {
  (void)state;
  assert_code(run(tg_states_main), 0);
  assert_trace("fx@0.5 a!@0.5 done");
  /* Outside any task. */
  cio_taskgroup *tg = cio_taskgroup_new();
  assert_non_null(tg);
  assert_code(cio_taskgroup_enter(tg), CIO_ENOTASK);
  assert_null(cio_taskgroup_create_task(tg, value, NULL, NULL));
  assert_code(cio_errcode(), CIO_EINVALSTATE);
  assert_code(cio_taskgroup_free(tg), 0);
}

/* join must be called by the parent. */
static cio_taskgroup *shared_tg;

static int join_from_other(void *arg, void **result) {
  (void)arg;
  (void)result;
  trace("other-join=%s", N(cio_taskgroup_join(shared_tg, 0)));
  return 0;
}

static int tg_join_other_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  shared_tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(shared_tg, rc) {
    cio_taskgroup_create_task(shared_tg, join_from_other, NULL, NULL);
  }
  trace("rc=%s", N(rc));
  cio_taskgroup_free(shared_tg);
  return 0;
}

static void test_tg_join_other_task(void **state) {
  (void)state;
  assert_code(run(tg_join_other_main), 0);
  assert_trace("other-join=CIO_EINVALSTATE rc=OK");
}

/* Children may add siblings while the parent waits in join. */
static cio_taskgroup *spawn_tg;

static int spawner(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec late = {"late", 1, 0};
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  check(cio_taskgroup_create_task(spawn_tg, child, &late, NULL) != NULL);
  return 0;
}

static int tg_spawn_in_join_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  spawn_tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(spawn_tg, rc) { cio_taskgroup_create_task(spawn_tg, spawner, NULL, NULL); }
  trace("joined@%g rc=%s", now(), N(rc));
  cio_taskgroup_free(spawn_tg);
  return 0;
}

static void test_tg_spawn_while_joining(void **state) {
  (void)state;
  assert_code(run(tg_spawn_in_join_main), 0);
  assert_trace("late+ late-@2 joined@2 rc=OK");
}

/* ---- TaskGroup.cancel() (Python 3.15) ---------------------------------------------- */

/* A child cancels the group: children and body are cancelled, join returns
 * 0 (no CancelledError), the parent's count is back to 0. */
static cio_taskgroup *cancel_tg;

static int cancel_group_after(void *arg, void **result) {
  (void)result;
  int rc = cio_sleep(*(double *)arg);
  if (rc < 0) return rc;
  trace("cancel@%g", now());
  check(cio_taskgroup_cancel(cancel_tg) == 0);
  check(cio_taskgroup_cancel(cancel_tg) == 0); /* idempotent */
  return 0;
}

static int tg_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0.5};
  static double one = 1;
  cancel_tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(cancel_tg, rc) {
    cio_taskgroup_create_task(cancel_tg, sleeper, &a, NULL);
    cio_taskgroup_create_task(cancel_tg, cancel_group_after, &one, NULL);
    rc = cio_sleep(10);
    if (rc == -ECANCELED) trace("body!@%g", now());
  }
  trace("rc=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(self()));
  check(cio_taskgroup_errors(cancel_tg, NULL) == NULL);
  cio_taskgroup_free(cancel_tg);
  rc = cio_sleep(1); /* not cancelled any more */
  trace("after=%s@%g", N(rc), now());
  return 0;
}

static void test_tg_cancel(void **state) {
  (void)state;
  assert_code(run(tg_cancel_main), 0);
  assert_trace("cancel@1 a!@1 body!@1 a.@1.5 rc=OK@1.5 cancelling=0 after=OK@2.5");
}

/* cancel() before enter: the group is cancelled on entry. */
static int tg_cancel_before_enter_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0};
  cio_taskgroup *tg = cio_taskgroup_new();
  check(cio_taskgroup_cancel(tg) == 0);
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    /* Entered cancelled: shutting down, no new task. */
    check(cio_taskgroup_create_task(tg, sleeper, &a, NULL) == NULL);
    check(cio_errcode() == CIO_EINVALSTATE);
    rc = cio_sleep(1);
    trace("body=%s@%g", N(rc), now());
  }
  trace("rc=%s cancelling=%d", N(rc), cio_task_cancelling(self()));
  cio_taskgroup_free(tg);
  return 0;
}

static void test_tg_cancel_before_enter(void **state) {
  (void)state;
  assert_code(run(tg_cancel_before_enter_main), 0);
  assert_trace("body=ECANCELED@0 rc=OK cancelling=0");
}

/* cpython#155433 (the issue's own reproducer): after tg.cancel(), an outer
 * timeout's cancellation must not be swallowed.
 *
 *   async def worker():
 *       try: await asyncio.sleep(3600)
 *       finally: await asyncio.sleep(1)
 *   async with asyncio.timeout(0.5):
 *       async with asyncio.TaskGroup() as tg:
 *           tg.create_task(worker())
 *           await asyncio.sleep(0.1)
 *           tg.cancel()
 * expected TimeoutError (at 1.1 s: the worker's cleanup runs to its end). */
static int worker_3600(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_sleep(3600);
  int rc2 = cio_sleep(1);
  trace("worker-cleanup=%s@%g", N(rc2), now());
  return rc;
}

static int tg_cancel_in_timeout_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 0.5, rc) {
    cio_taskgroup *tg = cio_taskgroup_new();
    CIO_WITH_TASKGROUP(tg, rc) {
      cio_taskgroup_create_task(tg, worker_3600, NULL, NULL);
      rc = cio_sleep(0.1);
      if (rc < 0) break;
      cio_taskgroup_cancel(tg);
    }
    trace("group=%s@%g", N(rc), now());
    cio_taskgroup_free(tg);
  }
  trace("scope=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(self()));
  return 0;
}

static void test_tg_cancel_inside_timeout(void **state) {
  (void)state;
  assert_code(run(tg_cancel_in_timeout_main), 0);
  assert_trace("worker-cleanup=OK@1.1 group=ECANCELED@1.1 scope=ETIMEDOUT@1.1 cancelling=0");
}

/* Group cancel inside a timeout that does not expire: the group exits
 * cleanly, the scope is untouched. */
static int tg_cancel_in_quiet_timeout_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0};
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 10, rc) {
    cio_taskgroup *tg = cio_taskgroup_new();
    CIO_WITH_TASKGROUP(tg, rc) {
      cio_taskgroup_create_task(tg, sleeper, &a, NULL);
      rc = cio_sleep(1);
      if (rc < 0) break;
      cio_taskgroup_cancel(tg);
      rc = cio_sleep(1);
      trace("body=%s@%g", N(rc), now());
    }
    trace("group=%s@%g", N(rc), now());
    cio_taskgroup_free(tg);
    if (rc < 0) break;
    rc = cio_sleep(1);
  }
  trace("scope=%s@%g expired=%d", N(rc), now(), cio_timeout_expired(&to));
  return 0;
}

static void test_tg_cancel_inside_quiet_timeout(void **state) {
  (void)state;
  assert_code(run(tg_cancel_in_quiet_timeout_main), 0);
  assert_trace("a!@1 body=ECANCELED@1 group=OK@1 scope=OK@2 expired=0");
}

/* Freeing a group without join: its pending children are cancelled and
 * the loop's exception handler is told. */
static int tg_free_early_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0};
  record_exceptions();
  cio_taskgroup *tg = cio_taskgroup_new();
  check(cio_taskgroup_enter(tg) == 0);
  cio_task *ta = cio_taskgroup_create_task(tg, sleeper, &a, NULL);
  cio_task_ref(ta);
  int rc = cio_sleep(1);
  check(rc == 0);
  check(cio_taskgroup_free(tg) == 0);
  trace("handler=%d", handler_calls);
  rc = cio_await(ta, NULL);
  trace("a=%s", N(rc));
  cio_task_unref(ta);
  return 0;
}

static void test_tg_free_before_join(void **state) {
  (void)state;
  assert_code(run(tg_free_early_main), 0);
  assert_trace("handler=1 a!@1 a=ECANCELED");
  assert_non_null(strstr(handler_msg, "TaskGroup freed before join"));
}

/* Misuse: the parent leaves the scope without join (as a `return` out of
 * CIO_WITH_TASKGROUP would). Nothing crashes: the loop's shutdown cancels
 * the child, and the group can still be freed after the loop is gone. */
static cio_taskgroup *abandoned_tg;

static int tg_abandon_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 10, 0};
  abandoned_tg = cio_taskgroup_new();
  check(cio_taskgroup_enter(abandoned_tg) == 0);
  cio_taskgroup_create_task(abandoned_tg, sleeper, &a, NULL);
  return cio_sleep(1);
}

static void test_tg_abandoned(void **state) {
  (void)state;
  assert_code(run(tg_abandon_main), 0);
  assert_trace("a!@1");
  assert_code(cio_taskgroup_free(abandoned_tg), 0);
}

/* ==== timeout scopes ======================================================================= */

/* to_basic: when=1 timeout@1 expired=True */
static int to_basic_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 1, rc) {
    trace("when=%g", cio_timeout_when(&to));
    check(!cio_timeout_expired(&to));
    rc = cio_sleep(2);
  }
  if (rc == -ETIMEDOUT) trace("timeout@%g expired=%s", now(), cio_timeout_expired(&to) ? "True" : "False");
  check(cio_task_cancelling(self()) == 0);
  return 0;
}

static void test_to_basic(void **state) {
  (void)state;
  assert_code(run(to_basic_main), 0);
  assert_trace("when=1 timeout@1 expired=True");
}

/* The block ends in time: its own result, nothing expired. */
static int to_in_time_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 2, rc) {
    rc = cio_sleep(1);
    if (rc == 0) rc = 7;
  }
  trace("rc=%d expired=%d", rc, cio_timeout_expired(&to));
  /* A body error passes through unchanged. */
  CIO_WITH_TIMEOUT(&to, 2, rc) { rc = cio_raise(-EIO, "disk"); }
  trace("rc=%s msg=%s", N(rc), cio_errmsg());
  /* No deadline at all. */
  CIO_WITH_TIMEOUT(&to, CIO_NO_TIMEOUT, rc) {
    check(isinf(cio_timeout_when(&to)));
    rc = cio_sleep(100);
  }
  trace("none=%s@%g", N(rc), now());
  return 0;
}

static void test_to_in_time(void **state) {
  (void)state;
  assert_code(run(to_in_time_main), 0);
  assert_trace("rc=7 expired=0 rc=EIO msg=disk none=OK@101");
}

/* to_nested: inner@1 outer@3 */
static int to_nested_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout outer = CIO_TIMEOUT_INIT, inner = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&outer, 3, rc) {
    CIO_WITH_TIMEOUT(&inner, 1, rc) { rc = cio_sleep(10); }
    if (rc == -ETIMEDOUT) trace("inner@%g", now());
    rc = cio_sleep(10);
  }
  if (rc == -ETIMEDOUT) trace("outer@%g", now());
  return 0;
}

static void test_to_nested(void **state) {
  (void)state;
  assert_code(run(to_nested_main), 0);
  assert_trace("inner@1 outer@3");
}

/* The outer scope expires first: the inner one lets the cancellation
 * through, the outer converts it. */
static int to_nested_outer_first_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout outer = CIO_TIMEOUT_INIT, inner = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&outer, 1, rc) {
    CIO_WITH_TIMEOUT(&inner, 5, rc) { rc = cio_sleep(10); }
    trace("inner=%s expired=%d", N(rc), cio_timeout_expired(&inner));
  }
  trace("outer=%s@%g", N(rc), now());
  return 0;
}

static void test_to_nested_outer_first(void **state) {
  (void)state;
  assert_code(run(to_nested_outer_first_main), 0);
  assert_trace("inner=ECANCELED expired=0 outer=ETIMEDOUT@1");
}

/* to_group_to: inner@1 c!@3 c.@3.5 outer@3.5
 * A timeout scope inside a TaskGroup inside a timeout scope, each expiring
 * in turn: the inner scope times out in the body; the outer one cancels the
 * body, the group cancels its child and waits for its cleanup, and the outer
 * scope reports the timeout. */
static int to_group_to_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec c = {"c", 10, 0.5};
  cio_timeout outer = CIO_TIMEOUT_INIT, inner = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&outer, 3, rc) {
    cio_taskgroup *tg = cio_taskgroup_new();
    CIO_WITH_TASKGROUP(tg, rc) {
      cio_taskgroup_create_task(tg, sleeper, &c, NULL);
      CIO_WITH_TIMEOUT(&inner, 1, rc) { rc = cio_sleep(10); }
      if (rc == -ETIMEDOUT) trace("inner@%g", now());
      rc = cio_sleep(10);
    }
    cio_taskgroup_free(tg);
  }
  if (rc == -ETIMEDOUT) trace("outer@%g", now());
  check(cio_task_cancelling(self()) == 0);
  return 0;
}

static void test_to_group_to(void **state) {
  (void)state;
  assert_code(run(to_group_to_main), 0);
  assert_trace("inner@1 c!@3 c.@3.5 outer@3.5");
}

/* to_outer_cancel: cancelled@1 cancelling=1
 * An outer cancel arriving with the deadline stays a cancel. */
static void cancel_cb(void *arg) { cio_task_cancel(arg, NULL); }

static int to_outer_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *me = self();
  check(cio_call_later(cio_get_running_loop(), 1, cancel_cb, me, NULL) == 0);
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 1, rc) { rc = cio_sleep(2); }
  if (rc == -ETIMEDOUT) trace("timeout");
  if (rc == -ECANCELED) trace("cancelled@%g cancelling=%d", now(), cio_task_cancelling(me));
  cio_task_uncancel(me);
  return 0;
}

static void test_to_outer_cancel(void **state) {
  (void)state;
  assert_code(run(to_outer_cancel_main), 0);
  assert_trace("cancelled@1 cancelling=1");
}

/* to_reschedule: alive@1.5 alive@2.5 timeout@2.5 */
static int to_reschedule_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 1, rc) {
    check(cio_timeout_reschedule(&to, now() + 2) == 0);
    check(cio_timeout_when(&to) == 2.0);
    rc = cio_sleep(1.5);
    if (rc < 0) break;
    trace("alive@%g", now());
    check(cio_timeout_reschedule(&to, CIO_NO_TIMEOUT) == 0);
    rc = cio_sleep(1);
    if (rc < 0) break;
    trace("alive@%g", now());
    check(cio_timeout_reschedule(&to, now() - 1) == 0);
    rc = cio_sleep(10);
    /* expiring: no more changes */
    check(cio_timeout_reschedule(&to, now() + 5) == CIO_EINVALSTATE);
  }
  if (rc == -ETIMEDOUT) trace("timeout@%g", now());
  check(cio_timeout_reschedule(&to, now() + 5) == CIO_EINVALSTATE); /* expired */
  check(cio_timeout_reschedule(&to, NAN) == -EINVAL);
  check(cio_timeout_reschedule(NULL, 1) == -EINVAL);
  cio_timeout never = CIO_TIMEOUT_INIT;
  memset(&never, 0, sizeof never);
  check(cio_timeout_reschedule(&never, 1) == CIO_EINVALSTATE); /* not entered */
  check(isinf(cio_timeout_when(&never)));
  return 0;
}

static void test_to_reschedule(void **state) {
  (void)state;
  assert_code(run(to_reschedule_main), 0);
  assert_trace("alive@1.5 alive@2.5 timeout@2.5");
}

/* to_hops: body k0 k1 timeout k2 k3 k4 — timeout(0) fires on the next
 * iteration (call_soon), never inline. */
static int to_hops_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(ticker, (void *)5, NULL);
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 0, rc) {
    trace("body");
    rc = cio_sleep(10);
  }
  if (rc == -ETIMEDOUT) trace("timeout");
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_to_hops(void **state) {
  (void)state;
  assert_code(run(to_hops_main), 0);
  assert_trace("body k0 k1 timeout k2 k3 k4");
}

/* cpython#134471: timeout(0) must not eat an earlier, unrelated cancel.
 * CPython 3.13 prints "timeout caught" here; the cancellation must win. */
static int to_zero_earlier_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *me = self();
  cio_task_cancel(me, NULL);
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 0, rc) { rc = cio_sleep(1); }
  trace("rc=%s@%g cancelling=%d expired=%d", N(rc), now(), cio_task_cancelling(me),
        cio_timeout_expired(&to));
  /* With a positive delay it was always right; check it too. */
  cio_task_uncancel(me);
  cio_task_cancel(me, NULL);
  CIO_WITH_TIMEOUT(&to, 0.001, rc) { rc = cio_sleep(1); }
  trace("rc=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(me));
  cio_task_uncancel(me);
  return 0;
}

static void test_to_zero_keeps_earlier_cancel(void **state) {
  (void)state;
  assert_code(run(to_zero_earlier_cancel_main), 0);
  assert_trace("rc=ECANCELED@0 cancelling=1 expired=0 rc=ECANCELED@0 cancelling=1");
}

/* ... but a timeout(0) used for cleanup after a cancellation that was
 * already delivered still times out (a shielded cleanup with a deadline). */
static int to_zero_cleanup_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *me = self();
  cio_task_cancel(me, NULL);
  int rc = cio_sleep(1);
  check(rc == -ECANCELED);
  cio_timeout to = CIO_TIMEOUT_INIT;
  CIO_WITH_TIMEOUT(&to, 0, rc) { rc = cio_sleep(1); }
  trace("cleanup=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(me));
  /* Swallowed the first cancel, then a later deadline still works. */
  CIO_WITH_TIMEOUT(&to, 0.5, rc) { rc = cio_sleep(1); }
  trace("later=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(me));
  cio_task_uncancel(me);
  return 0;
}

static void test_to_zero_after_delivered_cancel(void **state) {
  (void)state;
  assert_code(run(to_zero_cleanup_main), 0);
  assert_trace("cleanup=ETIMEDOUT@0 cancelling=1 later=ETIMEDOUT@0.5 cancelling=1");
}

/* timeout(0) with an earlier cancel that the body swallows: the scope's
 * own deadline then still fires at the next suspension. */
static int to_zero_swallow_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *me = self();
  cio_task_cancel(me, NULL);
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 0, rc) {
    rc = cio_sleep(1);
    trace("first=%s", N(rc));
    cio_task_uncancel(me); /* handled */
    rc = cio_sleep(1);
  }
  trace("rc=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(me));
  return 0;
}

static void test_to_zero_swallowed_cancel(void **state) {
  (void)state;
  assert_code(run(to_zero_swallow_main), 0);
  assert_trace("first=ECANCELED rc=ETIMEDOUT@0 cancelling=0");
}

/* Another error while expiring stands; the message notes the expiry. */
static int failing_cleanup(void) {
  int rc = cio_sleep(10);
  (void)rc;
  return cio_raise(-EIO, "cleanup failed");
}

static int to_other_error_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 1, rc) { rc = failing_cleanup(); }
  trace("rc=%s@%g expired=%d", N(rc), now(), cio_timeout_expired(&to));
  check(strcmp(cio_errmsg(), "cleanup failed (while a timeout expired)") == 0);
  check(cio_task_cancelling(self()) == 0);
  return 0;
}

static void test_to_other_error_while_expiring(void **state) {
  (void)state;
  assert_code(run(to_other_error_main), 0);
  assert_trace("rc=EIO@1 expired=1");
}

/* timeout_at, and misuse. */
static int to_misuse_other(void *arg, void **result) {
  (void)result;
  trace("other-exit=%s", N(cio_timeout_exit(arg, 0)));
  return 0;
}

static int to_misuse_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT_AT(&to, now() + 2, rc) {
    check(cio_timeout_when(&to) == 2.0);
    check(cio_timeout_enter(&to, 1) == CIO_EINVALSTATE); /* active */
    cio_task *o = cio_create_task(to_misuse_other, &to, NULL);
    rc = cio_await(o, NULL);
    cio_task_unref(o);
    if (rc < 0) break;
    rc = cio_sleep(5);
  }
  trace("at=%s@%g", N(rc), now());
  check(cio_timeout_exit(&to, 0) == CIO_EINVALSTATE); /* exited */
  check(cio_timeout_enter(NULL, 1) == -EINVAL);
  check(cio_timeout_enter(&to, NAN) == -EINVAL);
  check(cio_timeout_enter_at(&to, NAN) == -EINVAL);
  check(cio_timeout_exit(NULL, 0) == -EINVAL);
  /* timeout_at in the past: fires on the next iteration. */
  CIO_WITH_TIMEOUT_AT(&to, 0, rc) { rc = cio_sleep(1); }
  trace("past=%s@%g", N(rc), now());
  return 0;
}

static void test_to_at_and_misuse(void **state) {
  (void)state;
  assert_code(run(to_misuse_main), 0);
  assert_trace("other-exit=CIO_EINVALSTATE at=ETIMEDOUT@2 past=ETIMEDOUT@2");
  cio_timeout to = CIO_TIMEOUT_INIT;
  assert_code(cio_timeout_enter(&to, 1), CIO_ENOTASK);
  assert_false(cio_timeout_expired(NULL));
}

/* ==== wait_for ================================================================================ */

/* wf_timeout: s!@3 s.@3.5 timeout@3.5 cancelled=True
 * The inner task is cancelled at the deadline and waited for. */
static int wf_timeout_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 10, 0.5};
  cio_task *t = cio_create_task(sleeper, &s, NULL);
  int rc = cio_wait_for(t, 3, NULL);
  if (rc == -ETIMEDOUT) trace("timeout@%g cancelled=%s", now(), cio_task_cancelled(t) ? "True" : "False");
  check(cio_task_cancelling(self()) == 0);
  cio_task_unref(t);
  return 0;
}

static void test_wf_timeout(void **state) {
  (void)state;
  assert_code(run(wf_timeout_main), 0);
  assert_trace("s!@3 s.@3.5 timeout@3.5 cancelled=True");
}

/* wf_swallow: swallow@3 result=42@3.5
 * The inner task handles the cancellation (cio_task_uncancel, as DESIGN.md
 * asks) and returns a value: that value wins. */
static int swallow(void *arg, void **result) {
  int rc = cio_sleep(10);
  if (rc != -ECANCELED) return rc;
  trace("swallow@%g", now());
  rc = cio_sleep(0.5);
  if (rc < 0) return rc;
  if (arg) cio_task_uncancel(self());
  *result = (void *)42;
  return 0;
}

static int wf_swallow_main(void *arg, void **result) {
  (void)result;
  cio_task *t = cio_create_task(swallow, arg, NULL);
  void *r = NULL;
  int rc = cio_wait_for(t, 3, &r);
  if (rc == 0) trace("result=%ld@%g", (long)(intptr_t)r, now());
  if (rc < 0) trace("rc=%s@%g", N(rc), now());
  cio_task_unref(t);
  return 0;
}

static void test_wf_inner_swallows_cancel(void **state) {
  (void)state;
  assert_code(run_virtual(wf_swallow_main, (void *)1), 0);
  assert_trace("swallow@3 result=42@3.5");
  /* Without uncancel the task ends cancelled (DESIGN.md): a timeout. */
  assert_code(run_virtual(wf_swallow_main, NULL), 0);
  assert_trace("swallow@3 rc=ETIMEDOUT@3.5");
}

/* wf_hops: k0 k1 k2 r=7 k3 k4 k5 t0 k6 k7 (and timeout 0 on a task that
 * never started: its body never runs) */
static int wf_hops_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec z = {"z", 10, 0};
  cio_task *tk = cio_create_task(ticker, (void *)8, NULL);
  cio_task *t = cio_create_task(quick_value, (void *)7, NULL);
  void *r = NULL;
  int rc = cio_wait_for(t, 5, &r);
  if (rc == 0) trace("r=%ld", (long)(intptr_t)r);
  cio_task_unref(t);
  cio_task *t2 = cio_create_task(sleeper, &z, NULL);
  rc = cio_wait_for(t2, 0, NULL);
  if (rc == -ETIMEDOUT) trace("t0");
  cio_task_unref(t2);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_wf_hops(void **state) {
  (void)state;
  assert_code(run(wf_hops_main), 0);
  assert_trace("k0 k1 k2 r=7 k3 k4 k5 t0 k6 k7");
}

/* Timeout <= 0 on a done future returns its result; no deadline = await;
 * cancelling the caller cancels the inner; the inline form; misuse. */
static cio_task *wf_inner;

static int wf_caller(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_wait_for(wf_inner, 10, NULL);
  trace("caller=%s@%g", N(rc), now());
  return rc;
}

static int slow_call(void *arg, void **result) {
  int rc = cio_sleep(*(double *)arg);
  if (rc < 0) return rc;
  *result = (void *)"slow";
  return 5;
}

static int wf_misc_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 10, 0};
  cio_future *f = cio_future_new(cio_get_running_loop());
  check(cio_future_set_result(f, (void *)9) == 0);
  void *r = NULL;
  check(cio_wait_for(f, 0, &r) == 0 && r == (void *)9);
  check(cio_wait_for(f, CIO_NO_TIMEOUT, &r) == 0 && r == (void *)9);
  check(cio_wait_for(f, NAN, &r) == -EINVAL);
  check(cio_wait_for((cio_future *)NULL, 1, &r) == -EINVAL);
  check(cio_wait_for(self(), 1, &r) == CIO_ESELF);
  cio_future_unref(f);
  /* A plain future pending at timeout 0 is cancelled: a timeout. */
  f = cio_future_new(cio_get_running_loop());
  int rc = cio_wait_for(f, 0, &r);
  trace("f0=%s cancelled=%d", N(rc), cio_future_cancelled(f));
  cio_future_unref(f);
  /* Cancelling the caller cancels the awaited task. */
  wf_inner = cio_create_task(sleeper, &s, NULL);
  cio_task *c = cio_create_task(wf_caller, NULL, NULL);
  rc = cio_sleep(1);
  cio_task_cancel(c, NULL);
  rc = cio_await(c, NULL);
  trace("inner-cancelled=%d", cio_task_cancelled(wf_inner));
  cio_task_unref(c);
  cio_task_unref(wf_inner);
  /* The coroutine form: runs inline, its own value through. */
  double d = 1, big = 10;
  rc = cio_wait_for_call(slow_call, &d, 2, &r);
  trace("call=%d %s@%g", rc, (const char *)r, now());
  rc = cio_wait_for_call(slow_call, &big, 2, &r);
  trace("call=%s@%g", N(rc), now());
  rc = cio_wait_for_call(slow_call, &big, 0, &r);
  trace("call0=%s@%g", N(rc), now());
  check(cio_wait_for_call(NULL, NULL, 1, &r) == -EINVAL);
  return 0;
}

static void test_wf_misc(void **state) {
  (void)state;
  assert_code(run(wf_misc_main), 0);
  assert_trace("f0=ETIMEDOUT cancelled=1 s!@1 caller=ECANCELED@1 inner-cancelled=1 "
               "call=5 slow@2 call=ETIMEDOUT@4 call0=ETIMEDOUT@4");
  void *r;
  assert_code(cio_wait_for((cio_future *)NULL, 1, &r), CIO_ENOTASK);
  assert_code(cio_wait_for_call(slow_call, NULL, 1, &r), CIO_ENOTASK);
}

/* wf_race: inner!@3 timeout@3
 * The inner task's sleep and the deadline expire at the same instant, the
 * inner's timer first: the deadline still cancels the task before it
 * resumes, so wait_for times out. */
static int race_inner(void *arg, void **result) {
  (void)arg;
  int rc = cio_sleep(3);
  if (rc == -ECANCELED) trace("inner!@%g", now());
  if (rc < 0) return rc;
  *result = (void *)1;
  return 0;
}

static int wf_race_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *t = cio_create_task(race_inner, NULL, NULL);
  int rc = cio_sleep(0);
  void *r = NULL;
  rc = cio_wait_for(t, 3, &r);
  if (rc == 0) trace("r=%ld", (long)(intptr_t)r);
  if (rc == -ETIMEDOUT) trace("timeout@%g", now());
  cio_task_unref(t);
  return 0;
}

static void test_wf_race(void **state) {
  (void)state;
  assert_code(run(wf_race_main), 0);
  assert_trace("inner!@3 timeout@3");
}

/* An eager child failing inside create_task cancels the parent at its next
 * suspension, through the group's callback (as CPython since gh-128550). */
static int eager_fail(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_raise(-EIO, "eager");
}

static int tg_eager_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_taskgroup *tg = cio_taskgroup_new();
  cio_task_options eager = {.eager_start = true};
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_task *t = cio_taskgroup_create_task(tg, eager_fail, NULL, &eager);
    trace("created done=%d cancelling=%d", cio_task_done(t), cio_task_cancelling(self()));
    rc = cio_sleep(1);
    trace("body=%s@%g", N(rc), now());
  }
  trace("rc=%s %s", N(rc), eg_msgs(tg));
  cio_taskgroup_free(tg);
  return 0;
}

static void test_tg_eager_child_fails(void **state) {
  (void)state;
  assert_code(run(tg_eager_main), 0);
  assert_trace("created done=1 cancelling=0 body=ECANCELED@0 rc=CIO_EGROUP eager");
}

/* ==== gather ================================================================================ */

/* ga_first_error: b+ ax@1 error=a@1 b-@2 b-done=True
 * The first error is returned at once; the other child keeps running. */
static int ga_first_error_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 2, 0};
  cio_task *ta = cio_create_task(fail_after, &a, NULL);
  cio_task *tb = cio_create_task(child, &b, NULL);
  cio_future *fs[] = {cio_task_future(ta), cio_task_future(tb)};
  void *results[2] = {(void *)1, (void *)1};
  int rc = cio_gather(fs, 2, results, NULL);
  if (rc == -EINVAL) trace("error=%s@%g", cio_errmsg(), now());
  check(results[0] == NULL && results[1] == NULL);
  rc = cio_sleep(2);
  trace("b-done=%s", cio_task_done(tb) ? "True" : "False");
  cio_task_unref(ta);
  cio_task_unref(tb);
  return rc;
}

static void test_ga_first_error(void **state) {
  (void)state;
  assert_code(run(ga_first_error_main), 0);
  assert_trace("b+ ax@1 error=a@1 b-@2 b-done=True");
}

/* ga_cancel_one_done: a+ a-@1 b!@2 c!@2 cancelled@2 a=a b=False c=True
 * ga_cancel_one_done_rex: a+ a-@1 b!@2 c!@2 b.@2.5 cancelled@2.5 a=a b=True c=True
 * The gather is cancelled (through its caller) while one child is done
 * already: the others are cancelled; the done one keeps its result. */
static int ga_cancel_one_done(bool rex) {
  static struct spec a = {"a", 1, 0}, b = {"b", 5, 0.5}, c = {"c", 5, 0};
  cio_task *me = self();
  cio_task *ts[] = {cio_create_task(child, &a, NULL), cio_create_task(sleeper, &b, NULL),
                    cio_create_task(sleeper, &c, NULL)};
  cio_future *fs[] = {cio_task_future(ts[0]), cio_task_future(ts[1]), cio_task_future(ts[2])};
  check(cio_call_later(cio_get_running_loop(), 2, cancel_cb, me, NULL) == 0);
  int codes[3];
  int rc = cio_gather(fs, 3, NULL, rex ? codes : NULL);
  void *ra = NULL;
  if (rc == -ECANCELED)
    trace("cancelled@%g a=%s b=%s c=%s", now(),
          cio_task_result(ts[0], &ra) == 0 ? (const char *)ra : "?",
          cio_task_cancelled(ts[1]) ? "True" : "False", cio_task_cancelled(ts[2]) ? "True" : "False");
  if (rex) check(codes[0] == 0 && codes[1] == -ECANCELED && codes[2] == -ECANCELED);
  cio_task_uncancel(me);
  for (int i = 0; i < 3; i++) cio_task_unref(ts[i]);
  return 0;
}

static int ga_cancel_main(void *arg, void **result) {
  (void)result;
  return ga_cancel_one_done(arg != NULL);
}

static void test_ga_cancel_one_done(void **state) {
  (void)state;
  assert_code(run_virtual(ga_cancel_main, NULL), 0);
  assert_trace("a+ a-@1 b!@2 c!@2 cancelled@2 a=a b=False c=True");
  assert_code(run_virtual(ga_cancel_main, (void *)1), 0);
  assert_trace("a+ a-@1 b!@2 c!@2 b.@2.5 cancelled@2.5 a=a b=True c=True");
}

/* ga_hops: k0 k1 k2 r=[1, 2] k3 k4 k5 */
static int ga_hops_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(ticker, (void *)6, NULL);
  cio_call calls[] = {{value, (void *)1}, {value, (void *)2}};
  void *r[2];
  int rc = cio_gather_calls(calls, 2, r, NULL, NULL);
  if (rc == 0) trace("r=[%ld, %ld]", (long)(intptr_t)r[0], (long)(intptr_t)r[1]);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_ga_hops(void **state) {
  (void)state;
  assert_code(run(ga_hops_main), 0);
  assert_trace("k0 k1 k2 r=[1, 2] k3 k4 k5");
}

/* return_exceptions: each slot holds its result or its error, a
 * cancellation included; duplicates share one child; order is argument
 * order, not completion order. */
static int ga_rex_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 2, 0}, f = {"f", 1, 0}, s = {"s", 5, 0}, b = {"b", 1, 0};
  cio_task *ta = cio_create_task(child, &a, NULL), *tf = cio_create_task(fail_after, &f, NULL),
           *ts = cio_create_task(sleeper, &s, NULL), *tb = cio_create_task(child, &b, NULL);
  cio_future *fs[] = {cio_task_future(ta), cio_task_future(tf), cio_task_future(ts),
                      cio_task_future(tb), cio_task_future(ta)};
  check(cio_call_later(cio_get_running_loop(), 1.5, cancel_cb, ts, NULL) == 0);
  void *r[5];
  int codes[5];
  int rc = cio_gather(fs, 5, r, codes);
  trace("rc=%s@%g", N(rc), now());
  for (int i = 0; i < 5; i++)
    trace("%s:%s", N(codes[i]), codes[i] ? cio_future_error_message(fs[i]) ? cio_future_error_message(fs[i]) : "-"
                                         : (const char *)r[i]);
  cio_task_unref(ta);
  cio_task_unref(tf);
  cio_task_unref(ts);
  cio_task_unref(tb);
  return 0;
}

static void test_ga_return_exceptions(void **state) {
  (void)state;
  assert_code(run(ga_rex_main), 0);
  assert_trace("a+ b+ fx@1 b-@1 s!@1.5 a-@2 rc=OK@2 OK:a EINVAL:f ECANCELED:- OK:b OK:a");
}

/* A child cancelled on its own: without return_exceptions gather returns
 * -ECANCELED, yet the others are not cancelled and the caller is not. */
static int ga_child_cancelled_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 5, 0}, b = {"b", 2, 0};
  cio_task *ts = cio_create_task(sleeper, &s, NULL), *tb = cio_create_task(child, &b, NULL);
  cio_future *fs[] = {cio_task_future(ts), cio_task_future(tb)};
  check(cio_call_later(cio_get_running_loop(), 1, cancel_cb, ts, NULL) == 0);
  int rc = cio_gather(fs, 2, NULL, NULL);
  trace("rc=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(self()));
  rc = cio_await(tb, NULL);
  trace("b=%s", N(rc));
  cio_task_unref(ts);
  cio_task_unref(tb);
  return 0;
}

static void test_ga_child_cancelled(void **state) {
  (void)state;
  assert_code(run(ga_child_cancelled_main), 0);
  assert_trace("b+ s!@1 rc=ECANCELED@1 cancelling=0 b-@2 b=OK");
}

/* Empty and all-done gathers do not suspend; misuse; creation failure. */
static int ga_misc_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(ticker, (void *)2, NULL);
  check(cio_gather(NULL, 0, NULL, NULL) == 0);
  cio_future *f = cio_future_new(cio_get_running_loop());
  check(cio_future_set_result(f, (void *)3) == 0);
  cio_future *fs[] = {f, f};
  void *r[2];
  check(cio_gather(fs, 2, r, NULL) == 0 && r[0] == (void *)3 && r[1] == (void *)3);
  trace("no-yield");
  cio_future *bad[] = {f, NULL};
  check(cio_gather(bad, 2, r, NULL) == -EINVAL);
  check(cio_gather(NULL, 1, r, NULL) == -EINVAL);
  cio_future *me[] = {cio_task_future(self())};
  check(cio_gather(me, 1, r, NULL) == CIO_ESELF);
  cio_call calls[] = {{value, NULL}, {NULL, NULL}};
  check(cio_gather_calls(calls, 2, r, NULL, NULL) == -EINVAL);
  cio_future_unref(f);
  /* Many children (exercises the sorted de-duplication). */
  enum { MANY = 100 };
  cio_call many[MANY];
  void *mr[MANY];
  for (intptr_t i = 0; i < MANY; i++) many[i] = (cio_call){quick_value, (void *)i};
  cio_task *mt[MANY];
  int rc = cio_gather_calls(many, MANY, mr, NULL, mt);
  long sum = 0;
  for (int i = 0; i < MANY; i++) {
    sum += (long)(intptr_t)mr[i];
    cio_task_unref(mt[i]);
  }
  trace("many=%s sum=%ld", N(rc), sum);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_ga_misc(void **state) {
  (void)state;
  assert_code(run(ga_misc_main), 0);
  assert_trace("no-yield k0 k1 many=OK sum=4950");
  assert_code(cio_gather(NULL, 0, NULL, NULL), CIO_ENOTASK);
}

/* An error of a child finishing after gather returned is not lost: it is
 * reported when the child is freed unread. */
static int ga_late_error_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 2, 0};
  record_exceptions();
  cio_call calls[] = {{fail_after, &a}, {fail_after, &b}};
  int rc = cio_gather_calls(calls, 2, NULL, NULL, NULL);
  trace("rc=%s@%g", N(rc), now());
  rc = cio_sleep(2);
  trace("handler=%d", handler_calls);
  return rc;
}

static void test_ga_late_error_reported(void **state) {
  (void)state;
  assert_code(run(ga_late_error_main), 0);
  assert_trace("ax@1 rc=EINVAL@1 bx@2 handler=1");
  assert_non_null(strstr(handler_msg, "never retrieved"));
  assert_string_equal(handler_error, "b");
}

/* ==== wait ==================================================================================== */

/* wa_modes: a+ c+ a-@1 first@1 1/2 bx@2 exc@2 2/1 timeout@2.5 2/1 c-@3 all@3 3/0 */
static int wa_modes_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 2, 0}, c = {"c", 3, 0};
  cio_task *ts[] = {cio_create_task(child, &a, NULL), cio_create_task(fail_after, &b, NULL),
                    cio_create_task(child, &c, NULL)};
  cio_future *fs[] = {cio_task_future(ts[0]), cio_task_future(ts[1]), cio_task_future(ts[2])};
  cio_future *done[3], *pending[3];
  size_t nd, np;
  int rc = cio_wait(fs, 3, CIO_NO_TIMEOUT, CIO_FIRST_COMPLETED, done, &nd, pending, &np);
  trace("first@%g %zu/%zu", now(), nd, np);
  check(rc == 0 && done[0] == fs[0] && pending[0] == fs[1] && pending[1] == fs[2]);
  rc = cio_wait(fs, 3, CIO_NO_TIMEOUT, CIO_FIRST_EXCEPTION, done, &nd, pending, &np);
  trace("exc@%g %zu/%zu", now(), nd, np);
  rc = cio_wait(fs, 3, 0.5, CIO_ALL_COMPLETED, done, &nd, pending, &np);
  trace("timeout@%g %zu/%zu", now(), nd, np);
  check(rc == 0 && !cio_task_cancelled(ts[2])); /* a timeout cancels nothing */
  rc = cio_wait(fs, 3, CIO_NO_TIMEOUT, CIO_ALL_COMPLETED, done, &nd, pending, &np);
  trace("all@%g %zu/%zu", now(), nd, np);
  check(cio_task_result(ts[1], NULL) == -EINVAL);
  for (int i = 0; i < 3; i++) cio_task_unref(ts[i]);
  return rc;
}

static void test_wa_modes(void **state) {
  (void)state;
  assert_code(run(wa_modes_main), 0);
  assert_trace("a+ c+ a-@1 first@1 1/2 bx@2 exc@2 2/1 timeout@2.5 2/1 c-@3 all@3 3/0");
}

/* wa_hops: k0 k1 w k2 k3 k4 k5 — even on done futures, wait goes through
 * the callbacks (two iterations). */
static int wa_hops_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(ticker, (void *)6, NULL);
  cio_future *f = cio_future_new(cio_get_running_loop());
  check(cio_future_set_result(f, NULL) == 0);
  int rc = cio_wait(&f, 1, CIO_NO_TIMEOUT, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
  trace("w");
  cio_future_unref(f);
  if (rc == 0) rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_wa_hops(void **state) {
  (void)state;
  assert_code(run(wa_hops_main), 0);
  assert_trace("k0 k1 w k2 k3 k4 k5");
}

/* Cancelling the waiter does not cancel the futures; misuse. */
static cio_future *wa_set[2];

static int wa_waiter(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_wait(wa_set, 2, CIO_NO_TIMEOUT, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
  trace("waiter=%s@%g", N(rc), now());
  return rc;
}

static int wa_misc_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 2, 0}, b = {"b", 3, 0};
  cio_task *ta = cio_create_task(child, &a, NULL), *tb = cio_create_task(child, &b, NULL);
  wa_set[0] = cio_task_future(ta);
  wa_set[1] = cio_task_future(tb);
  cio_task *w = cio_create_task(wa_waiter, NULL, NULL);
  int rc = cio_sleep(1);
  cio_task_cancel(w, NULL);
  rc = cio_await(w, NULL);
  rc = cio_wait(wa_set, 2, CIO_NO_TIMEOUT, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
  trace("all=%s@%g", N(rc), now());
  check(cio_wait(wa_set, 0, 1, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL) == -EINVAL);
  check(strstr(cio_errmsg(), "empty") != NULL);
  check(cio_wait(wa_set, 2, 1, (cio_return_when)7, NULL, NULL, NULL, NULL) == -EINVAL);
  check(cio_wait(wa_set, 2, NAN, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL) == -EINVAL);
  cio_task_unref(w);
  cio_task_unref(ta);
  cio_task_unref(tb);
  return 0;
}

static void test_wa_misc(void **state) {
  (void)state;
  assert_code(run(wa_misc_main), 0);
  assert_trace("a+ b+ waiter=ECANCELED@1 a-@2 b-@3 all=OK@3");
  cio_future *f = NULL;
  assert_code(cio_wait(&f, 1, 1, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL), CIO_ENOTASK);
}

/* ==== shield ==================================================================================== */

/* sh_cancel: i+ outer!@1 i-@3 inner=i */
static cio_task *sh_inner;

static int sh_waiter(void *arg, void **result) {
  (void)arg;
  (void)result;
  int rc = cio_shield(sh_inner, NULL);
  if (rc == -ECANCELED) trace("outer!@%g", now());
  return rc;
}

static int sh_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec i = {"i", 3, 0};
  sh_inner = cio_create_task(child, &i, NULL);
  cio_task *w = cio_create_task(sh_waiter, NULL, NULL);
  int rc = cio_sleep(1);
  cio_task_cancel(w, NULL);
  rc = cio_sleep(3);
  void *r = NULL;
  if (cio_task_result(sh_inner, &r) == 0) trace("inner=%s", (const char *)r);
  check(cio_task_cancelled(w));
  cio_task_unref(w);
  cio_task_unref(sh_inner);
  return rc;
}

static void test_sh_cancel(void **state) {
  (void)state;
  assert_code(run(sh_cancel_main), 0);
  assert_trace("i+ outer!@1 i-@3 inner=i");
}

/* sh_hops: k0 k1 k2 k3 r=5 k4 k5 */
static int sh_hops_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(ticker, (void *)6, NULL);
  cio_task *t = cio_create_task(quick_value, (void *)5, NULL);
  void *r = NULL;
  int rc = cio_shield(t, &r);
  if (rc == 0) trace("r=%ld", (long)(intptr_t)r);
  cio_task_unref(t);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_sh_hops(void **state) {
  (void)state;
  assert_code(run(sh_hops_main), 0);
  assert_trace("k0 k1 k2 k3 r=5 k4 k5");
}

/* The inner task fails after the outer await was cancelled: the error goes
 * to the exception handler (CPython marks it retrieved and loses it). */
static int sh_fail_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec f = {"late failure", 3, 0};
  record_exceptions();
  sh_inner = cio_create_task(fail_after, &f, NULL);
  cio_task *w = cio_create_task(sh_waiter, NULL, NULL);
  int rc = cio_sleep(1);
  cio_task_cancel(w, NULL);
  rc = cio_sleep(3);
  trace("handler=%d", handler_calls);
  cio_task_unref(w);
  cio_task_unref(sh_inner); /* retrieved by the report: not reported twice */
  return rc;
}

static void test_sh_inner_fails_after_cancel(void **state) {
  (void)state;
  assert_code(run(sh_fail_main), 0);
  assert_trace("outer!@1 late failurex@3 handler=1");
  assert_non_null(strstr(handler_msg, "failed after its awaiting task was cancelled"));
  assert_code(handler_code, -EINVAL);
  assert_string_equal(handler_error, "late failure");
}

/* Inner cancelled directly: the outer await is cancelled too. A done inner
 * is returned at once. An error is passed through. Misuse. */
static int sh_misc_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 5, 0}, f = {"f", 1, 0};
  sh_inner = cio_create_task(sleeper, &s, NULL);
  check(cio_call_later(cio_get_running_loop(), 1, cancel_cb, sh_inner, NULL) == 0);
  int rc = cio_shield(sh_inner, NULL);
  trace("inner-cancelled=%s@%g cancelling=%d", N(rc), now(), cio_task_cancelling(self()));
  cio_task_unref(sh_inner);
  cio_task *tf = cio_create_task(fail_after, &f, NULL);
  rc = cio_shield(tf, NULL);
  trace("error=%s:%s@%g", N(rc), cio_errmsg(), now());
  rc = cio_shield(tf, NULL); /* done: at once */
  trace("again=%s@%g", N(rc), now());
  cio_task_unref(tf);
  check(cio_shield((cio_future *)NULL, NULL) == -EINVAL);
  check(cio_shield(self(), NULL) == CIO_ESELF);
  return 0;
}

static void test_sh_misc(void **state) {
  (void)state;
  assert_code(run(sh_misc_main), 0);
  assert_trace("s!@1 inner-cancelled=ECANCELED@1 cancelling=0 fx@2 error=EINVAL:f@2 again=EINVAL@2");
  assert_code(cio_shield((cio_future *)NULL, NULL), CIO_ENOTASK);
}

/* ==== as_completed ================================================================================ */

/* ac_timeout: a+ b+ c+ b-@1 got=b@1 timeout@3 timeout@3 stop@3 */
static int ac_timeout_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0}, b = {"b", 1, 0}, c = {"c", 6, 0};
  cio_task *ts[] = {cio_create_task(child, &a, NULL), cio_create_task(child, &b, NULL),
                    cio_create_task(child, &c, NULL)};
  cio_future *fs[] = {cio_task_future(ts[0]), cio_task_future(ts[1]), cio_task_future(ts[2])};
  cio_as_completed *it = cio_as_completed_new(fs, 3, 3);
  for (;;) {
    cio_future *f;
    int rc = cio_as_completed_next(it, &f);
    void *r = NULL;
    if (rc == 0 && cio_future_result(f, &r) == 0) trace("got=%s@%g", (const char *)r, now());
    if (rc == -ETIMEDOUT) trace("timeout@%g", now());
    if (rc == 1) {
      trace("stop@%g", now());
      break;
    }
    if (rc < 0 && rc != -ETIMEDOUT) return rc;
  }
  check(!cio_task_cancelled(ts[0]) && !cio_task_done(ts[0])); /* nothing cancelled */
  cio_as_completed_free(it);
  for (int i = 0; i < 3; i++) {
    cio_task_cancel(ts[i], NULL);
    cio_task_unref(ts[i]);
  }
  return 0;
}

static void test_ac_timeout(void **state) {
  (void)state;
  assert_code(run(ac_timeout_main), 0);
  assert_trace("a+ b+ c+ b-@1 got=b@1 timeout@3 timeout@3 stop@3");
}

/* ac_hops: k0 k1 k2 k3 r=3 k4 k5 */
static int ac_hops_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(ticker, (void *)6, NULL);
  cio_task *t = cio_create_task(quick_value, (void *)3, NULL);
  cio_future *fs[] = {cio_task_future(t)};
  cio_as_completed *it = cio_as_completed_new(fs, 1, CIO_NO_TIMEOUT);
  cio_future *f;
  int rc;
  while ((rc = cio_as_completed_next(it, &f)) == 0) {
    void *r;
    if (cio_future_result(f, &r) == 0) trace("r=%ld", (long)(intptr_t)r);
  }
  check(rc == 1);
  cio_as_completed_free(it);
  cio_task_unref(t);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_ac_hops(void **state) {
  (void)state;
  assert_code(run(ac_hops_main), 0);
  assert_trace("k0 k1 k2 k3 r=3 k4 k5");
}

/* Completion order with duplicates, errors handed out like results, a
 * cancelled next() that does not lose its item, the empty set, misuse. */
static cio_as_completed *ac_it;

static int ac_next_waiter(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_future *f;
  int rc = cio_as_completed_next(ac_it, &f);
  trace("waiter=%s@%g", N(rc), now());
  return rc;
}

static int ac_misc_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 3, 0}, f = {"f", 2, 0};
  cio_task *ta = cio_create_task(child, &a, NULL), *tf = cio_create_task(fail_after, &f, NULL);
  cio_future *fs[] = {cio_task_future(ta), cio_task_future(tf), cio_task_future(ta)};
  ac_it = cio_as_completed_new(fs, 3, CIO_NO_TIMEOUT);
  check(cio_as_completed_remaining(ac_it) == 2);
  cio_task *w = cio_create_task(ac_next_waiter, NULL, NULL);
  int rc = cio_sleep(1);
  cio_future *got;
  check(cio_as_completed_next(ac_it, &got) == CIO_EINVALSTATE); /* w is waiting */
  check(cio_as_completed_free(ac_it) == CIO_EINVALSTATE);
  cio_task_cancel(w, NULL);
  rc = cio_await(w, NULL);
  check(cio_as_completed_remaining(ac_it) == 2); /* not consumed */
  while ((rc = cio_as_completed_next(ac_it, &got)) == 0)
    trace("%s@%g", got == fs[0] ? "a" : "f", now());
  trace("end=%d", rc);
  check(cio_as_completed_next(ac_it, &got) == 1);
  check(cio_task_result(tf, NULL) == -EINVAL);
  cio_as_completed_free(ac_it);
  cio_task_unref(w);
  cio_task_unref(ta);
  cio_task_unref(tf);
  /* Empty: exhausted at once. */
  cio_as_completed *it = cio_as_completed_new(NULL, 0, 1);
  check(it && cio_as_completed_next(it, &got) == 1);
  cio_as_completed_free(it);
  cio_future *bad[] = {NULL};
  check(cio_as_completed_new(bad, 1, 1) == NULL && cio_errcode() == -EINVAL);
  check(cio_as_completed_new(fs, 1, NAN) == NULL && cio_errcode() == -EINVAL);
  check(cio_as_completed_next(NULL, &got) == -EINVAL);
  check(cio_as_completed_free(NULL) == 0);
  return 0;
}

static void test_ac_misc(void **state) {
  (void)state;
  assert_code(run(ac_misc_main), 0);
  assert_trace("a+ waiter=ECANCELED@1 fx@2 f@2 a-@3 a@3 end=1");
  assert_null(cio_as_completed_new(NULL, 0, 1));
  assert_code(cio_errcode(), CIO_ENOTRUNNING);
}

/* ==== hops of the cancellation paths ============================================================= */
/* A ticker that starts at t=1, the instant something fires, shows how many
 * loop iterations each step of the cancellation takes (tests/py
 * group_traces.py, hop_*). */

static int late_ticker(void *arg, void **result) {
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  return ticker(arg, result);
}

/* hop_tg_outer_cancel: body! k0 a!@1 k1 k2 cancelled k3 k4 k5 k6 k7 */
static int hop_tg_outer_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0};
  cio_task *me = self();
  cio_task *tk = cio_create_task(late_ticker, (void *)8, NULL);
  check(cio_call_later(cio_get_running_loop(), 1, cancel_cb, me, NULL) == 0);
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, sleeper, &a, NULL);
    rc = cio_sleep(10);
    if (rc == -ECANCELED) trace("body!");
  }
  if (rc == -ECANCELED) trace("cancelled");
  cio_taskgroup_free(tg);
  cio_task_uncancel(me);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_tg_outer_cancel(void **state) {
  (void)state;
  assert_code(run(hop_tg_outer_cancel_main), 0);
  assert_trace("body! k0 a!@1 k1 k2 cancelled k3 k4 k5 k6 k7");
}

/* hop_tg_child_fails: k0 ax@1 k1 k2 b!@1 body! k3 k4 eg k5 k6 k7 */
static int hop_tg_child_fails_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 5, 0};
  cio_task *tk = cio_create_task(late_ticker, (void *)8, NULL);
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  CIO_WITH_TASKGROUP(tg, rc) {
    cio_taskgroup_create_task(tg, fail_after, &a, NULL);
    cio_taskgroup_create_task(tg, sleeper, &b, NULL);
    rc = cio_sleep(10);
    if (rc == -ECANCELED) trace("body!");
  }
  if (rc == CIO_EGROUP) trace("eg");
  cio_taskgroup_free(tg);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_tg_child_fails(void **state) {
  (void)state;
  assert_code(run(hop_tg_child_fails_main), 0);
  assert_trace("k0 ax@1 k1 k2 b!@1 body! k3 k4 eg k5 k6 k7");
}

/* hop_to_expire: timeout k0 k1 k2 k3 k4 k5 */
static int hop_to_expire_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_task *tk = cio_create_task(late_ticker, (void *)6, NULL);
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 1, rc) { rc = cio_sleep(10); }
  if (rc == -ETIMEDOUT) trace("timeout");
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_to_expire(void **state) {
  (void)state;
  assert_code(run(hop_to_expire_main), 0);
  assert_trace("timeout k0 k1 k2 k3 k4 k5");
}

/* hop_wf_expire: s!@1 k0 timeout k1 k2 k3 k4 k5 k6 k7 */
static int hop_wf_expire_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 10, 0};
  cio_task *tk = cio_create_task(late_ticker, (void *)8, NULL);
  cio_task *t = cio_create_task(sleeper, &s, NULL);
  int rc = cio_wait_for(t, 1, NULL);
  if (rc == -ETIMEDOUT) trace("timeout");
  cio_task_unref(t);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_wf_expire(void **state) {
  (void)state;
  assert_code(run(hop_wf_expire_main), 0);
  assert_trace("s!@1 k0 timeout k1 k2 k3 k4 k5 k6 k7");
}

/* hop_ga_cancel: a!@1 b!@1 k0 k1 cancelled k2 k3 k4 k5 k6 k7 */
static int hop_ga_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 5, 0}, b = {"b", 5, 0};
  cio_task *me = self();
  cio_task *tk = cio_create_task(late_ticker, (void *)8, NULL);
  cio_task *ts[] = {cio_create_task(sleeper, &a, NULL), cio_create_task(sleeper, &b, NULL)};
  cio_future *fs[] = {cio_task_future(ts[0]), cio_task_future(ts[1])};
  check(cio_call_later(cio_get_running_loop(), 1, cancel_cb, me, NULL) == 0);
  int codes[2];
  int rc = cio_gather(fs, 2, NULL, codes);
  if (rc == -ECANCELED) trace("cancelled");
  cio_task_uncancel(me);
  cio_task_unref(ts[0]);
  cio_task_unref(ts[1]);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_ga_cancel(void **state) {
  (void)state;
  assert_code(run(hop_ga_cancel_main), 0);
  assert_trace("a!@1 b!@1 k0 k1 cancelled k2 k3 k4 k5 k6 k7");
}

/* hop_wa_timeout: w0/1 k0 s!@1 k1 k2 k3 k4 k5 */
static int hop_wa_timeout_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 10, 0};
  cio_task *tk = cio_create_task(late_ticker, (void *)6, NULL);
  cio_task *t = cio_create_task(sleeper, &s, NULL);
  cio_future *f = cio_task_future(t);
  size_t nd, np;
  int rc = cio_wait(&f, 1, 1, CIO_ALL_COMPLETED, NULL, &nd, NULL, &np);
  trace("w%zu/%zu", nd, np);
  cio_task_cancel(t, NULL);
  cio_task_unref(t);
  if (rc == 0) rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_wa_timeout(void **state) {
  (void)state;
  assert_code(run(hop_wa_timeout_main), 0);
  assert_trace("w0/1 k0 s!@1 k1 k2 k3 k4 k5");
}

/* hop_sh_cancel: outer! k0 k1 k2 k3 k4 k5 i-@2 */
static int hop_sh_cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec i = {"i", 2, 0};
  cio_task *me = self();
  cio_task *tk = cio_create_task(late_ticker, (void *)6, NULL);
  cio_task *inner = cio_create_task(sleeper, &i, NULL);
  check(cio_call_later(cio_get_running_loop(), 1, cancel_cb, me, NULL) == 0);
  int rc = cio_shield(inner, NULL);
  if (rc == -ECANCELED) trace("outer!");
  cio_task_uncancel(me);
  rc = cio_await(inner, NULL);
  cio_task_unref(inner);
  if (rc == 0) rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_sh_cancel(void **state) {
  (void)state;
  assert_code(run(hop_sh_cancel_main), 0);
  assert_trace("outer! k0 k1 k2 k3 k4 k5 i-@2");
}

/* hop_ac_timeout: timeout k0 s!@1 k1 k2 k3 k4 k5 */
static int hop_ac_timeout_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 10, 0};
  cio_task *tk = cio_create_task(late_ticker, (void *)6, NULL);
  cio_task *t = cio_create_task(sleeper, &s, NULL);
  cio_future *f = cio_task_future(t);
  cio_as_completed *it = cio_as_completed_new(&f, 1, 1);
  int rc = cio_as_completed_next(it, &f);
  if (rc == -ETIMEDOUT) trace("timeout");
  cio_task_cancel(t, NULL);
  cio_as_completed_free(it);
  cio_task_unref(t);
  rc = cio_await(tk, NULL);
  cio_task_unref(tk);
  return rc;
}

static void test_hop_ac_timeout(void **state) {
  (void)state;
  assert_code(run(hop_ac_timeout_main), 0);
  assert_trace("timeout k0 s!@1 k1 k2 k3 k4 k5");
}

/* Futures of another loop are refused by every combinator. */
static int wrong_loop_main(void *arg, void **result) {
  (void)result;
  cio_future *f = arg; /* belongs to a loop that is not running */
  cio_future *fs[] = {f};
  void *r;
  trace("gather=%s", N(cio_gather(fs, 1, &r, NULL)));
  trace("wait=%s", N(cio_wait(fs, 1, 1, CIO_ALL_COMPLETED, NULL, NULL, NULL, NULL)));
  trace("wait_for=%s", N(cio_wait_for(f, 1, &r)));
  trace("shield=%s", N(cio_shield(f, &r)));
  check(cio_as_completed_new(fs, 1, 1) == NULL);
  trace("as_completed=%s", N(cio_errcode()));
  return 0;
}

static void test_wrong_loop(void **state) {
  (void)state;
  cio_loop *other;
  assert_code(cio_loop_new(&other, NULL), 0);
  cio_future *f = cio_future_new(other);
  assert_non_null(f);
  assert_code(run_virtual(wrong_loop_main, f), 0);
  assert_trace("gather=CIO_EWRONGLOOP wait=CIO_EWRONGLOOP wait_for=CIO_EWRONGLOOP "
               "shield=CIO_EWRONGLOOP as_completed=CIO_EWRONGLOOP");
  assert_code(cio_future_unref(f), 0);
  assert_code(cio_loop_free(other), 0);
}

/* ==== the run leaves nothing behind ================================================================ */

/* Every test above ran under cio_run: the loop closed with no task left
 * (cio_run would have reported "Task was destroyed but it is pending"
 * through the default handler, and ASan/LSan the leaks). This one checks
 * the loop is empty at the end of a run that used everything at once. */
static int everything_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec a = {"a", 1, 0}, b = {"b", 2, 0.5};
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  cio_timeout to = CIO_TIMEOUT_INIT;
  CIO_WITH_TIMEOUT(&to, 1.5, rc) {
    CIO_WITH_TASKGROUP(tg, rc) {
      cio_task *t1 = cio_taskgroup_create_task(tg, child, &a, NULL);
      cio_task *t2 = cio_taskgroup_create_task(tg, sleeper, &b, NULL);
      cio_future *fs[] = {cio_task_future(t1), cio_task_future(t2)};
      rc = cio_gather(fs, 2, NULL, NULL);
    }
  }
  trace("rc=%s@%g", N(rc), now());
  cio_taskgroup_free(tg);
  cio_task *all[4];
  trace("left=%d", cio_all_tasks(cio_get_running_loop(), all, 4));
  return 0;
}

static void test_everything_cleans_up(void **state) {
  (void)state;
  assert_code(run(everything_main), 0);
  assert_trace("a+ a-@1 b!@1.5 b.@2 rc=ETIMEDOUT@2 left=1");
}

/* ==== Hardening (issue 13) ================================================================ */

/* ga_cancel_msg (item 15): the cancel's message reaches a caller waiting in
 * gather, also with return_exceptions (CPython 3.13: CancelledError('my
 * message')). */
static cio_task *gm_kids[2];

static int gm_caller(void *arg, void **result) {
  (void)result;
  cio_future *fs[] = {cio_task_future(gm_kids[0]), cio_task_future(gm_kids[1])};
  int codes[2];
  int rc = cio_gather(fs, 2, NULL, arg ? codes : NULL);
  trace("gather=%s:%s", N(rc), cio_errmsg());
  return rc;
}

static int ga_cancel_msg_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct spec s = {"s", 10, 0};
  for (int rex = 0; rex < 2; rex++) {
    gm_kids[0] = cio_create_task(sleeper, &s, NULL);
    gm_kids[1] = cio_create_task(sleeper, &s, NULL);
    cio_task *c = cio_create_task(gm_caller, rex ? (void *)1 : NULL, NULL);
    int rc = cio_sleep(0);
    cio_task_cancel(c, "my message");
    rc = cio_await(c, NULL);
    trace("caller=%s:%s", N(rc), cio_future_error_message(cio_task_future(c)));
    cio_task_unref(c);
    cio_task_unref(gm_kids[0]);
    cio_task_unref(gm_kids[1]);
  }
  return 0;
}

static void test_ga_cancel_message(void **state) {
  (void)state;
  assert_code(run(ga_cancel_msg_main), 0);
  assert_trace("s!@0 s!@0 gather=ECANCELED:my message caller=ECANCELED:my message s!@0 s!@0 gather=ECANCELED:my message caller=ECANCELED:my message");
}

/* to_when_past (item 16): a negative delay or a past deadline stays in when() (CPython:
 * timeout(-11).when() == loop.time() - 11); the scope still fires on the
 * next iteration. */
static int to_when_past_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, -11, rc) {
    trace("when=%g", cio_timeout_when(&to));
    rc = cio_sleep(1);
  }
  trace("rc=%s@%g", N(rc), now());
  rc = cio_sleep(5);
  CIO_WITH_TIMEOUT(&to, -11, rc) {
    trace("when=%g", cio_timeout_when(&to));
    check(cio_timeout_reschedule(&to, -2) == 0);
    trace("when=%g", cio_timeout_when(&to));
    rc = cio_sleep(1);
  }
  trace("rc=%s@%g when=%g", N(rc), now(), cio_timeout_when(&to));
  CIO_WITH_TIMEOUT_AT(&to, 2.5, rc) {
    trace("when=%g", cio_timeout_when(&to));
    rc = cio_sleep(1);
  }
  trace("rc=%s@%g", N(rc), now());
  return 0;
}

static void test_to_when_past(void **state) {
  (void)state;
  assert_code(run(to_when_past_main), 0);
  assert_trace("when=-11 rc=ETIMEDOUT@0 when=-6 when=-2 rc=ETIMEDOUT@5 when=-2 when=2.5 rc=ETIMEDOUT@5");
}

/* Item 10: a zeroed or cio_timeout_init-ed scope is the starting state. */
static int to_init_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_timeout a, b = CIO_TIMEOUT_INIT;
  memset(&a, 0, sizeof a);
  cio_timeout_init(&b);
  check(isinf(cio_timeout_when(&a)) && !cio_timeout_expired(&a));
  check(cio_timeout_exit(&a, 0) == CIO_EINVALSTATE);
  check(cio_timeout_enter(&a, 1) == 0 && cio_timeout_enter(&a, 1) == CIO_EINVALSTATE);
  check(cio_timeout_enter(&b, 2) == 0);
  check(cio_timeout_exit(&b, 0) == 0 && cio_timeout_exit(&a, 0) == 0);
  cio_timeout_init(NULL); /* no-op */
  return 0;
}

static void test_to_init(void **state) {
  (void)state;
  assert_code(run(to_init_main), 0);
  assert_trace("");
}

/* Item 18: a shield whose caller was cancelled and whose inner future never
 * completes keeps nothing alive once the inner future is released. */
static cio_future *sh_never;

static int sh_never_caller(void *arg, void **result) {
  (void)arg;
  return cio_shield(sh_never, result);
}

static int sh_no_leak_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  sh_never = cio_future_new(cio_get_running_loop());
  cio_task *c = cio_create_task(sh_never_caller, NULL, NULL);
  int rc = cio_sleep(0);
  cio_task_cancel(c, NULL);
  rc = cio_await(c, NULL);
  trace("caller=%s", N(rc));
  cio_task_unref(c);
  rc = cio_sleep(0);
  struct cio_future *f = sh_never;
  cio_future_unref(sh_never);
  /* The slab keeps the memory: the released future has its dead mark. */
  check(f->magic == CIO__FUT_DEAD);
  return 0;
}

static void test_sh_no_leak(void **state) {
  (void)state;
  assert_code(run(sh_no_leak_main), 0);
  assert_trace("caller=ECANCELED");
}

/* The same, and the inner future fails later: still reported. */
static int sh_late_error_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  record_exceptions();
  sh_never = cio_future_new(cio_get_running_loop());
  cio_task *c = cio_create_task(sh_never_caller, NULL, NULL);
  int rc = cio_sleep(0);
  cio_task_cancel(c, NULL);
  rc = cio_await(c, NULL);
  cio_task_unref(c);
  check(cio_future_set_error(sh_never, -EIO, "late") == 0);
  cio_future_unref(sh_never);
  rc = cio_sleep(0);
  rc = cio_sleep(0);
  trace("calls=%d code=%s error=%s", handler_calls, N(handler_code), handler_error);
  return rc;
}

static void test_sh_late_error_after_release(void **state) {
  (void)state;
  assert_code(run(sh_late_error_main), 0);
  assert_trace("calls=1 code=EIO error=late");
}

/* Item 10: freeing an as_completed iterator whose 80,000 callbacks are all
 * queued is linear (it took 6 s: each node was searched for in the ready
 * queue). The futures complete in reverse order, so that no node is at the
 * head of the queue when it is taken out. */
static double real_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define AC_MANY 80000

static int ac_free_many_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_future **fs = malloc(AC_MANY * sizeof *fs);
  for (int i = 0; i < AC_MANY; i++) fs[i] = cio_future_new(cio_get_running_loop());
  cio_as_completed *it = cio_as_completed_new(fs, AC_MANY, CIO_NO_TIMEOUT);
  check(it != NULL);
  for (int i = AC_MANY - 1; i >= 0; i--) check(cio_future_set_result(fs[i], NULL) == 0);
  double t0 = real_now();
  check(cio_as_completed_free(it) == 0);
  double dt = real_now() - t0;
  if (dt > 1.0) trace("slow free: %.2f s", dt);
  for (int i = 0; i < AC_MANY; i++) cio_future_unref(fs[i]);
  free(fs);
  return cio_sleep(0);
}

static void test_ac_free_many_queued(void **state) {
  (void)state;
  assert_code(run(ac_free_many_main), 0);
  assert_trace("");
}

/* The same for gather and wait: the caller resumes with 79,999 of its
 * callbacks still queued (their futures completed after the one that woke
 * it, in the same iteration). */
static cio_future **many_fs;

static void set_rest(void *arg) {
  (void)arg;
  for (int i = AC_MANY - 1; i >= 1; i--) check(cio_future_set_result(many_fs[i], NULL) == 0);
}

static void set_first(void *arg) {
  if (arg)
    check(cio_future_set_error(many_fs[0], -EIO, "first") == 0);
  else
    check(cio_future_set_result(many_fs[0], NULL) == 0);
  check(cio_call_soon(cio_get_running_loop(), set_rest, NULL, NULL) == 0);
}

static int combinators_many_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_loop *loop = cio_get_running_loop();
  many_fs = malloc(AC_MANY * sizeof *many_fs);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < AC_MANY; i++) many_fs[i] = cio_future_new(loop);
    check(cio_call_soon(loop, set_first, round ? NULL : (void *)1, NULL) == 0);
    double t0 = real_now();
    int rc;
    if (round == 0) {
      rc = cio_gather(many_fs, AC_MANY, NULL, NULL);
      check(rc == -EIO);
    } else {
      size_t nd = 0;
      rc = cio_wait(many_fs, AC_MANY, CIO_NO_TIMEOUT, CIO_FIRST_COMPLETED, NULL, &nd, NULL, NULL);
      check(rc == 0 && nd >= 1);
    }
    double dt = real_now() - t0;
    if (dt > 1.0) trace("%s slow: %.2f s", round ? "wait" : "gather", dt);
    for (int i = 0; i < AC_MANY; i++) cio_future_unref(many_fs[i]);
  }
  free(many_fs);
  return 0;
}

static void test_combinators_many_queued(void **state) {
  (void)state;
  assert_code(run(combinators_many_main), 0);
  assert_trace("");
}

/* Item 3: a second free of a group or an iterator is refused with -EINVAL,
 * also when a new object was made in between (the freed memory is not
 * handed out again at once). */
static int double_free_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_taskgroup *a = cio_taskgroup_new();
  check(cio_taskgroup_free(a) == 0);
  cio_taskgroup *b = cio_taskgroup_new();
  check(b != a);
  check(cio_taskgroup_free(a) == -EINVAL);
  check(cio_taskgroup_enter(a) == -EINVAL);
  check(cio_taskgroup_create_task(a, value, NULL, NULL) == NULL && cio_errcode() == -EINVAL);
  check(cio_taskgroup_pending(a) == 0);
  int rc;
  CIO_WITH_TASKGROUP(b, rc) { /* b is intact */
    check(cio_taskgroup_create_task(b, value, NULL, NULL) != NULL);
  }
  check(rc == 0);
  check(cio_taskgroup_free(b) == 0);
  check(cio_taskgroup_free(b) == -EINVAL);

  cio_future *f = cio_future_new(cio_get_running_loop());
  cio_as_completed *x = cio_as_completed_new(&f, 1, CIO_NO_TIMEOUT);
  check(cio_as_completed_free(x) == 0);
  cio_as_completed *y = cio_as_completed_new(&f, 1, CIO_NO_TIMEOUT);
  check(y != x);
  check(cio_as_completed_free(x) == -EINVAL);
  cio_future *got = NULL;
  check(cio_as_completed_next(x, &got) == -EINVAL);
  check(cio_as_completed_remaining(x) == 0);
  check(cio_future_set_result(f, NULL) == 0);
  check(cio_as_completed_next(y, &got) == 0 && got == f); /* y is intact */
  check(cio_as_completed_free(y) == 0);
  check(cio_as_completed_free(y) == -EINVAL);
  cio_future_unref(f);
  return 0;
}

static void test_double_free(void **state) {
  (void)state;
  assert_code(run(double_free_main), 0);
  assert_trace("");
}

/* Item 6: an error the group cannot record (no memory) still fails it. */
extern int cio__taskgroup_fail_record; /* test hook in src/group.c */

static int fail_now(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_raise(-EIO, "child broke");
}

static int tg_record_oom_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  record_exceptions();
  /* Nothing recorded: -ENOMEM, naming the lost error. */
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  cio__taskgroup_fail_record = 1;
  cio_task_options kid = {.name = "kid"};
  CIO_WITH_TASKGROUP(tg, rc) {
    check(cio_taskgroup_create_task(tg, fail_now, NULL, &kid) != NULL);
    rc = cio_sleep(1); /* cancelled by the failure */
  }
  trace("rc=%s:%s handler=%d", N(rc), cio_errmsg(), handler_calls);
  check(cio_task_cancelling(self()) == 0);
  cio_taskgroup_free(tg);
  /* The second of two errors lost: CIO_EGROUP, which says so. */
  struct spec f = {"f", 0.5, 0};
  tg = cio_taskgroup_new();
  cio__taskgroup_fail_record = 0;
  CIO_WITH_TASKGROUP(tg, rc) {
    check(cio_taskgroup_create_task(tg, fail_after, &f, NULL) != NULL);
    check(cio_taskgroup_create_task(tg, fail_after, &f, NULL) != NULL);
    cio__taskgroup_fail_record = 2;
  }
  size_t n = 0;
  cio_taskgroup_errors(tg, &n);
  trace("rc=%s n=%zu lost=%s", N(rc), n, strstr(cio_errmsg(), "could not be recorded") ? "said" : "silent");
  cio_taskgroup_free(tg);
  /* The body's error lost: -ENOMEM too. */
  tg = cio_taskgroup_new();
  CIO_WITH_TASKGROUP(tg, rc) {
    cio__taskgroup_fail_record = 1;
    rc = cio_raise(-EPIPE, "body broke");
  }
  trace("rc=%s:%s", N(rc), cio_errmsg());
  cio_taskgroup_free(tg);
  cio__taskgroup_fail_record = 0;
  return 0;
}

static void test_tg_record_oom(void **state) {
  (void)state;
  assert_code(run(tg_record_oom_main), 0);
  assert_trace("rc=ENOMEM:unhandled error in a TaskGroup that could not be recorded (out of "
               "memory): task 'kid': EIO: child broke handler=1 "
               "fx@0.5 fx@0.5 rc=CIO_EGROUP n=1 lost=said "
               "rc=ENOMEM:unhandled error in a TaskGroup that could not be recorded (out of "
               "memory): the group body: EPIPE: body broke");
}

/* Item 11: a group forgets a child once it has seen it finish: 500,000
 * children through one group, memory flat (it grew by 31 MB). */
#if defined(__SANITIZE_ADDRESS__)
#define CIO_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIO_TEST_ASAN 1
#endif
#endif
#ifdef CIO_TEST_ASAN
size_t __sanitizer_get_current_allocated_bytes(void); /* sanitizer/allocator_interface.h */
static size_t heap_in_use(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
#include <malloc.h>
static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}
#endif
#define FLAT_CHILDREN 500000

static int tg_flat_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  size_t before = 0, after = 0;
  CIO_WITH_TASKGROUP(tg, rc) {
    for (int i = 0; i < FLAT_CHILDREN / 1000; i++) {
      for (int j = 0; j < 1000; j++) {
        cio_task *t = cio_taskgroup_create_task(tg, value, NULL, NULL);
        if (!t) {
          trace("create: %s", cio_errmsg());
          break;
        }
      }
      while (cio_taskgroup_pending(tg) && (rc = cio_sleep(0)) == 0) {
      }
      if (i == 10) before = heap_in_use();
    }
    after = heap_in_use();
  }
  long grew = (long)after - (long)before;
  if (grew > 256 * 1024) trace("heap grew by %ld bytes", grew);
  cio_taskgroup_free(tg);
  return rc;
}

static void test_tg_forgets_finished_children(void **state) {
  (void)state;
  assert_code(run(tg_flat_main), 0);
  assert_trace("");
}

/* A child's pointer stays valid while the caller holds a reference, after
 * the group forgot it. */
static int tg_ref_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  cio_taskgroup *tg = cio_taskgroup_new();
  int rc;
  cio_task *t = NULL;
  CIO_WITH_TASKGROUP(tg, rc) {
    t = cio_task_ref(cio_taskgroup_create_task(tg, value, (void *)"v", NULL));
  }
  cio_taskgroup_free(tg);
  void *r = NULL;
  check(rc == 0 && cio_task_result(t, &r) == 0 && r && strcmp(r, "v") == 0);
  cio_task_unref(t);
  return 0;
}

static void test_tg_child_ref_outlives(void **state) {
  (void)state;
  assert_code(run(tg_ref_main), 0);
  assert_trace("");
}

/* Item 19: `return` out of a CIO_WITH_TIMEOUT or CIO_WITH_TASKGROUP block
 * runs the exit call (gcc/clang); an outcome the return would lose goes to
 * the exception handler. */
#if defined(__GNUC__) && !defined(CIO_NO_SCOPE_GUARD)
static int ret_timeout(void *arg, void **result) {
  (void)result;
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 1, rc) {
    rc = cio_sleep(arg ? 2 : 0.5);
    if (rc < 0) return rc; /* expired: -ECANCELED */
    return 7;
  }
  return rc;
}

static int goto_timeout(void) {
  cio_timeout to = CIO_TIMEOUT_INIT;
  int rc;
  CIO_WITH_TIMEOUT(&to, 1, rc) {
    rc = cio_sleep(0.25);
    goto out;
  }
  rc = -1;
out:
  return rc;
}

static int scribble(int depth) { /* reuse the dead frames */
  volatile char buf[2048];
  memset((char *)buf, 0x5a, sizeof buf);
  return depth ? scribble(depth - 1) + buf[7] : buf[0];
}

static cio_taskgroup *ret_tg;

static int ret_group(void *arg, void **result) {
  (void)result;
  static struct spec a = {"a", 1, 0}, f = {"f", 0.5, 0};
  int rc;
  CIO_WITH_TASKGROUP(ret_tg, rc) {
    check(cio_taskgroup_create_task(ret_tg, arg ? fail_after : child, arg ? &f : &a, NULL) != NULL);
    rc = cio_sleep(arg ? 2 : 0);
    if (rc < 0) return rc; /* cancelled by the failing child */
    return 5;
  }
  return rc;
}

static int group_return_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  record_exceptions();
  ret_tg = cio_taskgroup_new();
  int rc = ret_group(NULL, NULL);
  trace("tg=%d@%g pending=%zu", rc, now(), cio_taskgroup_pending(ret_tg));
  cio_taskgroup_free(ret_tg);
  trace("handler=%d", handler_calls);
  ret_tg = cio_taskgroup_new();
  rc = ret_group((void *)1, NULL);
  trace("tg=%s@%g pending=%zu handler=%d:%s cancelling=%d", N(rc), now(),
        cio_taskgroup_pending(ret_tg), handler_calls, N(handler_code), cio_task_cancelling(self()));
  check(strstr(handler_msg, "CIO_WITH_TASKGROUP") != NULL);
  check(strstr(handler_error, "f") != NULL);
  cio_taskgroup_free(ret_tg);
  rc = cio_sleep(1);
  trace("sleep=%s", N(rc));
  /* An outer cancel while the guard joins: kept pending, not swallowed. */
  ret_tg = cio_taskgroup_new();
  check(cio_call_later(cio_get_running_loop(), 0.5, cancel_cb, self(), NULL) == 0);
  rc = ret_group(NULL, NULL);
  trace("tg=%d@%g cancelling=%d", rc, now(), cio_task_cancelling(self()));
  cio_taskgroup_free(ret_tg);
  rc = cio_sleep(1);
  trace("sleep=%s@%g", N(rc), now());
  check(cio_task_uncancel(self()) == 0);
  handler_calls = 0;
  return 0;
}

static void test_scope_return_group(void **state) {
  (void)state;
  assert_code(run(group_return_main), 0);
  assert_trace("a+ a-@1 tg=5@1 pending=0 handler=0 fx@1.5 tg=ECANCELED@1.5 pending=0 "
               "handler=1:CIO_EGROUP cancelling=0 sleep=OK a+ tg=5@3 cancelling=1 "
               "sleep=ECANCELED@3");
}

static int scope_return_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  record_exceptions();
  int rc = ret_timeout(NULL, NULL);
  scribble(8);
  trace("to=%d@%g", rc, now());
  rc = cio_sleep(2);
  trace("sleep=%s@%g cancelling=%d handler=%d", N(rc), now(), cio_task_cancelling(self()),
        handler_calls);
  rc = ret_timeout((void *)1, NULL);
  scribble(8);
  trace("to=%s@%g handler=%d:%s", N(rc), now(), handler_calls, N(handler_code));
  rc = cio_sleep(1);
  trace("sleep=%s cancelling=%d", N(rc), cio_task_cancelling(self()));
  rc = goto_timeout();
  scribble(8);
  trace("goto=%d@%g", rc, now());
  rc = cio_sleep(2);
  trace("sleep=%s@%g", N(rc), now());
  handler_calls = 0;
  return 0;
}

static void test_scope_return_timeout(void **state) {
  (void)state;
  assert_code(run(scope_return_main), 0);
  assert_trace("to=7@0.5 sleep=OK@2.5 cancelling=0 handler=0 to=ECANCELED@3.5 handler=1:ETIMEDOUT "
               "sleep=OK cancelling=0 goto=0@4.75 sleep=OK@6.75");
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_tg_basic, setup),
      cmocka_unit_test_setup(test_tg_hops, setup),
      cmocka_unit_test_setup(test_tg_child_fails, setup),
      cmocka_unit_test_setup(test_tg_two_fail, setup),
      cmocka_unit_test_setup(test_tg_outer_cancel, setup),
      cmocka_unit_test_setup(test_tg_outer_cancel_child_failing, setup),
      cmocka_unit_test_setup(test_tg_outer_cancel_in_body_while_failing, setup),
      cmocka_unit_test_setup(test_tg_nested, setup),
      cmocka_unit_test_setup(test_tg_body_error, setup),
      cmocka_unit_test_setup(test_tg_child_cancelled, setup),
      cmocka_unit_test_setup(test_tg_states, setup),
      cmocka_unit_test_setup(test_tg_join_other_task, setup),
      cmocka_unit_test_setup(test_tg_spawn_while_joining, setup),
      cmocka_unit_test_setup(test_tg_cancel, setup),
      cmocka_unit_test_setup(test_tg_cancel_before_enter, setup),
      cmocka_unit_test_setup(test_tg_cancel_inside_timeout, setup),
      cmocka_unit_test_setup(test_tg_cancel_inside_quiet_timeout, setup),
      cmocka_unit_test_setup(test_tg_free_before_join, setup),
      cmocka_unit_test_setup(test_tg_abandoned, setup),
      cmocka_unit_test_setup(test_to_basic, setup),
      cmocka_unit_test_setup(test_to_in_time, setup),
      cmocka_unit_test_setup(test_to_nested, setup),
      cmocka_unit_test_setup(test_to_nested_outer_first, setup),
      cmocka_unit_test_setup(test_to_group_to, setup),
      cmocka_unit_test_setup(test_to_outer_cancel, setup),
      cmocka_unit_test_setup(test_to_reschedule, setup),
      cmocka_unit_test_setup(test_to_hops, setup),
      cmocka_unit_test_setup(test_to_zero_keeps_earlier_cancel, setup),
      cmocka_unit_test_setup(test_to_zero_after_delivered_cancel, setup),
      cmocka_unit_test_setup(test_to_zero_swallowed_cancel, setup),
      cmocka_unit_test_setup(test_to_other_error_while_expiring, setup),
      cmocka_unit_test_setup(test_to_at_and_misuse, setup),
      cmocka_unit_test_setup(test_wf_timeout, setup),
      cmocka_unit_test_setup(test_wf_inner_swallows_cancel, setup),
      cmocka_unit_test_setup(test_wf_hops, setup),
      cmocka_unit_test_setup(test_wf_misc, setup),
      cmocka_unit_test_setup(test_wf_race, setup),
      cmocka_unit_test_setup(test_tg_eager_child_fails, setup),
      cmocka_unit_test_setup(test_ga_first_error, setup),
      cmocka_unit_test_setup(test_ga_cancel_one_done, setup),
      cmocka_unit_test_setup(test_ga_hops, setup),
      cmocka_unit_test_setup(test_ga_return_exceptions, setup),
      cmocka_unit_test_setup(test_ga_child_cancelled, setup),
      cmocka_unit_test_setup(test_ga_misc, setup),
      cmocka_unit_test_setup(test_ga_late_error_reported, setup),
      cmocka_unit_test_setup(test_wa_modes, setup),
      cmocka_unit_test_setup(test_wa_hops, setup),
      cmocka_unit_test_setup(test_wa_misc, setup),
      cmocka_unit_test_setup(test_sh_cancel, setup),
      cmocka_unit_test_setup(test_sh_hops, setup),
      cmocka_unit_test_setup(test_sh_inner_fails_after_cancel, setup),
      cmocka_unit_test_setup(test_sh_misc, setup),
      cmocka_unit_test_setup(test_ac_timeout, setup),
      cmocka_unit_test_setup(test_ac_hops, setup),
      cmocka_unit_test_setup(test_ac_misc, setup),
      cmocka_unit_test_setup(test_hop_tg_outer_cancel, setup),
      cmocka_unit_test_setup(test_hop_tg_child_fails, setup),
      cmocka_unit_test_setup(test_hop_to_expire, setup),
      cmocka_unit_test_setup(test_hop_wf_expire, setup),
      cmocka_unit_test_setup(test_hop_ga_cancel, setup),
      cmocka_unit_test_setup(test_hop_wa_timeout, setup),
      cmocka_unit_test_setup(test_hop_sh_cancel, setup),
      cmocka_unit_test_setup(test_hop_ac_timeout, setup),
      cmocka_unit_test_setup(test_wrong_loop, setup),
      cmocka_unit_test_setup(test_everything_cleans_up, setup),
      cmocka_unit_test_setup(test_ga_cancel_message, setup),
      cmocka_unit_test_setup(test_to_when_past, setup),
      cmocka_unit_test_setup(test_to_init, setup),
      cmocka_unit_test_setup(test_sh_no_leak, setup),
      cmocka_unit_test_setup(test_sh_late_error_after_release, setup),
      cmocka_unit_test_setup(test_ac_free_many_queued, setup),
      cmocka_unit_test_setup(test_combinators_many_queued, setup),
      cmocka_unit_test_setup(test_double_free, setup),
      cmocka_unit_test_setup(test_tg_record_oom, setup),
      cmocka_unit_test_setup(test_tg_forgets_finished_children, setup),
      cmocka_unit_test_setup(test_tg_child_ref_outlives, setup),
#if defined(__GNUC__) && !defined(CIO_NO_SCOPE_GUARD)
      cmocka_unit_test_setup(test_scope_return_timeout, setup),
      cmocka_unit_test_setup(test_scope_return_group, setup),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
