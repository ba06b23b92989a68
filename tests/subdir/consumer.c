/* Built against cio added with add_subdirectory. */
#include <cio.h>
#include <stdio.h>
#include <string.h>

static int body(void *arg, void **result) {
  (void)arg;
  *result = (void *)"subdir";
  return cio_sleep(0);
}

int main(void) {
  void *r = NULL;
  if (cio_run(body, NULL, &r) != 0) return 1;
  if (cio_version() != CIO_VERSION || strcmp(cio_version_string(), CIO_VERSION_STRING) != 0)
    return 2;
  printf("%s %s\n", (const char *)r, cio_version_string());
  return 0;
}
