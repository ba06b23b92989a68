/* A program built against an installed cio. */
#include <cio.h>
#include <stdio.h>

static int main_task(void *arg, void **result) {
  (void)arg;
  *result = "installed";
  return cio_sleep(0.01);
}

int main(void) {
  void *result = NULL;
  int rc = cio_run(main_task, NULL, &result);
  if (rc < 0) {
    fprintf(stderr, "cio_run: %s\n", cio_errmsg());
    return 1;
  }
  printf("%s\n", (const char *)result);
  return 0;
}
