/* Error codes and messages. See error.h and include/cio/errors.h. */
#include "error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CIO__TLS struct cio__errslot cio__thread_slot;
#define thread_slot cio__thread_slot
CIO__TLS struct cio__errslot *cio__cur_slot;

static struct cio__errslot *slot(void) { return cio__cur_slot ? cio__cur_slot : &thread_slot; }

/* A thread's last message is freed when the thread exits (a key destructor:
 * TLS alone has none). Registered the first time the thread keeps an owned
 * message, so threads that never fail pay nothing. */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static bool exit_key_ok;
static CIO__TLS bool exit_registered;

static void thread_exit(void *p) {
  struct cio__errslot *s = p;
  cio__errslot_clear(s);
}

static void exit_key_init(void) { exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0; }

static void note_thread_owns(void) {
  if (exit_registered) return;
  pthread_once(&exit_once, exit_key_init);
  if (exit_key_ok && pthread_setspecific(exit_key, &thread_slot) == 0) exit_registered = true;
}

void cio__errslot_clear(struct cio__errslot *s) {
  if (s->owned) free((void *)s->msg);
  s->msg = NULL;
  s->owned = false;
  s->code = 0;
}

void cio__errslot_move(struct cio__errslot *to, struct cio__errslot *from) {
  if (to->owned) free((void *)to->msg);
  *to = *from;
  from->code = 0;
  from->msg = NULL;
  from->owned = false;
}

static void set(int code, const char *msg, bool owned) {
  struct cio__errslot *s = slot();
  if (owned && s == &thread_slot) note_thread_owns();
  if (s->owned) free((void *)s->msg);
  s->code = code;
  s->msg = msg;
  s->owned = owned;
}

int cio__fail_static(int code, const char *msg) {
  set(code, msg, false);
  return code;
}

int cio__fail_copy(int code, const char *msg) {
  char *copy = msg ? strdup(msg) : NULL;
  set(code, copy, copy != NULL);
  return code;
}

static int vfail(int code, const char *fmt, va_list ap) {
  char *msg = NULL;
  if (fmt && vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  set(code, msg, msg != NULL);
  return code;
}

int cio__fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(code, fmt, ap);
  va_end(ap);
  return code;
}

int cio_raise(int code, const char *fmt, ...) {
  if (code >= 0) code = CIO_ERUNTIME;
  va_list ap;
  va_start(ap, fmt);
  vfail(code, fmt, ap);
  va_end(ap);
  return code;
}

int cio_errcode(void) { return slot()->code; }

const char *cio_errmsg(void) {
  struct cio__errslot *s = slot();
  if (s->msg) return s->msg;
  return s->code ? cio_strerror(s->code) : "";
}

const char *cio__errslot_take(int code, bool *owned) {
  struct cio__errslot *s = slot();
  *owned = false;
  if (s->code != code || !s->msg) return NULL;
  const char *m = s->msg;
  *owned = s->owned;
  s->msg = NULL;
  s->owned = false;
  return m;
}

const char *cio_strerror(int code) {
  switch (code) {
#define CIO__TEXT(name, value, text) \
  case value:                        \
    return text;
    CIO_ERROR_TABLE(CIO__TEXT)
#undef CIO__TEXT
  case 0:
    return "success";
  case -ECANCELED:
    return "operation cancelled";
  case -ETIMEDOUT:
    return "timed out";
  default:
    if (code < 0 && code > -4000) return strerrordesc_np(-code) ? strerrordesc_np(-code) : "unknown error";
    return "unknown error";
  }
}

const char *cio_err_name(int code) {
  switch (code) {
#define CIO__NAME(name, value, text) \
  case value:                        \
    return #name;
    CIO_ERROR_TABLE(CIO__NAME)
#undef CIO__NAME
  case 0:
    return "OK";
  default:
    if (code < 0 && code > -4000 && strerrorname_np(-code)) return strerrorname_np(-code);
    return "UNKNOWN";
  }
}
