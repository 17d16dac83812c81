/*
 * prometheus: `metrics = prometheus`.  Everything is summed at scrape time
 * from the workers' own counters (struct stats, the metrics cells of
 * common/metrics.c, the pools' per-worker counters through their handler's
 * metrics op), read with relaxed loads: a scrape takes no lock and makes no
 * worker wait.  Families whose labels name routes, listeners and
 * middleware blocks follow the scraping request's configuration snapshot;
 * a name that left the configuration leaves the output.
 */
#include "origin/prometheus.h"
#include "origin/health.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/http.h"
#include "common/metrics.h"
#include "common/pipeline.h"
#include "common/sbuf.h"
#include "common/server.h"

static int
prom_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	(void)rt;
	if (strcmp(kv->value, "prometheus") != 0) {
		conf_err(ctx, kv->line, ctx->section, "metrics", "expected prometheus, not \"%s\"",
		    kv->value);
		return -1;
	}
	return 0;
}

static void
gauge(struct sbuf *b, const char *name, const char *help, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A family of one sample without labels. */
static void
gauge(struct sbuf *b, const char *name, const char *help, const char *fmt, ...)
{
	char v[64];
	va_list ap;
	size_t n = strlen(name);

	va_start(ap, fmt);
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	metrics_family(b, name, n > 6 && strcmp(name + n - 6, "_total") == 0 ? "counter" : "gauge",
	    help);
	sbuf_printf(b, "%s %s\n", name, v);
}

/* Descriptors open now, from /proc/self/fd (less the one reading it). */
static long
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	if (d == NULL)
		return -1;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static long long
rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long long size = 0, rss = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%lld %lld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

static void
process_families(struct sbuf *b, struct server *srv, const struct config *conf)
{
	struct timespec cpu;
	struct rlimit rl;
	long long rss = rss_bytes();
	long fds = open_fds();

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	gauge(b, "process_start_time_seconds", "Start time of the process since the epoch.", "%lld",
	    (long long)srv->start_time);
	gauge(b, "process_cpu_seconds_total", "User and system CPU time spent.", "%lld.%06ld",
	    (long long)cpu.tv_sec, cpu.tv_nsec / 1000);
	if (rss >= 0)
		gauge(b, "process_resident_memory_bytes", "Resident memory size.", "%lld", rss);
	if (fds >= 0)
		gauge(b, "process_open_fds", "Open file descriptors.", "%ld", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		gauge(b, "process_max_fds", "Limit on open file descriptors.", "%llu",
		    (unsigned long long)rl.rlim_cur);
	/* server_tokens = off hides the version from the Server header; a
	 * metrics route may be as public, so it goes from here too. */
	metrics_family(b, "portico_build_info", "gauge", "The version portico was built as.");
	sbuf_printf(b, "portico_build_info{version=\"%s\"} 1\n",
	    conf->global.server_tokens ? PORTICO_VERSION : "");
	gauge(b, "portico_config_generation", "Configuration snapshot in service (1 at start).",
	    "%llu", (unsigned long long)conf->generation);
	gauge(b, "portico_reloads_total", "Successful reloads.", "%u", atomic_load(&srv->reloads));
	gauge(b, "portico_workers", "Worker threads.", "%d", srv->nworkers);
}

static void
totals(struct sbuf *b, struct stats *s)
{
	static const char *const cls[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };

	metrics_family(b, "portico_responses_total", "counter",
	    "Responses by status class, those refused before routing included.");
	for (int i = 1; i <= 5; i++)
		sbuf_printf(b, "portico_responses_total{code=\"%s\"} %llu\n", cls[i],
		    (unsigned long long)stats_get(&s->responses[i]));
	gauge(b, "portico_received_bytes_total", "Bytes read from clients (TLS records included).",
	    "%llu", (unsigned long long)stats_get(&s->bytes_received));
	gauge(b, "portico_sent_bytes_total", "Bytes written to clients (TLS records included).",
	    "%llu", (unsigned long long)stats_get(&s->bytes_sent));
	gauge(b, "portico_compress_in_bytes_total", "Response body bytes given to compression.",
	    "%llu", (unsigned long long)stats_get(&s->compress_in));
	gauge(b, "portico_compress_out_bytes_total", "Compressed bytes that came out.",
	    "%llu", (unsigned long long)stats_get(&s->compress_out));
}

/* Sums one name's cells over every worker into *out (zeroed first). */
static void
sum_cells(struct server *srv, enum metrics_kind kind, const char *name, unsigned nb,
    const int64_t *le_ms, struct metrics_cell *out)
{
	memset(out, 0, sizeof(*out));
	for (int w = 0; w < srv->nworkers; w++) {
		/* Another worker's list: only read (make = 0), never pushed to. */
		struct metrics_cell *c = metrics_cell_find(&srv->workers[w].metrics, kind, name, nb,
		    le_ms, 0);
		if (c == NULL)
			continue;
		for (int m = 0; m < MM_METHODS; m++)
			for (int k = 0; k < 6; k++)
				stats_add(&out->requests[m][k], stats_get(&c->requests[m][k]));
		for (unsigned k = 0; k <= nb; k++)
			stats_add(&out->hist[k], stats_get(&c->hist[k]));
		stats_add(&out->sum_us, stats_get(&c->sum_us));
		stats_add(&out->conns_total, stats_get(&c->conns_total));
		stats_add(&out->conns_open, stats_get(&c->conns_open));
		stats_add(&out->tls_done, stats_get(&c->tls_done));
		stats_add(&out->tls_resumed, stats_get(&c->tls_resumed));
		stats_add(&out->tls_failed, stats_get(&c->tls_failed));
		stats_add(&out->mw_seen, stats_get(&c->mw_seen));
		stats_add(&out->mw_other, stats_get(&c->mw_other));
		for (int k = 0; k < METRICS_MW_CODES; k++) {
			int code = atomic_load_explicit(&c->mw_code[k], memory_order_relaxed);
			uint64_t n = stats_get(&c->mw_answers[k]);
			int j = 0;
			/* Workers may have met the codes in another order. */
			while (j < METRICS_MW_CODES && out->mw_code[j] != 0 && out->mw_code[j] != code)
				j++;
			if (code == 0)
				continue;
			if (j == METRICS_MW_CODES) {
				stats_add(&out->mw_other, n);
				continue;
			}
			out->mw_code[j] = code;
			stats_add(&out->mw_answers[j], n);
		}
	}
}

static void
route_families(struct sbuf *b, struct server *srv, const struct config *conf)
{
	static const char *const cls[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct sbuf hist = { 0 };
	struct metrics_cell c;
	uint64_t counts[CONF_MAX_BUCKETS + 1];

	metrics_family(b, "portico_http_requests_total", "counter",
	    "Requests answered, by route, method and status class.");
	metrics_family(&hist, "portico_http_request_duration_seconds", "histogram",
	    "Time from the request head until the response was sent, by route.");
	for (size_t i = 0; i < conf->nroutes; i++) {
		const struct conf_route *rt = &conf->routes[i];
		struct sbuf lab = { 0 };
		sum_cells(srv, MK_ROUTE, rt->name, rt->nbuckets, rt->le_ms, &c);
		sbuf_str(&lab, "route=\"");
		metrics_label(&lab, rt->name);
		sbuf_str(&lab, "\"");
		if (sbuf_failed(&lab)) {
			b->failed = 1;
			break;
		}
		for (int m = 0; m < MM_METHODS; m++)
			for (int k = 0; k < 6; k++) {
				uint64_t n = stats_get(&c.requests[m][k]);
				if (n > 0)
					sbuf_printf(b, "portico_http_requests_total{%s,method=\"%s\","
					    "code=\"%s\"} %llu\n", lab.p, metrics_method_names[m], cls[k],
					    (unsigned long long)n);
			}
		for (unsigned k = 0; k <= rt->nbuckets; k++)
			counts[k] = stats_get(&c.hist[k]);
		metrics_histogram(&hist, "portico_http_request_duration_seconds", lab.p, rt->nbuckets,
		    rt->le_ms, counts, stats_get(&c.sum_us));
		sbuf_free(&lab);
	}
	if (hist.p != NULL)
		sbuf_add(b, hist.p, hist.len);
	if (sbuf_failed(&hist))
		b->failed = 1;
	sbuf_free(&hist);
}

/* Per listener: connections, and TLS handshakes on HTTPS ones. */
static void
listener_families(struct sbuf *b, struct server *srv, const struct config *conf)
{
	static const struct {
		const char *name, *type, *help;
		int tls;
	} fam[] = {
		{ "portico_connections_open", "gauge", "Client connections open, by listener.", 0 },
		{ "portico_connections_total", "counter", "Client connections accepted, by listener.", 0 },
		{ "portico_tls_handshakes_total", "counter",
		  "TLS handshakes completed, resumed ones included, by listener.", 1 },
		{ "portico_tls_resumptions_total", "counter",
		  "TLS handshakes that resumed a session, by listener.", 1 },
		{ "portico_tls_handshake_failures_total", "counter",
		  "Connections closed before their TLS handshake was done, by listener.", 1 },
	};
	enum { NF = sizeof(fam) / sizeof(fam[0]) };
	struct sbuf f[NF];
	struct metrics_cell c;
	int any_tls = 0;

	memset(f, 0, sizeof(f));
	for (size_t i = 0; i < conf->nlistens; i++) {
		const struct conf_listen *l = &conf->listens[i];
		uint64_t v[NF];
		sum_cells(srv, MK_LISTEN, l->name, 0, NULL, &c);
		v[0] = stats_get(&c.conns_open);
		v[1] = stats_get(&c.conns_total);
		v[2] = stats_get(&c.tls_done);
		v[3] = stats_get(&c.tls_resumed);
		v[4] = stats_get(&c.tls_failed);
		any_tls |= l->tls != NULL;
		for (int k = 0; k < NF; k++) {
			if (fam[k].tls && l->tls == NULL)
				continue;
			sbuf_printf(&f[k], "%s{listener=\"", fam[k].name);
			metrics_label(&f[k], l->name);
			sbuf_printf(&f[k], "\"} %llu\n", (unsigned long long)v[k]);
		}
	}
	for (int k = 0; k < NF; k++) {
		if (!fam[k].tls || any_tls) {
			metrics_family(b, fam[k].name, fam[k].type, fam[k].help);
			if (f[k].p != NULL)
				sbuf_add(b, f[k].p, f[k].len);
		}
		if (sbuf_failed(&f[k]))
			b->failed = 1;
		sbuf_free(&f[k]);
	}
}

static void
middleware_families(struct sbuf *b, struct server *srv, const struct config *conf)
{
	struct sbuf ans = { 0 };
	struct metrics_cell c;

	metrics_family(b, "portico_middleware_requests_total", "counter",
	    "Exchanges whose request phase reached the middleware block.");
	metrics_family(&ans, "portico_middleware_answers_total", "counter",
	    "Requests the middleware block answered itself (refusals), by status.");
	for (size_t i = 0; i < conf->nsections; i++) {
		const struct conf_section *sec = &conf->sections[i];
		const struct mw *m = sec->data;
		if (sec->owner != &pipeline_section_ops || m == NULL)
			continue;
		struct sbuf lab = { 0 };
		sbuf_str(&lab, "middleware=\"");
		metrics_label(&lab, sec->name);
		sbuf_str(&lab, "\",type=\"");
		metrics_label(&lab, m->ops->type);
		sbuf_str(&lab, "\"");
		if (sbuf_failed(&lab)) {
			b->failed = 1;
			break;
		}
		sum_cells(srv, MK_MW, sec->name, 0, NULL, &c);
		sbuf_printf(b, "portico_middleware_requests_total{%s} %llu\n", lab.p,
		    (unsigned long long)stats_get(&c.mw_seen));
		for (int k = 0; k < METRICS_MW_CODES && c.mw_code[k] != 0; k++)
			sbuf_printf(&ans, "portico_middleware_answers_total{%s,code=\"%d\"} %llu\n", lab.p,
			    c.mw_code[k], (unsigned long long)stats_get(&c.mw_answers[k]));
		if (stats_get(&c.mw_other) > 0)
			sbuf_printf(&ans, "portico_middleware_answers_total{%s,code=\"other\"} %llu\n",
			    lab.p, (unsigned long long)stats_get(&c.mw_other));
		sbuf_free(&lab);
	}
	if (ans.p != NULL)
		sbuf_add(b, ans.p, ans.len);
	if (sbuf_failed(&ans))
		b->failed = 1;
	sbuf_free(&ans);
}

/* Each handler with sections in conf adds its families once (the pools'). */
static void
handler_families(struct sbuf *b, const struct config *conf)
{
	for (size_t i = 0; i < conf->nsections; i++) {
		const struct handler_ops *h = conf->sections[i].owner;
		size_t j;
		if (h == NULL || h->metrics == NULL)
			continue;
		for (j = 0; j < i && conf->sections[j].owner != h; j++)
			;
		if (j == i)
			h->metrics(conf, b);
	}
}

static void
prom_start(struct request *r)
{
	struct server *srv = r->conn->w->srv;
	const struct config *conf = r->conn->conf;
	struct sbuf out = { 0 };
	struct stats s;

	if (origin_only_get(r) == 0)
		return;
	server_stats(srv, &s);
	process_families(&out, srv, conf);
	totals(&out, &s);
	listener_families(&out, srv, conf);
	route_families(&out, srv, conf);
	middleware_families(&out, srv, conf);
	handler_families(&out, conf);
	http_resp_sbuf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &out);
}

const struct handler_ops prometheus_ops = {
	.name = "prometheus",
	.key = "metrics",
	.configure = prom_configure,
	.start = prom_start,
};
