/* cio — asynchronous file I/O (what asyncio users reach for aiofiles for).
 *
 * Regular files are always "ready" to epoll, so reading one blocks the whole
 * loop. These calls suspend the calling task instead while the other tasks
 * run. On a loop with the io_uring back end (cio_loop_options.backend or
 * CIO_BACKEND=uring) the kernel runs them; on epoll the loop's default
 * executor does, as aiofiles does. The semantics are the same either way.
 *
 * The calls work on plain file descriptors (any fd: a file, a pipe, a block
 * device; for sockets and pipes prefer cio/io.h and streams, which wait for
 * readiness instead of tying up a thread on epoll). They must be called from
 * a task.
 *
 * Cancellation: a cancelled call returns -ECANCELED, and only once neither
 * the kernel nor a worker thread touches the caller's buffer any more: the
 * buffer is yours again when the call returns, whatever it returned, and so
 * is the fd (you may close it at once: a worker thread that has not made
 * the system call yet works on a duplicate of its own, never on a file
 * that takes the number next). A
 * cancelled operation may or may not have taken place (a write may have
 * reached the file; a read at the file position may have moved it): use the
 * positional forms (pread/pwrite) where that matters.
 *
 * Under the virtual clock (loop.h) the clock stands still while a call is
 * in the kernel or the thread pool, on both engines: the time it takes is
 * real, and no virtual timer fires past it.
 *
 * Errors: -errno of the underlying system call (-ENOENT, -EACCES, -EBADF,
 * -EISDIR, -ENOSPC, -EIO, ...) with a message naming the call and the path or
 * fd; -ECANCELED; -EINVAL for NULL or out-of-range arguments; CIO_ENOTASK
 * outside a task; -ENOMEM.
 */
#ifndef CIO_FILE_H
#define CIO_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open path as open(2) does (O_CLOEXEC is added), suspending the task.
 * Returns the new fd (>= 0; the caller owns it: close it with
 * cio_file_close or close(2)), or a negative code. */
CIO_NODISCARD int cio_file_open(const char *path, int flags, mode_t mode);

/* Read up to n bytes at the file position (which advances). Returns the
 * number read (0 at end of file), or a negative code. */
CIO_NODISCARD ssize_t cio_file_read(int fd, void *buf, size_t n);

/* Read up to n bytes at offset off (the file position is unchanged).
 * Returns the number read (0 at or past end of file), or a negative code;
 * -EINVAL for off < 0. */
CIO_NODISCARD ssize_t cio_file_pread(int fd, void *buf, size_t n, off_t off);

/* Write all n bytes at the file position (repeating short writes). Returns
 * n, or a negative code (some bytes may have been written). */
CIO_NODISCARD ssize_t cio_file_write(int fd, const void *buf, size_t n);

/* Write all n bytes at offset off. Returns n or a negative code; -EINVAL
 * for off < 0. */
CIO_NODISCARD ssize_t cio_file_pwrite(int fd, const void *buf, size_t n, off_t off);

/* fsync(2) (datasync: fdatasync(2)). Returns 0 or a negative code. */
CIO_NODISCARD int cio_file_fsync(int fd, bool datasync);

/* Close fd (it is closed even when an error is returned, as close(2)
 * says). Returns 0 or a negative code. */
int cio_file_close(int fd);

/* Read the whole file at path into a new buffer: *data (malloc'd, with a NUL
 * byte after the last one so that text can be used as a string; free it)
 * and *len. Returns 0 or a negative code (then *data is NULL and *len 0). */
CIO_NODISCARD int cio_file_read_all(const char *path, char **data, size_t *len);

/* Create or truncate the file at path (mode 0666 less the umask) and write
 * len bytes of data to it. Returns 0 or a negative code. */
CIO_NODISCARD int cio_file_write_all(const char *path, const void *data, size_t len);

/* Lines of a file with readline, and buffered writes: cio_stream_open_file
 * (cio/stream.h) makes a stream of a file, served by the calls above. */

#ifdef __cplusplus
}
#endif
#endif
