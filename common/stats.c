#include "common/stats.h"

#include <stddef.h>

const uint64_t stats_bucket_us[STATS_BUCKETS] = {
	100, 500, 1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 5000000,
};

void
stats_response(struct stats *s, int status, uint64_t usec)
{
	int cls = status / 100;
	size_t b = 0;

	stats_add(&s->requests, 1);
	stats_add(&s->responses[cls >= 1 && cls <= 5 ? cls : 0], 1);
	/* O(buckets), but there are twelve and most answers land in the first. */
	while (b < STATS_BUCKETS && usec > stats_bucket_us[b])
		b++;
	stats_add(&s->latency[b], 1);
}

void
stats_sum(struct stats *dst, struct stats *src)
{
	stats_add(&dst->requests, stats_get(&src->requests));
	stats_add(&dst->connections_total, stats_get(&src->connections_total));
	stats_add(&dst->connections_active, stats_get(&src->connections_active));
	stats_add(&dst->bytes_received, stats_get(&src->bytes_received));
	stats_add(&dst->bytes_sent, stats_get(&src->bytes_sent));
	for (int i = 0; i < 6; i++)
		stats_add(&dst->responses[i], stats_get(&src->responses[i]));
	for (int i = 0; i <= STATS_BUCKETS; i++)
		stats_add(&dst->latency[i], stats_get(&src->latency[i]));
	stats_add(&dst->compress_in, stats_get(&src->compress_in));
	stats_add(&dst->compress_out, stats_get(&src->compress_out));
}
