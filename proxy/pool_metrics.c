/*
 * pool_metrics: the pools' counters summed over workers (for /status too),
 * and their families for `metrics = prometheus`.  Server
 * state and health come from the shared atomics, counters from every
 * worker's state summed now (pool_counters); nothing a worker waits for.
 */
#include "proxy/pool.h"

#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/sbuf.h"
#include "common/stats.h"

/* Adds src's counters to dst's (a reload's hand-over, a sum for a scrape). */
void
pool_counters_add(struct backend_counters *dst, struct backend_counters *src)
{
	stats_add(&dst->requests, stats_get(&src->requests));
	stats_add(&dst->failures, stats_get(&src->failures));
	stats_add(&dst->latency_us_total, stats_get(&src->latency_us_total));
	stats_add(&dst->connect_errors, stats_get(&src->connect_errors));
	stats_add(&dst->timeouts, stats_get(&src->timeouts));
	stats_add(&dst->retries, stats_get(&src->retries));
	for (unsigned k = 0; k <= CONF_MAX_BUCKETS; k++)
		stats_add(&dst->hist[k], stats_get(&src->hist[k]));
}

void
pool_counters(const struct pool *p, unsigned i, struct backend_counters *out)
{
	memset(out, 0, sizeof(*out));
	/* O(workers); only /status and metrics come here. */
	for (struct pool_worker *pw = atomic_load_explicit(&p->shared->workers, memory_order_acquire);
	    pw != NULL; pw = pw->next)
		pool_counters_add(out, &pw->cnt[i]);
}

enum {
	F_PANIC, F_UP, F_STATE, F_ACTIVE, F_RESP, F_FAIL, F_CONNERR, F_TIMEOUT, F_RETRY, F_HC,
	F_DUR, F_N
};

static const struct {
	const char *name, *type, *help;
} families[F_N] = {
	{ "portico_pool_panic", "gauge", "1 while the pool is in panic (serving on servers marked down)." },
	{ "portico_pool_server_up", "gauge", "1 while the server is in service." },
	{ "portico_pool_server_state", "gauge", "The server's state: 1 for the one it is in." },
	{ "portico_pool_server_active_requests", "gauge", "Requests in flight to the server." },
	{ "portico_pool_server_responses_total", "counter", "Responses relayed whole (or tunnels opened)." },
	{ "portico_pool_server_failures_total", "counter", "Attempts that failed (any cause)." },
	{ "portico_pool_server_connect_errors_total", "counter", "Failures to connect (or handshake)." },
	{ "portico_pool_server_timeouts_total", "counter", "Failures because the server was too slow." },
	{ "portico_pool_server_retries_total", "counter", "Failed attempts followed by another try." },
	{ "portico_pool_server_health_checks_total", "counter", "Active health check results." },
	{ "portico_pool_server_response_duration_seconds", "histogram",
	  "Time from sending the request until the response was whole." },
};

const char *
backend_admin_state(const struct backend *b)
{
	return b->disabled == BACKEND_DRAIN ? "drain" : b->disabled ? "disabled" : "enabled";
}

const char *
backend_health(const struct backend *b, int64_t now)
{
	return atomic_load(&b->gen) == 0 ? "unresolved" : atomic_load(&b->health_down) ? "down" :
	    atomic_load(&b->down_until) > now ? "failed" : "up";
}

const char *
backend_state(const struct backend *b, int64_t now)
{
	return b->disabled ? backend_admin_state(b) : backend_health(b, now);
}

static const char *const states[] = { "up", "down", "failed", "disabled", "drain", "unresolved" };

static void
one_server(struct sbuf *f, const struct pool *p, unsigned i, const char *lab, int64_t now)
{
	const struct backend *b = &p->servers[i];
	const char *st = backend_state(b, now);
	struct backend_counters c;
	uint64_t hist[CONF_MAX_BUCKETS + 1];

	pool_counters(p, i, &c);
	sbuf_printf(&f[F_UP], "portico_pool_server_up{%s} %d\n", lab, strcmp(st, "up") == 0);
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
		sbuf_printf(&f[F_STATE], "portico_pool_server_state{%s,state=\"%s\"} %d\n", lab,
		    states[k], strcmp(st, states[k]) == 0);
	sbuf_printf(&f[F_ACTIVE], "portico_pool_server_active_requests{%s} %d\n", lab,
	    atomic_load(&b->active));
#define C(fam, name, field) sbuf_printf(&f[fam], "%s{%s} %llu\n", name, lab, \
	(unsigned long long)stats_get(&c.field))
	C(F_RESP, "portico_pool_server_responses_total", requests);
	C(F_FAIL, "portico_pool_server_failures_total", failures);
	C(F_CONNERR, "portico_pool_server_connect_errors_total", connect_errors);
	C(F_TIMEOUT, "portico_pool_server_timeouts_total", timeouts);
	C(F_RETRY, "portico_pool_server_retries_total", retries);
#undef C
	sbuf_printf(&f[F_HC], "portico_pool_server_health_checks_total{%s,result=\"ok\"} %llu\n"
	    "portico_pool_server_health_checks_total{%s,result=\"failed\"} %llu\n", lab,
	    (unsigned long long)atomic_load(&b->hc_passed), lab,
	    (unsigned long long)atomic_load(&b->hc_failed));
	for (unsigned k = 0; k <= p->nbuckets; k++)
		hist[k] = stats_get(&c.hist[k]);
	metrics_histogram(&f[F_DUR], families[F_DUR].name, lab, p->nbuckets, p->le_ms, hist,
	    stats_get(&c.latency_us_total));
}

void
pool_metrics(const struct pool *const *pools, size_t n, struct sbuf *out)
{
	struct sbuf f[F_N];
	int64_t now = clock_ms();

	if (n == 0)
		return;
	memset(f, 0, sizeof(f));
	for (size_t i = 0; i < n; i++) {
		const struct pool *p = pools[i];
		struct sbuf lab = { 0 };
		sbuf_str(&lab, "pool=\"");
		metrics_label(&lab, p->name);
		sbuf_str(&lab, "\"");
		if (sbuf_failed(&lab)) {
			out->failed = 1;
			sbuf_free(&lab);
			break;
		}
		sbuf_printf(&f[F_PANIC], "portico_pool_panic{%s} %d\n", lab.p, pool_panic(p));
		for (unsigned j = 0; j < p->nservers; j++) {
			size_t keep = lab.len;
			sbuf_str(&lab, ",server=\"");
			metrics_label(&lab, p->servers[j].name);
			sbuf_str(&lab, "\"");
			if (!sbuf_failed(&lab))
				one_server(f, p, j, lab.p, now);
			lab.len = keep; /* sbuf keeps a NUL after its bytes: put it back */
			if (lab.p != NULL)
				lab.p[keep] = '\0';
		}
		sbuf_free(&lab);
	}
	/* Each family's lines together, after its HELP and TYPE. */
	for (int k = 0; k < F_N; k++) {
		metrics_family(out, families[k].name, families[k].type, families[k].help);
		if (f[k].p != NULL)
			sbuf_add(out, f[k].p, f[k].len);
		if (sbuf_failed(&f[k]))
			out->failed = 1;
		sbuf_free(&f[k]);
	}
}
