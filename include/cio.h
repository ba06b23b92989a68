/* cio — asyncio for C.
 *
 * The umbrella header. Every asyncio name that makes sense in C has a cio_
 * twin with the same meaning; where C forces a difference the area header says
 * so. Start with cio_run() (asyncio.run) in loop.h and cio_create_task() /
 * cio_sleep() in task.h.
 */
#ifndef CIO_H
#define CIO_H

#define CIO_VERSION_MAJOR 0
#define CIO_VERSION_MINOR 1
#define CIO_VERSION_PATCH 0

#include "cio/errors.h"
#include "cio/loop.h"
#include "cio/future.h"
#include "cio/task.h"
#include "cio/io.h"
#include "cio/executor.h"

#endif
