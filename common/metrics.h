/*
 * metrics: the per-worker counters behind `metrics = prometheus` that are
 * kept by name (routes, listeners, middleware blocks), and the pieces of
 * the text exposition format other modules share (label escaping, bucket
 * bounds in seconds).
 *
 * Each worker owns a list of cells, one per (kind, name, buckets) it has
 * seen.  Only the owner writes a cell (stats_add: a relaxed load and store,
 * no locked instruction) and only the owner pushes a cell on its list
 * (release), so a scrape in any worker walks every worker's list (acquire)
 * and sums without a lock.  Cells are kept by name, not by snapshot: a
 * route's counters go on across a reload as long as its name and buckets
 * stay.  They are freed with the worker; their number is bounded by the
 * distinct names the configurations ever had.
 *
 * The request path reaches its cells through a per-snapshot cache (an
 * array indexed like the snapshot's routes, listeners and sections in
 * struct worker_snap), so a request costs a few increments and no search.
 */
#ifndef PORTICO_METRICS_H
#define PORTICO_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/config.h"

struct sbuf;
struct request;
struct worker;
struct conn;

/* Latency histogram bounds unless metrics_buckets says otherwise. */
#define METRICS_DEFAULT_BUCKETS "5ms 10ms 25ms 50ms 100ms 250ms 500ms 1s 2500ms 5s 10s"

/* Method classes of portico_http_requests_total. */
enum { MM_GET, MM_HEAD, MM_POST, MM_PUT, MM_DELETE, MM_OTHER, MM_METHODS };
extern const char *const metrics_method_names[MM_METHODS];

enum metrics_kind { MK_ROUTE, MK_LISTEN, MK_MW };

#define METRICS_MW_CODES 8 /* distinct answer statuses counted per middleware block */

struct metrics_cell {
	struct metrics_cell *next;         /* set before the cell is published */
	enum metrics_kind kind;
	char *name;                        /* owned */
	unsigned nbuckets;
	int64_t le_ms[CONF_MAX_BUCKETS];   /* upper bounds; one more bucket is +Inf */
	uint64_t le_us[CONF_MAX_BUCKETS];  /* the same in microseconds, to compare with */
	/* MK_ROUTE */
	_Atomic uint64_t requests[MM_METHODS][6]; /* [method][status class], [0]: other */
	_Atomic uint64_t hist[CONF_MAX_BUCKETS + 1]; /* not cumulative */
	_Atomic uint64_t sum_us;
	/* MK_LISTEN */
	_Atomic uint64_t conns_total, conns_open;
	_Atomic uint64_t tls_done, tls_resumed, tls_failed; /* handshakes */
	/* MK_MW */
	_Atomic uint64_t mw_seen;          /* exchanges whose request phase reached it */
	_Atomic int mw_code[METRICS_MW_CODES]; /* 0: free; set before its count grows */
	_Atomic uint64_t mw_answers[METRICS_MW_CODES];
	_Atomic uint64_t mw_other;         /* answers past METRICS_MW_CODES statuses */
};

/* One worker's cells, newest first. */
struct metrics_worker {
	_Atomic(struct metrics_cell *) head;
};

/* Frees a worker's cells (at exit, when no scrape can run). */
void metrics_worker_free(struct metrics_worker *mw);

/*
 * The calling worker's cell of kind and name (with these buckets for a
 * route), made and published on first use.  NULL when out of memory.
 * O(cells): the request path goes through metrics_*_cell below instead.
 */
struct metrics_cell *metrics_cell_find(struct metrics_worker *mw, enum metrics_kind kind,
    const char *name, unsigned nbuckets, const int64_t *le_ms, int make);

/* ---- the request path (the owning worker) ---- */

/* A response finished (counted once per exchange, as stats_response). */
void metrics_response(struct request *r, uint64_t usec);
/* A connection was accepted on c's listener (+1) or closed (-1). */
void metrics_conn(struct conn *c, int delta);
/* c's TLS handshake: METRICS_TLS_DONE (resumed sessions counted too), or
 * METRICS_TLS_FAILED (the connection closed before it was done). */
#define METRICS_TLS_DONE 0
#define METRICS_TLS_FAILED 1
void metrics_tls(struct conn *c, int outcome);
/* The log phase of middleware i of r's route ran; answered: it answered. */
void metrics_mw(struct request *r, unsigned i, int answered);

/* ---- formatting ---- */

/* Appends s as a label value: backslash, double quote and newline escaped. */
void metrics_label(struct sbuf *b, const char *s);
/* Formats ms as seconds, as short as exact ("0.005", "1", "2.5").  Returns buf. */
char *metrics_seconds(int64_t ms, char *buf, size_t len);
/* Parses "5ms 25ms 100ms 1s": up to max increasing durations above 0 into
 * le_ms.  Returns how many, or -1 (empty, unordered, too many, bad unit). */
int metrics_parse_buckets(const char *s, int64_t *le_ms, unsigned max);
/* Appends HELP and TYPE lines of a family. */
void metrics_family(struct sbuf *b, const char *name, const char *type, const char *help);
/*
 * Appends the samples of one histogram: NAME_bucket{LABELS,le="..."} (made
 * cumulative from per-bucket counts), NAME_sum (seconds) and NAME_count.
 * labels is the inside of the braces, already escaped ("route=\"site\"").
 */
void metrics_histogram(struct sbuf *b, const char *name, const char *labels, unsigned nbuckets,
    const int64_t *le_ms, const uint64_t *counts, uint64_t sum_us);

#endif
