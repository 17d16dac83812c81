/*
 * pool: a per-worker free list of same-sized blocks (read buffers, request
 * heads), so the hot path recycles memory instead of calling malloc, and an
 * idle connection holds none of it.  Not thread-safe: one per worker.
 */
#ifndef PORTICO_POOL_H
#define PORTICO_POOL_H

#include <stddef.h>

struct pool {
	size_t size;     /* bytes per block */
	unsigned max;    /* blocks kept on the free list at most */
	unsigned nfree;
	void *free;      /* singly linked through the first word of each block */
};

void pool_init(struct pool *p, size_t size, unsigned max);
/* A block of p->size bytes (contents undefined), or NULL when out of memory. */
void *pool_get(struct pool *p);
/* Gives a block from pool_get back; NULL is ignored. */
void pool_put(struct pool *p, void *block);
void pool_destroy(struct pool *p);

#endif
