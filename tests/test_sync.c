/* Tests of layer 7a: Lock, Event, Condition, Semaphore, Barrier.
 *
 * The traces asserted by the *_trace tests are the ones CPython 3.13 prints
 * for the asyncio originals in tests/ref/sync_ref.py (run it to see them):
 * same lines, same order, same virtual times. */
#include "cio_test.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>


struct warg {
  int i;
  double hold;
};

/* ==== Lock ================================================================== */

static cio_lock L;

static int lf_worker(void *arg, void **res) {
  (void)res;
  struct warg *a = arg;
  trace("w%d try", a->i);
  int rc = cio_lock_acquire(&L);
  if (rc < 0) return rc;
  trace("w%d got@%.2f", a->i, now());
  if ((rc = cio_sleep(a->hold)) < 0) return rc;
  assert_code(cio_lock_release(&L), 0);
  trace("w%d rel", a->i);
  return 0;
}

static int lf_barger(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_sleep(1.0);
  if (rc < 0) return rc;
  trace("b try locked=%d", cio_lock_locked(&L));
  /* The lock is free but w1 was woken first: a newcomer queues. */
  assert_code(cio_lock_try_acquire(&L), -EBUSY);
  if ((rc = cio_lock_acquire(&L)) < 0) return rc;
  trace("b got@%.2f", now());
  return cio_lock_release(&L);
}

static int lock_fifo_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  struct warg a0 = {0, 1.0}, a1 = {1, 0}, a2 = {2, 0};
  cio_task *ts[] = {SPAWN(lf_worker, &a0), SPAWN(lf_barger, NULL), SPAWN(lf_worker, &a1),
                    SPAWN(lf_worker, &a2)};
  join_all(ts, 4);
  trace("end locked=%d", cio_lock_locked(&L));
  return cio_lock_destroy(&L);
}

static void test_lock_fifo_trace(void **state) {
  (void)state;
  run_ok(lock_fifo_main, NULL);
  assert_trace("w0 try w0 got@0.00 w1 try w2 try w0 rel b try locked=0 w1 got@1.00 w1 rel "
               "w2 got@1.00 w2 rel b got@1.00 end locked=0");
  assert_time(1.0);
}

static int lcw_worker(void *arg, void **res) {
  (void)res;
  struct warg *a = arg;
  int rc = cio_lock_acquire(&L);
  if (rc < 0) {
    assert_code(rc, -ECANCELED);
    trace("w%d cancelled@%.2f", a->i, now());
    return rc;
  }
  trace("w%d got@%.2f", a->i, now());
  if ((rc = cio_sleep(a->hold)) < 0) return rc;
  return cio_lock_release(&L);
}

static int lock_cancel_waiting_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  struct warg a0 = {0, 1.0}, a1 = {1, 0}, a2 = {2, 0};
  cio_task *ts[] = {SPAWN(lcw_worker, &a0), SPAWN(lcw_worker, &a1), SPAWN(lcw_worker, &a2)};
  assert_code(cio_sleep(0.5), 0);
  assert_int_equal(cio_task_cancel(ts[1], NULL), 1);
  join_all(ts, 3);
  trace("end locked=%d", cio_lock_locked(&L));
  return cio_lock_destroy(&L);
}

static void test_lock_cancel_waiting_trace(void **state) {
  (void)state;
  run_ok(lock_cancel_waiting_main, NULL);
  assert_trace("w0 got@0.00 w1 cancelled@0.50 w2 got@1.00 end locked=0");
  assert_time(1.0);
}

static cio_task *victim;

static int lcaw_holder(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_lock_acquire(&L);
  if (rc < 0) return rc;
  if ((rc = cio_sleep(1.0)) < 0) return rc;
  assert_code(cio_lock_release(&L), 0);
  trace("w0 rel");
  return 0;
}

static int lcaw_worker(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  int rc = cio_lock_acquire(&L);
  if (rc < 0) {
    trace("w%d cancelled locked=%d", i, cio_lock_locked(&L));
    return rc;
  }
  trace("w%d got@%.2f", i, now());
  return cio_lock_release(&L);
}

static int lcaw_killer(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_sleep(1.0);
  if (rc < 0) return rc;
  trace("kill w1");
  assert_int_equal(cio_task_cancel(victim, NULL), 1);
  return 0;
}

static int lock_cancel_after_wake_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  cio_task *ts[4];
  ts[0] = SPAWN(lcaw_holder, NULL);
  ts[1] = victim = SPAWN(lcaw_worker, 1);
  ts[2] = SPAWN(lcaw_worker, 2);
  ts[3] = SPAWN(lcaw_killer, NULL);
  join_all(ts, 4);
  trace("end locked=%d", cio_lock_locked(&L));
  return cio_lock_destroy(&L);
}

static void test_lock_cancel_after_wake_trace(void **state) {
  (void)state;
  run_ok(lock_cancel_after_wake_main, NULL);
  assert_trace("w0 rel kill w1 w1 cancelled locked=0 w2 got@1.00 end locked=0");
  assert_time(1.0);
}

/* 1,000 tasks, 3 rounds each: acquisitions are strictly round-robin. */
#define NFAIR 1000
#define ROUNDS 3
static int fair_order[NFAIR * ROUNDS];
static int fair_n;

static int fair_lock_worker(void *arg, void **res) {
  (void)res;
  for (int r = 0; r < ROUNDS; r++) {
    int rc = cio_lock_acquire(&L);
    if (rc < 0) return rc;
    fair_order[fair_n++] = (int)(intptr_t)arg;
    if ((rc = cio_yield()) < 0) return rc;
    assert_code(cio_lock_release(&L), 0);
  }
  return 0;
}

static int fair_lock_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  static cio_task *ts[NFAIR];
  for (int i = 0; i < NFAIR; i++) ts[i] = SPAWN(fair_lock_worker, i);
  join_all(ts, NFAIR);
  return cio_lock_destroy(&L);
}

static void test_lock_fairness_1000(void **state) {
  (void)state;
  fair_n = 0;
  run_ok(fair_lock_main, NULL);
  assert_int_equal(fair_n, NFAIR * ROUNDS);
  for (int k = 0; k < NFAIR * ROUNDS; k++)
    if (fair_order[k] != k % NFAIR) fail_msg("acquisition %d went to task %d", k, fair_order[k]);
}

static int lt_holder(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_lock_acquire(&L);
  if (rc < 0) return rc;
  if ((rc = cio_sleep(2.0)) < 0) return rc;
  return cio_lock_release(&L);
}

static int lt_waiter(void *arg, void **res) {
  (void)res;
  double timeout = *(double *)arg;
  int rc = cio_lock_acquire_timeout(&L, timeout);
  trace("%s@%.2f", cio_err_name(rc), now());
  if (rc == 0) assert_code(cio_lock_release(&L), 0);
  return 0;
}

static int lock_timeout_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  double t1 = 0.5, t2 = 10.0, t3 = INFINITY;
  cio_task *ts[] = {SPAWN(lt_holder, NULL), SPAWN(lt_waiter, &t1), SPAWN(lt_waiter, &t2),
                    SPAWN(lt_waiter, &t3)};
  join_all(ts, 4);
  assert_false(cio_lock_locked(&L));
  /* Free lock: no suspension even with a zero timeout. */
  assert_code(cio_lock_acquire_timeout(&L, 0), 0);
  assert_code(cio_lock_acquire_timeout(&L, NAN), -EINVAL);
  assert_true(cio_lock_locked(&L));
  assert_code(cio_lock_release(&L), 0);
  return cio_lock_destroy(&L);
}

static void test_lock_timeout(void **state) {
  (void)state;
  run_ok(lock_timeout_main, NULL);
  assert_trace("ETIMEDOUT@0.50 OK@2.00 OK@2.00");
  assert_time(2.0);
}

/* The release races the deadline. The releaser runs `yields` iterations after
 * the waiter armed a zero timeout; w2 queues behind the waiter. */
static int race_yields;

static int race_waiter(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_lock_acquire_timeout(&L, 0);
  trace("w %s locked=%d", cio_err_name(rc), cio_lock_locked(&L));
  if (rc == 0) assert_code(cio_lock_release(&L), 0);
  return 0;
}

static int race_w2(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_lock_acquire(&L);
  if (rc < 0) return rc;
  trace("w2 got");
  return cio_lock_release(&L);
}

static int race_releaser(void *arg, void **res) {
  (void)arg;
  (void)res;
  for (int i = 0; i < race_yields; i++) assert_code(cio_yield(), 0);
  trace("release");
  return cio_lock_release(&L);
}

static int lock_race_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  assert_code(cio_lock_try_acquire(&L), 0);
  cio_task *ts[] = {SPAWN(race_waiter, NULL), SPAWN(race_w2, NULL), SPAWN(race_releaser, NULL)};
  join_all(ts, 3);
  assert_false(cio_lock_locked(&L));
  return cio_lock_destroy(&L);
}

static void test_lock_timeout_race(void **state) {
  (void)state;
  /* Released in the iteration the waiter suspended: hand-off. */
  race_yields = 0;
  run_ok(lock_race_main, NULL);
  assert_trace("release w OK locked=1 w2 got");
  /* Released in the iteration where the deadline fires, before it: the
   * hand-off wins although the waiter resumes after the deadline. */
  race_yields = 1;
  run_ok(lock_race_main, NULL);
  assert_trace("release w OK locked=1 w2 got");
  /* Released one iteration after the deadline: the waiter times out and
   * passes the lock on to w2 (nobody stranded). */
  race_yields = 2;
  run_ok(lock_race_main, NULL);
  assert_trace("release w ETIMEDOUT locked=0 w2 got");
  assert_time(0.0);
}

static int lock_misuse_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  cio_lock zero;
  memset(&zero, 0, sizeof zero);
  assert_code(cio_lock_acquire(&zero), -EINVAL);
  assert_code(cio_lock_acquire(NULL), -EINVAL);
  assert_code(cio_lock_release(&zero), -EINVAL);
  assert_code(cio_lock_init(&L), 0);
  assert_code(cio_lock_release(&L), -EPERM);
  assert_code(cio_lock_acquire(&L), 0);
  cio_task *t = SPAWN(race_w2, NULL);
  assert_code(cio_yield(), 0); /* t now waits */
  assert_code(cio_lock_destroy(&L), -EBUSY);
  assert_code(cio_lock_release(&L), 0);
  join_all(&t, 1);
  assert_code(cio_lock_destroy(&L), 0);
  assert_code(cio_lock_acquire(&L), -EINVAL); /* destroyed */
  assert_false(cio_lock_locked(&L));
  return 0;
}

static void test_lock_misuse(void **state) {
  (void)state;
  assert_code(cio_lock_init(NULL), -EINVAL);
  assert_code(cio_lock_init(&L), 0);
  assert_code(cio_lock_acquire(&L), CIO_ENOTASK);  /* outside a task */
  assert_code(cio_lock_try_acquire(&L), 0);        /* non-suspending: fine */
  assert_code(cio_lock_try_acquire(&L), -EBUSY);
  assert_code(cio_lock_release(&L), 0);
  assert_false(cio_lock_locked(NULL));
  run_ok(lock_misuse_main, NULL);
  assert_trace("w2 got");
}

/* A lock with a task of loop 1 waiting on it refuses loop 2's tasks. */
static int wrongloop_waiter(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_lock_acquire(&L);
  if (rc < 0) return rc;
  return cio_lock_release(&L);
}

static int wrongloop_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_acquire(&L), CIO_EWRONGLOOP);
  return 0;
}

static void test_lock_wrong_loop(void **state) {
  (void)state;
  assert_code(cio_lock_init(&L), 0);
  assert_code(cio_lock_try_acquire(&L), 0);
  cio_loop *loop1;
  cio_loop_options o = {.virtual_time = true};
  assert_code(cio_loop_new(&loop1, &o), 0);
  cio_task *t = cio_loop_create_task(loop1, wrongloop_waiter, NULL, NULL);
  assert_non_null(t);
  assert_code(cio_loop_stop(loop1), 0);
  assert_code(cio_loop_run_forever(loop1), 0); /* one batch: t waits on L */
  run_ok(wrongloop_main, NULL);
  assert_code(cio_lock_release(&L), 0); /* wakes t on loop 1 */
  assert_code(cio_loop_run_until_complete(loop1, cio_task_future(t)), 0);
  assert_code(cio_task_result(t, NULL), 0);
  cio_task_unref(t);
  assert_code(cio_loop_free(loop1), 0);
  assert_code(cio_lock_destroy(&L), 0);
}

/* Waiting on a lock nobody will release is a deadlock the loop reports
 * (naming the task) instead of hanging; cio_run then cancels the waiter,
 * which leaves the lock's queue. */
static int deadlock_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_acquire(&L), 0);
  int rc = cio_lock_acquire(&L); /* not re-entrant */
  trace("%s", cio_err_name(rc));
  return rc;
}

static void test_lock_deadlock_reported(void **state) {
  (void)state;
  assert_code(cio_lock_init(&L), 0);
  trace_clear();
  assert_code(run_virtual(deadlock_main, NULL), CIO_EDEADLOCK);
  assert_trace("ECANCELED");
  assert_true(cio_lock_locked(&L));
  assert_code(cio_lock_destroy(&L), 0); /* nobody waits any more */
}

/* ==== Event ================================================================== */

static cio_event E;

static int ev_waiter(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  trace("w%d wait", i);
  int rc = cio_event_wait(&E);
  if (rc < 0) return rc;
  trace("w%d woke@%.2f set=%d", i, now(), cio_event_is_set(&E));
  return 0;
}

static int event_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_event_init(&E), 0);
  cio_task *ts[3];
  for (int i = 0; i < 3; i++) ts[i] = SPAWN(ev_waiter, i);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_event_set(&E), 0);
  assert_code(cio_event_clear(&E), 0);
  trace("set+clear");
  join_all(ts, 3);
  assert_code(cio_event_set(&E), 0);
  assert_code(cio_event_set(&E), 0); /* idempotent */
  assert_code(cio_event_wait(&E), 0);
  trace("again@%.2f", now());
  return cio_event_destroy(&E);
}

static void test_event_set_wakes_all_trace(void **state) {
  (void)state;
  run_ok(event_main, NULL);
  assert_trace("w0 wait w1 wait w2 wait set+clear w0 woke@1.00 set=0 w1 woke@1.00 set=0 "
               "w2 woke@1.00 set=0 again@1.00");
  assert_time(1.0);
}

static int ev_timed(void *arg, void **res) {
  (void)res;
  double timeout = *(double *)arg;
  int rc = cio_event_wait_timeout(&E, timeout);
  trace("%s@%.2f", cio_err_name(rc), now());
  return 0;
}

static int ev_plain(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_event_wait(&E);
  trace("plain %s@%.2f", cio_err_name(rc), now());
  return rc;
}

static int event_timeout_cancel_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_event_init(&E), 0);
  double t1 = 0.25, t2 = 3.0;
  cio_task *ts[] = {SPAWN(ev_timed, &t1), SPAWN(ev_timed, &t2), SPAWN(ev_plain, NULL)};
  assert_code(cio_sleep(0.5), 0);
  assert_int_equal(cio_task_cancel(ts[2], NULL), 1);
  assert_code(cio_sleep(0.5), 0);
  assert_code(cio_event_set(&E), 0);
  join_all(ts, 3);
  assert_code(cio_event_wait_timeout(&E, 0), 0); /* set: no suspension */
  assert_code(cio_event_wait_timeout(&E, NAN), -EINVAL);
  return cio_event_destroy(&E);
}

static void test_event_timeout_and_cancel(void **state) {
  (void)state;
  run_ok(event_timeout_cancel_main, NULL);
  assert_trace("ETIMEDOUT@0.25 plain ECANCELED@0.50 OK@1.00");
  assert_time(1.0);
  cio_event z;
  memset(&z, 0, sizeof z);
  assert_code(cio_event_set(&z), -EINVAL);
  assert_code(cio_event_set(NULL), -EINVAL);
  assert_code(cio_event_init(&E), 0);
  assert_code(cio_event_wait(&E), CIO_ENOTASK);
  assert_false(cio_event_is_set(NULL));
  assert_code(cio_event_destroy(&E), 0);
}

/* ==== Condition ============================================================== */

static cio_condition C;

static int cn_consumer(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  int rc = cio_condition_acquire(&C);
  if (rc < 0) return rc;
  trace("c%d wait", i);
  if ((rc = cio_condition_wait(&C)) < 0) return rc;
  trace("c%d woke@%.2f", i, now());
  return cio_condition_release(&C);
}

static int cond_notify_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_condition_init(&C, NULL), 0);
  cio_task *ts[4];
  for (int i = 0; i < 4; i++) ts[i] = SPAWN(cn_consumer, i);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_condition_acquire(&C), 0);
  assert_int_equal(cio_condition_notify(&C, 1), 1);
  trace("notify1");
  assert_code(cio_condition_release(&C), 0);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_condition_acquire(&C), 0);
  assert_int_equal(cio_condition_notify(&C, 2), 2);
  trace("notify2");
  assert_code(cio_sleep(0.5), 0);
  trace("unlock");
  assert_code(cio_condition_release(&C), 0);
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_condition_acquire(&C), 0);
  assert_int_equal(cio_condition_notify_all(&C), 1);
  trace("notify_all");
  assert_code(cio_condition_release(&C), 0);
  join_all(ts, 4);
  assert_code(cio_condition_acquire(&C), 0);
  assert_int_equal(cio_condition_notify_all(&C), 0); /* nobody left */
  assert_code(cio_condition_release(&C), 0);
  return cio_condition_destroy(&C);
}

static void test_condition_notify_trace(void **state) {
  (void)state;
  run_ok(cond_notify_main, NULL);
  assert_trace("c0 wait c1 wait c2 wait c3 wait notify1 c0 woke@1.00 notify2 unlock c1 woke@2.50 "
               "c2 woke@2.50 notify_all c3 woke@3.50");
  assert_time(3.5);
}

static int cc_consumer(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  int rc = cio_condition_acquire(&C);
  if (rc < 0) return rc;
  rc = cio_condition_wait(&C);
  if (rc < 0) {
    assert_code(rc, -ECANCELED);
    trace("c%d cancelled@%.2f locked=%d", i, now(), cio_condition_locked(&C));
    assert_code(cio_condition_release(&C), 0); /* it holds the lock again */
    return rc;
  }
  trace("c%d woke@%.2f", i, now());
  return cio_condition_release(&C);
}

static int cond_cancel_after_notify_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_condition_init(&C, NULL), 0);
  cio_task *ts[] = {SPAWN(cc_consumer, 0), SPAWN(cc_consumer, 1)};
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_condition_acquire(&C), 0);
  assert_int_equal(cio_condition_notify(&C, 1), 1);
  assert_int_equal(cio_task_cancel(ts[0], NULL), 1);
  trace("notify+cancel c0");
  assert_code(cio_condition_release(&C), 0);
  join_all(ts, 2);
  trace("end locked=%d", cio_condition_locked(&C));
  return cio_condition_destroy(&C);
}

static void test_condition_cancel_after_notify_trace(void **state) {
  (void)state;
  run_ok(cond_cancel_after_notify_main, NULL);
  assert_trace("notify+cancel c0 c0 cancelled@1.00 locked=1 c1 woke@1.00 end locked=0");
  assert_time(1.0);
}

static int cond_cancel_in_reacquire_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_condition_init(&C, NULL), 0);
  cio_task *ts[] = {SPAWN(cc_consumer, 0), SPAWN(cc_consumer, 1)};
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_condition_acquire(&C), 0);
  assert_int_equal(cio_condition_notify(&C, 1), 1);
  trace("notify");
  assert_code(cio_sleep(0.5), 0); /* c0 now waits for the lock */
  assert_int_equal(cio_task_cancel(ts[0], NULL), 1);
  trace("cancel c0");
  assert_code(cio_sleep(0.5), 0);
  trace("unlock");
  assert_code(cio_condition_release(&C), 0);
  join_all(ts, 2);
  trace("end locked=%d", cio_condition_locked(&C));
  return cio_condition_destroy(&C);
}

static void test_condition_cancel_in_reacquire_trace(void **state) {
  (void)state;
  run_ok(cond_cancel_in_reacquire_main, NULL);
  assert_trace("notify cancel c0 unlock c0 cancelled@2.00 locked=1 c1 woke@2.00 end locked=0");
  assert_time(2.0);
}

/* Cancelled twice while re-acquiring: still returns with the lock held. */
static int cond_double_cancel_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_condition_init(&C, NULL), 0);
  cio_task *t = SPAWN(cc_consumer, 0);
  assert_code(cio_sleep(0.1), 0);
  assert_code(cio_condition_acquire(&C), 0);
  assert_int_equal(cio_task_cancel(t, NULL), 1); /* cancels the wait */
  assert_code(cio_sleep(0.1), 0);                /* t now re-acquires */
  assert_int_equal(cio_task_cancel(t, NULL), 1); /* cancels the re-acquire */
  assert_code(cio_sleep(0.1), 0);
  assert_int_equal(cio_task_cancel(t, NULL), 1); /* and again */
  assert_code(cio_sleep(0.1), 0);
  assert_false(cio_task_done(t));
  trace("unlock@%.2f", now());
  assert_code(cio_condition_release(&C), 0);
  join_all(&t, 1);
  assert_false(cio_condition_locked(&C));
  return cio_condition_destroy(&C);
}

static void test_condition_reacquires_through_cancels(void **state) {
  (void)state;
  run_ok(cond_double_cancel_main, NULL);
  assert_trace("unlock@0.40 c0 cancelled@0.40 locked=1");
}

static int wf_n;
static bool wf_pred(void *arg) { return wf_n >= *(int *)arg; }

static int wf_waiter(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_condition_acquire(&C);
  if (rc < 0) return rc;
  int three = 3;
  if ((rc = cio_condition_wait_for(&C, wf_pred, &three)) < 0) return rc;
  assert_true(cio_condition_locked(&C));
  trace("done n=%d@%.2f", wf_n, now());
  return cio_condition_release(&C);
}

static int cond_wait_for_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  wf_n = 0;
  assert_code(cio_condition_init(&C, NULL), 0);
  cio_task *t = SPAWN(wf_waiter, NULL);
  for (int i = 0; i < 4; i++) {
    assert_code(cio_sleep(0.1), 0);
    assert_code(cio_condition_acquire(&C), 0);
    wf_n++;
    trace("n=%d", wf_n);
    assert_true(cio_condition_notify_all(&C) >= 0);
    assert_code(cio_condition_release(&C), 0);
  }
  join_all(&t, 1);
  /* A true predicate does not suspend. */
  int zero = 0;
  assert_code(cio_condition_acquire(&C), 0);
  double t0 = now();
  assert_code(cio_condition_wait_for(&C, wf_pred, &zero), 0);
  assert_code(cio_condition_wait_for(&C, NULL, NULL), -EINVAL);
  assert_true(now() == t0);
  assert_code(cio_condition_release(&C), 0);
  return cio_condition_destroy(&C);
}

static void test_condition_wait_for_trace(void **state) {
  (void)state;
  run_ok(cond_wait_for_main, NULL);
  assert_trace("n=1 n=2 n=3 done n=3@0.30 n=4");
  assert_time(0.4);
}

/* wait_timeout: -ETIMEDOUT at the deadline, but only once the lock, held by
 * someone else at that moment, is re-acquired. */
static int ct_holder(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_sleep(0.5);
  if (rc < 0) return rc;
  if ((rc = cio_condition_acquire(&C)) < 0) return rc;
  if ((rc = cio_sleep(1.5)) < 0) return rc;
  trace("holder rel@%.2f", now());
  return cio_condition_release(&C);
}

static int cond_timeout_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_condition_init(&C, NULL), 0);
  assert_code(cio_condition_acquire(&C), 0);
  cio_task *t = SPAWN(ct_holder, NULL);
  int rc = cio_condition_wait_timeout(&C, 1.0);
  trace("wait %s@%.2f locked=%d", cio_err_name(rc), now(), cio_condition_locked(&C));
  join_all(&t, 1);
  int three = 3;
  wf_n = 0;
  rc = cio_condition_wait_for_timeout(&C, wf_pred, &three, 0.75);
  trace("wait_for %s@%.2f locked=%d", cio_err_name(rc), now(), cio_condition_locked(&C));
  assert_code(cio_condition_wait_timeout(&C, NAN), -EINVAL);
  assert_code(cio_condition_release(&C), 0);
  return cio_condition_destroy(&C);
}

static void test_condition_timeout(void **state) {
  (void)state;
  run_ok(cond_timeout_main, NULL);
  assert_trace("holder rel@2.00 wait ETIMEDOUT@2.00 locked=1 wait_for ETIMEDOUT@2.75 locked=1");
  assert_time(2.75);
}

/* Two conditions on one lock; misuse without the lock. */
static cio_condition C2;

static int shared_waiter(void *arg, void **res) {
  (void)res;
  cio_condition *c = arg;
  int rc = cio_condition_acquire(c);
  if (rc < 0) return rc;
  if ((rc = cio_condition_wait(c)) < 0) return rc;
  trace("%s woke", c == &C ? "C" : "C2");
  return cio_condition_release(c);
}

static int cond_shared_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_lock_init(&L), 0);
  assert_code(cio_condition_init(&C, &L), 0);
  assert_code(cio_condition_init(&C2, &L), 0);
  assert_ptr_equal(cio_condition_lock(&C), &L);
  assert_ptr_equal(cio_condition_lock(&C2), &L);
  assert_code(cio_condition_wait(&C), -EPERM);
  assert_code(cio_condition_notify(&C, 1), -EPERM);
  assert_code(cio_condition_notify_all(&C2), -EPERM);
  int never = wf_n + 1000; /* a false predicate: a true one returns at once (item 17) */
  assert_code(cio_condition_wait_for(&C, wf_pred, &never), -EPERM);
  assert_false(cio_lock_locked(&L));
  cio_task *ts[] = {SPAWN(shared_waiter, &C), SPAWN(shared_waiter, &C2)};
  assert_code(cio_sleep(0.1), 0);
  assert_code(cio_lock_acquire(&L), 0);
  assert_true(cio_condition_locked(&C) && cio_condition_locked(&C2));
  assert_int_equal(cio_condition_notify(&C2, 5), 1); /* only C2's waiter */
  assert_code(cio_condition_release(&C), 0);         /* releases L */
  assert_code(cio_sleep(0.1), 0);
  trace("then");
  assert_code(cio_condition_acquire(&C2), 0);
  assert_int_equal(cio_condition_notify(&C, 1), 1);
  assert_code(cio_lock_release(&L), 0);
  join_all(ts, 2);
  assert_code(cio_condition_destroy(&C), 0);
  assert_code(cio_condition_destroy(&C2), 0);
  return cio_lock_destroy(&L);
}

static void test_condition_shared_lock_and_misuse(void **state) {
  (void)state;
  run_ok(cond_shared_main, NULL);
  assert_trace("C2 woke then C woke");
  assert_code(cio_condition_init(NULL, NULL), -EINVAL);
  cio_lock zero;
  memset(&zero, 0, sizeof zero);
  assert_code(cio_condition_init(&C, &zero), -EINVAL);
  assert_code(cio_condition_init(&C, NULL), 0);
  assert_code(cio_condition_wait(&C), CIO_ENOTASK);
  assert_code(cio_condition_notify(NULL, 1), -EINVAL);
  assert_code(cio_condition_destroy(&C), 0);
}

/* ==== Semaphore =============================================================== */

static cio_semaphore S;

static int sf_worker(void *arg, void **res) {
  (void)res;
  struct warg *a = arg;
  int rc = cio_semaphore_acquire(&S);
  if (rc < 0) return rc;
  trace("w%d got@%.2f", a->i, now());
  if ((rc = cio_sleep(a->hold)) < 0) return rc;
  return cio_semaphore_release(&S);
}

static int sf_barger(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_sleep(1.0);
  if (rc < 0) return rc;
  trace("b locked=%d value=%d", cio_semaphore_locked(&S), cio_semaphore_value(&S));
  assert_code(cio_semaphore_try_acquire(&S), -EBUSY);
  if ((rc = cio_semaphore_acquire(&S)) < 0) return rc;
  trace("b got@%.2f", now());
  return cio_semaphore_release(&S);
}

static int sem_fifo_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_semaphore_init(&S, 2), 0);
  struct warg a0 = {0, 1.0}, a1 = {1, 2.0}, a2 = {2, 1.0}, a3 = {3, 0};
  cio_task *ts[] = {SPAWN(sf_worker, &a0), SPAWN(sf_worker, &a1), SPAWN(sf_barger, NULL),
                    SPAWN(sf_worker, &a2), SPAWN(sf_worker, &a3)};
  join_all(ts, 5);
  trace("end value=%d", cio_semaphore_value(&S));
  return cio_semaphore_destroy(&S);
}

static void test_semaphore_fifo_trace(void **state) {
  (void)state;
  run_ok(sem_fifo_main, NULL);
  assert_trace("w0 got@0.00 w1 got@0.00 b locked=1 value=0 w2 got@1.00 w3 got@2.00 b got@2.00 "
               "end value=2");
  assert_time(2.0);
}

static int scaw_holder(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_semaphore_acquire(&S);
  if (rc < 0) return rc;
  if ((rc = cio_sleep(1.0)) < 0) return rc;
  assert_code(cio_semaphore_release(&S), 0);
  trace("rel value=%d", cio_semaphore_value(&S));
  return 0;
}

static int scaw_worker(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg;
  int rc = cio_semaphore_acquire(&S);
  if (rc < 0) {
    trace("w%d cancelled value=%d", i, cio_semaphore_value(&S));
    return rc;
  }
  trace("w%d got@%.2f", i, now());
  return cio_semaphore_release(&S);
}

static int scaw_killer(void *arg, void **res) {
  (void)arg;
  (void)res;
  int rc = cio_sleep(1.0);
  if (rc < 0) return rc;
  assert_int_equal(cio_task_cancel(victim, NULL), 1);
  trace("kill w1");
  return 0;
}

static int sem_cancel_after_wake_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_semaphore_init(&S, 1), 0);
  cio_task *ts[4];
  ts[0] = SPAWN(scaw_holder, NULL);
  ts[1] = victim = SPAWN(scaw_worker, 1);
  ts[2] = SPAWN(scaw_worker, 2);
  ts[3] = SPAWN(scaw_killer, NULL);
  join_all(ts, 4);
  trace("end value=%d", cio_semaphore_value(&S));
  return cio_semaphore_destroy(&S);
}

static void test_semaphore_cancel_after_wake_trace(void **state) {
  (void)state;
  run_ok(sem_cancel_after_wake_main, NULL);
  assert_trace("rel value=0 kill w1 w1 cancelled value=0 w2 got@1.00 end value=1");
  assert_time(1.0);
}

static int fair_sem_worker(void *arg, void **res) {
  (void)res;
  for (int r = 0; r < ROUNDS; r++) {
    int rc = cio_semaphore_acquire(&S);
    if (rc < 0) return rc;
    fair_order[fair_n++] = (int)(intptr_t)arg;
    if ((rc = cio_yield()) < 0) return rc;
    assert_code(cio_semaphore_release(&S), 0);
  }
  return 0;
}

static int fair_sem_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_semaphore_init_bounded(&S, 3), 0);
  static cio_task *ts[NFAIR];
  for (int i = 0; i < NFAIR; i++) ts[i] = SPAWN(fair_sem_worker, i);
  join_all(ts, NFAIR);
  assert_int_equal(cio_semaphore_value(&S), 3);
  return cio_semaphore_destroy(&S);
}

static void test_semaphore_fairness_1000(void **state) {
  (void)state;
  fair_n = 0;
  run_ok(fair_sem_main, NULL);
  assert_int_equal(fair_n, NFAIR * ROUNDS);
  for (int k = 0; k < NFAIR * ROUNDS; k++)
    if (fair_order[k] != k % NFAIR) fail_msg("acquisition %d went to task %d", k, fair_order[k]);
}

/* Every kind of failed wait leaves the value unchanged. */
static int sem_timed(void *arg, void **res) {
  (void)res;
  double timeout = *(double *)arg;
  int rc = cio_semaphore_acquire_timeout(&S, timeout);
  trace("%s@%.2f", cio_err_name(rc), now());
  if (rc == 0) assert_code(cio_semaphore_release(&S), 0);
  return rc == -ECANCELED ? rc : 0;
}

static int sem_counts_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_semaphore_init(&S, 2), 0);
  assert_code(cio_semaphore_acquire(&S), 0);
  assert_code(cio_semaphore_acquire(&S), 0);
  assert_int_equal(cio_semaphore_value(&S), 0);
  assert_true(cio_semaphore_locked(&S));
  double t1 = 0.5, t2 = 5.0, t3 = 5.0;
  cio_task *ts[] = {SPAWN(sem_timed, &t1), SPAWN(sem_timed, &t2), SPAWN(sem_timed, &t3)};
  assert_code(cio_sleep(0.75), 0);
  assert_int_equal(cio_task_cancel(ts[1], NULL), 1);
  assert_code(cio_sleep(0.25), 0);
  assert_int_equal(cio_semaphore_value(&S), 0);
  assert_code(cio_semaphore_release(&S), 0); /* to ts[2] */
  assert_code(cio_semaphore_release(&S), 0);
  join_all(ts, 3);
  assert_int_equal(cio_semaphore_value(&S), 2);
  assert_false(cio_semaphore_locked(&S));
  return cio_semaphore_destroy(&S);
}

static void test_semaphore_counts_after_cancel_and_timeout(void **state) {
  (void)state;
  run_ok(sem_counts_main, NULL);
  assert_trace("ETIMEDOUT@0.50 ECANCELED@0.75 OK@1.00");
  assert_time(1.0);
}

static void test_semaphore_bounded_and_misuse(void **state) {
  (void)state;
  assert_code(cio_semaphore_init(&S, -1), -EINVAL);
  assert_code(cio_semaphore_init(NULL, 1), -EINVAL);
  assert_code(cio_semaphore_init_bounded(&S, 2), 0);
  assert_code(cio_semaphore_release(&S), -EOVERFLOW);
  assert_int_equal(cio_semaphore_value(&S), 2);
  assert_code(cio_semaphore_try_acquire(&S), 0);
  assert_code(cio_semaphore_release(&S), 0);
  assert_code(cio_semaphore_release(&S), -EOVERFLOW);
  assert_code(cio_semaphore_acquire(&S), CIO_ENOTASK);
  assert_code(cio_semaphore_destroy(&S), 0);
  /* Unbounded: release above the initial value is fine. */
  assert_code(cio_semaphore_init(&S, 0), 0);
  assert_true(cio_semaphore_locked(&S));
  assert_code(cio_semaphore_try_acquire(&S), -EBUSY);
  assert_code(cio_semaphore_release(&S), 0);
  assert_code(cio_semaphore_release(&S), 0);
  assert_int_equal(cio_semaphore_value(&S), 2);
  assert_code(cio_semaphore_destroy(&S), 0);
  assert_code(cio_semaphore_value(&S), -EINVAL);
  assert_code(cio_semaphore_value(NULL), -EINVAL);
}

/* ==== Barrier ================================================================= */

static cio_barrier B;

static int bw(void *arg, void **res) {
  (void)res;
  int i = (int)(intptr_t)arg, idx = -1;
  int rc = cio_barrier_wait(&B, &idx);
  if (rc == -ECANCELED) {
    trace("w%d cancelled n=%d", i, cio_barrier_n_waiting(&B));
    return rc;
  }
  if (rc == CIO_EBROKENBARRIER) {
    trace("w%d broken@%.2f", i, now());
    return 0;
  }
  if (rc < 0) return rc;
  trace("w%d idx=%d@%.2f", i, idx, now());
  return 0;
}

static int barrier_cancel_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_barrier_init(&B, 3), 0);
  cio_task *ts[4];
  ts[0] = SPAWN(bw, 0);
  assert_code(cio_sleep(0.1), 0);
  ts[1] = SPAWN(bw, 1);
  assert_code(cio_sleep(0.1), 0);
  trace("n=%d", cio_barrier_n_waiting(&B));
  assert_int_equal(cio_task_cancel(ts[1], NULL), 1);
  assert_code(cio_sleep(0.1), 0);
  trace("n=%d broken=%d", cio_barrier_n_waiting(&B), cio_barrier_broken(&B));
  ts[2] = SPAWN(bw, 2);
  assert_code(cio_sleep(0.1), 0);
  ts[3] = SPAWN(bw, 3);
  join_all(ts, 4);
  trace("n=%d", cio_barrier_n_waiting(&B));
  cio_task *more[3];
  for (int i = 0; i < 3; i++) more[i] = SPAWN(bw, 4 + i);
  join_all(more, 3);
  assert_int_equal(cio_barrier_parties(&B), 3);
  return cio_barrier_destroy(&B);
}

static void test_barrier_cancel_mid_cycle_trace(void **state) {
  (void)state;
  run_ok(barrier_cancel_main, NULL);
  assert_trace("n=2 w1 cancelled n=1 n=1 broken=0 w3 idx=2@0.40 w0 idx=0@0.40 w2 idx=1@0.40 n=0 "
               "w6 idx=2@0.40 w4 idx=0@0.40 w5 idx=1@0.40");
  assert_time(0.4);
}

static int barrier_abort_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_barrier_init(&B, 3), 0);
  cio_task *ts[] = {SPAWN(bw, 0), SPAWN(bw, 1)};
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_barrier_abort(&B), 0);
  trace("aborted broken=%d", cio_barrier_broken(&B));
  join_all(ts, 2);
  assert_code(bw((void *)2, NULL), 0);
  assert_code(cio_barrier_reset(&B), 0);
  trace("reset broken=%d", cio_barrier_broken(&B));
  cio_task *ts2[] = {SPAWN(bw, 3), SPAWN(bw, 4)};
  assert_code(cio_sleep(1.0), 0);
  assert_code(cio_barrier_reset(&B), 0);
  trace("reset2");
  join_all(ts2, 2);
  cio_task *ts3[] = {SPAWN(bw, 5), SPAWN(bw, 6), SPAWN(bw, 7)};
  join_all(ts3, 3);
  trace("n=%d broken=%d", cio_barrier_n_waiting(&B), cio_barrier_broken(&B));
  return cio_barrier_destroy(&B);
}

static void test_barrier_abort_reset_trace(void **state) {
  (void)state;
  run_ok(barrier_abort_main, NULL);
  assert_trace("aborted broken=1 w0 broken@1.00 w1 broken@1.00 w2 broken@1.00 reset broken=0 "
               "reset2 w3 broken@2.00 w4 broken@2.00 w7 idx=2@2.00 w5 idx=0@2.00 w6 idx=1@2.00 n=0 broken=0");
  assert_time(2.0);
}

/* A timed-out waiter leaves like a cancelled one: nothing is broken. */
static int bt(void *arg, void **res) {
  (void)res;
  double timeout = *(double *)arg;
  int idx = -1;
  int rc = cio_barrier_wait_timeout(&B, &idx, timeout);
  trace("%s idx=%d@%.2f", cio_err_name(rc), idx, now());
  return 0;
}

static int barrier_timeout_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_barrier_init(&B, 2), 0);
  double t1 = 0.5, t2 = 2.0;
  cio_task *t = SPAWN(bt, &t1);
  assert_code(cio_sleep(0.25), 0);
  assert_int_equal(cio_barrier_n_waiting(&B), 1);
  join_all(&t, 1);
  assert_int_equal(cio_barrier_n_waiting(&B), 0);
  assert_false(cio_barrier_broken(&B));
  cio_task *u = SPAWN(bt, &t2);
  assert_code(cio_sleep(1.0), 0);
  int idx = -1;
  assert_code(cio_barrier_wait(&B, &idx), 0);
  trace("main idx=%d", idx);
  join_all(&u, 1);
  return cio_barrier_destroy(&B);
}

static void test_barrier_timeout(void **state) {
  (void)state;
  run_ok(barrier_timeout_main, NULL);
  assert_trace("ETIMEDOUT idx=-1@0.50 main idx=1 OK idx=0@1.50");
  assert_time(1.5);
}

static int barrier_busy_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_barrier_init(&B, 2), 0);
  cio_task *t = SPAWN(bw, 0);
  assert_code(cio_yield(), 0);
  assert_code(cio_barrier_destroy(&B), -EBUSY);
  assert_code(cio_barrier_wait(&B, NULL), 0);
  join_all(&t, 1);
  return cio_barrier_destroy(&B);
}

static void test_barrier_misuse(void **state) {
  (void)state;
  assert_code(cio_barrier_init(&B, 0), -EINVAL);
  assert_code(cio_barrier_init(NULL, 2), -EINVAL);
  assert_code(cio_barrier_init(&B, 1), 0);
  assert_code(cio_barrier_wait(&B, NULL), CIO_ENOTASK);
  assert_code(cio_barrier_abort(&B), CIO_ENOTASK);
  assert_int_equal(cio_barrier_parties(&B), 1);
  assert_code(cio_barrier_destroy(&B), 0);
  assert_code(cio_barrier_parties(&B), -EINVAL);
  assert_false(cio_barrier_broken(NULL));
  run_ok(barrier_busy_main, NULL);
  assert_trace("w0 idx=0@0.00");
}

/* Condition.wait_for checks the predicate first: already true, it returns
 * at once even without the lock (CPython 3.13 does; issue 13 item 17). A
 * false predicate without the lock is still -EPERM (RuntimeError). */
static bool pred_true(void *arg) { (void)arg; return true; }
static bool pred_false(void *arg) { (void)arg; return false; }

static int cwf_unlocked_main(void *arg, void **res) {
  (void)arg;
  (void)res;
  assert_code(cio_condition_init(&C, NULL), 0);
  assert_false(cio_condition_locked(&C));
  assert_code(cio_condition_wait_for(&C, pred_true, NULL), 0);
  assert_code(cio_condition_wait_for_timeout(&C, pred_true, NULL, 1.0), 0);
  assert_code(cio_condition_wait_for(&C, pred_false, NULL), -EPERM);
  assert_code(cio_condition_wait_for_timeout(&C, pred_false, NULL, 1.0), -EPERM);
  assert_code(cio_condition_wait_for(&C, NULL, NULL), -EINVAL);
  assert_code(cio_condition_wait_for_timeout(&C, pred_true, NULL, NAN), -EINVAL);
  assert_false(cio_condition_locked(&C));
  return cio_condition_destroy(&C);
}

static void test_condition_wait_for_true_unlocked(void **state) {
  (void)state;
  assert_code(run_virtual(cwf_unlocked_main, NULL), 0);
  assert_code(cio_condition_wait_for(&C, pred_true, NULL), -EINVAL); /* destroyed */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_condition_wait_for_true_unlocked),
      cmocka_unit_test(test_lock_fifo_trace),
      cmocka_unit_test(test_lock_cancel_waiting_trace),
      cmocka_unit_test(test_lock_cancel_after_wake_trace),
      cmocka_unit_test(test_lock_fairness_1000),
      cmocka_unit_test(test_lock_timeout),
      cmocka_unit_test(test_lock_timeout_race),
      cmocka_unit_test(test_lock_misuse),
      cmocka_unit_test(test_lock_wrong_loop),
      cmocka_unit_test(test_lock_deadlock_reported),
      cmocka_unit_test(test_event_set_wakes_all_trace),
      cmocka_unit_test(test_event_timeout_and_cancel),
      cmocka_unit_test(test_condition_notify_trace),
      cmocka_unit_test(test_condition_cancel_after_notify_trace),
      cmocka_unit_test(test_condition_cancel_in_reacquire_trace),
      cmocka_unit_test(test_condition_reacquires_through_cancels),
      cmocka_unit_test(test_condition_wait_for_trace),
      cmocka_unit_test(test_condition_timeout),
      cmocka_unit_test(test_condition_shared_lock_and_misuse),
      cmocka_unit_test(test_semaphore_fifo_trace),
      cmocka_unit_test(test_semaphore_cancel_after_wake_trace),
      cmocka_unit_test(test_semaphore_fairness_1000),
      cmocka_unit_test(test_semaphore_counts_after_cancel_and_timeout),
      cmocka_unit_test(test_semaphore_bounded_and_misuse),
      cmocka_unit_test(test_barrier_cancel_mid_cycle_trace),
      cmocka_unit_test(test_barrier_abort_reset_trace),
      cmocka_unit_test(test_barrier_timeout),
      cmocka_unit_test(test_barrier_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
