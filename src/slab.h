/* A per-loop slab of fixed-size objects: chunks (16 KiB doubling to 2 MiB)
 * carved in order, freed objects on a free list. No malloc per object and no
 * allocator header. A freed object keeps its memory (and whatever its owner
 * left in it, such as a dead magic number) until reused, so a second release
 * is caught. Everything goes back at once in cio__slab_release. */
#ifndef CIO_SLAB_H
#define CIO_SLAB_H

#include <stddef.h>

struct cio__slab {
  size_t size;        /* object size, a multiple of 16 */
  size_t link_offset; /* where a freed object keeps its free-list link */
  char *free_list;
  void *chunks;       /* every chunk, for release */
  size_t next_chunk;  /* bytes of the next chunk */
  char *bump, *end;   /* the uncarved rest of the newest chunk */
};

/* link_offset: a pointer-aligned word of the object that its owner does not
 * need once the object is freed (so that a magic number elsewhere survives). */
void cio__slab_init(struct cio__slab *slab, size_t size, size_t link_offset);

#if defined(__SANITIZE_ADDRESS__)
#define CIO__SLAB_OUT_OF_LINE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIO__SLAB_OUT_OF_LINE 1
#endif
#endif

/* The rest of the newest chunk is used up: map the next one and carve an
 * object from it, or NULL when out of memory. */
void *cio__slab_alloc_chunk(struct cio__slab *slab);

#ifdef CIO__SLAB_OUT_OF_LINE
/* Under ASan, freed objects are poisoned: both calls are out of line. */
void *cio__slab_alloc(struct cio__slab *slab);
void cio__slab_free(struct cio__slab *slab, void *obj);
#else

/* An object (contents undefined), or NULL when out of memory. Inline: every
 * task and handle comes from here. */
static inline void *cio__slab_alloc(struct cio__slab *slab) {
  char *obj = slab->free_list;
  if (obj) {
    slab->free_list = *(char **)(void *)(obj + slab->link_offset);
    return obj;
  }
  if (__builtin_expect(slab->bump + slab->size > slab->end, 0)) return cio__slab_alloc_chunk(slab);
  obj = slab->bump;
  slab->bump += slab->size;
  return obj;
}

static inline void cio__slab_free(struct cio__slab *slab, void *obj) {
  *(char **)(void *)((char *)obj + slab->link_offset) = slab->free_list;
  slab->free_list = obj;
}
#endif

/* Unmap every chunk (objects still in use become invalid). */
void cio__slab_release(struct cio__slab *slab);

#endif
