/* Per-loop slabs of fixed-size objects. See slab.h.
 *
 * Chunks of the largest size (2 MiB, reached once a slab holds about 2 MiB of
 * objects: some 16,000 tasks) are aligned to 2 MiB and asked for transparent
 * huge pages (MADV_HUGEPAGE; the kernel's default THP mode, "madvise", gives
 * them only to who asks): one fault then commits 2 MiB instead of 512 faults
 * of 4 KiB each. W1 (a million tasks alive at once, 128 MB of them) measured
 * 128 instead of 167 ns per task (issue 14); the RSS of a small program is
 * unchanged (its chunks are smaller), that of a big one grows by less than
 * one chunk. Where THP is off the advice is ignored. (MAP_POPULATE for the
 * chunks was measured slower: it commits memory before it is used.) */
#include "slab.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/switch.h" /* CIO_ASAN */

#ifdef CIO_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
/* A freed object is poisoned but for its first word (where owners keep their
 * magic number, so that a second release is reported, not a crash) and its
 * free-list link: any other use after free is caught by ASan. */
#define POISON(slab, obj)                                                  \
  do {                                                                     \
    __asan_poison_memory_region((obj), (slab)->size);                      \
    __asan_unpoison_memory_region((obj), sizeof(void *));                  \
    __asan_unpoison_memory_region((obj) + (slab)->link_offset, sizeof(void *)); \
  } while (0)
#define UNPOISON(slab, obj) __asan_unpoison_memory_region((obj), (slab)->size)
#else
#define POISON(slab, obj) ((void)0)
#define UNPOISON(slab, obj) ((void)0)
#endif

#define CHUNK_FIRST (16u * 1024u)
#define CHUNK_MAX (2u * 1024u * 1024u)
#define CHUNK_HEADER 64u

struct chunk {
  struct chunk *next;
  size_t bytes;
};

void cio__slab_init(struct cio__slab *slab, size_t size, size_t link_offset) {
  memset(slab, 0, sizeof *slab);
  slab->size = (size + 15) & ~(size_t)15;
  slab->link_offset = link_offset;
}

/* `bytes` (a power of two) aligned to `bytes`, with the huge page advice. */
static void *map_huge(size_t bytes) {
  char *r = mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED) return MAP_FAILED;
  char *p = (char *)(((uintptr_t)r + bytes - 1) & ~(uintptr_t)(bytes - 1));
  if (p > r) munmap(r, (size_t)(p - r));
  if (p + bytes < r + 2 * bytes) munmap(p + bytes, (size_t)(r + 2 * bytes - (p + bytes)));
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return p;
}

void *cio__slab_alloc_chunk(struct cio__slab *slab) {
  size_t bytes = slab->next_chunk ? slab->next_chunk : CHUNK_FIRST;
  while (bytes < slab->size + CHUNK_HEADER) bytes *= 2;
  void *p = bytes >= CHUNK_MAX ? map_huge(bytes)
                               : mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
#ifdef CIO_ASAN
  /* The address may have held task stacks before: clear their redzones. */
  __asan_unpoison_memory_region(p, bytes);
#endif
  struct chunk *c = p;
  c->bytes = bytes;
  c->next = slab->chunks;
  slab->chunks = c;
  slab->bump = (char *)p + CHUNK_HEADER;
  slab->end = (char *)p + bytes;
  slab->next_chunk = bytes < CHUNK_MAX ? bytes * 2 : CHUNK_MAX;
  char *obj = slab->bump;
  slab->bump += slab->size;
  return obj;
}

#ifdef CIO__SLAB_OUT_OF_LINE
static char **link_of(const struct cio__slab *slab, char *obj) {
  return (char **)(void *)(obj + slab->link_offset);
}

void *cio__slab_alloc(struct cio__slab *slab) {
  char *obj = slab->free_list;
  if (obj) {
    slab->free_list = *link_of(slab, obj);
    UNPOISON(slab, obj);
    return obj;
  }
  if (slab->bump + slab->size > slab->end) return cio__slab_alloc_chunk(slab);
  obj = slab->bump;
  slab->bump += slab->size;
  return obj;
}

void cio__slab_free(struct cio__slab *slab, void *obj) {
  *link_of(slab, obj) = slab->free_list;
  slab->free_list = obj;
  POISON(slab, (char *)obj);
}
#endif

void cio__slab_release(struct cio__slab *slab) {
  struct chunk *c = slab->chunks;
  while (c) {
    struct chunk *next = c->next;
#ifdef CIO_ASAN
    __asan_unpoison_memory_region(c, c->bytes);
#endif
    munmap(c, c->bytes);
    c = next;
  }
  slab->chunks = NULL;
  slab->free_list = NULL;
  slab->bump = slab->end = NULL;
  slab->next_chunk = 0;
}
