/*
 * proxy: the handler glue.  It reads a route's proxy keys and the
 * [pool:NAME] sections, keeps each worker's state per pool, answers a
 * Max-Forwards of 0 itself, hands every other request to the relay
 * (relay.h), reports pools in /status and starts the main thread's name
 * lookups and health checks.
 */
#include "proxy/proxy.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/exchange.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "common/stats.h"
#include "common/units.h"
#include "proxy/head.h"
#include "proxy/health.h"
#include "proxy/pool.h"
#include "proxy/proxy-t.h"
#include "proxy/relay.h"
#include "proxy/resolve.h"
#include "proxy/upstream.h"

/* Each worker's pools, found by pointer (a handful per snapshot, and those
 * of older snapshots its requests still use). */
struct proxy_worker {
	struct pool_worker **pws;
	size_t n;
};

/* ---- configuration ---- */

static void
proxy_free_conf(void *p)
{
	struct proxy_conf *pc = p;

	if (pc == NULL)
		return;
	free(pc->strip);
	free(pc);
}

/* The keys of a pool route besides pool itself. */
static const struct conf_key proxy_keys[] = {
	{ "strip_prefix", "off", 0, NULL },
	{ "request_buffer", "64k", 0, NULL },
	{ "host_header", "client", 0, NULL },
	{ "forwarded", "off", 0, NULL },
	{ "trusted_proxies", NULL, CONF_KEY_LIST, NULL },
	{ "request_id", "trusted", 0, NULL },
	{ "upgrade", "websocket", CONF_KEY_LIST, NULL },
	{ NULL, NULL, 0, NULL },
};

/* One trusted_proxies line, added to those before it: MAX_TRUSTED in all. */
static int
parse_trusted(struct conf_ctx *ctx, struct proxy_conf *pc, const struct conf_kv *k)
{
	const char *p = k->value, *tok;
	char one[64];                 /* longer is no address */
	size_t len;

	while (conf_list_next(&p, &tok, &len)) {
		struct cidr c;
		if (len >= sizeof(one) || (snprintf(one, sizeof(one), "%.*s", (int)len, tok),
		    head_parse_cidr(one, &c) < 0)) {
			conf_err(ctx, k->line, ctx->section, "trusted_proxies",
			    "expected up to %d addresses or CIDR blocks, not \"%.*s\"", MAX_TRUSTED,
			    (int)len, tok);
			return -1;
		}
		if (pc->ntrusted == MAX_TRUSTED) {
			conf_err(ctx, k->line, ctx->section, "trusted_proxies", "more than %d addresses "
			    "or CIDR blocks, counting every trusted_proxies line (\"%.*s\" is one too many)",
			    MAX_TRUSTED, (int)len, tok);
			return -1;
		}
		pc->trusted[pc->ntrusted++] = c;
	}
	return 0;
}

static int
proxy_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	struct proxy_conf *pc = calloc(1, sizeof(*pc));
	const struct conf_kv *k;
	struct conf_kv def;
	struct conf_section *sec;
	uint64_t size;
	int on, rc = 0;

	if (pc == NULL)
		return -1;
	rt->hconf = pc;
	sec = conf_section_find(ctx->conf, "pool", kv->value);
	if (sec == NULL) {
		conf_err(ctx, kv->line, ctx->section, "pool", "no [pool:%s] section", kv->value);
		return -1;
	}
	if (sec->data == NULL)
		return -1; /* its own errors were reported */
	pc->pool = sec->data;
	k = conf_route_value(rt, proxy_keys, "strip_prefix", &def);
	if (units_bool(k->value, &on) < 0) {
		conf_err(ctx, k->line, ctx->section, "strip_prefix", "expected yes or no");
		rc = -1;
	} else if (on && strcmp(rt->path, "/") != 0) {
		pc->strip = strdup(rt->path);
		pc->strip_len = strlen(rt->path);
		/* "/app/" strips "/app", so "/app/x" goes out as "/x" */
		if (pc->strip_len > 1 && pc->strip[pc->strip_len - 1] == '/')
			pc->strip[--pc->strip_len] = '\0';
	}
	k = conf_route_value(rt, proxy_keys, "host_header", &def);
	if (strcmp(k->value, "backend") == 0)
		pc->host_backend = 1;
	else if (strcmp(k->value, "client") != 0) {
		conf_err(ctx, k->line, ctx->section, "host_header", "expected client or backend");
		rc = -1;
	}
	k = conf_route_value(rt, proxy_keys, "forwarded", &def);
	if (units_bool(k->value, &pc->forwarded) < 0) {
		conf_err(ctx, k->line, ctx->section, "forwarded", "expected on or off");
		rc = -1;
	}
	k = conf_route_value(rt, proxy_keys, "request_buffer", &def);
	if (units_size(k->value, &size) < 0 || size > REQUEST_BUFFER_MAX) {
		conf_err(ctx, k->line, ctx->section, "request_buffer", "expected a size from 0 to 16m");
		rc = -1;
	} else {
		pc->request_buffer = (size_t)size;
	}
	for (k = conf_route_list(rt, proxy_keys, "trusted_proxies", NULL, &def); k != NULL;
	    k = conf_route_list(rt, proxy_keys, "trusted_proxies", k, &def))
		rc |= parse_trusted(ctx, pc, k);
	pc->underscores = ctx->conf->global.underscores_in_headers;
	k = conf_route_value(rt, proxy_keys, "request_id", &def);
	if (strcmp(k->value, "trusted") == 0)
		pc->request_id = RID_TRUSTED;
	else if (strcmp(k->value, "keep") == 0)
		pc->request_id = RID_KEEP;
	else if (strcmp(k->value, "generate") == 0)
		pc->request_id = RID_GENERATE;
	else {
		conf_err(ctx, k->line, ctx->section, "request_id", "expected trusted, keep or generate");
		rc = -1;
	}
	for (k = conf_route_list(rt, proxy_keys, "upgrade", NULL, &def); k != NULL;
	    k = conf_route_list(rt, proxy_keys, "upgrade", k, &def))
		rc |= head_configure_upgrade(ctx, pc, rt, k);
	return rc;
}

static int
proxy_configure_section(struct conf_ctx *ctx, struct conf_section *sec)
{
	return pool_configure(ctx, sec);
}

/* ---- per-worker state ---- */

static void *
proxy_worker_new(void)
{
	return calloc(1, sizeof(struct proxy_worker));
}

/* What the worker holds open for a pool state; the state itself belongs
 * to its pool (see pool_free), which /status may still read. */
static void
pool_worker_end(struct pool_worker *pw)
{
	upstream_close_idle(pw);
	relay_worker_free(pw);
	pool_tls_sessions_free(pw);
}

static void
proxy_worker_free(void *p)
{
	struct proxy_worker *pxw = p;

	for (size_t i = 0; i < pxw->n; i++)
		pool_worker_end(pxw->pws[i]);
	free(pxw->pws);
	free(pxw);
}

static struct pool_worker *
pool_worker_find(const struct proxy_worker *pxw, const struct pool *pool)
{
	for (size_t i = 0; i < pxw->n; i++)
		if (pxw->pws[i]->pool == pool)
			return pxw->pws[i];
	return NULL;
}

/* The worker's state for pool, made on first use.  NULL when out of memory. */
static struct pool_worker *
pool_worker_get(struct proxy_worker *pxw, struct event_base *base, const struct pool *pool)
{
	struct pool_worker *found = pool_worker_find(pxw, pool);

	if (found != NULL)
		return found;
	struct pool_worker **v = realloc(pxw->pws, (pxw->n + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	pxw->pws = v;
	struct pool_worker *pw = calloc(1, sizeof(*pw));
	if (pw == NULL)
		return NULL;
	pw->pool = pool;
	pw->rng = (uint64_t)(uintptr_t)pw ^ (uint64_t)clock_ms();
	pw->tv_connect = conn_timeval(base, pool->connect_timeout, &pw->tv_spare[0]);
	pw->tv_send = conn_timeval(base, pool->send_timeout, &pw->tv_spare[1]);
	pw->tv_read = conn_timeval(base, pool->read_timeout, &pw->tv_spare[2]);
	pw->tv_idle = conn_timeval(base, pool->keepalive_timeout, &pw->tv_spare[3]);
	pw->tv_tunnel = conn_timeval(base, pool->tunnel_timeout, &pw->tv_spare[4]);
	for (unsigned s = 0; s < POOL_MAX_SERVERS; s++)
		LIST_INIT(&pw->idle[s]);
	v[pxw->n++] = pw;
	pool_worker_register(pw);
	return pw;
}

static struct pool_worker *
pool_worker_for(struct request *r, const struct pool *pool)
{
	struct proxy_worker *pxw = worker_handler_state(r->conn->w, &proxy_ops);

	return pxw != NULL ? pool_worker_get(pxw, r->conn->w->base, pool) : NULL;
}

/* ---- reload ---- */

static void
proxy_section_carry(struct conf_section *sec, const struct conf_section *old)
{
	pool_carry(sec->data, old->data);
}

/*
 * A worker's pool states follow a reload: a pool of the same name in the
 * new snapshot takes the idle connections of the servers it kept, their
 * balancing weights so far and their counters.  The old state stays for
 * the requests still running on it, then goes (proxy_worker_release).
 */
static void
proxy_worker_switch(void *state, struct event_base *base, const struct config *from,
    const struct config *to)
{
	struct proxy_worker *pxw = state;

	for (size_t k = 0; k < to->nsections; k++) {
		const struct conf_section *sec = &to->sections[k];
		const struct conf_section *old;
		struct pool_worker *opw, *npw;
		if (sec->owner != &proxy_ops || sec->data == NULL ||
		    (old = conf_section_find(from, sec->kind, sec->name)) == NULL || old->data == NULL ||
		    (opw = pool_worker_find(pxw, old->data)) == NULL ||
		    (npw = pool_worker_get(pxw, base, sec->data)) == NULL)
			continue;
		const struct pool *op = opw->pool, *np = npw->pool;
		for (unsigned j = 0; j < np->nservers; j++)
			for (unsigned i = 0; i < op->nservers; i++) {
				if (!pool_same_server(op, i, np, j))
					continue;
				upstream_idle_move(opw, i, npw, j);
				npw->cw[j] = opw->cw[i];
				pool_counters_add(&npw->cnt[j], &opw->cnt[i]);
				break;
			}
	}
}

static void
proxy_worker_release(void *state, const struct config *conf)
{
	struct proxy_worker *pxw = state;

	for (size_t i = 0; i < pxw->n;) {
		const struct pool *p = pxw->pws[i]->pool;
		int gone = 0;
		for (size_t k = 0; k < conf->nsections && !gone; k++)
			gone = conf->sections[k].owner == &proxy_ops && conf->sections[k].data == p;
		if (!gone) {
			i++;
			continue;
		}
		pool_worker_end(pxw->pws[i]);
		pxw->pws[i] = pxw->pws[--pxw->n];
	}
}

/* ---- handler ops ---- */

/* Max-Forwards: 0 makes us the final recipient: OPTIONS gets an empty 200,
 * TRACE its own request head back, less the fields that carry credentials. */
static void
answer_here(struct request *r)
{
	const struct http_request *hr = r->hr;
	struct sbuf b = { 0 };

	if (hr->meth == HTTP_M_OPTIONS) {
		http_resp_start(r, 200, NULL, 0);
		http_resp_end(r);
		return;
	}
	sbuf_add(&b, hr->line, hr->line_len);
	sbuf_str(&b, "\r\n");
	for (unsigned i = 0; i < hr->nheaders; i++) {
		const struct http_header *h = &hr->headers[i];
		if (http_token_eq(h->name, h->name_len, "cookie") ||
		    http_token_eq(h->name, h->name_len, "authorization") ||
		    http_token_eq(h->name, h->name_len, "proxy-authorization"))
			continue;
		sbuf_add(&b, h->name, h->name_len);
		sbuf_str(&b, ": ");
		sbuf_add(&b, h->value, h->value_len);
		sbuf_str(&b, "\r\n");
	}
	sbuf_str(&b, "\r\n");
	if (sbuf_failed(&b))
		http_resp_error(r, 500);
	else
		http_resp_simple(r, 200, "message/http", b.p, b.len);
	sbuf_free(&b);
}

static void
proxy_start(struct request *r)
{
	const struct proxy_conf *pc = r->route->hconf;

	if (head_max_forwards(r->hr) == 0) {
		answer_here(r);
		return;
	}
	struct pool_worker *pw = pool_worker_for(r, pc->pool);

	if (pw == NULL) {
		http_resp_error(r, 500);
		return;
	}
	relay_start(r, pc, pw);
}

/* {"servers":[{"name":..., "state":"up|down|disabled|drain|...", ...}]} for /status */
static void
proxy_section_status(const struct conf_section *sec, struct sbuf *out)
{
	const struct pool *p = sec->data;
	int64_t now = clock_ms();

	if (p == NULL) {
		sbuf_str(out, "null");
		return;
	}
	sbuf_printf(out, "{\"balance\":\"%s\",\"panic\":%s,\"servers\":[", p->balance->name,
	    pool_panic(p) ? "true" : "false");
	for (unsigned i = 0; i < p->nservers; i++) {
		const struct backend *b = &p->servers[i];
		struct backend_counters c;
		pool_counters(p, i, &c);
		uint64_t req = stats_get(&c.requests);
		const char *state = backend_state(b, now);
		sbuf_str(out, i ? ",{\"name\":\"" : "{\"name\":\"");
		sbuf_json(out, b->name);
		sbuf_printf(out, "\",\"state\":\"%s\",\"backup\":%s,\"weight\":%u,"
		    "\"active\":%d,\"requests\":%llu,\"failures\":%llu,\"avg_latency_ms\":%.3f}",
		    state, b->backup ? "true" : "false", b->weight, atomic_load(&b->active),
		    (unsigned long long)req, (unsigned long long)stats_get(&c.failures),
		    req ? (double)stats_get(&c.latency_us_total) / 1000.0 / (double)req : 0.0);
	}
	sbuf_str(out, "]}");
}

/* The pools of conf, for metrics = prometheus. */
static void
proxy_metrics(const struct config *conf, struct sbuf *out)
{
	const struct pool **pools = calloc(conf->nsections + 1, sizeof(*pools));
	size_t n = 0;

	if (pools == NULL) {
		out->failed = 1;
		return;
	}
	for (size_t k = 0; k < conf->nsections; k++)
		if (conf->sections[k].owner == &proxy_ops && conf->sections[k].data != NULL)
			pools[n++] = conf->sections[k].data;
	pool_metrics(pools, n, out);
	free(pools);
}

static unsigned
proxy_section_in_service(const struct conf_section *sec)
{
	return sec->data != NULL ? pool_in_service(sec->data) : 0;
}

/* The proxy's main-thread work: name lookups and health checks. */
struct proxy_main {
	void *resolver;
	void *checker;
};

static void *
proxy_main_start(struct event_base *base, const struct config *conf)
{
	struct proxy_main *pm = calloc(1, sizeof(*pm));

	if (pm == NULL)
		return NULL;
	pm->resolver = resolve_start(base, conf);
	pm->checker = health_start(base, conf);
	return pm;
}

static void
proxy_main_stop(void *state)
{
	struct proxy_main *pm = state;

	if (pm == NULL)
		return;
	health_stop(pm->checker);
	resolve_stop(pm->resolver);
	free(pm);
}

const struct handler_ops proxy_ops = {
	.name = "proxy",
	.key = "pool",
	.keys = proxy_keys,
	.flags = HANDLER_WANTS_BODY,
	.configure = proxy_configure,
	.free_conf = proxy_free_conf,
	.section = "pool",
	.configure_section = proxy_configure_section,
	.free_section = pool_free,
	.section_keys = pool_keys,
	.section_status = proxy_section_status,
	.section_in_service = proxy_section_in_service,
	.metrics = proxy_metrics,
	.main_start = proxy_main_start,
	.main_stop = proxy_main_stop,
	.section_carry = proxy_section_carry,
	.start = proxy_start,
	.body = relay_body,
	.writable = relay_writable,
	.abort = relay_abort,
	.worker_new = proxy_worker_new,
	.worker_free = proxy_worker_free,
	.worker_switch = proxy_worker_switch,
	.worker_release = proxy_worker_release,
};
