/* The seed's showcase "實戰:並行抓多個網頁": fetch pages concurrently
 * (aiohttp + gather in the seed, libcurl + cio_curl + gather here).
 *
 *   async def fetch(session, url):
 *       async with session.get(url) as response:
 *           return await response.text()
 *
 *   async def main():
 *       urls = ["https://example.com", "https://www.python.org", "https://httpbin.org/get"]
 *       async with aiohttp.ClientSession() as session:
 *           tasks = [fetch(session, url) for url in urls]
 *           results = await asyncio.gather(*tasks)
 *           for url, html in zip(urls, results):
 *               print(f"{url}:{len(html)} 字元")
 *
 *   t0 = time.time()
 *   asyncio.run(main())
 *   print(f"總耗時:{time.time() - t0:.2f} 秒")
 *
 * "用同樣的邏輯跑 100 個 URL,同步版可能要數十秒,非同步版只要 1–2 秒。"
 *
 * Usage: crawl [--sequential] [--cacert FILE] [-n N] [URL...]
 *   no URL        the seed's three URLs (needs the internet)
 *   -n N          fetch URL1 ... URLN for each URL given (URL + a number)
 *   --sequential  one after the other (the seed's synchronous version)
 *   --cacert FILE trust this CA only (the tour's local nginx has its own)
 * The aiohttp session's connection pool is the loop's curl multi handle:
 * every transfer of the run shares its connections, at most 100 at once
 * (aiohttp's default limit; a semaphore, so that curl never holds more than
 * 100 transfers), the others wait for one to be free. Like aiohttp, every
 * new connection does a full TLS handshake (no session resumption) with
 * verification. len(html) counts characters, so the count here is of UTF-8
 * code points, not bytes.
 */
#include <cio.h>
#include <cio/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct page {
  const char *url;
  char *body;
  size_t len, cap;
  int rc; /* the CURLcode, or a negative cio code */
  long status;
};

static const char *cacert;
/* aiohttp's ClientSession opens at most 100 connections at once (its
 * TCPConnector's default limit) and queues the other requests: the same
 * here, with a semaphore in front of the loop's multi handle. */
static cio_semaphore connections;

static size_t on_data(char *p, size_t size, size_t n, void *arg) {
  struct page *pg = arg;
  size_t len = size * n;
  if (pg->len + len > pg->cap) {
    size_t cap = pg->cap ? pg->cap * 2 : 16384;
    while (cap < pg->len + len) cap *= 2;
    char *b = realloc(pg->body, cap);
    if (!b) return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    pg->body = b;
    pg->cap = cap;
  }
  memcpy(pg->body + pg->len, p, len);
  pg->len += len;
  return len;
}

/* async def fetch(session, url): return await response.text() */
static int fetch(void *arg, void **result) {
  (void)result;
  struct page *pg = arg;
  CURL *easy = curl_easy_init();
  if (!easy) return cio_raise(-ENOMEM, "curl_easy_init failed");
  curl_easy_setopt(easy, CURLOPT_URL, pg->url);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  /* No SIGPIPE handler swapped in and out around each of curl's socket
   * actions (curl sends with MSG_NOSIGNAL anyway). */
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, pg);
  /* Over HTTPS curl offers HTTP/2 (ALPN); a transfer that starts while the
   * loop's first connection is still being set up waits for it and is
   * multiplexed on it, instead of opening a connection (and a TLS
   * handshake) of its own. */
  curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
  if (cacert) {
    /* Trust this CA only, as the seed's ssl.create_default_context(cafile=)
     * does. Without a CA path, curl parses the file once per loop (its multi
     * handle caches the certificate store) instead of once per connection,
     * as aiohttp loads it once into its SSLContext. */
    curl_easy_setopt(easy, CURLOPT_CAINFO, cacert);
    curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
  }
  pg->rc = cio_semaphore_acquire(&connections);
  if (pg->rc == 0) {
    pg->rc = cio_curl_perform(easy); /* suspends this task only */
    cio_semaphore_release(&connections);
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &pg->status);
  curl_easy_cleanup(easy);
  return pg->rc < 0 ? pg->rc : 0;
}

/* len(str): characters of UTF-8 text (bytes that do not continue a sequence). */
static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
  return c;
}

struct run {
  struct page *pages;
  size_t n;
  int sequential;
};

static int main_task(void *arg, void **result) {
  (void)result;
  struct run *r = arg;
  int rc = 0;
  cio_semaphore_init(&connections, 100);
  if (r->sequential) {
    for (size_t i = 0; i < r->n; i++) fetch(&r->pages[i], NULL);
  } else {
    /* results = await asyncio.gather(*tasks) */
    cio_call *calls = calloc(r->n, sizeof *calls);
    int *codes = calloc(r->n, sizeof *codes);
    if (!calls || !codes) rc = cio_raise(-ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < r->n; i++) calls[i] = (cio_call){fetch, &r->pages[i]};
    if (rc == 0) rc = cio_gather_calls(calls, r->n, NULL, codes, NULL);
    free(calls);
    free(codes);
  }
  cio_semaphore_destroy(&connections);
  for (size_t i = 0; i < r->n; i++) {
    struct page *pg = &r->pages[i];
    if (pg->rc != 0)
      fprintf(stderr, "%s: %s\n", pg->url,
              pg->rc > 0 ? curl_easy_strerror((CURLcode)pg->rc) : cio_strerror(pg->rc));
    else
      printf("%s:%zu 字元\n", pg->url, utf8_chars(pg->body, pg->len));
  }
  return rc;
}

int main(int argc, char **argv) {
  static const char *seed_urls[] = {"https://example.com", "https://www.python.org",
                                    "https://httpbin.org/get"};
  struct run r = {0};
  long repeat = 0;
  int first = 1;
  for (; first < argc && argv[first][0] == '-'; first++) {
    if (!strcmp(argv[first], "--sequential")) r.sequential = 1;
    else if (!strcmp(argv[first], "--cacert") && first + 1 < argc) cacert = argv[++first];
    else if (!strcmp(argv[first], "-n") && first + 1 < argc) repeat = atol(argv[++first]);
    else {
      fprintf(stderr, "usage: %s [--sequential] [--cacert FILE] [-n N] [URL...]\n", argv[0]);
      return 2;
    }
  }
  const char **urls = (const char **)argv + first;
  size_t nurls = (size_t)(argc - first);
  if (nurls == 0) {
    urls = seed_urls;
    nurls = 3;
  }
  size_t per = repeat > 0 ? (size_t)repeat : 1;
  r.n = nurls * per;
  r.pages = calloc(r.n, sizeof *r.pages);
  char **owned = calloc(r.n, sizeof *owned);
  if (!r.pages || !owned) return 1;
  for (size_t u = 0; u < nurls; u++)
    for (size_t k = 0; k < per; k++) {
      size_t i = u * per + k;
      if (repeat > 0) {
        size_t len = strlen(urls[u]) + 24;
        owned[i] = malloc(len);
        if (!owned[i]) return 1;
        snprintf(owned[i], len, "%s%zu", urls[u], k + 1);
        r.pages[i].url = owned[i];
      } else {
        r.pages[i].url = urls[u];
      }
    }

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0); /* t0 = time.time() */
  int rc = cio_run(main_task, &r, NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc < 0) fprintf(stderr, "error: %s\n", cio_errmsg());
  printf("總耗時:%.2f 秒\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

  int failed = rc < 0;
  for (size_t i = 0; i < r.n; i++) {
    failed |= r.pages[i].rc != 0;
    free(r.pages[i].body);
    free(owned[i]);
  }
  free(r.pages);
  free(owned);
  return failed;
}
