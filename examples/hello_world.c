/* Seed 001: print "hello", wait 1 second, print "world".
 *
 *   async def main():
 *       print('hello')
 *       await asyncio.sleep(1)
 *       print('world')
 *   asyncio.run(main())
 */
#include <cio.h>
#include <stdio.h>

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  printf("hello\n");
  int rc = cio_sleep(1);
  if (rc < 0) return rc;
  printf("world\n");
  return 0;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
