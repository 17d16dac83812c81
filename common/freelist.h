/*
 * freelist: a per-worker free list of same-sized blocks (read buffers, request
 * heads), so the hot path recycles memory instead of calling malloc, and an
 * idle connection holds none of it.  Not thread-safe: one per worker.
 */
#ifndef PORTICO_FREELIST_H
#define PORTICO_FREELIST_H

#include <stddef.h>

struct freelist {
	size_t size;     /* bytes per block */
	unsigned max;    /* blocks kept on the free list at most */
	unsigned nfree;
	void *free;      /* singly linked through the first word of each block */
};

void freelist_init(struct freelist *p, size_t size, unsigned max);
/* A block of p->size bytes (contents undefined), or NULL when out of memory. */
void *freelist_get(struct freelist *p);
/* Gives a block from freelist_get back; NULL is ignored. */
void freelist_put(struct freelist *p, void *block);
void freelist_destroy(struct freelist *p);

#endif
