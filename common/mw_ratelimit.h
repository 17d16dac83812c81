/*
 * mw_ratelimit: `type = ratelimit`, request rates and requests in progress
 * per client, counted in this process or in Redis for a fleet of edges.
 *
 *   [middleware:api-limit]
 *   type = ratelimit
 *   rate = 100/s
 *   burst = 20
 *   key = addr
 *
 * The algorithm is GCRA (the generic cell rate algorithm, a token bucket
 * kept as one timestamp per key); the man page, portico.ini(5), says
 * exactly what passes, waits and is refused.
 */
#ifndef PORTICO_MW_RATELIMIT_H
#define PORTICO_MW_RATELIMIT_H

#include <stdint.h>

#include "common/pipeline.h"

extern const struct mw_ops ratelimit_mw_ops;

/*
 * One GCRA limit, in nanoseconds: the emission interval (the period over
 * the rate), the burst tolerance (burst intervals) and the queue (delay
 * intervals a request may wait instead of being refused).
 */
struct gcra {
	int64_t interval;
	int64_t tolerance;
	int64_t queue;
};

/* What GCRA decided for one request at time now. */
struct gcra_verdict {
	int allow;
	int64_t wait;                  /* allowed: how long it waits first (0: none);
	                                * refused: until one would be accepted */
	int64_t reset;                 /* until the whole burst is available again */
	int64_t remaining;             /* requests that would pass at once after this one */
};

/*
 * Decides one request arriving at now against the key's theoretical
 * arrival time *tat (0 for a key not seen), which it advances when the
 * request is accepted.  Times in one unit, any: nanoseconds locally,
 * microseconds in Redis.
 */
void gcra_decide(const struct gcra *g, int64_t *tat, int64_t now, struct gcra_verdict *v);
/* Requests that pass at once after one accepted with this reset. */
int64_t gcra_remaining(const struct gcra *g, int64_t reset);

#endif
