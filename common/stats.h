/*
 * stats: per-worker counters.  Only the owning worker writes its counters,
 * so an increment is a relaxed load and store (no lock prefix); the status
 * handler in another worker reads them with relaxed loads and sums.
 */
#ifndef PORTICO_STATS_H
#define PORTICO_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Upper bounds of the response-time buckets in microseconds; one more bucket is +Inf. */
#define STATS_BUCKETS 12
extern const uint64_t stats_bucket_us[STATS_BUCKETS];

struct stats {
	_Atomic uint64_t requests;
	_Atomic uint64_t connections_total;
	_Atomic uint64_t connections_active;
	_Atomic uint64_t bytes_received;
	_Atomic uint64_t bytes_sent;
	_Atomic uint64_t responses[6];          /* [1] 1xx ... [5] 5xx, [0] other */
	_Atomic uint64_t latency[STATS_BUCKETS + 1];
	_Atomic uint64_t compress_in;           /* body bytes into compression */
	_Atomic uint64_t compress_out;          /* ... and out of it */
};

static inline void
stats_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	    memory_order_relaxed);
}

static inline uint64_t
stats_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Counts one finished response: status class and time taken. */
void stats_response(struct stats *s, int status, uint64_t usec);
/* Adds every counter of src into dst (a plain, unshared sum). */
void stats_sum(struct stats *dst, struct stats *src);

#endif
