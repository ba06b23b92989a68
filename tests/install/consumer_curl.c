/* A program built against an installed cio_curl (pkg-config cio-curl, or
 * find_package(cio) + cio::curl): performs nothing, checks the misuse path. */
#include <cio.h>
#include <cio/curl.h>
#include <stdio.h>

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  return cio_curl_perform(NULL) == -EINVAL && cio_curl_multi(cio_get_running_loop()) ? 0 : -EIO;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  printf("%s\n", rc == 0 ? "curl bridge" : cio_errmsg());
  return rc != 0;
}
