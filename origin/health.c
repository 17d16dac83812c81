#include "origin/health.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/handler.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "common/units.h"

/*
 * `health = on`, or `health = pools` (every [pool:NAME]) or a list of pool
 * names: then 503 while a named pool has no server in service, as
 * HAProxy's `monitor fail`, so a balancer in front of several edges stops
 * sending to one that cannot reach its backends.
 */
struct health_conf {
	size_t npools;
	const struct conf_section *pools[];
};

static int
pool_section(const struct conf_section *sec)
{
	return strcmp(sec->kind, "pool") == 0 && sec->owner != NULL &&
	    sec->owner->section_in_service != NULL;
}

static int
health_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	const struct config *conf = ctx->conf;
	struct health_conf *hc;
	const char *p = kv->value, *tok;
	size_t len, n = 0;
	int on;

	if (units_bool(kv->value, &on) == 0) {
		if (!on) {
			conf_err(ctx, kv->line, ctx->section, "health",
			    "expected on, pools or pool names, not \"%s\"", kv->value);
			return -1;
		}
		return 0;
	}
	hc = calloc(1, sizeof(*hc) + conf->nsections * sizeof(hc->pools[0]));
	if (hc == NULL) {
		conf_err(ctx, kv->line, ctx->section, "health", "out of memory");
		return -1;
	}
	if (strcmp(kv->value, "pools") == 0) {
		for (size_t i = 0; i < conf->nsections; i++)
			if (pool_section(&conf->sections[i]))
				hc->pools[n++] = &conf->sections[i];
		if (n == 0) {
			conf_err(ctx, kv->line, ctx->section, "health",
			    "pools: the file has no [pool:NAME] section");
			free(hc);
			return -1;
		}
	} else {
		while (conf_list_next(&p, &tok, &len)) {
			char name[CONF_MAX_NAME + 1];
			const struct conf_section *sec = NULL;
			if (len <= CONF_MAX_NAME) {
				memcpy(name, tok, len);
				name[len] = '\0';
				sec = conf_section_find(conf, "pool", name);
			}
			if (sec == NULL || !pool_section(sec)) {
				conf_err(ctx, kv->line, ctx->section, "health",
				    "no [pool:%.*s] for \"%.*s\" (give on, pools or pool names)",
				    (int)(len > 64 ? 64 : len), tok, (int)(len > 64 ? 64 : len), tok);
				free(hc);
				return -1;
			}
			int dup = 0;
			for (size_t i = 0; i < n; i++)
				dup |= hc->pools[i] == sec;
			if (!dup && n < conf->nsections)
				hc->pools[n++] = sec;
		}
	}
	hc->npools = n;
	rt->hconf = hc;
	return 0;
}

int
origin_only_get(struct request *r)
{
	enum http_method m = r->hr->meth;

	if (m == HTTP_M_GET || m == HTTP_M_HEAD)
		return -1;
	http_resp_error(r, 405);
	return 0;
}

static void
health_start(struct request *r)
{
	struct worker *w = r->conn->w;
	const struct health_conf *hc = r->route->hconf;
	char ts[32];
	struct timespec now;
	struct tm tm;
	struct sbuf body = { 0 }, out = { 0 };
	int failing = 0, stopping = w->draining || atomic_load(&w->srv->health_failing);

	if (origin_only_get(r) == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (hc != NULL) {
		sbuf_str(&body, ",\"pools\":{");
		for (size_t i = 0; i < hc->npools; i++) {
			const struct conf_section *sec = hc->pools[i];
			unsigned up = sec->owner->section_in_service(sec);
			failing |= up == 0;
			sbuf_str(&body, i ? ",\"" : "\"");
			sbuf_json(&body, sec->name);
			sbuf_printf(&body, "\":%u", up);
		}
		sbuf_str(&body, "}");
	}
	/* The head once the verdict is known: the pools come first. */
	sbuf_printf(&out, "{\"status\":\"%s\",\"timestamp\":\"%s\"",
	    stopping ? "draining" : failing ? "unhealthy" : "healthy", ts);
	sbuf_add(&out, body.p, body.len);
	sbuf_str(&out, "}\n");
	if (sbuf_failed(&body))
		out.failed = 1;
	sbuf_free(&body);
	http_resp_sbuf(r, stopping || failing ? 503 : 200, "application/json", &out);
}

const struct handler_ops health_ops = {
	.name = "health",
	.key = "health",
	.configure = health_configure,
	.free_conf = free,
	.start = health_start,
};
