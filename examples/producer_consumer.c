/* Seed 002: producers and consumers around a bounded queue.
 *
 *   async def consumer(q, n):
 *       print('consumer {}: starting...'.format(n))
 *       while True:
 *           print('consumer {}: prepare to get'.format(n))
 *           item = await q.get()
 *           print('consumer {}: get {}'.format(n, item))
 *           await asyncio.sleep(0.15)
 *           q.task_done()
 *
 *   async def producer_a(q, num_products):
 *       print('producer A: starting producer A...')
 *       for i in range(num_products):
 *           await q.put('A ' + str(i))
 *           print('producer A: create A {}'.format(i))
 *           await asyncio.sleep(0.01)
 *
 *   (producer_b: the same with 'B' and 0.02 s)
 *
 *   async def main(num_consumers, num_products):
 *       q = asyncio.Queue(maxsize=num_consumers)
 *       prod_a = [asyncio.create_task(producer_a(q, num_products))]
 *       prod_b = [asyncio.create_task(producer_b(q, num_products))]
 *       consumers = [asyncio.create_task(consumer(q, i)) for i in range(num_consumers)]
 *       await asyncio.gather(*prod_a, *prod_b)
 *       print('producers All: ending')
 *       await q.join()
 *       print('consumers All: ending')
 *       for c in consumers:
 *           c.cancel()
 *
 *   asyncio.run(main(3, 4))
 *
 * The gather is written as two awaits here (cio_gather comes with the
 * structured-concurrency layer); the lines and the loop time are the same.
 */
#include <cio.h>
#include <stdint.h>
#include <stdio.h>

#define NUM_CONSUMERS 3
#define NUM_PRODUCTS 4

static cio_queue q;

struct producer {
  char name;    /* 'A' or 'B' */
  double pause; /* seconds between two products */
  char products[NUM_PRODUCTS][8];
};

static int consumer(void *arg, void **result) {
  (void)result;
  int n = (int)(intptr_t)arg;
  printf("consumer %d: starting...\n", n);
  for (;;) {
    printf("consumer %d: prepare to get\n", n);
    void *item;
    int rc = cio_queue_get(&q, &item);
    if (rc < 0) return rc; /* cancelled by main at the end */
    printf("consumer %d: get %s\n", n, (const char *)item);
    if ((rc = cio_sleep(0.15)) < 0) return rc;
    if ((rc = cio_queue_task_done(&q)) < 0) return rc;
  }
}

static int producer(void *arg, void **result) {
  (void)result;
  struct producer *p = arg;
  printf("producer %c: starting producer %c...\n", p->name, p->name);
  for (int i = 0; i < NUM_PRODUCTS; i++) {
    snprintf(p->products[i], sizeof p->products[i], "%c %d", p->name, i);
    int rc = cio_queue_put(&q, p->products[i]);
    if (rc < 0) return rc;
    printf("producer %c: create %c %d\n", p->name, p->name, i);
    if ((rc = cio_sleep(p->pause)) < 0) return rc;
  }
  return 0;
}

static int main_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  static struct producer a = {.name = 'A', .pause = 0.01}, b = {.name = 'B', .pause = 0.02};
  int rc = cio_queue_init(&q, NUM_CONSUMERS);
  if (rc < 0) return rc;
  cio_task *prod_a = cio_create_task(producer, &a, NULL);
  cio_task *prod_b = cio_create_task(producer, &b, NULL);
  cio_task *consumers[NUM_CONSUMERS];
  for (int i = 0; i < NUM_CONSUMERS; i++)
    consumers[i] = cio_create_task(consumer, (void *)(intptr_t)i, NULL);
  if (!prod_a || !prod_b) return cio_errcode();
  for (int i = 0; i < NUM_CONSUMERS; i++)
    if (!consumers[i]) return cio_errcode();

  if ((rc = cio_await(prod_a, NULL)) < 0 || (rc = cio_await(prod_b, NULL)) < 0) return rc;
  printf("producers All: ending\n");
  if ((rc = cio_queue_join(&q)) < 0) return rc;
  printf("consumers All: ending\n");
  for (int i = 0; i < NUM_CONSUMERS; i++) {
    cio_task_cancel(consumers[i], NULL);
    cio_task_unref(consumers[i]); /* the loop keeps each until it has ended */
  }
  cio_task_unref(prod_a);
  cio_task_unref(prod_b);
  /* The queue is destroyed by main() once cio_run has waited for the
   * cancelled consumers to leave it. */
  return 0;
}

int main(void) {
  int rc = cio_run(main_task, NULL, NULL);
  if (rc < 0) fprintf(stderr, "producer_consumer: %s\n", cio_errmsg());
  if (cio_queue_destroy(&q) < 0) fprintf(stderr, "producer_consumer: %s\n", cio_errmsg());
  return rc < 0;
}
