#include "common/freelist.h"

#include <stdlib.h>

void
freelist_init(struct freelist *p, size_t size, unsigned max)
{
	p->size = size < sizeof(void *) ? sizeof(void *) : size;
	p->max = max;
	p->nfree = 0;
	p->free = NULL;
}

void *
freelist_get(struct freelist *p)
{
	void *b = p->free;

	if (b == NULL)
		return malloc(p->size);
	p->free = *(void **)b;
	p->nfree--;
	return b;
}

void
freelist_put(struct freelist *p, void *b)
{
	if (b == NULL)
		return;
	if (p->nfree >= p->max) {
		free(b);
		return;
	}
	*(void **)b = p->free;
	p->free = b;
	p->nfree++;
}

void
freelist_destroy(struct freelist *p)
{
	while (p->free != NULL) {
		void *next = *(void **)p->free;
		free(p->free);
		p->free = next;
	}
	p->nfree = 0;
}
