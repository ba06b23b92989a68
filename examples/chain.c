/* Seed 002, "chaining coroutines": three steps per task, each sleeping a
 * random number of seconds and passing its result to the next; the results
 * of the three tasks are collected in order.
 *
 * `asyncio.gather(*tasks)` is cio_gather_calls: one task per call, in order.
 * The random draws come from a seeded generator (splitmix64, seed 178) whose
 * draws equal the ones in the seed's listing, so the program prints the
 * seed's sleeps. Under the virtual clock the last two lines come in the order
 * CPython 3.13 prints them (both timers are due at exactly 3.0 s; the seed was
 * recorded in real time, where they differed by microseconds).
 */
#include <cio.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t rng_state = 178;

static int randint(int a, int b) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  z ^= z >> 31;
  return a + (int)(z % (uint64_t)(b - a + 1));
}

static int step(const char *name, int n, int max_sleep) {
  int t = randint(0, max_sleep);
  printf("Task %d,step %s, sleep %d\n", n, name, t);
  int rc = cio_sleep(t);
  if (rc < 0) return rc;
  printf("Task %d,step %s, wakeup\n", n, name);
  return 0;
}

struct chain {
  int n;
  int result[2];
};

static int asyncio_chain(void *arg, void **result) {
  (void)result;
  struct chain *c = arg;
  int n = c->n, num = n, rc;
  if ((rc = step("one", n, 1)) < 0) return rc;
  num += 1;
  if ((rc = step("two", n, n)) < 0) return rc;
  num += 2;
  if ((rc = step("three", n, n)) < 0) return rc;
  num += 3;
  c->result[0] = n;
  c->result[1] = num;
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  struct chain chains[3];
  cio_call calls[3];
  for (int n = 0; n < 3; n++) {
    chains[n].n = n;
    calls[n] = (cio_call){asyncio_chain, &chains[n]};
  }
  int rc = cio_gather_calls(calls, 3, NULL, NULL, NULL); /* results in argument order */
  if (rc < 0) return rc;
  printf("[");
  for (int n = 0; n < 3; n++)
    printf("%s[%d, %d]", n ? ", " : "", chains[n].result[0], chains[n].result[1]);
  printf("]\n");
  return 0;
}

int main(void) { return cio_run(main_task, NULL, NULL) < 0; }
