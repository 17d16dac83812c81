#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/http.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/tls.h"
#include "common/server.h"
#include "common/units.h"
#include "proxy/head.h"
#include "proxy/health.h"
#include "proxy/pool.h"
#include "proxy/proxy-t.h"
#include "proxy/resolve.h"

/* Each worker's pools, found by pointer (a handful per config). */
struct proxy_worker {
	struct pool_worker **pws;
	size_t n;
};

static void u_on_event(evutil_socket_t fd, short what, void *arg);
static int u_write(struct upstream *u);
static void attempt(struct proxy_req *pr);
static int response_bytes(struct proxy_req *pr);
static void retry_fresh(struct proxy_req *pr);

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

/* One trusted_proxies line, added to those before it: MAX_TRUSTED in all. */
static int
parse_trusted(struct conf_ctx *ctx, struct proxy_conf *pc, const struct conf_kv *k)
{
	char *copy = strdup(k->value), *save = NULL, *tok;
	int rc = 0;

	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL; tok = strtok_r(NULL, " \t,", &save)) {
		struct cidr c;
		if (head_parse_cidr(tok, &c) < 0) {
			conf_err(ctx, k->line, ctx->section, "trusted_proxies",
			    "expected up to %d addresses or CIDR blocks, not \"%s\"", MAX_TRUSTED, tok);
			rc = -1;
			break;
		}
		if (pc->ntrusted == MAX_TRUSTED) {
			conf_err(ctx, k->line, ctx->section, "trusted_proxies", "more than %d addresses "
			    "or CIDR blocks, counting every trusted_proxies line (\"%s\" is one too many)",
			    MAX_TRUSTED, tok);
			rc = -1;
			break;
		}
		pc->trusted[pc->ntrusted++] = c;
	}
	free(copy);
	return rc;
}

static int
proxy_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	struct proxy_conf *pc = calloc(1, sizeof(*pc));
	const struct conf_kv *k;
	struct conf_section *sec;
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
	if ((k = conf_route_kv(rt, "strip_prefix")) != NULL) {
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
	}
	if ((k = conf_route_kv(rt, "host_header")) != NULL) {
		if (strcmp(k->value, "backend") == 0)
			pc->host_backend = 1;
		else if (strcmp(k->value, "client") != 0) {
			conf_err(ctx, k->line, ctx->section, "host_header", "expected client or backend");
			rc = -1;
		}
	}
	if ((k = conf_route_kv(rt, "forwarded")) != NULL && units_bool(k->value, &pc->forwarded) < 0) {
		conf_err(ctx, k->line, ctx->section, "forwarded", "expected on or off");
		rc = -1;
	}
	pc->request_buffer = REPLAY_MAX;
	if ((k = conf_route_kv(rt, "request_buffer")) != NULL) {
		uint64_t v;
		if (units_size(k->value, &v) < 0 || v > REQUEST_BUFFER_MAX) {
			conf_err(ctx, k->line, ctx->section, "request_buffer",
			    "expected a size from 0 to 16m");
			rc = -1;
		} else {
			pc->request_buffer = (size_t)v;
		}
	}
	for (k = conf_route_next(rt, "trusted_proxies", NULL); k != NULL;
	    k = conf_route_next(rt, "trusted_proxies", k))
		rc |= parse_trusted(ctx, pc, k);
	pc->underscores = ctx->conf->global.underscores_in_headers;
	if ((k = conf_route_kv(rt, "request_id")) != NULL) {
		if (strcmp(k->value, "trusted") == 0)
			pc->request_id = RID_TRUSTED;
		else if (strcmp(k->value, "keep") == 0)
			pc->request_id = RID_KEEP;
		else if (strcmp(k->value, "generate") == 0)
			pc->request_id = RID_GENERATE;
		else {
			conf_err(ctx, k->line, ctx->section, "request_id",
			    "expected trusted, keep or generate");
			rc = -1;
		}
	}
	/* WebSocket, and nothing else, unless the route says otherwise. */
	pc->nupgrade = 1;
	strcpy(pc->upgrade[0], "websocket");
	if (conf_route_kv(rt, "upgrade") != NULL && head_configure_upgrade(ctx, pc, rt) < 0)
		rc = -1;
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

static void
upstream_free(struct upstream *u)
{
	if (u->rarmed)
		event_del(&u->ev);
	if (u->warmed)
		event_del(&u->wev);
	if (u->ssl != NULL) {
		if (u->state == U_ACTIVE || u->state == U_IDLE)
			SSL_shutdown(u->ssl);
		SSL_free(u->ssl);
		ERR_clear_error();
	}
	close(u->fd);
	sbuf_free(&u->out);
	free(u->in);
	free(u);
}

static void
proxy_worker_free(void *p)
{
	struct proxy_worker *pxw = p;

	for (size_t i = 0; i < pxw->n; i++) {
		struct pool_worker *pw = pxw->pws[i];
		for (unsigned s = 0; s < POOL_MAX_SERVERS; s++) {
			struct upstream *u;
			while ((u = LIST_FIRST(&pw->idle[s])) != NULL) {
				LIST_REMOVE(u, link);
				upstream_free(u);
			}
		}
		while (pw->spare != NULL) {
			struct proxy_req *pr = pw->spare;
			pw->spare = pr->u;
			sbuf_free(&pr->head);
			sbuf_free(&pr->replay);
			free(pr);
		}
		free(pw);
	}
	free(pxw->pws);
	free(pxw);
}

static struct pool_worker *
pool_worker_for(struct request *r, const struct pool *pool)
{
	struct proxy_worker *pxw = worker_handler_state(r->conn->w, &proxy_ops);

	if (pxw == NULL)
		return NULL;
	for (size_t i = 0; i < pxw->n; i++)
		if (pxw->pws[i]->pool == pool)
			return pxw->pws[i];
	struct pool_worker **v = realloc(pxw->pws, (pxw->n + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	pxw->pws = v;
	struct pool_worker *pw = calloc(1, sizeof(*pw));
	if (pw == NULL)
		return NULL;
	pw->pool = pool;
	pw->rng = (uint64_t)(uintptr_t)pw ^ (uint64_t)pool_now_ms();
	struct event_base *base = r->conn->w->base;
#define CT(ms) event_base_init_common_timeout(base, &(struct timeval){ (ms) / 1000, ((ms) % 1000) * 1000 })
	pw->tv_connect = CT(pool->connect_timeout);
	pw->tv_send = CT(pool->send_timeout);
	pw->tv_read = CT(pool->read_timeout);
	pw->tv_idle = CT(pool->keepalive_timeout);
	pw->tv_tunnel = CT(pool->tunnel_timeout);
#undef CT
	for (unsigned s = 0; s < POOL_MAX_SERVERS; s++)
		LIST_INIT(&pw->idle[s]);
	v[pxw->n++] = pw;
	pool_worker_register(pw);
	return pw;
}

/* ---- upstream connections ---- */

/*
 * Registers what u waits for in its state.  The read event stays in epoll
 * for the connection's life and only its (common) timeout changes, so a
 * kept-alive connection costs no epoll_ctl per request; the write event is
 * there only while connecting or while output is backed up.
 */
static void
u_arm(struct upstream *u)
{
	const struct pool_worker *pw = u->pw;
	const struct timeval *rtv = NULL;
	int want_read = 1, want_write = 0;
	const struct timeval *wtv = pw->tv_send;

	if (u->state == U_CONNECTING) {
		want_read = 0;
		want_write = 1;
		wtv = pw->tv_connect;
	} else if (u->state == U_HANDSHAKE) {
		want_read = !u->hs_write;
		want_write = u->hs_write;
		rtv = wtv = pw->tv_connect;
	} else if (u->state == U_IDLE) {
		rtv = pw->tv_idle;
	} else {
		rtv = u->pr != NULL && u->pr->rs == R_TUNNEL ? pw->tv_tunnel : pw->tv_read;
		want_write = u->osent < u->out.len;
		want_read = !(u->pr != NULL && u->pr->reading_paused);
	}
	if (want_read && (!u->rarmed || u->rtv != rtv)) {
		event_add(&u->ev, rtv);
		u->rarmed = 1;
		u->rtv = rtv;
	} else if (!want_read && u->rarmed) {
		event_del(&u->ev);
		u->rarmed = 0;
	}
	if (want_write && !u->warmed) {
		event_add(&u->wev, wtv);
		u->warmed = 1;
	} else if (!want_write && u->warmed) {
		event_del(&u->wev);
		u->warmed = 0;
	}
}

static struct upstream *
u_connect(struct proxy_req *pr, unsigned idx)
{
	const struct backend *b = &pr->pw->pool->servers[idx];
	struct upstream *u = calloc(1, sizeof(*u));
	int one = 1;

	if (u == NULL)
		return NULL;
	struct sockaddr_storage ss;
	socklen_t alen = backend_addr(b, &ss);
	if (alen == 0) {
		free(u);
		return NULL;
	}
	u->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		free(u);
		return NULL;
	}
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->base = pr->r->conn->w->base;
	u->pw = pr->pw;
	u->idx = idx;
	event_assign(&u->ev, u->base, u->fd, EV_READ | EV_PERSIST, u_on_event, u);
	event_assign(&u->wev, u->base, u->fd, EV_WRITE | EV_PERSIST, u_on_event, u);
	/* Refused at once (loopback does that) or in progress: either way the
	 * socket turns writable and u_on_event looks at the outcome. */
	(void)connect(u->fd, (struct sockaddr *)&ss, alen);
	u->state = U_CONNECTING;
	return u;
}

/* Starts TLS on a connected socket (see pool_tls_new). */
static int
u_tls_start(struct upstream *u)
{
	if ((u->ssl = pool_tls_new(u->pw->pool, u->idx, u->fd)) == NULL)
		return -1;
	u->state = U_HANDSHAKE;
	return 0;
}

/* Puts u back into its worker's idle list, or closes it. */
static void
u_release(struct upstream *u, int reusable)
{
	struct pool_worker *pw = u->pw;
	const struct pool *p = pw->pool;

	u->pr = NULL;
	if (!reusable || pw->nidle[u->idx] >= p->keepalive || u->inlen > 0) {
		upstream_free(u);
		return;
	}
	u->state = U_IDLE;
	u->out.len = 0;
	u->osent = 0;
	LIST_INSERT_HEAD(&pw->idle[u->idx], u, link);
	pw->nidle[u->idx]++;
	u_arm(u);
}

/* ---- the exchange ---- */

#define SPARE_MAX 64 /* request states a worker keeps for reuse, per pool */

/* Returns pr to its worker's spares (its buffers kept), or frees it. */
static void
pr_free(struct proxy_req *pr)
{
	struct pool_worker *pw = pr->pw;

	if (pw->nspare < SPARE_MAX && pr->replay.cap <= REPLAY_MAX && pr->head.cap <= 16384) {
		pr->u = pw->spare; /* the spare list links through u */
		pw->spare = pr;
		pw->nspare++;
		return;
	}
	sbuf_free(&pr->head);
	sbuf_free(&pr->replay);
	free(pr);
}

/* A clean request state, recycled when one is spare. */
static struct proxy_req *
pr_new(struct pool_worker *pw)
{
	struct proxy_req *pr = pw->spare;

	if (pr == NULL)
		return calloc(1, sizeof(*pr));
	pw->spare = pr->u;
	pw->nspare--;
	struct sbuf head = pr->head, replay = pr->replay;
	/* Everything before the response head; http_response_reset does the rest. */
	memset(pr, 0, offsetof(struct proxy_req, resp));
	pr->head = head;
	pr->replay = replay;
	pr->head.len = pr->replay.len = 0;
	pr->head.failed = pr->replay.failed = 0;
	return pr;
}

static void
count_done(struct proxy_req *pr, int ok)
{
	if (pr->u == NULL)
		return;
	struct backend *b = &pr->pw->pool->servers[pr->u->idx];
	atomic_fetch_sub(&b->active, 1);
	pr->pw->active[pr->u->idx]--;
	if (ok)
		pool_server_ok(pr->pw, pr->u->idx, (uint64_t)(pool_now_ms() - pr->t0) * 1000);
}

/* The response is complete: hand the connection back and finish the client side. */
static void
finish(struct proxy_req *pr, int reusable)
{
	struct request *r = pr->r;
	struct upstream *u = pr->u;

	count_done(pr, 1);
	pr->u = NULL;
	r->hdata = NULL;
	u_release(u, reusable && pr->body_done);
	pr_free(pr);
	http_resp_end(r);
}

/* Gives up: an error answer if nothing was sent yet, else cut the client off. */
static void
fail(struct proxy_req *pr, int status, const char *why)
{
	struct request *r = pr->r;

	if (pr->u != NULL) {
		count_done(pr, 0);
		upstream_free(pr->u);
		pr->u = NULL;
	}
	if (worker_log_backend_error(r->conn->w))
		log_warnx("proxy [pool:%s] %.*s: %d: %s", pr->pw->pool->name, (int)r->hr->line_len,
		    r->hr->line, status, why);
	r->hdata = NULL;
	int started = pr->resp_started;
	pr_free(pr);
	if (started) {
		http_resp_abort(r, why);
		return;
	}
	if (status == 503)
		http_resp_error_hdr(r, 503, "Retry-After", "1");
	else
		http_resp_error(r, status);
}

static int idempotent(const struct http_request *hr);

/*
 * Whether the request may go out again: no response byte reached the
 * client, the body sent so far is still at hand, and either nothing was
 * sent at all or the method is idempotent (RFC 9110 9.2.2).
 */
static int
may_replay(const struct proxy_req *pr, int nothing_sent)
{
	if (pr->resp_started || pr->replay_lost)
		return 0; /* what was queued of the body is gone with the old connection */
	return nothing_sent || idempotent(pr->r->hr);
}

static int
idempotent(const struct http_request *hr)
{
	switch (hr->meth) {
	case HTTP_M_GET: case HTTP_M_HEAD: case HTTP_M_PUT: case HTTP_M_DELETE:
	case HTTP_M_OPTIONS: case HTTP_M_TRACE:
		return 1;
	default:
		return 0;
	}
}

/*
 * A backend failed before answering.  Another server gets the request if
 * retries remain and replaying is safe: nothing was sent (connect failed),
 * or the method is idempotent and no body byte went out.
 */
static void
backend_failed(struct proxy_req *pr, int status, const char *why, int nothing_sent)
{
	const struct pool *p = pr->pw->pool;
	unsigned idx = pr->u->idx;

	pool_server_failed(pr->pw, idx);
	if (worker_log_backend_error(pr->r->conn->w))
		log_warnx("proxy [pool:%s] server %s: %s", p->name, p->servers[idx].name, why);
	pr->last_status = status;
	pr->last_why = why;
	if (pr->attempts <= p->retries && may_replay(pr, nothing_sent)) {
		count_done(pr, 0);
		upstream_free(pr->u);
		pr->u = NULL;
		attempt(pr);
		return;
	}
	fail(pr, status, why);
}

/* An idle connection the backend has not closed: no EOF or data waiting. */
static int
idle_alive(struct upstream *u)
{
	char c;

	if (u->ssl != NULL) {
		/* Session tickets and the like are consumed; data or a close is not. */
		ERR_clear_error();
		int n = SSL_peek(u->ssl, &c, 1);
		return n <= 0 && SSL_get_error(u->ssl, n) == SSL_ERROR_WANT_READ;
	}
	ssize_t n = recv(u->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void
attempt(struct proxy_req *pr)
{
	struct pool_worker *pw = pr->pw;
	const struct pool *p = pw->pool;
	uint64_t key = 0;
	int idx;

	if (p->balance->needs_key) {
		if (p->hash_header == NULL) {
			const struct sockaddr_in6 *a = &pr->r->conn->peer;
			key = a->sin6_family == AF_INET ?
			    pool_hash(&((const struct sockaddr_in *)a)->sin_addr, 4) :
			    pool_hash(&a->sin6_addr, 16);
		} else {
			const struct http_header *h = http_find_header(pr->r->hr, p->hash_header);
			key = h != NULL ? pool_hash(h->value, h->value_len) : 0;
		}
	}
	idx = pool_select(pw, pr->tried, key);
	if (idx < 0) {
		if (pr->last_status != 0)
			fail(pr, pr->last_status, pr->last_why); /* every server tried failed */
		else
			fail(pr, 503, "no server available");
		return;
	}
	pr->tried |= 1ULL << idx;
	pr->attempts++;
	/* Whatever an earlier server began to answer is forgotten. */
	http_response_reset(&pr->resp);
	pr->rs = R_HEAD;
	struct upstream *u = LIST_FIRST(&pw->idle[idx]);
	while (u != NULL && !idempotent(pr->r->hr) && !idle_alive(u)) {
		/* A request we could not replay gets no connection the backend
		 * may already have closed. */
		LIST_REMOVE(u, link);
		pw->nidle[idx]--;
		upstream_free(u);
		u = LIST_FIRST(&pw->idle[idx]);
	}
	if (u != NULL && !pr->fresh_retry) {
		LIST_REMOVE(u, link);
		pw->nidle[idx]--;
		u->reused = 1;
		u->state = U_ACTIVE;
	} else if ((u = u_connect(pr, (unsigned)idx)) == NULL) {
		pr->u = NULL;
		pool_server_failed(pw, (unsigned)idx);
		fail(pr, 502, "cannot create a socket");
		return;
	}
	u->pr = pr;
	pr->u = u;
	pw->active[idx]++;
	atomic_fetch_add(&p->servers[idx].active, 1);
	/* Built per attempt: with host_header = backend the Host names the server. */
	pr->head.len = 0;
	head_build(pr);
	if (sbuf_failed(&pr->head)) {
		fail(pr, 500, "out of memory");
		return;
	}
	u->out.len = 0;
	u->osent = 0;
	sbuf_add(&u->out, pr->head.p, pr->head.len);
	if (pr->replay.len > 0)
		sbuf_add(&u->out, pr->replay.p, pr->replay.len);
	/* A kept-alive connection takes the request at once: no wait for writable. */
	if (u->state == U_ACTIVE && u_write(u) < 0)
		return;
	u_arm(u);
}

/* Writes what is queued for the backend.  Returns -1 if pr ended. */
static int
u_write(struct upstream *u)
{
	struct proxy_req *pr = u->pr;

	while (u->osent < u->out.len) {
		ssize_t n = tls_io_send(u->fd, u->ssl, u->out.p + u->osent, u->out.len - u->osent, 0);
		if (n > 0) {
			u->osent += (size_t)n;
			if (u->osent > pr->head.len)
				pr->body_written = 1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (u->reused && !pr->fresh_retry && u->inlen == 0 && may_replay(pr, u->osent == 0)) {
			/* A kept-alive connection the backend had closed: once more, fresh. */
			retry_fresh(pr);
			return -1;
		}
		backend_failed(pr, 502, n < 0 ? strerror(errno) : "send returned 0", 0);
		return -1;
	}
	u->out.len = 0;
	u->osent = 0;
	if (pr->client_eof)
		shutdown(u->fd, SHUT_WR);
	if (pr->client_paused) {
		pr->client_paused = 0;
		http_req_resume(pr->r);
	}
	return 0;
}

/* Copies response headers the client should see. */
static void
copy_response_headers(struct proxy_req *pr)
{
	static const char *const skip[] = {
		"connection", "keep-alive", "te", "trailer", "transfer-encoding", "content-length",
		"upgrade", "proxy-connection", "date", "server", NULL,
	};
	const struct http_response *rs = &pr->resp;

	for (unsigned i = 0; i < rs->nheaders; i++) {
		const struct http_header *h = &rs->headers[i];
		size_t k;
		for (k = 0; skip[k] != NULL; k++)
			if (http_token_eq(h->name, h->name_len, skip[k]))
				break;
		if (skip[k] != NULL || head_named_in_connection(rs->headers, rs->nheaders, h))
			continue;
		/* Checked by the response parser; the head fits its buffer. */
		http_resp_header_n(pr->r, h->name, h->name_len, h->value, h->value_len);
	}
}

/* The backend switched protocols: answer 101 and relay bytes both ways. */
static int
tunnel_begin(struct proxy_req *pr, size_t head_len)
{
	struct request *r = pr->r;
	const struct http_header *up = NULL;

	for (unsigned i = 0; i < pr->resp.nheaders; i++)
		if (http_token_eq(pr->resp.headers[i].name, pr->resp.headers[i].name_len, "upgrade"))
			up = &pr->resp.headers[i];
	http_resp_start(r, 101, NULL, -1);
	http_resp_header(r, "Connection", "upgrade");
	if (up != NULL) {
		char v[256];
		snprintf(v, sizeof(v), "%.*s", (int)up->value_len, up->value);
		http_resp_header(r, "Upgrade", v);
	}
	copy_response_headers(pr);
	memmove(pr->u->in, pr->u->in + head_len, pr->u->inlen - head_len);
	pr->u->inlen -= head_len;
	pr->resp_started = 1;
	pr->rs = R_TUNNEL;
	pr->body_done = 1;
	count_done(pr, 1);
	atomic_fetch_add(&pr->pw->pool->servers[pr->u->idx].active, 1); /* still busy */
	pr->pw->active[pr->u->idx]++;
	http_tunnel_start(r);
	if (r->hdata != pr)
		return -1;
	return 0;
}

/* The response head is in: start the client's response.  Returns -1 if pr ended. */
static int
response_head(struct proxy_req *pr, size_t head_len)
{
	struct http_response *rs = &pr->resp;
	struct request *r = pr->r;
	struct upstream *u = pr->u;
	int64_t clen = -1;

	if (rs->status == 101) {
		if (head_upgrade_offer(pr->pc, r->hr, NULL) == 0)
			return backend_failed(pr, 502, "101 Switching Protocols not asked for", 0), -1;
		if (!head_upgrade_answer_ok(pr->pc, r->hr, rs))
			return backend_failed(pr, 502, "101 Switching Protocols to a protocol not offered",
			    0), -1;
		return tunnel_begin(pr, head_len);
	}
	if (rs->status >= 100 && rs->status < 200) {
		/*
		 * Interim answers go on to an HTTP/1.1 client (RFC 9110 15.2), such
		 * as 103 Early Hints; 100 Continue is ours to give, from our own
		 * reading of the body, and a 1.0 client gets none.
		 */
		if (++pr->interim > INTERIM_MAX)
			return backend_failed(pr, 502, "too many interim responses", 0), -1;
		if (rs->status != 100 && http_resp_interim(r, rs->status, rs->reason, rs->reason_len)) {
			copy_response_headers(pr);
			http_resp_interim_end(r);
		}
		memmove(u->in, u->in + head_len, u->inlen - head_len);
		u->inlen -= head_len;
		http_response_reset(rs);
		return 0;
	}
	if (r->hr->meth == HTTP_M_HEAD || rs->status == 204 || rs->status == 304) {
		pr->rs = R_DONE;
		if (rs->flags & HTTP_F_HAS_CL)
			clen = rs->content_length;
	} else if (rs->flags & HTTP_F_CHUNKED) {
		pr->rs = R_CHUNKED;
		http_chunked_init(&pr->ch);
	} else if (rs->flags & HTTP_F_HAS_CL) {
		pr->rs = rs->content_length > 0 ? R_LENGTH : R_DONE;
		pr->resp_left = clen = rs->content_length;
	} else {
		pr->rs = R_CLOSE;
	}
	pr->framed = pr->rs != R_CLOSE;
	http_resp_start_reason(r, rs->status, rs->reason, rs->reason_len, NULL, clen);
	if (rs->status == 304 && (rs->flags & HTTP_F_HAS_CL)) {
		/* The size a 200 would have had (RFC 9110 8.6), as nginx passes it on. */
		char n[24];
		snprintf(n, sizeof(n), "%lld", (long long)rs->content_length);
		http_resp_header(r, "Content-Length", n);
	}
	copy_response_headers(pr);
	pr->resp_started = 1;
	memmove(u->in, u->in + head_len, u->inlen - head_len);
	u->inlen -= head_len;
	return 0;
}

/* Moves response bytes from the backend to the client.  Returns -1 once
 * pr has ended (finished, failed or moved to another server). */
static int
response_bytes(struct proxy_req *pr)
{
	struct upstream *u = pr->u;
	struct request *r = pr->r;
	struct worker *w = r->conn->w;

	while (!pr->reading_paused) {
		if (pr->rs == R_HEAD) {
			if (u->inlen == 0)
				return 0;
			ssize_t n = http_parse_response(&pr->resp, u->in, u->inlen, &w->limits);
			if (n == 0) {
				if (u->inlen < UPSTREAM_IN_SIZE)
					return 0;
				backend_failed(pr, 502, "response head too large", 0);
				return -1;
			}
			if (n < 0) {
				backend_failed(pr, 502, pr->resp.error, 0);
				return -1;
			}
			if (response_head(pr, (size_t)n) < 0)
				return -1;
			continue;
		}
		if (pr->rs == R_DONE) {
			/* Reusable only when the response framed itself and said keep-alive. */
			finish(pr, pr->framed && (pr->resp.flags & HTTP_F_KEEPALIVE));
			return -1;
		}
		if (u->inlen == 0)
			return 0;
		size_t used = 0;
		if (pr->rs == R_TUNNEL) {
			http_tunnel_write(r, u->in, u->inlen);
			used = u->inlen;
		} else if (pr->rs == R_LENGTH) {
			size_t n = (uint64_t)pr->resp_left < u->inlen ? (size_t)pr->resp_left : u->inlen;
			http_resp_body(r, u->in, n);
			pr->resp_left -= (int64_t)n;
			used = n;
			if (pr->resp_left == 0)
				pr->rs = R_DONE;
		} else if (pr->rs == R_CHUNKED) {
			size_t off, len;
			ssize_t n = http_chunked_parse(&pr->ch, u->in, u->inlen, &off, &len, 64 * 1024);
			if (n < 0) {
				fail(pr, 502, "bad chunked framing from backend");
				return -1;
			}
			if (len > 0)
				http_resp_body(r, u->in + off, len);
			used = (size_t)n;
			if (pr->ch.state == CHUNK_DONE)
				pr->rs = R_DONE;
		} else {
			http_resp_body(r, u->in, u->inlen);
			used = u->inlen;
		}
		memmove(u->in, u->in + used, u->inlen - used);
		u->inlen -= used;
		/* Client output backed up: stop reading the backend until it drains. */
		if (http_resp_pending(r) > HTTP_OUT_HIGH_WATER) {
			pr->reading_paused = 1;
			u_arm(u);
		}
	}
	return 0;
}

/* Retries on a fresh connection to the same server after a kept-alive one
 * turned out closed, keeping any queued body bytes. */
static void
retry_fresh(struct proxy_req *pr)
{
	struct upstream *u = pr->u;

	pr->fresh_retry = 1;
	pr->tried &= ~(1ULL << u->idx);
	pr->attempts--;
	count_done(pr, 0);
	upstream_free(u);
	pr->u = NULL;
	attempt(pr);
}

/* Reads from the backend.  Returns -1 once pr has ended or moved on. */
static int
u_read(struct upstream *u)
{
	struct proxy_req *pr = u->pr;

	if (u->in == NULL && (u->in = malloc(UPSTREAM_IN_SIZE)) == NULL) {
		fail(pr, 502, "out of memory");
		return -1;
	}
	ssize_t n = tls_io_recv(u->fd, u->ssl, u->in + u->inlen, UPSTREAM_IN_SIZE - u->inlen);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n > 0) {
		u->inlen += (size_t)n;
		if (response_bytes(pr) < 0)
			return -1;
		/* Decrypted bytes left inside OpenSSL will not wake the socket. */
		if (u->ssl != NULL && SSL_has_pending(u->ssl) && !pr->reading_paused)
			event_active(&u->ev, EV_READ, 0);
		return 0;
	}
	if (pr->rs == R_TUNNEL) {
		/* The backend is done: the client gets what is queued, then the close. */
		struct request *r = pr->r;
		count_done(pr, 0);
		upstream_free(u);
		pr->u = NULL;
		r->hdata = NULL;
		pr_free(pr);
		http_tunnel_close(r);
		return -1;
	}
	if (pr->rs == R_CLOSE) {
		/* The close ends a close-delimited body. */
		pr->rs = R_DONE;
		return response_bytes(pr);
	}
	if (pr->rs == R_HEAD && pr->resp.pos == 0 && u->inlen == 0 && u->reused &&
	    !pr->fresh_retry && may_replay(pr, 0)) {
		/* The kept-alive connection was closed under us: once more, fresh. */
		retry_fresh(pr);
		return -1;
	}
	if (pr->rs == R_HEAD)
		backend_failed(pr, 502, n == 0 ? "closed before answering" : strerror(errno), 0);
	else
		fail(pr, 502, "backend closed mid-response");
	return -1;
}

static void
u_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	struct proxy_req *pr = u->pr;

	(void)fd;
	if (u->state == U_IDLE) {
		/* An idle connection spoke or closed, or timed out: drop it.  Over
		 * TLS, records that are not data (tickets) are not speaking. */
		if (!(what & EV_TIMEOUT) && u->ssl != NULL && idle_alive(u))
			return;
		LIST_REMOVE(u, link);
		u->pw->nidle[u->idx]--;
		upstream_free(u);
		return;
	}
	if (what & EV_TIMEOUT) {
		if (u->state == U_CONNECTING || u->state == U_HANDSHAKE)
			backend_failed(pr, 504, u->state == U_CONNECTING ? "connect timed out" :
			    "TLS handshake timed out", 1);
		else if (pr->rs == R_HEAD)
			backend_failed(pr, 504, u->osent < u->out.len ? "send timed out" : "read timed out", 0);
		else
			fail(pr, 504, "read timed out mid-response");
		return;
	}
	if (u->state == U_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			backend_failed(pr, 502, strerror(err ? err : errno), 1);
			return;
		}
		struct sockaddr_storage ss;
		len = sizeof(ss);
		if (getpeername(u->fd, (struct sockaddr *)&ss, &len) < 0) {
			backend_failed(pr, 502, "connection refused", 1);
			return;
		}
		u->state = U_ACTIVE;
		if (u->pw->pool->servers[u->idx].tls && u_tls_start(u) < 0) {
			backend_failed(pr, 502, "cannot start TLS", 1);
			return;
		}
		what |= EV_WRITE;
	}
	if (u->state == U_HANDSHAKE) {
		ERR_clear_error();
		int rc = SSL_do_handshake(u->ssl);
		if (rc != 1) {
			int e = SSL_get_error(u->ssl, rc);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				u->hs_write = e == SSL_ERROR_WANT_WRITE;
				u_arm(u);
				return;
			}
			static _Thread_local char why[200];
			unsigned long err = ERR_peek_last_error();
			long vr = SSL_get_verify_result(u->ssl);
			if (vr != X509_V_OK)
				snprintf(why, sizeof(why), "TLS handshake failed: certificate: %s",
				    X509_verify_cert_error_string(vr));
			else
				snprintf(why, sizeof(why), "TLS handshake failed: %s",
				    err ? ERR_reason_error_string(err) : "connection closed");
			ERR_clear_error();
			backend_failed(pr, 502, why, 1);
			return;
		}
		u->state = U_ACTIVE;
		what |= EV_WRITE;
	}
	if ((what & EV_WRITE) && u_write(u) < 0)
		return;
	if ((what & EV_READ) && u_read(u) < 0)
		return; /* finished or moved on */
	u_arm(u);
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
	struct proxy_req *pr = pw != NULL ? pr_new(pw) : NULL;

	if (pr == NULL) {
		http_resp_error(r, 500);
		return;
	}
	pr->pw = pw;
	pr->r = r;
	pr->pc = pc;
	pr->t0 = pool_now_ms();
	http_response_reset(&pr->resp);
	pr->body_done = !(r->hr->flags & HTTP_F_CHUNKED) && r->hr->content_length <= 0;
	r->hdata = pr;
	if (!pr->body_done && pc->request_buffer > 0 && ((r->hr->flags & HTTP_F_CHUNKED) ||
	    (uint64_t)r->hr->content_length <= pc->request_buffer)) {
		/*
		 * Read the body before a server is picked (proxy_body): bad
		 * framing is refused before any backend sees the request, and
		 * the whole request can go to another server if one fails.
		 */
		pr->buffering = 1;
		return;
	}
	attempt(pr);
}

/* The most body bytes kept for a retry. */
static size_t
replay_limit(const struct proxy_conf *pc)
{
	return pc->request_buffer > REPLAY_MAX ? pc->request_buffer : REPLAY_MAX;
}

/*
 * Body bytes while the body is read before the request goes out (len 0:
 * the end).  A body that ends within request_buffer goes out whole, with
 * Content-Length; a chunked one that outgrows it goes out chunked from
 * here on, what was read so far as its first chunk.  Returns 0, or -1
 * once pr has ended.
 */
static int
buffer_body(struct proxy_req *pr, const char *data, size_t len)
{
	struct sbuf *b = &pr->replay;

	if (len > 0 && b->len + len <= pr->pc->request_buffer) {
		sbuf_add(b, data, len);
		if (sbuf_failed(b)) {
			fail(pr, 500, "out of memory");
			return -1;
		}
		return 0;
	}
	pr->buffering = 0;
	if (len == 0) {
		pr->body_whole = 1;
		pr->body_done = 1;
	} else {
		struct sbuf framed = { 0 };
		if (b->len > 0) {
			sbuf_printf(&framed, "%zx\r\n", b->len);
			sbuf_add(&framed, b->p, b->len);
			sbuf_str(&framed, "\r\n");
		}
		sbuf_printf(&framed, "%zx\r\n", len);
		sbuf_add(&framed, data, len);
		sbuf_str(&framed, "\r\n");
		sbuf_free(b);
		*b = framed;
		if (sbuf_failed(b)) {
			fail(pr, 500, "out of memory");
			return -1;
		}
	}
	attempt(pr); /* sends head and replay; pr may be gone after it */
	return 0;
}

/* Remembers the body bytes just queued (as framed for the backend) so a
 * retry can send them again; past REPLAY_MAX the copy is given up. */
static void
keep_for_replay(struct proxy_req *pr, const struct sbuf *out, size_t len)
{
	(void)len;
	if (pr->replay_lost || pr->rs == R_TUNNEL)
		return;
	size_t framed = out->len - pr->replay_mark;
	if (pr->replay.len + framed > replay_limit(pr->pc)) {
		pr->replay_lost = 1;
		sbuf_free(&pr->replay);
		return;
	}
	sbuf_add(&pr->replay, out->p + pr->replay_mark, framed);
}

static int
proxy_body(struct request *r, const char *data, size_t len)
{
	struct proxy_req *pr = r->hdata;

	if (pr != NULL && pr->buffering)
		return buffer_body(pr, data, len);
	if (pr == NULL || pr->u == NULL)
		return -1; /* already answered */
	struct sbuf *out = &pr->u->out;
	pr->replay_mark = out->len;
	if (pr->rs == R_TUNNEL) {
		if (len == 0) {
			pr->client_eof = 1;
			if (pr->u->osent == out->len)
				shutdown(pr->u->fd, SHUT_WR);
			return 0;
		}
		sbuf_add(out, data, len);
		/* Bytes either way keep a tunnel alive: restart its idle timer. */
		if (pr->u->rarmed)
			event_add(&pr->u->ev, pr->pw->tv_tunnel);
	} else if (len == 0) {
		if (pr->body_chunked)
			sbuf_str(out, "0\r\n\r\n");
		pr->body_done = 1;
	} else if (pr->body_chunked) {
		sbuf_printf(out, "%zx\r\n", len);
		sbuf_add(out, data, len);
		sbuf_str(out, "\r\n");
	} else {
		sbuf_add(out, data, len);
	}
	keep_for_replay(pr, out, len);
	if (sbuf_failed(out)) {
		fail(pr, 500, "out of memory");
		return -1;
	}
	if (pr->u->state == U_ACTIVE)
		u_arm(pr->u);
	if (out->len - pr->u->osent > HTTP_OUT_HIGH_WATER) {
		pr->client_paused = 1;
		return 1;
	}
	return 0;
}

static void
proxy_writable(struct request *r)
{
	struct proxy_req *pr = r->hdata;

	if (pr == NULL || !pr->reading_paused || pr->u == NULL)
		return;
	pr->reading_paused = 0;
	if (response_bytes(pr) == 0) {
		u_arm(pr->u);
		/* Records read ahead while paused will not wake the socket. */
		if (pr->u->ssl != NULL && SSL_has_pending(pr->u->ssl))
			event_active(&pr->u->ev, EV_READ, 0);
	}
}

static void
proxy_abort(struct request *r)
{
	struct proxy_req *pr = r->hdata;

	if (pr == NULL)
		return;
	if (pr->u != NULL) {
		count_done(pr, 0);
		upstream_free(pr->u);
	}
	r->hdata = NULL;
	pr_free(pr);
}

/* {"servers":[{"name":..., "state":"up|down|disabled", ...}]} for /status */
static void
proxy_section_status(const struct conf_section *sec, struct sbuf *out)
{
	const struct pool *p = sec->data;
	int64_t now = pool_now_ms();

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
		const char *state = b->disabled ? "disabled" : atomic_load(&b->gen) == 0 ? "unresolved" :
		    atomic_load(&b->health_down) ? "down" :
		    atomic_load(&b->down_until) > now ? "failed" : "up";
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

static const char *const proxy_keys[] = {
	"strip_prefix", "host_header", "forwarded", "trusted_proxies", "request_buffer", "request_id",
	"upgrade", NULL,
};
static const char *const proxy_list_keys[] = { "trusted_proxies", "upgrade", NULL };

const struct handler_ops proxy_ops = {
	.name = "proxy",
	.key = "pool",
	.keys = proxy_keys,
	.list_keys = proxy_list_keys,
	.flags = HANDLER_WANTS_BODY,
	.configure = proxy_configure,
	.free_conf = proxy_free_conf,
	.section = "pool",
	.configure_section = proxy_configure_section,
	.free_section = pool_free,
	.section_status = proxy_section_status,
	.main_start = proxy_main_start,
	.main_stop = proxy_main_stop,
	.start = proxy_start,
	.body = proxy_body,
	.writable = proxy_writable,
	.abort = proxy_abort,
	.worker_new = proxy_worker_new,
	.worker_free = proxy_worker_free,
};
