/* The poller seam: which back end a loop gets. See poll.h. */
#include <stdlib.h>
#include <string.h>

#include "poll.h"

int cio__poller_init(struct cio__poller *p, int requested) {
  int backend = requested ? requested - 1 : -1;
  if (backend < 0) {
    const char *env = getenv("CIO_BACKEND");
    backend = env && (strcmp(env, "uring") == 0 || strcmp(env, "io_uring") == 0)
                  ? CIO__BACKEND_URING
                  : CIO__BACKEND_EPOLL;
  }
#ifdef CIO_HAVE_URING
  /* A kernel without io_uring (or with it disabled by
   * kernel.io_uring_disabled or a seccomp filter) gets epoll, silently:
   * programs cannot tell the two apart. */
  if (backend == CIO__BACKEND_URING && cio__uring_init(p) == 0) return 0;
#endif
  return cio__epoll_init(p);
}

void cio__poller_close(struct cio__poller *p) {
#ifdef CIO_HAVE_URING
  if (p->uring) {
    cio__uring_close(p);
    return;
  }
#endif
  cio__epoll_close(p);
}
