// The public header compiles as C++ (extern "C") and links.
#include <cio.h>
#include <cstdio>

static int main_task(void *, void **result) {
  *result = const_cast<char *>("from C++");
  return cio_yield();
}

int main() {
  void *result = nullptr;
  if (cio_run(main_task, nullptr, &result) < 0) return 1;
  std::printf("%s\n", static_cast<const char *>(result));
  return 0;
}
