/* The transport seam under a stream (placeholder copy of the interface the
 * streams branch provides; replaced by its version on merge). */
#ifndef CIO_TRANSPORT_H
#define CIO_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "poll.h"

struct cio__transport;
struct cio__transport_ops {
  ssize_t (*read)(struct cio__transport *t, void *buf, size_t n, unsigned *want);
  ssize_t (*writev)(struct cio__transport *t, const struct iovec *iov, int iovcnt, unsigned *want);
  int (*write_eof)(struct cio__transport *t, unsigned *want);
  size_t (*pending)(struct cio__transport *t);
  void (*destroy)(struct cio__transport *t);
};
struct cio__transport {
  const struct cio__transport_ops *ops;
  int fd;
};

#endif
