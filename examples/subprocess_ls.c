/* asyncio.create_subprocess_exec('ls', '-l', ...): run a program, read its
 * output line by line as it comes, then its exit status.
 *
 *   proc = await asyncio.create_subprocess_exec(
 *       'ls', '-l', path, stdout=asyncio.subprocess.PIPE)
 *   while line := await proc.stdout.readline():
 *       print(f'{n}: {line.decode().rstrip()}')
 *   print(f'[ls -l exited with {await proc.wait()}]')
 *
 * Usage: subprocess_ls [directory]   (examples/py/proc/subprocess_ls.py is the twin) */
#include <cio.h>
#include <stdio.h>

static int list(void *arg, void **result) {
  (void)result;
  const char *path = arg;
  const char *argv[] = {"ls", "-l", path, NULL};
  cio_process_options opts = {.out = CIO_PIPE};
  cio_process *proc;
  int rc = cio_subprocess_exec(argv, &opts, &proc);
  if (rc < 0) return rc; /* e.g. -ENOENT: "cannot run 'ls': ..." */
  const char *line;
  ssize_t n;
  int lines = 0;
  while ((n = cio_stream_readline(cio_process_stdout(proc), &line)) > 0) {
    if (line[n - 1] == '\n') n--;
    printf("%d: %.*s\n", ++lines, (int)n, line);
  }
  int status = 0;
  if (n == 0) rc = cio_process_wait(proc, &status);
  else rc = (int)n;
  if (rc == 0) printf("[ls -l exited with %d]\n", status);
  cio_process_free(proc);
  return rc;
}

int main(int argc, char **argv) {
  int rc = cio_run(list, argc > 1 ? argv[1] : ".", NULL);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  return rc < 0;
}
