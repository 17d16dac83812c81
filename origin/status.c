#include "origin/status.h"
#include "origin/health.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/http.h"
#include "common/server.h"

static int
status_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	(void)rt;
	if (strcmp(kv->value, "json") != 0) {
		conf_err(ctx, kv->line, ctx->section, "status", "expected json, not \"%s\"", kv->value);
		return -1;
	}
	return 0;
}

static void
status_start(struct request *r)
{
	struct server *srv = r->conn->w->srv;
	struct stats s;
	char body[4096], started[32];
	struct timespec now;
	struct tm tm;
	size_t n;

	if (origin_only_get(r) == 0)
		return;
	server_stats(srv, &s);
	clock_gettime(CLOCK_MONOTONIC, &now);
	gmtime_r(&srv->start_time, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = (size_t)snprintf(body, sizeof(body),
	    "{\"version\":\"%s\",\"start_time\":\"%s\",\"uptime_seconds\":%lld,"
	    "\"workers\":%d,\"requests_total\":%llu,\"requests_per_second\":%.2f,"
	    "\"active_connections\":%llu,\"connections_total\":%llu,"
	    "\"bytes_received\":%llu,\"bytes_sent\":%llu,"
	    "\"responses\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},"
	    "\"latency_histogram\":{\"unit\":\"us\",\"buckets\":[",
	    PORTICO_VERSION, started, (long long)(now.tv_sec - srv->start_mono.tv_sec),
	    srv->nworkers, (unsigned long long)stats_get(&s.requests), server_rps(srv),
	    (unsigned long long)stats_get(&s.connections_active),
	    (unsigned long long)stats_get(&s.connections_total),
	    (unsigned long long)stats_get(&s.bytes_received),
	    (unsigned long long)stats_get(&s.bytes_sent),
	    (unsigned long long)stats_get(&s.responses[1]), (unsigned long long)stats_get(&s.responses[2]),
	    (unsigned long long)stats_get(&s.responses[3]), (unsigned long long)stats_get(&s.responses[4]),
	    (unsigned long long)stats_get(&s.responses[5]));
	/* Cumulative counts, as the "le" (less or equal) labels say. */
	uint64_t cum = 0;
	for (int i = 0; i <= STATS_BUCKETS && n < sizeof(body); i++) {
		cum += stats_get(&s.latency[i]);
		if (i < STATS_BUCKETS)
			n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"le\":%llu,\"count\":%llu}",
			    i ? "," : "", (unsigned long long)stats_bucket_us[i],
			    (unsigned long long)cum);
		else
			n += (size_t)snprintf(body + n, sizeof(body) - n, ",{\"le\":\"+Inf\",\"count\":%llu}",
			    (unsigned long long)cum);
	}
	if (n < sizeof(body))
		n += (size_t)snprintf(body + n, sizeof(body) - n, "]}}\n");
	if (n >= sizeof(body))
		n = sizeof(body) - 1;
	http_resp_start(r, 200, "application/json", (int64_t)n);
	http_resp_header(r, "Cache-Control", "no-store");
	http_resp_body(r, body, n);
	http_resp_end(r);
}

const struct handler_ops status_ops = {
	.name = "status",
	.key = "status",
	.configure = status_configure,
	.start = status_start,
};
