/* The libcurl bridge (contrib/curl, include/cio/curl.h) against a local nginx
 * serving HTTPS, started by tests/curl/run.sh (tools/nginx.sh), which passes
 * its port and directory in CIO_TEST_HTTPS_PORT and CIO_TEST_NGINX_DIR.
 * Real time: curl's own clock is real, so the loop's is too. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CIO_TEST_OPENSSL
#include <openssl/ssl.h>
#endif

#include "cio_test.h"
#include <cio/curl.h>

static const char *nginx_dir;
static int https_port;

/* ---- helpers ----------------------------------------------------------------------------- */

struct body {
  uint64_t fnv; /* FNV-1a of every byte received */
  size_t len;
  char head[64];
};

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
  struct body *b = arg;
  size_t len = size * n;
  for (size_t i = 0; i < len; i++) {
    if (b->len + i < sizeof b->head - 1) b->head[b->len + i] = p[i];
    b->fnv = (b->fnv ^ (unsigned char)p[i]) * 1099511628211ull;
  }
  b->len += len;
  return len;
}

static uint64_t file_fnv(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, "%s/www/files/%s", nginx_dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  struct body b = {.fnv = 14695981039346656037ull};
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) on_data(buf, 1, n, &b);
  fclose(f);
  *len = b.len;
  return b.fnv;
}

static CURL *easy_for(const char *path, struct body *b, const char *ca) {
  CURL *e = curl_easy_init();
  if (!e) fail_msg("curl_easy_init");
  char url[256];
  snprintf(url, sizeof url, "https://127.0.0.1:%d%s", https_port, path);
  char cafile[512];
  snprintf(cafile, sizeof cafile, "%s/%s", nginx_dir, ca ? ca : "ca.pem");
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  b->fnv = 14695981039346656037ull;
  b->len = 0;
  memset(b->head, 0, sizeof b->head);
  return e;
}

static int run_real(cio_task_fn fn, void *arg) {
  cio_loop_options o = {.virtual_time = false};
  cio_test_fn = fn;
  return cio_run_opts(cio_test_main, arg, NULL, &o);
}

static void run_real_ok(cio_task_fn fn) {
  int rc = run_real(fn, NULL);
  if (rc < 0) fail_msg("main task: %s (%s)", cio_err_name(rc), cio_errmsg());
}

/* ---- 200 transfers at once ------------------------------------------------------------------ */

#define NCONC 200
static const char *const file_names[] = {"f1k", "f64k", "f1m"};
static _Thread_local int peak_active; /* per thread: two_loops_in_two_threads */

struct job {
  int i;
  struct body b;
  int rc;
  long status;
};

static int fetch_job(void *arg, void **result) {
  (void)result;
  struct job *j = arg;
  char path[64];
  snprintf(path, sizeof path, "/files/%s", file_names[j->i % 10 == 0 ? 2 : j->i % 2]);
  CURL *e = easy_for(path, &j->b, NULL);
  int active = cio_curl_active(cio_get_running_loop()) + 1;
  if (active > peak_active) peak_active = active;
  j->rc = cio_curl_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &j->status);
  curl_easy_cleanup(e);
  return 0;
}

static int concurrent_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct job jobs[NCONC];
  cio_task *ts[NCONC];
  for (int i = 0; i < NCONC; i++) {
    jobs[i] = (struct job){.i = i, .rc = -1};
    ts[i] = spawn_task(fetch_job, &jobs[i]);
  }
  join_all(ts, NCONC);
  size_t lens[3];
  uint64_t sums[3];
  for (int k = 0; k < 3; k++) sums[k] = file_fnv(file_names[k], &lens[k]);
  for (int i = 0; i < NCONC; i++) {
    int k = i % 10 == 0 ? 2 : i % 2;
    if (jobs[i].rc != 0) fail_msg("transfer %d: %d (%s)", i, jobs[i].rc, curl_easy_strerror(jobs[i].rc));
    assert_int_equal(jobs[i].status, 200);
    assert_int_equal(jobs[i].b.len, lens[k]);
    assert_true(jobs[i].b.fnv == sums[k]);
  }
  assert_int_equal(cio_curl_active(cio_get_running_loop()), 0);
  return 0;
}

static void two_hundred_concurrent_transfers(void **state) {
  (void)state;
  peak_active = 0;
  run_real_ok(concurrent_main);
  /* All were in flight at once (each task added its transfer before any
   * finished: the tasks start in one batch). */
  assert_int_equal(peak_active, NCONC);
}

/* ---- connection reuse ------------------------------------------------------------------------ */

static int reuse_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct body b;
  long conns[3];
  for (int i = 0; i < 3; i++) {
    CURL *e = easy_for("/hello", &b, NULL); /* a fresh easy handle each time */
    assert_code(cio_curl_perform(e), CURLE_OK);
    assert_string_equal(b.head, "hello\n");
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns[i]);
    curl_easy_cleanup(e);
  }
  /* The first opened a connection, the next ones reused it (the loop's
   * multi handle keeps the pool). */
  assert_int_equal(conns[0], 1);
  assert_int_equal(conns[1], 0);
  assert_int_equal(conns[2], 0);
  return 0;
}

static void connections_are_reused_on_one_loop(void **state) {
  (void)state;
  run_real_ok(reuse_main);
}

/* ---- TLS sessions shared through a CURLSH ------------------------------------------------------ */

/* curl 7.88 keeps TLS sessions per easy handle; easy handles that share a
 * CURLSH with CURL_LOCK_DATA_SSL_SESSION resume each other's (include/cio/
 * curl.h says so): a new connection made by a second handle resumes the
 * session of the first, through the bridge, with no lock functions (one loop). */
static struct {
  int checked, reused;
} resumed_now;

static size_t on_data_resumed(char *p, size_t size, size_t n, void *arg) {
  (void)p;
  CURL *e = arg;
#ifdef CIO_TEST_OPENSSL
  struct curl_tlssessioninfo *info = NULL;
  if (curl_easy_getinfo(e, CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK && info &&
      info->backend == CURLSSLBACKEND_OPENSSL && info->internals) {
    resumed_now.checked = 1;
    resumed_now.reused = SSL_session_reused((SSL *)info->internals);
  }
#else
  (void)e;
#endif
  return size * n;
}

static int shared_sessions_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  CURLSH *sh = curl_share_init();
  assert_non_null(sh);
  assert_int_equal(curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION), CURLSHE_OK);
  int reused[2];
  for (int i = 0; i < 2; i++) {
    struct body b;
    CURL *e = easy_for("/hello", &b, NULL);
    curl_easy_setopt(e, CURLOPT_SHARE, sh);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L); /* a new connection each time */
    /* HTTP/1.1: what is looked at here is the TLS session, not the protocol
     * above it (nginx also offers h2). */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data_resumed);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, e);
    resumed_now.checked = 0;
    assert_code(cio_curl_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    if (!resumed_now.checked) {
      curl_share_cleanup(sh);
      skip(); /* not OpenSSL under libcurl: nothing to look at */
    }
    reused[i] = resumed_now.reused;
  }
  assert_int_equal(curl_share_cleanup(sh), CURLSHE_OK);
  assert_int_equal(reused[0], 0);
  assert_int_equal(reused[1], 1);
  return 0;
}

static void tls_sessions_shared_by_a_curlsh(void **state) {
  (void)state;
  run_real_ok(shared_sessions_main);
}

/* ---- cancelled mid-body ----------------------------------------------------------------------- */

static struct body stall_body;
static int stall_rc;

static int fetch_stall(void *arg, void **result) {
  (void)result;
  CURL *e = arg;
  stall_rc = cio_curl_perform(e);
  return stall_rc < 0 ? stall_rc : 0;
}

static int cancel_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  CURL *e = easy_for("/stall", &stall_body, NULL);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)"mine");
  cio_task *t = spawn_task(fetch_stall, e);
  /* Wait until the body has begun ("begin\n"), then cancel. */
  for (int i = 0; i < 500 && stall_body.len == 0; i++) assert_code(cio_sleep(0.01), 0);
  assert_string_equal(stall_body.head, "begin\n");
  assert_int_equal(cio_curl_active(cio_get_running_loop()), 1);
  double t0 = now();
  assert_int_equal(cio_task_cancel(t, NULL), 1);
  assert_code(cio_await(t, NULL), -ECANCELED);
  assert_true(now() - t0 < 1.0);
  cio_task_unref(t);
  assert_code(stall_rc, -ECANCELED);
  assert_int_equal(cio_curl_active(cio_get_running_loop()), 0);
  /* The user's CURLOPT_PRIVATE is back, and the handle works again. */
  char *p = NULL;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, &p);
  assert_string_equal(p, "mine");
  curl_easy_setopt(e, CURLOPT_URL, "");
  char url[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/hello", https_port);
  curl_easy_setopt(e, CURLOPT_URL, url);
  stall_body.len = 0;
  memset(stall_body.head, 0, sizeof stall_body.head);
  assert_code(cio_curl_perform(e), CURLE_OK);
  assert_string_equal(stall_body.head, "hello\n");
  curl_easy_cleanup(e);
  return 0;
}

static void cancelled_mid_body(void **state) {
  (void)state;
  run_real_ok(cancel_main);
}

/* ---- a timeout scope expiring mid-transfer ----------------------------------------------------- */

static int timeout_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct body b;
  CURL *e = easy_for("/stall", &b, NULL);
  cio_timeout to;
  int rc;
  double t0 = now();
  CIO_WITH_TIMEOUT(&to, 0.5, rc) { rc = cio_curl_perform(e); }
  assert_code(rc, -ETIMEDOUT);
  double took = now() - t0;
  assert_true(took >= 0.5 && took < 2.0);
  assert_string_equal(b.head, "begin\n"); /* it had begun: mid-body */
  assert_int_equal(cio_curl_active(cio_get_running_loop()), 0);
  curl_easy_cleanup(e);
  /* wait_for around a task doing the same. */
  return 0;
}

static void timeout_scope_expires_mid_transfer(void **state) {
  (void)state;
  run_real_ok(timeout_main);
}

/* ---- errors reported as curl's codes ----------------------------------------------------------- */

static int errors_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct body b;
  /* Refused: a port nobody listens on (ours, after closing it). */
  int fd = cio_tcp_listen("127.0.0.1", "0", 1);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  int closed_port = ntohs(sa.sin_port);
  cio_fd_close(fd);
  CURL *e = easy_for("/", &b, NULL);
  char url[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/", closed_port);
  curl_easy_setopt(e, CURLOPT_URL, url);
  assert_code(cio_curl_perform(e), CURLE_COULDNT_CONNECT);
  curl_easy_cleanup(e);
  /* The server's certificate is not signed by the CA we trust. */
  e = easy_for("/hello", &b, "other.pem");
  assert_code(cio_curl_perform(e), CURLE_PEER_FAILED_VERIFICATION);
  assert_int_equal(b.len, 0);
  curl_easy_cleanup(e);
  /* curl's own timeout runs on cio's timers (CURLMOPT_TIMERFUNCTION). */
  e = easy_for("/stall", &b, NULL);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 300L);
  double t0 = now();
  assert_code(cio_curl_perform(e), CURLE_OPERATION_TIMEDOUT);
  assert_true(now() - t0 >= 0.29 && now() - t0 < 2.0);
  assert_string_equal(b.head, "begin\n");
  curl_easy_cleanup(e);
  /* The same with the right CA works. */
  e = easy_for("/hello", &b, NULL);
  assert_code(cio_curl_perform(e), CURLE_OK);
  curl_easy_cleanup(e);
  return 0;
}

static void refused_and_tls_failure_are_curl_codes(void **state) {
  (void)state;
  run_real_ok(errors_main);
}

/* ---- misuse ---------------------------------------------------------------------------------- */

static CURL *busy_easy;
static int busy_rc;
static int perform_busy(void *arg, void **result) {
  (void)arg;
  (void)result;
  busy_rc = cio_curl_perform(busy_easy);
  return 0;
}

static int misuse_main(void *arg, void **result) {
  (void)arg;
  (void)result;
  assert_code(cio_curl_perform(NULL), -EINVAL);
  struct body b;
  busy_easy = easy_for("/stall", &b, NULL);
  cio_task *t = spawn_task(perform_busy, NULL);
  assert_code(cio_yield(), 0); /* t is now performing busy_easy */
  assert_code(cio_curl_perform(busy_easy), -EBUSY);
  assert_int_equal(cio_task_cancel(t, NULL), 1);
  join_all(&t, 1);
  assert_code(busy_rc, -ECANCELED);
  curl_easy_cleanup(busy_easy);
  assert_non_null(cio_curl_multi(cio_get_running_loop()));
  return 0;
}

static void misuse_is_refused(void **state) {
  (void)state;
  CURL *e = curl_easy_init();
  assert_code(cio_curl_perform(e), CIO_ENOTASK); /* no task */
  curl_easy_cleanup(e);
  assert_null(cio_curl_multi(NULL));
  assert_int_equal(cio_curl_active(NULL), 0);
  run_real_ok(misuse_main);
}

/* ---- the loop closes with a transfer in flight ------------------------------------------------- */

static int wait_for_body(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 0; i < 500 && stall_body.len == 0; i++) assert_code(cio_sleep(0.01), 0);
  return 0;
}

static void ignore_exceptions(cio_loop *loop, const cio_exception_context *ctx, void *arg) {
  (void)loop;
  (void)ctx;
  (void)arg;
}

static void loop_close_cleans_up_the_multi_handle(void **state) {
  (void)state;
  cio_loop *loop;
  assert_code(cio_loop_new(&loop, NULL), 0);
  cio_loop_set_exception_handler(loop, ignore_exceptions, NULL); /* the abandoned task */
  CURL *e = easy_for("/stall", &stall_body, NULL);
  cio_task *t = cio_loop_create_task(loop, fetch_stall, e, NULL);
  cio_task *w = cio_loop_create_task(loop, wait_for_body, NULL, NULL);
  assert_code(cio_loop_run_until_complete(loop, cio_task_future(w)), 0);
  assert_string_equal(stall_body.head, "begin\n");
  assert_int_equal(cio_curl_active(loop), 1);
  cio_task_unref(w);
  /* Closing with the transfer in flight: the bridge detaches it and cleans
   * its multi handle up (no leak under ASan), and the handle is free again. */
  assert_code(cio_loop_free(loop), 0);
  cio_task_unref(t);
  CURLM *m = curl_multi_init();
  assert_int_equal(curl_multi_add_handle(m, e), CURLM_OK);
  curl_multi_remove_handle(m, e);
  curl_multi_cleanup(m);
  curl_easy_cleanup(e);
}

/* ---- two loops in two threads ------------------------------------------------------------ */

#define PER_THREAD 20
struct thread_run {
  struct job jobs[PER_THREAD];
  int rc;
};

static int thread_main(void *arg, void **result) {
  (void)result;
  struct thread_run *tr = arg;
  cio_task *ts[PER_THREAD];
  for (int i = 0; i < PER_THREAD; i++) {
    tr->jobs[i] = (struct job){.i = 2 * i + 1, .rc = -1}; /* odd: f64k */
    ts[i] = cio_create_task(fetch_job, &tr->jobs[i], NULL);
    if (!ts[i]) return -ENOMEM;
  }
  for (int i = 0; i < PER_THREAD; i++) {
    if (cio_await(ts[i], NULL) < 0) return -EIO;
    cio_task_unref(ts[i]);
  }
  return 0;
}

static void *thread_body(void *arg) {
  struct thread_run *tr = arg;
  cio_loop_options o = {.virtual_time = false};
  tr->rc = cio_run_opts(thread_main, tr, NULL, &o);
  return NULL;
}

static void two_loops_in_two_threads(void **state) {
  (void)state;
  static struct thread_run runs[2];
  pthread_t th[2];
  for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, thread_body, &runs[k]), 0);
  for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
  size_t len;
  uint64_t sum = file_fnv("f64k", &len);
  for (int k = 0; k < 2; k++) {
    assert_code(runs[k].rc, 0);
    for (int i = 0; i < PER_THREAD; i++) {
      assert_int_equal(runs[k].jobs[i].rc, CURLE_OK);
      assert_int_equal(runs[k].jobs[i].b.len, len);
      assert_true(runs[k].jobs[i].b.fnv == sum);
    }
  }
}

int main(void) {
  unsetenv("CIO_VIRTUAL_TIME");
  nginx_dir = getenv("CIO_TEST_NGINX_DIR");
  const char *port = getenv("CIO_TEST_HTTPS_PORT");
  if (!nginx_dir || !port) {
    fprintf(stderr, "test_curl: run me through tests/curl/run.sh (needs a local nginx)\n");
    return 1;
  }
  https_port = atoi(port);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(two_hundred_concurrent_transfers),
      cmocka_unit_test(connections_are_reused_on_one_loop),
      cmocka_unit_test(tls_sessions_shared_by_a_curlsh),
      cmocka_unit_test(cancelled_mid_body),
      cmocka_unit_test(timeout_scope_expires_mid_transfer),
      cmocka_unit_test(refused_and_tls_failure_are_curl_codes),
      cmocka_unit_test(misuse_is_refused),
      cmocka_unit_test(loop_close_cleans_up_the_multi_handle),
      cmocka_unit_test(two_loops_in_two_threads),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
