/*
 * fcache: each worker's open-file cache for static files, like nginx's
 * open_file_cache.  An entry remembers what a request path resolved to
 * (the file, its variants, their metadata and validators, and the bytes
 * of small files) for FCACHE_VALID seconds; after that the next request
 * resolves the path again.  Direct-mapped over FCACHE_SLOTS slots: a
 * colliding path replaces the older entry, so the size is bounded without
 * any bookkeeping on the hot path.
 */
#ifndef PORTICO_FCACHE_H
#define PORTICO_FCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define FCACHE_SLOTS 1024
#define FCACHE_VALID 1                     /* seconds */
#define FCACHE_SMALL (16 * 1024)           /* files this small are kept in memory */
#define FCACHE_BYTES_MAX (16u << 20)       /* ... up to this many bytes per worker */

enum { FC_IDENTITY, FC_BR, FC_GZIP, FC_VARIANTS };

struct fc_file {
	int fd;                   /* -1: this variant does not exist */
	struct stat st;
	char *data;               /* whole contents when small, else NULL */
	char etag[48];
	char lastmod[32];
};

struct fc_entry {
	uint64_t hash;
	const void *owner;        /* the route's handler config */
	char *path;               /* the request path it answers */
	time_t expires;           /* monotonic seconds */
	const char *type;         /* media type (static string or the route's table) */
	struct fc_file v[FC_VARIANTS];
};

struct fcache {
	struct fc_entry *slot[FCACHE_SLOTS];
	size_t bytes;             /* file contents held */
};

struct fcache *fcache_new(void);
void fcache_free(struct fcache *fc);
/* Drops every entry of owner, whose memory is about to go (a reload):
 * another owner made at its address must not find them. */
void fcache_forget(struct fcache *fc, const void *owner);
/* The fresh entry for (owner, path), or NULL. */
struct fc_entry *fcache_get(struct fcache *fc, const void *owner, const char *path, size_t len,
    time_t now);
/*
 * A new entry for (owner, path), replacing whatever held its slot; the
 * caller fills v[] with fcache_fill.  NULL when out of memory.
 */
struct fc_entry *fcache_put(struct fcache *fc, const void *owner, const char *path, size_t len,
    time_t now);
/* Takes fd (and st) into variant v of e, reading small contents in. */
void fcache_fill(struct fcache *fc, struct fc_entry *e, int v, int fd, const struct stat *st);
/* The modification time of st in nanoseconds since the epoch. */
uint64_t fcache_mtime_ns(const struct stat *st);
/*
 * Formats the strong validator of variant v (FC_*) for st: "mtime-size" in
 * hex, the mtime in nanoseconds, then "-br" or "-gzip" for a sidecar.  Never
 * the inode number, which would tell a client about the file system
 * (CVE-2003-1418) and change when a deploy copies identical files.
 */
void fcache_etag(const struct stat *st, int v, char *buf, size_t len);

#endif
