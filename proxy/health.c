/*
 * health: active health checks, see health.h.  A check is one upstream
 * connection (upstream.h: connect, TLS and its verification, timeouts, as
 * for requests, but on the main thread's base, with no worker and nothing
 * kept alive) carrying one request.  Its answer is read with the proxy's
 * response parser: the status counts once the whole head has arrived and
 * parsed, interim 1xx heads skipped; the body is never read.
 */
#include "proxy/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/http_parse.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "proxy/pool.h"
#include "proxy/upstream.h"

/* Interim heads one answer may have, as for a proxied response: a server
 * that sends them without end would keep its check running for ever. */
#define HC_INTERIM_MAX 16

struct probe {
	struct pool_check *pc;
	unsigned idx;
	struct upstream *u;           /* NULL when no check is in flight */
	unsigned interim;             /* 1xx heads seen in this check */
	struct sbuf req;              /* sized to the path and Host: no fixed bound */
	struct http_response resp;    /* last: large */
};

struct pool_check {
	const struct pool *pool;
	struct event_base *base;
	struct event *timer;
	/* Every wait of a check (connect, handshake, send, each read): the
	 * interval or read_timeout, whichever is shorter. */
	struct timeval wait;
	struct http_limits limits;    /* [global]'s, as the workers parse with */
	struct probe *probes;
};

struct checker {
	struct pool_check *pools;
	size_t n;
};

static void
set_result(struct probe *pb, int ok, const char *why)
{
	const struct pool *p = pb->pc->pool;
	struct backend *b = &p->servers[pb->idx];

	atomic_fetch_add(ok ? &b->hc_passed : &b->hc_failed, 1);
	if (ok) {
		atomic_store(&b->hc_fail, 0);
		unsigned n = atomic_fetch_add(&b->hc_ok, 1) + 1;
		if (atomic_load(&b->health_down) && n >= p->rise) {
			atomic_store(&b->health_down, 0);
			log_info("[pool:%s] server %s is up: %u check%s passed", p->name, b->name, n,
			    n == 1 ? "" : "s");
		}
	} else {
		atomic_store(&b->hc_ok, 0);
		unsigned n = atomic_fetch_add(&b->hc_fail, 1) + 1;
		if (!atomic_load(&b->health_down) && n >= p->fall) {
			atomic_store(&b->health_down, 1);
			log_warnx("[pool:%s] server %s is down: %s (%u check%s failed)", p->name, b->name,
			    why, n, n == 1 ? "" : "s");
		}
	}
}

static void
probe_end(struct probe *pb, int ok, const char *why)
{
	set_result(pb, ok, why);
	upstream_close(pb->u, ok ? "check passed" : why);
	pb->u = NULL;
}

/* The answer so far is in u->in: decides once its head is complete. */
static int
probe_read(struct upstream *u)
{
	struct probe *pb = u->owner;
	const struct pool *p = pb->pc->pool;

	for (;;) {
		ssize_t n = http_parse_response(&pb->resp, u->in, u->inlen, &pb->pc->limits);
		if (n == 0 && u->inlen < UPSTREAM_IN_SIZE)
			return 0;
		if (n <= 0) {
			probe_end(pb, 0, n == 0 ? "response head too large" : pb->resp.error);
			return -1;
		}
		int status = pb->resp.status;
		if (status < 200 && status != 101) {
			/* Interim (103 Early Hints, an unasked-for 100): the answer follows. */
			if (++pb->interim > HC_INTERIM_MAX) {
				probe_end(pb, 0, "too many interim responses");
				return -1;
			}
			upstream_consume(u, (size_t)n);
			http_response_reset(&pb->resp);
			continue;
		}
		if (status >= p->hc_lo && status <= p->hc_hi) {
			probe_end(pb, 1, NULL);
		} else {
			char why[48];
			snprintf(why, sizeof(why), "status %d", status);
			probe_end(pb, 0, why);
		}
		return -1;
	}
}

static int
probe_sent(struct upstream *u)
{
	(void)u;
	return 0; /* the answer is next */
}

static void
probe_error(struct upstream *u, enum upstream_error e, const char *why)
{
	probe_end(u->owner, 0, e == UPSTREAM_EOF ? "closed before answering" : why);
}

static const struct upstream_ops probe_ops = {
	.read = probe_read,
	.sent = probe_sent,
	.error = probe_error,
};

static void
probe_start(struct probe *pb)
{
	struct pool_check *pc = pb->pc;
	const struct pool *p = pc->pool;
	const struct backend *b = &p->servers[pb->idx];

	if (pb->u != NULL)
		return; /* the last one has not finished: its own timeout will tell */
	struct sockaddr_storage ss;
	if (backend_addr(b, &ss) == 0)
		return; /* not resolved yet */
	/* Made once and kept: it only changes with the configuration. */
	if (pb->req.len == 0) {
		sbuf_printf(&pb->req, "%s %s HTTP/1.1\r\nHost: %s\r\n"
		    "User-Agent: portico-health-check\r\nConnection: close\r\n\r\n", p->hc_method,
		    p->hc_path, backend_host(b));
		if (sbuf_failed(&pb->req)) {
			log_warnx("[pool:%s] server %s: health check skipped: out of memory", p->name,
			    b->name);
			sbuf_free(&pb->req);
			return;
		}
	}
	/* No pool_worker: the connection is never kept for another check. */
	const struct upstream_timeouts tv = { &pc->wait, &pc->wait, &pc->wait, NULL };
	struct upstream *u = upstream_connect(pc->base, p, pb->idx, NULL, &tv, &probe_ops, pb);
	if (u == NULL) {
		log_warn("[pool:%s] health check socket", p->name);
		return;
	}
	sbuf_add(&u->out, pb->req.p, pb->req.len);
	if (sbuf_failed(&u->out)) {
		log_warnx("[pool:%s] server %s: health check skipped: out of memory", p->name, b->name);
		upstream_close(u, "out of memory");
		return;
	}
	pb->u = u;
	pb->interim = 0;
	http_response_reset(&pb->resp);
	upstream_send(u); /* not connected yet: the request goes once it is */
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pool_check *pc = arg;

	(void)fd;
	(void)what;
	for (unsigned i = 0; i < pc->pool->nservers; i++)
		if (pc->pool->servers[i].disabled != BACKEND_DISABLED)
			probe_start(&pc->probes[i]);
}

void *
health_start(struct event_base *base, const struct config *conf)
{
	struct checker *ck = calloc(1, sizeof(*ck));

	if (ck == NULL)
		return NULL;
	for (size_t i = 0; i < conf->nsections; i++) {
		const struct conf_section *sec = &conf->sections[i];
		const struct pool *p = sec->data;
		if (strcmp(sec->kind, "pool") != 0 || p == NULL || p->hc_path == NULL)
			continue;
		struct pool_check *v = realloc(ck->pools, (ck->n + 1) * sizeof(*v));
		if (v == NULL)
			break;
		ck->pools = v;
		struct pool_check *pc = &v[ck->n];
		pc->pool = p;
		pc->base = base;
		int64_t ms = p->hc_interval < p->read_timeout ? p->hc_interval : p->read_timeout;
		pc->wait = (struct timeval){ ms / 1000, (ms % 1000) * 1000 };
		pc->limits.max_request_line = conf->global.max_request_line;
		pc->limits.max_header_size = conf->global.max_header_size;
		pc->limits.max_headers = (unsigned)conf->global.max_headers;
		pc->probes = calloc(p->nservers, sizeof(*pc->probes));
		if (pc->probes == NULL)
			break;
		for (unsigned s = 0; s < p->nservers; s++)
			pc->probes[s].idx = s;
		ck->n++;
	}
	/* The pool_check array is final now: hand out pointers to it. */
	for (size_t i = 0; i < ck->n; i++) {
		struct pool_check *pc = &ck->pools[i];
		struct timeval tv = { pc->pool->hc_interval / 1000, (pc->pool->hc_interval % 1000) * 1000 };
		for (unsigned s = 0; s < pc->pool->nservers; s++)
			pc->probes[s].pc = pc;
		pc->timer = event_new(base, -1, EV_PERSIST, on_tick, pc);
		event_add(pc->timer, &tv);
		on_tick(-1, 0, pc); /* check at once, not one interval from now */
	}
	return ck;
}

void
health_stop(void *state)
{
	struct checker *ck = state;

	if (ck == NULL)
		return;
	for (size_t i = 0; i < ck->n; i++) {
		struct pool_check *pc = &ck->pools[i];
		for (unsigned s = 0; s < pc->pool->nservers; s++) {
			struct probe *pb = &pc->probes[s];
			if (pb->u != NULL)
				upstream_close(pb->u, "stopping");
			sbuf_free(&pb->req);
		}
		if (pc->timer != NULL)
			event_free(pc->timer);
		free(pc->probes);
	}
	free(ck->pools);
	free(ck);
}
