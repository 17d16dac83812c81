#include "origin/status.h"
#include "origin/health.h"
#include "origin/dashboard.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/handler.h"
#include "common/http.h"
#include "common/sbuf.h"
#include "common/server.h"

/* `status = html`: rt->hconf points here; `status = json` leaves it NULL. */
static const char status_html = 1;

static int
status_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	if (strcmp(kv->value, "html") == 0) {
		rt->hconf = (void *)(uintptr_t)&status_html;
		return 0;
	}
	if (strcmp(kv->value, "json") != 0) {
		conf_err(ctx, kv->line, ctx->section, "status", "expected json or html, not \"%s\"",
		    kv->value);
		return -1;
	}
	return 0;
}

/* The dashboard, unless the query asks for the JSON it polls. */
static int
serve_page(struct request *r)
{
	const struct http_request *hr = r->hr;
	size_t len;
	const char *page;

	if (r->route->hconf != &status_html ||
	    (hr->query != NULL && hr->query_len == 11 && memcmp(hr->query, "format=json", 11) == 0))
		return 0;
	page = dashboard_page(&len);
	http_resp_start(r, 200, "text/html; charset=utf-8", (int64_t)len);
	http_resp_header(r, "Cache-Control", "no-store");
	/* Everything the page needs is in it: nothing else may run or load. */
	http_resp_header(r, "Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; "
	    "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:");
	http_resp_header(r, "X-Content-Type-Options", "nosniff");
	http_resp_body(r, page, len);
	http_resp_end(r);
	return 1;
}

/* Appends ,"<handler>":{"<route>":{...},...} for each handler that reports
 * a route's state ("websocket": {"chat": {"rooms": 2, ...}}). */
static void
status_routes(const struct config *conf, struct sbuf *out)
{
	for (size_t i = 0; i < conf->nroutes; i++) {
		const struct handler_ops *h = conf->routes[i].handler;
		size_t j;
		if (h == NULL || h->route_status == NULL)
			continue;
		for (j = 0; j < i && conf->routes[j].handler != h; j++)
			;
		if (j < i)
			continue; /* this handler is done */
		sbuf_printf(out, ",\"%s\":{", h->name);
		for (size_t k = i; k < conf->nroutes; k++) {
			if (conf->routes[k].handler != h)
				continue;
			sbuf_str(out, k == i ? "\"" : ",\"");
			sbuf_json(out, conf->routes[k].name);
			sbuf_str(out, "\":");
			h->route_status(&conf->routes[k], out);
		}
		sbuf_str(out, "}");
	}
}

/* Appends ,"<kind>s":{"<name>":{...},...} for each kind of section that
 * reports a state (",\"pools\":{\"app\":{...}}"). */
static void
status_sections(const struct config *conf, struct sbuf *out)
{
	for (size_t i = 0; i < conf->nsections; i++) {
		const struct conf_section *sec = &conf->sections[i];
		size_t j;
		if (sec->owner->section_status == NULL)
			continue;
		for (j = 0; j < i && strcmp(conf->sections[j].kind, sec->kind) != 0; j++)
			;
		if (j < i)
			continue; /* this kind is done */
		sbuf_printf(out, ",\"%ss\":{", sec->kind);
		for (size_t k = i; k < conf->nsections; k++) {
			if (strcmp(conf->sections[k].kind, sec->kind) != 0)
				continue;
			sbuf_str(out, k == i ? "\"" : ",\"");
			sbuf_json(out, conf->sections[k].name);
			sbuf_str(out, "\":");
			sec->owner->section_status(&conf->sections[k], out);
		}
		sbuf_str(out, "}");
	}
}

static void
status_start(struct request *r)
{
	struct server *srv = r->conn->w->srv;
	const struct config *conf = r->conn->conf;
	struct stats s;
	char body[4096], started[32];
	struct timespec now;
	struct tm tm;
	size_t n;

	if (origin_only_get(r) == 0 || serve_page(r))
		return;
	server_stats(srv, &s);
	clock_gettime(CLOCK_MONOTONIC, &now);
	gmtime_r(&srv->start_time, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* server_tokens = off hides the version from the Server header; a
	 * status route may be as public, so it goes from here too. */
	n = (size_t)snprintf(body, sizeof(body),
	    "{%s\"start_time\":\"%s\",\"uptime_seconds\":%lld,"
	    "\"workers\":%d,\"reloads\":%u,\"config_generation\":%llu,\"requests_total\":%llu,\"requests_per_second\":%.2f,"
	    "\"active_connections\":%llu,\"connections_total\":%llu,"
	    "\"bytes_received\":%llu,\"bytes_sent\":%llu,"
	    "\"responses\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},"
	    "\"latency_histogram\":{\"unit\":\"us\",\"buckets\":[",
	    conf->global.server_tokens ? "\"version\":\"" PORTICO_VERSION "\"," : "",
	    started, (long long)(now.tv_sec - srv->start_mono.tv_sec),
	    srv->nworkers, atomic_load(&srv->reloads), (unsigned long long)conf->generation,
	    (unsigned long long)stats_get(&s.requests), server_rps(srv),
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
		n += (size_t)snprintf(body + n, sizeof(body) - n, "]}");
	if (n >= sizeof(body))
		n = sizeof(body) - 1;
	/* Sections with a state of their own ("pools": {"app": {...}}). */
	struct sbuf out = { 0 };
	sbuf_add(&out, body, n);
	status_sections(conf, &out);
	status_routes(conf, &out);
	sbuf_str(&out, "}\n");
	http_resp_sbuf(r, 200, "application/json", &out);
}

const struct handler_ops status_ops = {
	.name = "status",
	.key = "status",
	.configure = status_configure,
	.start = status_start,
};
