#include "origin/fcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/http.h"

/* FNV-1a: short keys, and only its spread matters. */
static uint64_t
hash_key(const void *owner, const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)owner;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

struct fcache *
fcache_new(void)
{
	return calloc(1, sizeof(struct fcache));
}

static void
entry_free(struct fcache *fc, struct fc_entry *e)
{
	if (e == NULL)
		return;
	for (int i = 0; i < FC_VARIANTS; i++) {
		if (e->v[i].fd >= 0)
			close(e->v[i].fd);
		if (e->v[i].data != NULL) {
			fc->bytes -= (size_t)e->v[i].st.st_size;
			free(e->v[i].data);
		}
	}
	free(e->path);
	free(e);
}

void
fcache_free(struct fcache *fc)
{
	if (fc == NULL)
		return;
	for (size_t i = 0; i < FCACHE_SLOTS; i++)
		entry_free(fc, fc->slot[i]);
	free(fc);
}

void
fcache_forget(struct fcache *fc, const void *owner)
{
	for (size_t i = 0; i < FCACHE_SLOTS; i++)
		if (fc->slot[i] != NULL && fc->slot[i]->owner == owner) {
			entry_free(fc, fc->slot[i]);
			fc->slot[i] = NULL;
		}
}

struct fc_entry *
fcache_get(struct fcache *fc, const void *owner, const char *path, size_t len, time_t now)
{
	uint64_t h = hash_key(owner, path, len);
	struct fc_entry *e = fc->slot[h % FCACHE_SLOTS];

	if (e == NULL || e->hash != h || e->owner != owner || strncmp(e->path, path, len) != 0 ||
	    e->path[len] != '\0')
		return NULL;
	if (now >= e->expires) {
		fc->slot[h % FCACHE_SLOTS] = NULL;
		entry_free(fc, e);
		return NULL;
	}
	return e;
}

struct fc_entry *
fcache_put(struct fcache *fc, const void *owner, const char *path, size_t len, time_t now)
{
	uint64_t h = hash_key(owner, path, len);
	struct fc_entry *e = calloc(1, sizeof(*e));

	if (e == NULL || (e->path = strndup(path, len)) == NULL) {
		free(e);
		return NULL;
	}
	e->hash = h;
	e->owner = owner;
	e->expires = now + FCACHE_VALID;
	for (int i = 0; i < FC_VARIANTS; i++)
		e->v[i].fd = -1;
	entry_free(fc, fc->slot[h % FCACHE_SLOTS]);
	fc->slot[h % FCACHE_SLOTS] = e;
	return e;
}

uint64_t
fcache_mtime_ns(const struct stat *st)
{
	/* Wraps in the year 2554; a validator only needs to change with the file. */
	return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

void
fcache_etag(const struct stat *st, int v, char *buf, size_t len)
{
	/* The coding tells a sidecar from its file: gzip -k keeps the mtime, so
	 * only the size would differ, and sometimes it does not. */
	static const char *const suffix[FC_VARIANTS] = { "", "-br", "-gzip" };

	snprintf(buf, len, "\"%llx-%llx%s\"", (unsigned long long)fcache_mtime_ns(st),
	    (unsigned long long)st->st_size, suffix[v]);
}

void
fcache_fill(struct fcache *fc, struct fc_entry *e, int v, int fd, const struct stat *st)
{
	struct fc_file *f = &e->v[v];

	f->fd = fd;
	f->st = *st;
	fcache_etag(st, v, f->etag, sizeof(f->etag));
	http_date(st->st_mtime, f->lastmod, sizeof(f->lastmod));
	if (st->st_size > 0 && st->st_size <= FCACHE_SMALL &&
	    fc->bytes + (size_t)st->st_size <= FCACHE_BYTES_MAX) {
		f->data = malloc((size_t)st->st_size);
		if (f->data != NULL && pread(fd, f->data, (size_t)st->st_size, 0) != st->st_size) {
			free(f->data);
			f->data = NULL;
		}
		if (f->data != NULL)
			fc->bytes += (size_t)st->st_size;
	}
}
