/* asyncio's documentation example for create_subprocess_shell:
 *
 *   async def run(cmd):
 *       proc = await asyncio.create_subprocess_shell(
 *           cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
 *       stdout, stderr = await proc.communicate()
 *       print(f'[{cmd!r} exited with {proc.returncode}]')
 *       if stdout:
 *           print(f'[stdout]\n{stdout.decode()}')
 *       if stderr:
 *           print(f'[stderr]\n{stderr.decode()}')
 *
 *   asyncio.run(run('ls /zzz'))
 *
 * Prints the same lines as CPython (examples/py/subprocess_shell.py). */
#include <cio.h>
#include <stdio.h>
#include <stdlib.h>

static int run(void *arg, void **result) {
  (void)result;
  const char *cmd = arg;
  cio_process_options opts = {.out = CIO_PIPE, .err = CIO_PIPE};
  cio_process *proc;
  int rc = cio_subprocess_shell(cmd, &opts, &proc);
  if (rc < 0) return rc;
  char *out, *err;
  size_t out_len, err_len;
  rc = cio_process_communicate(proc, NULL, 0, &out, &out_len, &err, &err_len);
  if (rc == 0) {
    int code = 0;
    cio_process_returncode(proc, &code);
    printf("['%s' exited with %d]\n", cmd, code);
    if (out_len) printf("[stdout]\n%s\n", out);
    if (err_len) printf("[stderr]\n%s\n", err);
    free(out);
    free(err);
  }
  cio_process_free(proc);
  return rc;
}

int main(void) {
  int rc = cio_run(run, "ls /zzz", NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
