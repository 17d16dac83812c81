#include "origin/health.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/server.h"
#include "common/units.h"

static int
health_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	int on;

	(void)rt;
	if (units_bool(kv->value, &on) < 0 || !on) {
		conf_err(ctx, kv->line, ctx->section, "health", "expected on, not \"%s\"", kv->value);
		return -1;
	}
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
	char body[128], ts[32];
	struct timespec now;
	struct tm tm;

	if (origin_only_get(r) == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"timestamp\":\"%s\"}\n",
	    w->draining ? "draining" : "healthy", ts);
	http_resp_start(r, w->draining ? 503 : 200, "application/json", n);
	http_resp_header(r, "Cache-Control", "no-store");
	http_resp_body(r, body, (size_t)n);
	http_resp_end(r);
}

const struct handler_ops health_ops = {
	.name = "health",
	.key = "health",
	.configure = health_configure,
	.start = health_start,
};
