/* Per-loop slabs of fixed-size objects. See slab.h.
 *
 * Measured and not used (W1, a million tasks alive at once; issue 14):
 *  - MAP_POPULATE or MADV_POPULATE_WRITE for the chunks: no gain, zeroing
 *    fresh memory and charging it dominate either way.
 *  - 2 MiB chunks aligned and advised MADV_HUGEPAGE (one fault per 2 MiB):
 *    while the host still backs the memory, 25% less CPU per task; but a
 *    VM that hands free memory back to its host (virtio-balloon free page
 *    reporting, as the Firecracker VMs we measure on) makes the first run
 *    after a few idle seconds take three times as long (the host faults each
 *    huge page in again), where 4 KiB pages cost 25% more. */
#include "slab.h"

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

void *cio__slab_alloc_chunk(struct cio__slab *slab) {
  size_t bytes = slab->next_chunk ? slab->next_chunk : CHUNK_FIRST;
  while (bytes < slab->size + CHUNK_HEADER) bytes *= 2;
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
