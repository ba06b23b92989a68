/* Tests of layer 7b: Queue, LifoQueue, PriorityQueue.
 *
 * The *_trace tests assert the traces CPython 3.13 prints for the asyncio
 * originals in tests/ref/queue_ref.py. The no-barging tests pin down where
 * cio deliberately differs (include/cio/queue.h, "Fairness"). */
#include "cio_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>


static cio_queue Q;

/* Items are short strings kept in static storage. */
#define S(x) ((void *)(x))
static const char *str(void *item) { return item ? (const char *)item : "(null)"; }

/* ==== traces shared with CPython ============================================ */

static int gf_getter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  trace("g%d wait", i);
  void *item;
  int rc = cio_queue_get(&Q, &item);
  if (rc < 0) return rc;
  trace("g%d %s@%.2f", i, str(item), now());
  return 0;
}

static int getters_fifo_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 0), 0);
  cio_task *ts[3];
  for (int i = 0; i < 3; i++) ts[i] = SPAWN(gf_getter, i);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_queue_put_nowait(&Q, S("a")), 0);
  assert_code(cio_queue_put_nowait(&Q, S("b")), 0);
  assert_code(cio_queue_put_nowait(&Q, S("c")), 0);
  trace("put3 qsize=%zu", cio_queue_qsize(&Q));
  join_all(ts, 3);
  trace("qsize=%zu unfinished=%zu", cio_queue_qsize(&Q), cio_queue_unfinished(&Q));
  return cio_queue_destroy(&Q);
}

static void test_queue_getters_fifo_trace(void **state) {
  (void)state;
  run_ok(getters_fifo_main, NULL);
  assert_trace("g0 wait g1 wait g2 wait put3 qsize=3 g0 a@1.00 g1 b@1.00 g2 c@1.00 qsize=0 "
               "unfinished=3");
  assert_time(1.0);
}

static const char *letters[] = {"a", "b", "c", "d", "e", "f"};

static int pf_putter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  trace("p%d wait", i);
  int rc = cio_queue_put(&Q, S(letters[i + 1]));
  if (rc < 0) return rc;
  trace("p%d done@%.2f", i, now());
  return 0;
}

static int putters_fifo_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 1), 0);
  assert_code(cio_queue_put_nowait(&Q, S("a")), 0);
  cio_task *ts[3];
  for (int i = 0; i < 3; i++) ts[i] = SPAWN(pf_putter, i);
  assert_code(cio_sleep(1.0), 0);
  for (int k = 0; k < 4; k++) {
    void *item;
    assert_code(cio_queue_get(&Q, &item), 0);
    trace("got %s@%.2f full=%d", str(item), now(), cio_queue_full(&Q));
    assert_code(cio_sleep(0.1), 0);
  }
  join_all(ts, 3);
  return cio_queue_destroy(&Q);
}

static void test_queue_putters_fifo_trace(void **state) {
  (void)state;
  run_ok(putters_fifo_main, NULL);
  assert_trace("p0 wait p1 wait p2 wait got a@1.00 full=0 p0 done@1.00 got b@1.10 full=0 "
               "p1 done@1.10 got c@1.20 full=0 p2 done@1.20 got d@1.30 full=0");
  assert_time(1.4);
}

static int cpg_getter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  void *item;
  int rc = cio_queue_get(&Q, &item);
  if (rc < 0) {
    trace("g%d cancelled qsize=%zu", i, cio_queue_qsize(&Q));
    return rc;
  }
  trace("g%d %s@%.2f", i, str(item), now());
  return 0;
}

static int cancel_promised_getter_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 0), 0);
  cio_task *ts[] = {SPAWN(cpg_getter, 0), SPAWN(cpg_getter, 1)};
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_queue_put_nowait(&Q, S("x")), 0);
  assert_int_equal(cio_task_cancel(ts[0], NULL), 1);
  trace("put+cancel g0");
  join_all(ts, 2);
  trace("qsize=%zu", cio_queue_qsize(&Q));
  return cio_queue_destroy(&Q);
}

static void test_queue_cancel_promised_getter_trace(void **state) {
  (void)state;
  run_ok(cancel_promised_getter_main, NULL);
  assert_trace("put+cancel g0 g0 cancelled qsize=1 g1 x@1.00 qsize=0");
}

static int cpp_putter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  int rc = cio_queue_put(&Q, S(letters[i + 1]));
  if (rc < 0) {
    trace("p%d cancelled qsize=%zu", i, cio_queue_qsize(&Q));
    return rc;
  }
  trace("p%d done@%.2f", i, now());
  return 0;
}

static int cancel_promised_putter_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 1), 0);
  assert_code(cio_queue_put_nowait(&Q, S("a")), 0);
  cio_task *ts[] = {SPAWN(cpp_putter, 0), SPAWN(cpp_putter, 1)};
  assert_code(cio_sleep(1.0), 0);
  void *item;
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  trace("get %s", str(item));
  assert_int_equal(cio_task_cancel(ts[0], NULL), 1);
  join_all(ts, 2);
  size_t qsize = cio_queue_qsize(&Q);
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  trace("qsize=%zu next=%s unfinished=%zu", qsize, str(item), cio_queue_unfinished(&Q));
  return cio_queue_destroy(&Q);
}

static void test_queue_cancel_promised_putter_trace(void **state) {
  (void)state;
  run_ok(cancel_promised_putter_main, NULL);
  assert_trace("get a p0 cancelled qsize=0 p1 done@1.00 qsize=1 next=c unfinished=2");
}

static int cw_getter(void *arg, void **res) {
  (void)arg;
  (void)res;
  void *item;
  int rc = cio_queue_get(&Q, &item);
  if (rc < 0) trace("g cancelled@%.2f", now());
  return rc;
}

static int cw_putter(void *arg, void **res) {
  (void)res;
  const char *x = arg;
  int rc = cio_queue_put(&Q, S(x));
  if (rc < 0) {
    assert_code(rc, -ECANCELED);
    trace("p %s cancelled@%.2f", x, now());
    return rc;
  }
  trace("p %s done@%.2f", x, now());
  return 0;
}

static int cancel_waiting_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 1), 0);
  cio_task *t = SPAWN(cw_getter, 0);
  assert_code(cio_sleep(0.5), 0);
  assert_int_equal(cio_task_cancel(t, NULL), 1);
  join_all(&t, 1);
  assert_code(cio_queue_put_nowait(&Q, S("a")), 0);
  cio_task *u = spawn_task(cw_putter, "b"), *v = spawn_task(cw_putter, "c");
  assert_code(cio_sleep(0.5), 0);
  assert_int_equal(cio_task_cancel(u, NULL), 1);
  assert_code(cio_sleep(0.5), 0);
  void *item;
  assert_code(cio_queue_get(&Q, &item), 0);
  trace("get %s qsize=%zu", str(item), cio_queue_qsize(&Q));
  join_all(&u, 1);
  join_all(&v, 1);
  assert_code(cio_queue_get(&Q, &item), 0);
  trace("get %s qsize=%zu unfinished=%zu", str(item), cio_queue_qsize(&Q), cio_queue_unfinished(&Q));
  return cio_queue_destroy(&Q);
}

static void test_queue_cancel_waiting_trace(void **state) {
  (void)state;
  run_ok(cancel_waiting_main, NULL);
  assert_trace("g cancelled@0.50 p b cancelled@1.00 get a qsize=0 p c done@1.50 get c qsize=0 "
               "unfinished=2");
  assert_time(1.5);
}

static int sw_putter(void *arg, void **res) {
  (void)res;
  const char *x = arg;
  int rc = cio_queue_put(&Q, S(x));
  if (rc == 0)
    trace("p %s done", x);
  else if (rc == CIO_EQUEUESHUTDOWN)
    trace("p %s shutdown@%.2f", x, now());
  else
    return rc;
  return 0;
}

static int sw_getter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  for (;;) {
    void *item;
    int rc = cio_queue_get(&Q, &item);
    if (rc == CIO_EQUEUESHUTDOWN) {
      trace("g%d shutdown@%.2f", i, now());
      return 0;
    }
    if (rc < 0) return rc;
    trace("g%d %s@%.2f", i, str(item), now());
    if ((rc = cio_sleep(0.1)) < 0) return rc;
  }
}

static int shutdown_waiters_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 2), 0);
  assert_code(cio_queue_put_nowait(&Q, S("a")), 0);
  assert_code(cio_queue_put_nowait(&Q, S("b")), 0);
  cio_task *ts[4];
  ts[0] = spawn_task(sw_putter, "c");
  ts[1] = spawn_task(sw_putter, "d");
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_queue_shutdown(&Q, false), 0);
  assert_true(cio_queue_is_shutdown(&Q));
  trace("shutdown qsize=%zu", cio_queue_qsize(&Q));
  if (cio_queue_put_nowait(&Q, S("e")) == CIO_EQUEUESHUTDOWN) trace("put_nowait shutdown");
  ts[2] = SPAWN(sw_getter, 0);
  ts[3] = SPAWN(sw_getter, 1);
  join_all(ts, 4);
  trace("qsize=%zu unfinished=%zu", cio_queue_qsize(&Q), cio_queue_unfinished(&Q));
  assert_code(cio_queue_put(&Q, S("f")), CIO_EQUEUESHUTDOWN);
  void *item;
  assert_code(cio_queue_get_nowait(&Q, &item), CIO_EQUEUESHUTDOWN);
  return cio_queue_destroy(&Q);
}

static void test_queue_shutdown_waiters_trace(void **state) {
  (void)state;
  run_ok(shutdown_waiters_main, NULL);
  assert_trace("shutdown qsize=2 put_nowait shutdown p c shutdown@1.00 p d shutdown@1.00 "
               "g0 a@1.00 g1 b@1.00 g0 shutdown@1.10 g1 shutdown@1.10 qsize=0 unfinished=2");
  assert_time(1.1);
}

static int sg_getter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  void *item;
  int rc = cio_queue_get(&Q, &item);
  if (rc == CIO_EQUEUESHUTDOWN) {
    trace("g%d shutdown@%.2f", i, now());
    return 0;
  }
  if (rc < 0) return rc;
  trace("g%d %s@%.2f", i, str(item), now());
  return 0;
}

static bool sg_immediate;

static int shutdown_getters_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 0), 0);
  cio_task *ts[3];
  for (int i = 0; i < 3; i++) ts[i] = SPAWN(sg_getter, i);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_queue_put_nowait(&Q, S("x")), 0); /* promised to g0 */
  assert_code(cio_queue_shutdown(&Q, sg_immediate), 0);
  if (sg_immediate)
    trace("put+shutdown unfinished=%zu", cio_queue_unfinished(&Q));
  else
    trace("put+shutdown");
  join_all(ts, 3);
  return cio_queue_destroy(&Q);
}

static void test_queue_shutdown_getters_trace(void **state) {
  (void)state;
  sg_immediate = false;
  run_ok(shutdown_getters_main, NULL);
  assert_trace("put+shutdown g0 x@1.00 g1 shutdown@1.00 g2 shutdown@1.00");
  sg_immediate = true;
  run_ok(shutdown_getters_main, NULL);
  assert_trace("put+shutdown unfinished=0 g0 shutdown@1.00 g1 shutdown@1.00 g2 shutdown@1.00");
}

static int si_joiner(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_queue_join(&Q);
  if (rc < 0) return rc;
  trace("joined@%.2f unfinished=%zu", now(), cio_queue_unfinished(&Q));
  return 0;
}

static int si_getter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  int rc = cio_sleep(1.5);
  if (rc < 0) return rc;
  void *item;
  rc = cio_queue_get(&Q, &item);
  if (rc == CIO_EQUEUESHUTDOWN) {
    trace("g%d shutdown@%.2f", i, now());
    return 0;
  }
  if (rc < 0) return rc;
  trace("g%d %s", i, str(item));
  return 0;
}

static int shutdown_immediate_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 0), 0);
  for (int i = 0; i < 3; i++) assert_code(cio_queue_put_nowait(&Q, S(letters[i])), 0);
  void *item;
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  trace("get %s", str(item));
  cio_task *j = SPAWN(si_joiner, 0), *g = SPAWN(si_getter, 0);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_queue_shutdown(&Q, true), 0);
  trace("shutdown qsize=%zu unfinished=%zu", cio_queue_qsize(&Q), cio_queue_unfinished(&Q));
  join_all(&g, 1);
  trace("join waits=%d", !cio_task_done(j));
  assert_code(cio_queue_task_done(&Q), 0);
  join_all(&j, 1);
  if (cio_queue_task_done(&Q) == -ERANGE) trace("task_done too many");
  return cio_queue_destroy(&Q);
}

static void test_queue_shutdown_immediate_trace(void **state) {
  (void)state;
  run_ok(shutdown_immediate_main, NULL);
  assert_trace("get a shutdown qsize=0 unfinished=1 g0 shutdown@1.50 join waits=1 "
               "joined@1.50 unfinished=0 task_done too many");
  assert_time(1.5);
}

static double jw_items[] = {0.3, 0.1, 0.2, 0.1};

static int jw_worker(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  for (;;) {
    void *item;
    int rc = cio_queue_get(&Q, &item);
    if (rc < 0) return rc;
    double d = *(double *)item;
    if ((rc = cio_sleep(d)) < 0) return rc;
    trace("w%d done %.1f@%.2f", i, d, now());
    assert_code(cio_queue_task_done(&Q), 0);
  }
}

static int join_workers_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 0), 0);
  assert_code(cio_queue_join(&Q), 0); /* nothing unfinished: at once */
  cio_task *ws[] = {SPAWN(jw_worker, 0), SPAWN(jw_worker, 1)};
  for (int i = 0; i < 4; i++) assert_code(cio_queue_put_nowait(&Q, &jw_items[i]), 0);
  assert_code(cio_queue_join(&Q), 0);
  trace("joined@%.2f", now());
  assert_code(cio_queue_join(&Q), 0);
  trace("joined again");
  for (int i = 0; i < 2; i++) assert_int_equal(cio_task_cancel(ws[i], NULL), 1);
  join_all(ws, 2);
  return cio_queue_destroy(&Q);
}

static void test_queue_join_workers_trace(void **state) {
  (void)state;
  run_ok(join_workers_main, NULL);
  assert_trace("w1 done 0.1@0.10 w0 done 0.3@0.30 w1 done 0.2@0.30 w0 done 0.1@0.40 joined@0.40 "
               "joined again");
  assert_time(0.4);
}

/* ==== orders ================================================================== */

struct prio_item {
  int prio;
  const char *name;
};

static int cmp_prio(const void *a, const void *b, void *ctx) {
  int *calls = ctx;
  (*calls)++;
  const struct prio_item *x = a, *y = b;
  return (x->prio > y->prio) - (x->prio < y->prio);
}

static void test_queue_orders(void **state) {
  (void)state;
  /* LIFO (asyncio.LifoQueue). Non-suspending calls work outside a task. */
  assert_code(cio_queue_init_lifo(&Q, 0), 0);
  for (intptr_t i = 0; i < 5; i++) assert_code(cio_queue_put_nowait(&Q, (void *)i), 0);
  for (intptr_t i = 4; i >= 0; i--) {
    void *item;
    assert_code(cio_queue_get_nowait(&Q, &item), 0);
    assert_int_equal((intptr_t)item, i);
  }
  assert_code(cio_queue_destroy(&Q), 0);

  /* Priority, ties in put order (the reference needs a seq field for that). */
  int calls = 0;
  struct prio_item items[] = {{3, "a"}, {1, "b"}, {2, "c"}, {1, "d"}, {3, "e"}, {1, "f"}, {0, "g"}};
  assert_code(cio_queue_init_priority(&Q, 0, cmp_prio, &calls), 0);
  for (int i = 0; i < 7; i++) assert_code(cio_queue_put_nowait(&Q, &items[i]), 0);
  trace_clear();
  for (int i = 0; i < 7; i++) {
    void *item;
    assert_code(cio_queue_get_nowait(&Q, &item), 0);
    trace("%s", ((struct prio_item *)item)->name);
  }
  assert_trace("g b d f c a e");
  assert_true(calls > 0);
  assert_code(cio_queue_destroy(&Q), 0);

  /* Stability at scale: 5,000 items, 5 priorities, random put order. */
  enum { N = 5000 };
  static struct prio_item many[N];
  uint32_t seed = 12345;
  assert_code(cio_queue_init_priority(&Q, 0, cmp_prio, &calls), 0);
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    many[i].prio = (int)((seed >> 16) % 5);
    many[i].name = (const char *)(intptr_t)i; /* put order */
    assert_code(cio_queue_put_nowait(&Q, &many[i]), 0);
  }
  assert_int_equal(cio_queue_qsize(&Q), N);
  int last_prio = -1;
  intptr_t last_seq = -1;
  for (int i = 0; i < N; i++) {
    void *item;
    assert_code(cio_queue_get_nowait(&Q, &item), 0);
    struct prio_item *p = item;
    if (p->prio == last_prio) {
      if ((intptr_t)p->name <= last_seq) fail_msg("tie out of put order at %d", i);
    } else if (p->prio < last_prio) {
      fail_msg("priority out of order at %d", i);
    }
    last_prio = p->prio;
    last_seq = (intptr_t)p->name;
  }
  assert_true(cio_queue_empty(&Q));
  assert_code(cio_queue_destroy(&Q), 0);

  /* FIFO ring: wrap around, then grow while wrapped; order kept. */
  assert_code(cio_queue_init(&Q, 0), 0);
  intptr_t next_in = 0, next_out = 0;
  for (int round = 0; round < 200; round++) {
    for (int k = 0; k < 7; k++) assert_code(cio_queue_put_nowait(&Q, (void *)next_in++), 0);
    for (int k = 0; k < 5; k++) {
      void *item;
      assert_code(cio_queue_get_nowait(&Q, &item), 0);
      assert_int_equal((intptr_t)item, next_out++);
    }
  }
  while (!cio_queue_empty(&Q)) {
    void *item;
    assert_code(cio_queue_get_nowait(&Q, &item), 0);
    assert_int_equal((intptr_t)item, next_out++);
  }
  assert_int_equal(next_in, next_out);
  assert_int_equal(cio_queue_unfinished(&Q), (size_t)next_in);
  assert_code(cio_queue_destroy(&Q), 0);
}

/* ==== basics and misuse ========================================================= */

static void test_queue_basics_and_misuse(void **state) {
  (void)state;
  void *item = S("untouched");
  assert_code(cio_queue_init(NULL, 1), -EINVAL);
  assert_code(cio_queue_init_priority(&Q, 0, NULL, NULL), -EINVAL);
  assert_code(cio_queue_init(&Q, 2), 0);
  assert_int_equal(cio_queue_maxsize(&Q), 2);
  assert_true(cio_queue_empty(&Q));
  assert_false(cio_queue_full(&Q));
  assert_code(cio_queue_get_nowait(&Q, &item), CIO_EQUEUEEMPTY);
  assert_string_equal(str(item), "untouched");
  assert_code(cio_queue_put_nowait(&Q, NULL), 0); /* NULL is an item */
  assert_code(cio_queue_put_nowait(&Q, S("b")), 0);
  assert_true(cio_queue_full(&Q));
  assert_code(cio_queue_put_nowait(&Q, S("c")), CIO_EQUEUEFULL);
  assert_int_equal(cio_queue_qsize(&Q), 2);
  assert_code(cio_queue_put(&Q, S("c")), CIO_ENOTASK);
  assert_code(cio_queue_get(&Q, &item), CIO_ENOTASK);
  assert_code(cio_queue_join(&Q), CIO_ENOTASK);
  assert_code(cio_queue_get_nowait(&Q, NULL), -EINVAL);
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  assert_null(item);
  assert_code(cio_queue_task_done(&Q), 0);
  assert_code(cio_queue_task_done(&Q), 0);
  assert_code(cio_queue_task_done(&Q), -ERANGE);
  assert_int_equal(cio_queue_unfinished(&Q), 0);
  assert_code(cio_queue_destroy(&Q), 0);
  assert_code(cio_queue_put_nowait(&Q, S("x")), -EINVAL); /* destroyed */
  assert_code(cio_queue_destroy(&Q), -EINVAL);
  cio_queue zero;
  memset(&zero, 0, sizeof zero);
  assert_code(cio_queue_get_nowait(&zero, &item), -EINVAL);
  assert_code(cio_queue_shutdown(NULL, false), -EINVAL);
  assert_code(cio_queue_task_done(NULL), -EINVAL);
  assert_int_equal(cio_queue_qsize(NULL), 0);
  assert_true(cio_queue_empty(NULL));
  assert_false(cio_queue_full(NULL));
  assert_false(cio_queue_is_shutdown(NULL));
  /* maxsize 0: unbounded, never full. */
  assert_code(cio_queue_init(&Q, 0), 0);
  for (intptr_t i = 0; i < 100000; i++) assert_code(cio_queue_put_nowait(&Q, (void *)i), 0);
  assert_false(cio_queue_full(&Q));
  assert_int_equal(cio_queue_qsize(&Q), 100000);
  assert_code(cio_queue_destroy(&Q), 0); /* items dropped, buffer freed */
}

static int busy_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 0), 0);
  cio_task *t = SPAWN(cw_getter, 0);
  assert_code(cio_yield(), 0);
  assert_code(cio_queue_destroy(&Q), -EBUSY);
  void *item;
  assert_code(cio_queue_get(&Q, NULL), -EINVAL);
  assert_code(cio_queue_get_timeout(&Q, &item, NAN), -EINVAL);
  assert_code(cio_queue_put_timeout(&Q, S("x"), NAN), -EINVAL);
  assert_code(cio_queue_join_timeout(&Q, NAN), -EINVAL);
  assert_int_equal(cio_queue_qsize(&Q), 0);
  assert_int_equal(cio_task_cancel(t, NULL), 1);
  join_all(&t, 1);
  return cio_queue_destroy(&Q);
}

static void test_queue_destroy_busy(void **state) {
  (void)state;
  run_ok(busy_main, NULL);
  assert_trace("g cancelled@0.00");
}

/* ==== where cio differs: no barging ============================================== */

static int nb_getter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  void *item;
  int rc = cio_queue_get(&Q, &item);
  if (rc < 0) return rc;
  trace("g%d %s", i, str(item));
  return 0;
}

static int nb_newcomer(void *arg, void **res) {
  (void)arg;
  (void)res;
  trace("n try qsize=%zu", cio_queue_qsize(&Q));
  void *item;
  int rc = cio_queue_get(&Q, &item); /* x is promised to g0: wait */
  if (rc < 0) return rc;
  trace("n %s", str(item));
  return 0;
}

static int no_barging_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  void *item;
  /* Getters: an item stored for a waiting getter is promised to it. */
  assert_code(cio_queue_init(&Q, 0), 0);
  cio_task *g0 = SPAWN(nb_getter, 0);
  assert_code(cio_yield(), 0);
  /* The newcomer runs after the put and before g0 resumes. */
  cio_task *newcomer = SPAWN(nb_newcomer, 0);
  assert_code(cio_queue_put_nowait(&Q, S("x")), 0);
  assert_false(cio_queue_empty(&Q));
  assert_code(cio_queue_get_nowait(&Q, &item), CIO_EQUEUEEMPTY); /* asyncio: returns x */
  assert_code(cio_yield(), 0);
  assert_code(cio_queue_put_nowait(&Q, S("y")), 0);
  cio_task *gs[] = {g0, newcomer};
  join_all(gs, 2);
  assert_code(cio_queue_destroy(&Q), 0);

  /* Putters: a slot freed for a waiting putter is promised to it. */
  assert_code(cio_queue_init(&Q, 1), 0);
  assert_code(cio_queue_put_nowait(&Q, S("a")), 0);
  cio_task *p = spawn_task(cw_putter, "b");
  assert_code(cio_yield(), 0);
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  trace("got %s", str(item));
  assert_false(cio_queue_full(&Q));
  assert_code(cio_queue_put_nowait(&Q, S("c")), CIO_EQUEUEFULL); /* asyncio: stores c */
  join_all(&p, 1);
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  trace("got %s", str(item));
  return cio_queue_destroy(&Q);
}

static void test_queue_no_barging(void **state) {
  (void)state;
  run_ok(no_barging_main, NULL);
  assert_trace("n try qsize=1 g0 x n y got a p b done@0.00 got b");
}

/* Getters and putters suspended at the same time (possible only while the
 * buffered item is promised), then shutdown. */
static bool both_immediate;

static int both_shutter(void *arg, void **res) {
  (void)arg;
  (void)res;
  trace("shutdown qsize=%zu", cio_queue_qsize(&Q));
  return cio_queue_shutdown(&Q, both_immediate);
}

static int both_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 1), 0);
  cio_task *ts[4];
  ts[0] = SPAWN(sg_getter, 0);
  assert_code(cio_yield(), 0);        /* g0 waits */
  ts[1] = SPAWN(sg_getter, 1);        /* will wait: x is promised to g0 */
  ts[2] = spawn_task(sw_putter, "y");      /* will wait: the queue is full */
  ts[3] = SPAWN(both_shutter, 0);     /* runs after them, before g0 */
  assert_code(cio_queue_put_nowait(&Q, S("x")), 0);
  join_all(ts, 4);
  trace("qsize=%zu unfinished=%zu", cio_queue_qsize(&Q), cio_queue_unfinished(&Q));
  return cio_queue_destroy(&Q);
}

static void test_queue_shutdown_getters_and_putters_suspended(void **state) {
  (void)state;
  both_immediate = false;
  run_ok(both_main, NULL);
  assert_trace("shutdown qsize=1 g0 x@0.00 g1 shutdown@0.00 p y shutdown@0.00 qsize=0 unfinished=1");
  both_immediate = true;
  run_ok(both_main, NULL);
  assert_trace("shutdown qsize=1 g0 shutdown@0.00 g1 shutdown@0.00 p y shutdown@0.00 qsize=0 "
               "unfinished=0");
}

/* ==== timeouts ==================================================================== */

static int timed_get(void *arg, void **res) {
  (void)res;
  double timeout = *(double *)arg;
  void *item = NULL;
  int rc = cio_queue_get_timeout(&Q, &item, timeout);
  trace("get %s %s@%.2f", cio_err_name(rc), rc == 0 ? str(item) : "-", now());
  return 0;
}

static int timed_put(void *arg, void **res) {
  (void)res;
  double timeout = *(double *)arg;
  int rc = cio_queue_put_timeout(&Q, S("p"), timeout);
  trace("put %s@%.2f qsize=%zu", cio_err_name(rc), now(), cio_queue_qsize(&Q));
  return 0;
}

static int timeouts_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 1), 0);
  double t05 = 0.5, t2 = 2.0, t0 = 0;
  cio_task *a = SPAWN(timed_get, &t05);
  join_all(&a, 1);
  cio_task *b = SPAWN(timed_get, &t2);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_queue_put_nowait(&Q, S("x")), 0);
  join_all(&b, 1);
  /* Full: put_timeout gives up at the deadline without storing. */
  assert_code(cio_queue_put_nowait(&Q, S("y")), 0);
  cio_task *c = SPAWN(timed_put, &t05);
  join_all(&c, 1);
  void *item;
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  assert_string_equal(str(item), "y");
  assert_true(cio_queue_empty(&Q));
  /* Zero timeout: no suspension when it can complete at once. */
  cio_task *d = SPAWN(timed_put, &t0);
  join_all(&d, 1);
  cio_task *e = SPAWN(timed_get, &t0);
  join_all(&e, 1);
  /* join_timeout */
  assert_int_equal(cio_queue_unfinished(&Q), 3); /* x, y, p: the timed-out put stored nothing */
  assert_code(cio_queue_join_timeout(&Q, 0.25), -ETIMEDOUT);
  for (int i = 0; i < 3; i++) assert_code(cio_queue_task_done(&Q), 0);
  assert_code(cio_queue_join_timeout(&Q, 0.25), 0);
  trace("end@%.2f", now());
  return cio_queue_destroy(&Q);
}

static void test_queue_timeouts(void **state) {
  (void)state;
  run_ok(timeouts_main, NULL);
  assert_trace("get ETIMEDOUT -@0.50 get OK x@1.50 put ETIMEDOUT@2.00 qsize=1 "
               "put OK@2.00 qsize=1 get OK p@2.00 end@2.25");
  assert_time(2.25);
}

/* The item hand-off races the deadline (cf. the lock test): the putter runs
 * `race_yields` iterations after the getter armed a zero timeout; g2 queues
 * behind the getter. The item is never lost. */
static int race_yields;

static int race_getter(void *arg, void **res) {
  (void)arg;
  (void)res;
  void *item = NULL;
  int rc = cio_queue_get_timeout(&Q, &item, 0);
  trace("g %s %s", cio_err_name(rc), rc == 0 ? str(item) : "-");
  return 0;
}

static int race_putter(void *arg, void **res) {
  (void)arg;
  (void)res;
  for (int i = 0; i < race_yields; i++) assert_code(cio_yield(), 0);
  trace("put");
  return cio_queue_put_nowait(&Q, S("x"));
}

static int race_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 0), 0);
  cio_task *ts[] = {SPAWN(race_getter, 0), SPAWN(nb_getter, 2), SPAWN(race_putter, 0)};
  join_all(ts + 2, 1);
  assert_code(cio_sleep(0.1), 0);
  assert_true(cio_queue_empty(&Q)); /* the item went to somebody */
  assert_code(cio_queue_put_nowait(&Q, S("y")), 0);
  join_all(ts, 2);
  return cio_queue_destroy(&Q);
}

static void test_queue_get_timeout_race(void **state) {
  (void)state;
  race_yields = 0; /* stored in the iteration the getter suspended: hand-off */
  run_ok(race_main, NULL);
  assert_trace("put g OK x g2 y");
  race_yields = 1; /* stored just before the deadline fires: hand-off wins */
  run_ok(race_main, NULL);
  assert_trace("put g OK x g2 y");
  race_yields = 2; /* stored after: timed out, the item goes to g2 */
  run_ok(race_main, NULL);
  assert_trace("put g ETIMEDOUT - g2 x");
}

/* The same race on the putter side: the slot freed by a get goes to the
 * timed putter unless its deadline fired first; then to p2 behind it. */
static int race_timed_putter(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_queue_put_timeout(&Q, S("t"), 0);
  trace("p %s", cio_err_name(rc));
  return 0;
}

static int race_p2(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_queue_put(&Q, S("p2"));
  if (rc < 0) return rc;
  trace("p2 done");
  return 0;
}

static int race_taker(void *arg, void **res) {
  (void)arg;
  (void)res;
  for (int i = 0; i < race_yields; i++) assert_code(cio_yield(), 0);
  void *item;
  int rc = cio_queue_get_nowait(&Q, &item);
  if (rc < 0) return rc;
  trace("get %s", str(item));
  return 0;
}

static int put_race_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_queue_init(&Q, 1), 0);
  assert_code(cio_queue_put_nowait(&Q, S("a")), 0);
  cio_task *ts[] = {SPAWN(race_timed_putter, 0), SPAWN(race_p2, 0), SPAWN(race_taker, 0)};
  join_all(ts + 2, 1);
  assert_code(cio_sleep(0.1), 0);
  void *item;
  assert_code(cio_queue_get_nowait(&Q, &item), 0);
  trace("then %s", str(item));
  join_all(ts, 2);
  if (cio_queue_get_nowait(&Q, &item) == 0) trace("then %s", str(item));
  return cio_queue_destroy(&Q);
}

static void test_queue_put_timeout_race(void **state) {
  (void)state;
  race_yields = 0;
  run_ok(put_race_main, NULL);
  assert_trace("get a p OK then t p2 done then p2");
  race_yields = 1;
  run_ok(put_race_main, NULL);
  assert_trace("get a p OK then t p2 done then p2");
  race_yields = 2;
  run_ok(put_race_main, NULL);
  assert_trace("get a p ETIMEDOUT p2 done then p2");
}

/* ==== volume ======================================================================= */

#define NITEMS 10000
#define NWORKERS 100
static unsigned char seen[NITEMS];
static long long sum;
static int taken;

static int vol_worker(void *arg, void **res) {
  (void)res;
  uint32_t seed = (uint32_t)(intptr_t)arg * 2654435761u + 1;
  for (;;) {
    void *item;
    int rc = cio_queue_get(&Q, &item);
    if (rc < 0) return rc;
    intptr_t v = (intptr_t)item;
    if (v < 0 || v >= NITEMS || seen[v]++) fail_msg("item %ld taken twice or bogus", (long)v);
    sum += v;
    taken++;
    seed = seed * 1103515245u + 12345u;
    if ((seed >> 16) % 3 == 0 && (rc = cio_sleep(0.001 * ((seed >> 8) % 4))) < 0) return rc;
    assert_code(cio_queue_task_done(&Q), 0);
  }
}

static int vol_producer(void *arg, void **res) {
  (void)res;
  intptr_t from = (intptr_t)arg;
  for (intptr_t v = from; v < NITEMS; v += 4) {
    int rc = cio_queue_put(&Q, (void *)v);
    if (rc < 0) return rc;
  }
  return 0;
}

static int volume_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  memset(seen, 0, sizeof seen);
  sum = 0;
  taken = 0;
  assert_code(cio_queue_init(&Q, 64), 0);
  static cio_task *ws[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) ws[i] = SPAWN(vol_worker, i);
  cio_task *ps[4];
  for (int i = 0; i < 4; i++) ps[i] = SPAWN(vol_producer, i);
  join_all(ps, 4);
  assert_code(cio_queue_join(&Q), 0);
  assert_int_equal(taken, NITEMS);
  assert_int_equal(cio_queue_unfinished(&Q), 0);
  assert_true(cio_queue_empty(&Q));
  for (int i = 0; i < NWORKERS; i++) cio_task_cancel(ws[i], NULL);
  join_all(ws, NWORKERS);
  return cio_queue_destroy(&Q);
}

static void test_queue_join_10000_items_100_workers(void **state) {
  (void)state;
  run_ok(volume_main, NULL);
  assert_int_equal(sum, (long long)NITEMS * (NITEMS - 1) / 2);
  for (int i = 0; i < NITEMS; i++) assert_int_equal(seen[i], 1);
}

/* ==== chaos: cancels and timeouts everywhere, nothing lost or duplicated ============ */

#define CH_TASKS 24
#define CH_OPS 60
static int ch_state[CH_TASKS * CH_OPS]; /* 0 never stored, 1 stored, 2 taken */
enum { CH_STORED, CH_TAKEN, CH_CANCELLED, CH_TIMEDOUT, CH_NCOUNT };
static long ch_count[CH_NCOUNT], ch_total[CH_NCOUNT];
static uint32_t ch_seed;
static cio_task *ch_tasks[CH_TASKS];

static uint32_t ch_rand(void) {
  ch_seed = ch_seed * 1103515245u + 12345u;
  return ch_seed >> 8;
}

static int ch_worker(void *arg, void **res) {
  (void)res;
  int me = (int)(intptr_t)arg;
  for (int op = 0; op < CH_OPS; op++) {
    uint32_t r = ch_rand();
    double timeout = (r % 4) * 0.01;
    int rc;
    if (r & 16) {
      int id = me * CH_OPS + op;
      rc = (r & 32) ? cio_queue_put(&Q, (void *)(intptr_t)id)
                    : cio_queue_put_timeout(&Q, (void *)(intptr_t)id, timeout);
      if (rc == 0) {
        ch_state[id] = 1;
        ch_count[CH_STORED]++;
      }
    } else {
      void *item;
      rc = (r & 32) ? cio_queue_get(&Q, &item) : cio_queue_get_timeout(&Q, &item, timeout);
      if (rc == 0) {
        intptr_t id = (intptr_t)item;
        if (ch_state[id] != 1) fail_msg("item %ld taken in state %d", (long)id, ch_state[id]);
        ch_state[id] = 2;
        ch_count[CH_TAKEN]++;
      }
    }
    if (rc == -ETIMEDOUT) ch_count[CH_TIMEDOUT]++;
    if (rc == -ECANCELED) {
      ch_count[CH_CANCELLED]++;
      cio_task_uncancel(cio_current_task()); /* handled: keep going */
    } else if (rc < 0 && rc != -ETIMEDOUT) {
      return rc;
    }
    if (ch_rand() % 3 == 0 && (rc = cio_sleep(0.01 * (ch_rand() % 3))) < 0) {
      if (rc != -ECANCELED) return rc;
      cio_task_uncancel(cio_current_task());
    }
  }
  return 0;
}

static int ch_chaos(void *arg, void **res) {
  (void)arg;
  (void)res;
  for (int k = 0; k < 300; k++) {
    int rc = cio_sleep(0.005 * (ch_rand() % 3));
    if (rc < 0) return rc;
    cio_task *t = ch_tasks[ch_rand() % CH_TASKS];
    if (!cio_task_done(t)) cio_task_cancel(t, NULL);
  }
  return 0;
}

static int chaos_main(void *arg, void **res) {
  (void)res;
  ch_seed = (uint32_t)(intptr_t)arg;
  memset(ch_state, 0, sizeof ch_state);
  memset(ch_count, 0, sizeof ch_count);
  assert_code(cio_queue_init(&Q, 3), 0);
  for (int i = 0; i < CH_TASKS; i++) ch_tasks[i] = SPAWN(ch_worker, i);
  cio_task *chaos = SPAWN(ch_chaos, 0);
  join_all(&chaos, 1);
  /* Let the workers run out their operations, then shut the queue down: a
   * worker still blocked (a get on an empty queue, a put on a full one)
   * fails with CIO_EQUEUESHUTDOWN. */
  assert_code(cio_sleep(10.0), 0);
  assert_code(cio_queue_shutdown(&Q, false), 0);
  for (int i = 0; i < CH_TASKS; i++) {
    int rc = cio_await(ch_tasks[i], NULL);
    if (rc < 0 && rc != CIO_EQUEUESHUTDOWN)
      fail_msg("worker %d: %s (%s)", i, cio_err_name(rc), cio_errmsg());
    cio_task_unref(ch_tasks[i]);
  }
  void *item;
  while (cio_queue_get_nowait(&Q, &item) == 0) {
    intptr_t id = (intptr_t)item;
    if (ch_state[id] != 1) fail_msg("item %ld left in state %d", (long)id, ch_state[id]);
    ch_state[id] = 2;
  }
  for (int i = 0; i < CH_TASKS * CH_OPS; i++)
    if (ch_state[i] == 1) fail_msg("item %d was stored and lost", i);
  return cio_queue_destroy(&Q);
}

static void test_queue_chaos_nothing_lost(void **state) {
  (void)state;
  memset(ch_total, 0, sizeof ch_total);
  for (intptr_t seed = 1; seed <= 20; seed++) {
    run_ok(chaos_main, (void *)seed);
    for (int k = 0; k < CH_NCOUNT; k++) ch_total[k] += ch_count[k];
  }
  /* The runs did exercise every outcome (else this test proves nothing). */
  print_message("chaos: %ld stored, %ld taken, %ld cancelled waits, %ld timeouts\n",
                ch_total[CH_STORED], ch_total[CH_TAKEN], ch_total[CH_CANCELLED],
                ch_total[CH_TIMEDOUT]);
  for (int k = 0; k < CH_NCOUNT; k++) assert_true(ch_total[k] > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue_getters_fifo_trace),
      cmocka_unit_test(test_queue_putters_fifo_trace),
      cmocka_unit_test(test_queue_cancel_promised_getter_trace),
      cmocka_unit_test(test_queue_cancel_promised_putter_trace),
      cmocka_unit_test(test_queue_cancel_waiting_trace),
      cmocka_unit_test(test_queue_shutdown_waiters_trace),
      cmocka_unit_test(test_queue_shutdown_getters_trace),
      cmocka_unit_test(test_queue_shutdown_immediate_trace),
      cmocka_unit_test(test_queue_shutdown_getters_and_putters_suspended),
      cmocka_unit_test(test_queue_join_workers_trace),
      cmocka_unit_test(test_queue_orders),
      cmocka_unit_test(test_queue_basics_and_misuse),
      cmocka_unit_test(test_queue_destroy_busy),
      cmocka_unit_test(test_queue_no_barging),
      cmocka_unit_test(test_queue_timeouts),
      cmocka_unit_test(test_queue_get_timeout_race),
      cmocka_unit_test(test_queue_put_timeout_race),
      cmocka_unit_test(test_queue_join_10000_items_100_workers),
      cmocka_unit_test(test_queue_chaos_nothing_lost),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
