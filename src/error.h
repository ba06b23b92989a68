/* Error codes and messages (internal side of include/cio/errors.h).
 *
 * The last failure is kept in an error slot: the running task's own slot
 * while a task runs (the task layer points the thread at it on every switch),
 * else the thread's slot. cio__fail is the one failure helper: it records the
 * code and message and returns the code. */
#ifndef CIO_ERROR_H
#define CIO_ERROR_H

#include <stdbool.h>

#include "cio/errors.h"

/* Thread-locals on hot paths: initial-exec avoids __tls_get_addr in the
 * shared library. */
#define CIO__TLS _Thread_local __attribute__((tls_model("initial-exec")))

struct cio__errslot {
  int code;
  bool owned;      /* msg was malloc'd */
  const char *msg; /* NULL: the code's description */
};

/* Record code with a formatted message (malloc'd; on no memory the code's
 * description stands). Returns code. */
int cio__fail(int code, const char *fmt, ...) CIO_PRINTF(2, 3);

/* Record code with a static message (no allocation). Returns code. */
int cio__fail_static(int code, const char *msg);

/* Record code with a copy of msg (NULL: the description). Returns code. */
int cio__fail_copy(int code, const char *msg);

/* Point this thread at a task's slot (NULL = the thread's own slot). Inline:
 * it runs at every task switch. */
extern CIO__TLS struct cio__errslot *cio__cur_slot;
extern CIO__TLS struct cio__errslot cio__thread_slot;
static inline void cio__errslot_use(struct cio__errslot *slot) { cio__cur_slot = slot; }

/* Move the current slot's message out (the caller owns it when *owned);
 * returns the message or NULL when the slot's code is not `code`. */
const char *cio__errslot_take(int code, bool *owned);

void cio__errslot_clear(struct cio__errslot *slot);

/* Move the contents of `from` into `to` (whose old message is freed). */
void cio__errslot_move(struct cio__errslot *to, struct cio__errslot *from);

#endif
