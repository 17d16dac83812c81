/*
 * relay: one proxied exchange, see relay.h.  The exchange owns its upstream
 * connection while it lasts (u->owner is the proxy_req) and hears from it
 * through relay_upstream_ops.  It ends through finish (the response was
 * relayed whole: the connection may be kept), fail (an error answer, or
 * the client cut off once part of the response went out), the end of a
 * tunnel, or relay_abort (the client went away); a failed attempt before
 * the response goes on to another server through backend_failed.
 */
#include "proxy/relay.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/exchange.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "proxy/head.h"
#include "proxy/pool.h"
#include "proxy/upstream.h"

static const struct upstream_ops relay_upstream_ops;
static void attempt(struct proxy_req *pr);
static int response_bytes(struct proxy_req *pr);

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

void
relay_worker_free(struct pool_worker *pw)
{
	while (pw->spare != NULL) {
		struct proxy_req *pr = pw->spare;
		pw->spare = pr->u;
		sbuf_free(&pr->head);
		sbuf_free(&pr->replay);
		free(pr);
	}
}

/* The connect time of the attempt, for the log, once the connection is up. */
static void
note_connected(struct proxy_req *pr)
{
	struct req_log *lg = &pr->r->log;

	if (lg->up_connect_us < 0 && pr->u->ready_us > 0)
		lg->up_connect_us = pr->u->ready_us - pr->t_attempt;
}

static void
count_done(struct proxy_req *pr, int ok)
{
	if (pr->u == NULL)
		return;
	note_connected(pr);
	pr->r->log.up_total_us = clock_us() - pr->t_attempt;
	struct backend *b = &pr->pw->pool->servers[pr->u->idx];
	atomic_fetch_sub(&b->active, 1);
	pr->pw->active[pr->u->idx]--;
	if (ok)
		pool_server_ok(pr->pw, pr->u->idx, (uint64_t)(clock_ms() - pr->t0) * 1000);
}

/* Closes the connection of an attempt that did not work out. */
static void
drop_upstream(struct proxy_req *pr, const char *why)
{
	count_done(pr, 0);
	upstream_close(pr->u, why);
	pr->u = NULL;
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
	upstream_release(u, reusable && pr->body_done);
	pr_free(pr);
	http_resp_end(r);
}

/* Gives up: an error answer if nothing was sent yet, else cut the client off. */
static void
fail(struct proxy_req *pr, int status, const char *why)
{
	struct request *r = pr->r;

	if (status == 500)
		http_req_term(r, REQ_TERM_INTERNAL);
	if (pr->u != NULL)
		drop_upstream(pr, why);
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

/*
 * A server failed before answering.  Another server gets the request if
 * retries remain and replaying is safe: nothing was sent (connect failed),
 * or the method is idempotent and no body byte went out.
 */
static void
backend_failed(struct proxy_req *pr, int status, const char *term, const char *why,
    int nothing_sent)
{
	const struct pool *p = pr->pw->pool;
	unsigned idx = pr->u->idx;

	pool_server_failed(pr->pw, idx);
	if (strcmp(term, REQ_TERM_UP_REFUSED) == 0)
		stats_add(&pr->pw->cnt[idx].connect_errors, 1);
	else if (strcmp(term, REQ_TERM_UP_TIMEOUT) == 0)
		stats_add(&pr->pw->cnt[idx].timeouts, 1);
	if (worker_log_backend_error(pr->r->conn->w))
		log_warnx("proxy [pool:%s] server %s: %s", p->name, p->servers[idx].name, why);
	pr->last_status = status;
	pr->last_term = term;
	pr->last_why = why;
	if (pr->attempts <= p->retries && may_replay(pr, nothing_sent)) {
		stats_add(&pr->pw->cnt[idx].retries, 1);
		drop_upstream(pr, why);
		attempt(pr);
		return;
	}
	http_req_term(pr->r, term);
	fail(pr, status, why);
}

/* Retries on a fresh connection to the same server after a kept-alive one
 * turned out closed, keeping any queued body bytes. */
static void
retry_fresh(struct proxy_req *pr)
{
	pr->fresh_retry = 1;
	pr->tried &= ~(1ULL << pr->u->idx);
	pr->attempts--;
	drop_upstream(pr, "kept-alive connection closed by the server");
	attempt(pr);
}

/* The server for this attempt: a balance policy's pick among those not tried. */
static int
pick_server(struct proxy_req *pr)
{
	const struct pool *p = pr->pw->pool;
	uint64_t key = 0;

	if (p->balance->needs_key) {
		if (p->hash_header == NULL) {
			const struct sockaddr_in6 *a = &pr->r->conn->peer;
			key = a->sin6_family == AF_INET ?
			    pool_hash(&((const struct sockaddr_in *)a)->sin_addr, 4) :
			    pool_hash(&a->sin6_addr, 16);
		} else {
			const struct http_header *h = req_header(pr->r, p->hash_header);
			key = h != NULL ? pool_hash(h->value, h->value_len) : 0;
		}
	}
	return pool_select(pr->pw, pr->tried, key);
}

/* The server of this attempt, for the log: its address, times unknown yet. */
static void
note_server(struct proxy_req *pr, int idx)
{
	struct req_log *lg = &pr->r->log;
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (backend_addr(&pr->pw->pool->servers[idx], &ss) == 0 || ss.ss_family == AF_UNIX) {
		/* Not resolved yet, or unix:/PATH: as written. */
		snprintf(lg->up_addr, sizeof(lg->up_addr), "%s", pr->pw->pool->servers[idx].name);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
		snprintf(lg->up_addr, sizeof(lg->up_addr), "[%s]:%d", host, port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
		snprintf(lg->up_addr, sizeof(lg->up_addr), "%s:%d", host, port);
	}
	lg->up_connect_us = pr->u->reused ? 0 : -1;
	lg->up_header_us = lg->up_total_us = -1;
}

static void
attempt(struct proxy_req *pr)
{
	struct pool_worker *pw = pr->pw;
	const struct pool *p = pw->pool;
	int idx = pick_server(pr);

	if (idx < 0) {
		if (pr->last_status != 0) {
			http_req_term(pr->r, pr->last_term);
			fail(pr, pr->last_status, pr->last_why); /* every server tried failed */
		} else {
			http_req_term(pr->r, REQ_TERM_NO_SERVER);
			fail(pr, 503, "no server available");
		}
		return;
	}
	pr->tried |= 1ULL << idx;
	pr->attempts++;
	/* Whatever an earlier server began to answer is forgotten. */
	http_response_reset(&pr->resp);
	pr->rs = R_HEAD;
	/* A request we could not replay gets no connection the server may
	 * already have closed. */
	struct upstream *u = pr->fresh_retry ? NULL :
	    upstream_take_idle(pw, (unsigned)idx, !idempotent(pr->r->hr), &relay_upstream_ops, pr);
	if (u == NULL) {
		const struct upstream_timeouts tv = {
			pw->tv_connect, pw->tv_send, pw->tv_read, pw->tv_idle,
		};
		u = upstream_connect(pr->r->conn->w->base, p, (unsigned)idx, pw, &tv,
		    &relay_upstream_ops, pr);
		if (u == NULL) {
			pool_server_failed(pw, (unsigned)idx);
			http_req_term(pr->r, REQ_TERM_UP_REFUSED);
			fail(pr, 502, "cannot create a socket");
			return;
		}
	}
	pr->u = u;
	pr->t_attempt = clock_us();
	note_server(pr, idx);
	pw->active[idx]++;
	atomic_fetch_add(&p->servers[idx].active, 1);
	/* Built per attempt: with host_header = backend the Host names the server. */
	pr->head.len = 0;
	head_build(pr);
	if (sbuf_failed(&pr->head)) {
		fail(pr, 500, "out of memory");
		return;
	}
	sbuf_add(&u->out, pr->head.p, pr->head.len);
	if (pr->replay.len > 0)
		sbuf_add(&u->out, pr->replay.p, pr->replay.len);
	upstream_send(u);
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

/* The server switched protocols: answer 101 and relay bytes both ways. */
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
	upstream_consume(pr->u, head_len);
	upstream_set_read_timeout(pr->u, pr->pw->tv_tunnel);
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
	int64_t clen = -1;

	note_connected(pr);
	r->log.up_header_us = clock_us() - pr->t_attempt;

	if (rs->status == 101) {
		if (head_upgrade_offer(pr->pc, r->hr, NULL) == 0)
			return backend_failed(pr, 502, REQ_TERM_UP_BAD, "101 Switching Protocols not asked for", 0), -1;
		if (!head_upgrade_answer_ok(pr->pc, r->hr, rs))
			return backend_failed(pr, 502, REQ_TERM_UP_BAD,
			    "101 Switching Protocols to a protocol not offered", 0), -1;
		return tunnel_begin(pr, head_len);
	}
	if (rs->status >= 100 && rs->status < 200) {
		/*
		 * Interim answers go on to an HTTP/1.1 client (RFC 9110 15.2), such
		 * as 103 Early Hints; 100 Continue is ours to give, from our own
		 * reading of the body, and a 1.0 client gets none.
		 */
		if (++pr->interim > INTERIM_MAX)
			return backend_failed(pr, 502, REQ_TERM_UP_BAD, "too many interim responses", 0), -1;
		if (rs->status != 100 && http_resp_interim(r, rs->status, rs->reason, rs->reason_len)) {
			copy_response_headers(pr);
			http_resp_interim_end(r);
		}
		upstream_consume(pr->u, head_len);
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
	/* The head is whole: the client gets it now, not with the first body
	 * bytes (a stream of events may be slow to send one). */
	http_resp_commit(r);
	pr->resp_started = 1;
	upstream_consume(pr->u, head_len);
	return 0;
}

/* Moves response bytes from the server to the client.  Returns -1 once
 * pr has ended (finished, failed or moved to another server). */
static int
response_bytes(struct proxy_req *pr)
{
	struct upstream *u = pr->u;
	struct request *r = pr->r;
	struct worker *w = r->conn->w;

	while (!u->paused) {
		if (pr->rs == R_HEAD) {
			if (u->inlen == 0)
				return 0;
			ssize_t n = http_parse_response(&pr->resp, u->in, u->inlen, &w->limits);
			if (n == 0) {
				if (u->inlen < UPSTREAM_IN_SIZE)
					return 0;
				backend_failed(pr, 502, REQ_TERM_UP_BAD, "response head too large", 0);
				return -1;
			}
			if (n < 0) {
				backend_failed(pr, 502, REQ_TERM_UP_BAD, pr->resp.error, 0);
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
		if (u->inlen == 0) {
			/* All the server sent so far is passed on: body filters
			 * holding bytes back let them go (a stream of events). */
			http_resp_flush(r);
			return 0;
		}
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
				http_req_term(r, REQ_TERM_UP_BAD);
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
		upstream_consume(u, used);
		/* Client output backed up: stop reading the server until it drains. */
		if (http_resp_pending(r) > HTTP_OUT_HIGH_WATER) {
			u->paused = 1;
			upstream_arm(u);
		}
	}
	return 0;
}

/* The server closed the connection, or reading from it failed. */
static void
server_closed(struct proxy_req *pr, enum upstream_error e, const char *why)
{
	struct upstream *u = pr->u;

	if (pr->rs == R_TUNNEL) {
		/* The server is done: the client gets what is queued, then the close. */
		struct request *r = pr->r;
		drop_upstream(pr, "tunnel closed by the server");
		r->hdata = NULL;
		pr_free(pr);
		http_tunnel_close(r);
		return;
	}
	if (pr->rs == R_CLOSE) {
		/* The close ends a close-delimited body. */
		pr->rs = R_DONE;
		response_bytes(pr);
		return;
	}
	if (pr->rs == R_HEAD && pr->resp.pos == 0 && u->inlen == 0 && u->reused &&
	    !pr->fresh_retry && may_replay(pr, 0)) {
		/* The kept-alive connection was closed under us: once more, fresh. */
		retry_fresh(pr);
		return;
	}
	if (pr->rs == R_HEAD)
		backend_failed(pr, 502, REQ_TERM_UP_RESET,
		    e == UPSTREAM_EOF ? "closed before answering" : why, 0);
	else
	{
		http_req_term(pr->r, REQ_TERM_UP_RESET);
		fail(pr, 502, "backend closed mid-response");
	}
}

/* ---- what the upstream connection tells its exchange ---- */

static int
relay_read(struct upstream *u)
{
	return response_bytes(u->owner);
}

static int
relay_sent(struct upstream *u)
{
	struct proxy_req *pr = u->owner;

	note_connected(pr);
	if (pr->client_eof)
		upstream_shutdown_write(u);
	if (pr->client_paused) {
		pr->client_paused = 0;
		http_req_resume(pr->r);
	}
	return 0;
}

static void
relay_error(struct upstream *u, enum upstream_error e, const char *why)
{
	struct proxy_req *pr = u->owner;

	switch (e) {
	case UPSTREAM_CONNECT_FAILED:
		backend_failed(pr, 502, REQ_TERM_UP_REFUSED, why, 1);
		break;
	case UPSTREAM_CONNECT_TIMEOUT:
		backend_failed(pr, 504, REQ_TERM_UP_TIMEOUT, why, 1);
		break;
	case UPSTREAM_SEND_FAILED:
		if (u->reused && !pr->fresh_retry && u->inlen == 0 && may_replay(pr, u->osent == 0))
			retry_fresh(pr); /* a kept-alive connection the server had closed */
		else
			backend_failed(pr, 502, REQ_TERM_UP_RESET, why, 0);
		break;
	case UPSTREAM_TIMEOUT:
		if (pr->rs == R_HEAD) {
			backend_failed(pr, 504, REQ_TERM_UP_TIMEOUT, why, 0);
		} else {
			http_req_term(pr->r, REQ_TERM_UP_TIMEOUT);
			fail(pr, 504, "read timed out mid-response");
		}
		break;
	case UPSTREAM_EOF:
	case UPSTREAM_READ_FAILED:
		server_closed(pr, e, why);
		break;
	case UPSTREAM_NO_MEMORY:
		http_req_term(pr->r, REQ_TERM_INTERNAL);
		fail(pr, 502, why);
		break;
	}
}

static const struct upstream_ops relay_upstream_ops = {
	.read = relay_read,
	.sent = relay_sent,
	.error = relay_error,
};

/* ---- the client's side ---- */

void
relay_start(struct request *r, const struct proxy_conf *pc, struct pool_worker *pw)
{
	struct proxy_req *pr = pr_new(pw);

	if (pr == NULL) {
		http_resp_error(r, 500);
		return;
	}
	pr->pw = pw;
	pr->r = r;
	pr->pc = pc;
	pr->t0 = clock_ms();
	http_response_reset(&pr->resp);
	pr->body_done = !(r->hr->flags & HTTP_F_CHUNKED) && r->hr->content_length <= 0;
	r->hdata = pr;
	if (!pr->body_done && pc->request_buffer > 0 && ((r->hr->flags & HTTP_F_CHUNKED) ||
	    (uint64_t)r->hr->content_length <= pc->request_buffer)) {
		/*
		 * Read the body before a server is picked (relay_body): bad
		 * framing is refused before any server sees the request, and
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

/* Remembers the body bytes just queued (as framed for the server) so a
 * retry can send them again; past replay_limit the copy is given up. */
static void
keep_for_replay(struct proxy_req *pr, const struct sbuf *out)
{
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

int
relay_body(struct request *r, const char *data, size_t len)
{
	struct proxy_req *pr = r->hdata;

	if (pr != NULL && pr->buffering)
		return buffer_body(pr, data, len);
	if (pr == NULL || pr->u == NULL)
		return -1; /* already answered */
	struct upstream *u = pr->u;
	struct sbuf *out = &u->out;
	pr->replay_mark = out->len;
	if (pr->rs == R_TUNNEL) {
		if (len == 0) {
			pr->client_eof = 1;
			if (upstream_pending(u) == 0)
				upstream_shutdown_write(u);
			return 0;
		}
		sbuf_add(out, data, len);
		/* Bytes either way keep a tunnel alive: restart its idle timer. */
		upstream_touch(u);
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
	keep_for_replay(pr, out);
	if (sbuf_failed(out)) {
		fail(pr, 500, "out of memory");
		return -1;
	}
	if (u->state == UPSTREAM_ACTIVE)
		upstream_arm(u);
	if (upstream_pending(u) > HTTP_OUT_HIGH_WATER) {
		pr->client_paused = 1;
		return 1;
	}
	return 0;
}

void
relay_writable(struct request *r)
{
	struct proxy_req *pr = r->hdata;

	if (pr == NULL || pr->u == NULL || !pr->u->paused)
		return;
	pr->u->paused = 0;
	if (response_bytes(pr) == 0) {
		upstream_arm(pr->u);
		/* Records read ahead while paused will not wake the socket. */
		upstream_read_ahead(pr->u);
	}
}

void
relay_abort(struct request *r)
{
	struct proxy_req *pr = r->hdata;

	if (pr == NULL)
		return;
	if (pr->u != NULL)
		drop_upstream(pr, "the client went away");
	r->hdata = NULL;
	pr_free(pr);
}
