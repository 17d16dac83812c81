#include "common/h1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/h2.h"
#include "common/handler.h"
#include "common/log.h"
#include "common/pipeline.h"
#include "common/route.h"
#include "common/server.h"
#include "common/tls.h"

/* Stop parsing pipelined requests while this much output waits. */
#define OUT_HIGH_WATER HTTP_OUT_HIGH_WATER

#define OUT_LIT(c, s) conn_out((c), (s), sizeof(s) - 1)

static const struct conn_proto h1_proto;
static const struct exchange_ops h1_exchange_ops;
static void dispatch_handler(struct h1 *h);

void
h1_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
    unsigned listen_idx)
{
	const struct conf_global *g = &w->snap->conf->global;
	struct tls_listener *tls = w->snap->conf->listens[listen_idx].tls;
	int64_t hs_ms = g->tls_handshake_timeout > 0 ? g->tls_handshake_timeout : g->header_timeout;
	struct conn *c = conn_new(&w->cenv, &h1_proto, sizeof(struct h1), fd, sa, salen, tls, hs_ms);

	if (c == NULL) {
		worker_conn_closed(w);
		return;
	}
	c->w = w;
	c->snap = w->snap;
	c->snap->users++;
	c->conf = c->snap->conf;
	c->listen_idx = listen_idx;
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->nconns++;
	stats_add(&w->stats.connections_total, 1);
	stats_add(&w->stats.connections_active, 1);
	metrics_conn(c, 1);
	if (tls != NULL && c->ssl == NULL)
		conn_close(c, "cannot start TLS");
	else if (tls == NULL)
		h1_proto.start(c);
}

static void
h1_start(struct conn *c)
{
	if (c->ssl != NULL) /* the handshake is done */
		metrics_tls(c, METRICS_TLS_DONE);
	if (c->ssl != NULL && tls_alpn_h2(c->ssl)) {
		h2_start(c);
		return;
	}
	conn_arm(c, EV_READ, c->w->tv_header);
}

/*
 * A plain listener with http2 = on takes prior-knowledge h2c: the first
 * bytes are the HTTP/2 preface.  1 when they are (the connection is
 * HTTP/2's now) or may still be (waiting for more), 0 for HTTP/1.
 */
static int
h2c_preface(struct h1 *h)
{
	struct conn *c = &h->c;
	size_t n = c->rlen < H2_PREFACE_LEN ? c->rlen : H2_PREFACE_LEN;

	if (h->nrequests > 0 || h->state != H1_IDLE || c->ssl != NULL ||
	    !c->conf->listens[c->listen_idx].http2 || memcmp(c->rbuf, H2_PREFACE, n) != 0)
		return 0;
	if (c->rlen < H2_PREFACE_LEN)
		conn_arm(c, EV_READ, c->w->tv_header);
	else
		h2_start(c);
	return 1;
}

void
h1_drain(struct conn *c)
{
	if (h1_of(c)->state == H1_UPGRADED) {
		h1_of(c)->up->drain(h1_of(c)->up_state, c);
		return;
	}
	if (h1_of(c)->state == H1_IDLE && c->osent == c->olen && c->rpos == c->rlen)
		conn_close(c, "shutting down");
	/* Otherwise the response in progress carries "Connection: close". */
}

int
h1_answering_early(const struct request *r)
{
	const struct h1 *h = (const struct h1 *)r->conn;

	return h->state == H1_HEAD || h->state == H1_BODY ||
	    (h->state == H1_HANDLER && h->x != NULL && &h->x->req == r && !h->x->body_done);
}

unsigned
h1_requests(const struct request *r)
{
	return ((const struct h1 *)r->conn)->nrequests;
}

/* Records why the exchange in progress on c, if any, ends now. */
static void
h1_term(struct conn *c, const char *term)
{
	struct h1 *h = h1_of(c);

	if (h->x != NULL)
		http_req_term(&h->x->req, term);
}

/*
 * Why an exchange a close cut short ended, when whoever closed did not say
 * (h1_term, http_req_term): the transport's own failures are ours; any
 * other is the client's connection going (a reset, a broken pipe).
 */
static const char *
close_term(const char *reason)
{
	if (strcmp(reason, "out of memory") == 0 || strcmp(reason, "file shrank while being sent") == 0)
		return REQ_TERM_INTERNAL;
	return REQ_TERM_CLIENT_CLOSED;
}

/* The process stops now: whatever is in progress on c is cut. */
void
h1_stop(struct conn *c)
{
	h1_term(c, REQ_TERM_SHUTDOWN);
	conn_close(c, "process stopping");
}

void
h1_conn_gone(struct conn *c)
{
	struct worker *w = c->w;

	TAILQ_REMOVE(&w->conns, c, link);
	w->nconns--;
	if (!h1_of(c)->inner) {
		stats_add(&w->stats.connections_active, (uint64_t)-1);
		metrics_conn(c, -1);
	}
	if (c->ssl != NULL && c->handshaking)
		metrics_tls(c, METRICS_TLS_FAILED);
	worker_snap_put(w, c->snap);
}

static void
h1_close(struct conn *c, const char *reason)
{
	struct h1 *h = h1_of(c);
	struct worker *w = c->w;
	struct exchange *x = h->x;
	/* Whole: the handler ended it and no filtered bytes wait. */
	int whole = x != NULL && (x->req.flags & REQ_DONE) &&
	    !((x->req.flags & REQ_FILTERED) && pipeline_pending(&x->req));

	if (x != NULL && !whole)
		http_req_term(&x->req, (x->req.flags & REQ_IN_MW) ? REQ_TERM_MIDDLEWARE :
		    close_term(reason));
	if (x != NULL && (h->state == H1_HANDLER || h->state == H1_TUNNEL) &&
	    !(x->req.flags & (REQ_DONE | REQ_MW_PAUSED)) && x->req.route != NULL &&
	    x->req.route->handler->abort != NULL)
		x->req.route->handler->abort(&x->req);
	/* A request cut short leaves its line too: with the status sent, or 499
	 * (as nginx logs it) when the client got no answer.  A tunnel's line was
	 * written when it opened. */
	if (x != NULL && x->req.mw_ran > 0)
		pipeline_log(&x->req);
	if (x != NULL && (h->state == H1_HANDLER || h->state == H1_BODY)) {
		if (!(x->req.flags & REQ_STARTED))
			x->req.status = 499;
		http_resp_log(&x->req, usec_since(&x->req.start));
	}
	if (x != NULL) {
		http_req_release(&x->req);
		freelist_put(&w->heads, x);
		h->x = NULL;
	}
	h1_conn_gone(c);
}

void
h1_close_when_sent(struct request *r)
{
	r->conn->closing = 1;
	conn_kick(r->conn);
}

static size_t
h1_pending(const struct request *r)
{
	return conn_pending(r->conn);
}

static void
h1_abort(struct request *r, const char *reason)
{
	conn_close(r->conn, reason);
}

static void
h1_resume(struct request *r)
{
	struct conn *c = r->conn;
	struct h1 *h = h1_of(c);

	if (h->x == NULL || !h->x->body_paused)
		return;
	h->x->body_paused = 0;
	c->no_read = 0;
	conn_arm(c, EV_READ, h->state == H1_TUNNEL ? NULL : c->w->tv_body);
	conn_kick(c);
}

void
h1_request_done(struct request *r)
{
	struct conn *c = r->conn;
	struct h1 *h = h1_of(c);
	struct worker *w = c->w;
	uint64_t us = usec_since(&r->start);

	/* An answer from a paused middleware (its timer) is a middleware's too. */
	if (r->flags & (REQ_IN_MW | REQ_MW_PAUSED))
		http_req_term(r, REQ_TERM_MIDDLEWARE);
	if (h->state != H1_TUNNEL) /* a tunnel was counted when it opened */
		http_resp_log(r, us);
	if (r->flags & REQ_CLOSE)
		c->closing = 1;
	if (h->state == H1_HEAD || h->state == H1_BODY ||
	    (h->state == H1_HANDLER && !h->x->body_done)) {
		/* Answered before the request was read whole: framing is in doubt,
		 * and the client may still be sending. */
		c->closing = 1;
		c->linger = 1;
	}
	if (c->closing && c->rpos < c->rlen)
		c->linger = 1; /* pipelined requests we will not answer: see conn_input_waiting */
	/* Drop the head (and any body bytes consumed with it) from the buffer. */
	if (c->rpos < c->rlen && !c->closing) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
	} else {
		c->rlen = 0;
	}
	c->rpos = 0;
	http_req_release(r);
	freelist_put(&w->heads, h->x);
	h->x = NULL;
	h->state = H1_IDLE;
	c->no_read = 0;
}

/* Answers a request we could not parse or accept, then closes. */
static void
request_fail(struct h1 *h, int status, const char *why)
{
	struct conn *c = &h->c;
	struct request *r = &h->x->req;

	if (log_enabled(LOG_LVL_INFO) && worker_log_client_error(c->w)) {
		char peer[INET6_ADDRSTRLEN];
		log_info("conn %d from %s: %d: %s", c->fd, conn_peer(c, peer, sizeof(peer)),
		    status, why);
	}
	r->flags |= REQ_CLOSE;
	http_req_term(r, status == 408 ? REQ_TERM_CLIENT_TIMEOUT : REQ_TERM_BAD_REQUEST);
	if (h->x->hr.meth == HTTP_M_HEAD)
		r->flags |= REQ_HEAD_ONLY;
	h->state = H1_HEAD; /* framing in doubt: h1_request_done closes */
	http_resp_error(r, status);
}

static void
request_begin(struct h1 *h)
{
	struct conn *c = &h->c;

	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	/* After a reload, each request takes the newest configuration; on a
	 * listener that went, the connection ends with this one. */
	int stale = c->snap != c->w->snap && worker_conn_follow(c) < 0;
	h->x = freelist_get(&c->w->heads);
	if (h->x == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	http_request_reset(&h->x->hr);
	memset(&h->x->req, 0, sizeof(h->x->req));
	if (stale)
		h->x->req.flags |= REQ_CLOSE;
	h->x->req.conn = c;
	h->x->req.xo = &h1_exchange_ops;
	h->x->req.hr = &h->x->hr;
	resp_head_init(&h->x->req, h->x->resp_inline, sizeof(h->x->resp_inline));
	clock_gettime(CLOCK_MONOTONIC, &h->x->req.start);
	h->state = H1_HEAD;
	h->nrequests++;
}

static void
handler_start(struct h1 *h)
{
	struct request *r = &h->x->req;

	h->state = H1_HANDLER;
	if (r->route != NULL) {
		r->route->handler->start(r);
	} else if (r->hr->meth == HTTP_M_CONNECT) {
		/* We tunnel for no one (RFC 9110 9.3.6): not a method we implement. */
		r->flags |= REQ_CLOSE;
		http_resp_error(r, 501);
	} else if (r->hr->path_len == 1 && r->hr->path[0] == '*') {
		/* OPTIONS * asks about the server itself (RFC 9110 9.3.7): it is here. */
		http_resp_start(r, 200, NULL, 0);
		http_resp_end(r);
	} else {
		http_resp_error(r, 404);
	}
}

/* The head is in: route it, check the body framing, and go on. */
static void
dispatch(struct h1 *h)
{
	struct exchange *x = h->x;
	struct http_request *hr = &x->hr;
	struct request *r = &x->req;
	char *npath = (char *)(x + 1);
	const char *why;
	int status;

	if (!(hr->flags & HTTP_F_KEEPALIVE))
		r->flags |= REQ_CLOSE;
	if ((status = http_req_route(r, npath, &why)) != 0) {
		request_fail(h, status, why);
		return;
	}
	x->body_left = (hr->flags & HTTP_F_HAS_CL) ? hr->content_length : 0;
	x->body_done = 1;
	x->body_paused = 0;
	if (hr->flags & HTTP_F_CHUNKED)
		http_chunked_init(&x->chunk);
	if (x->body_left > 0 || (hr->flags & HTTP_F_CHUNKED))
		x->body_done = 0;
	/* The route's middleware sees the head before any body is read; one
	 * that answers ends the exchange here (and a body never read closes
	 * the connection, as for any early answer). */
	if (r->route != NULL && r->route->nmw > 0) {
		h->state = H1_HANDLER;
		r->flags |= REQ_IN_MW;
		int rc = pipeline_request(r);
		if (rc == MW_ANSWERED)
			return; /* r may be gone */
		r->flags &= ~REQ_IN_MW;
		if (rc == MW_PAUSE) {
			/* No body is read for a handler not yet started; the client
			 * going away is still noticed (h1_drained). */
			x->body_paused = 1;
			return;
		}
		h->state = H1_HEAD;
	}
	dispatch_handler(h);
}

void
h1_dispatch_resume(struct request *r)
{
	struct h1 *h = h1_of(r->conn);

	r->flags &= ~REQ_IN_MW;
	h->x->body_paused = 0;
	h->state = H1_HEAD;
	conn_kick(r->conn); /* from a timer: flush, and read what waits in the buffer */
	dispatch_handler(h);
}

/* The request phase went through: the body, then the handler. */
static void
dispatch_handler(struct h1 *h)
{
	struct conn *c = &h->c;
	struct worker *w = c->w;
	struct exchange *x = h->x;
	struct http_request *hr = &x->hr;
	struct request *r = &x->req;

	if (!x->body_done) {
		if ((hr->flags & HTTP_F_EXPECT_100) && hr->version == 11)
			OUT_LIT(c, "HTTP/1.1 100 Continue\r\n\r\n");
		conn_arm(c, EV_READ, w->tv_body);
		if (r->route != NULL && (r->route->handler->flags & HANDLER_WANTS_BODY)) {
			/* The handler takes the body as it comes (h1_parse). */
			handler_start(h);
			return;
		}
		h->state = H1_BODY;
		return;
	}
	handler_start(h);
}

/* Bad body framing: answer if nothing was sent yet (-1), else cut the
 * connection (-2: it is gone). */
static int
body_error(struct h1 *h, int status, const char *why)
{
	struct request *r = &h->x->req;

	if (h->state == H1_HANDLER) {
		const struct handler_ops *hd = r->route->handler;
		if (hd->abort != NULL)
			hd->abort(r);
		if (r->flags & REQ_STARTED) {
			http_req_term(r, status == 408 ? REQ_TERM_CLIENT_TIMEOUT : REQ_TERM_BAD_REQUEST);
			r->flags |= REQ_DONE;
			conn_close(&h->c, why);
			return -2;
		}
	}
	request_fail(h, status, why);
	return -1;
}

/*
 * Reads request body bytes from the buffer, handing them to the handler
 * when it takes them (else dropping them).  Returns 1 when the body is
 * complete, 0 when more must be read, 2 when the handler paused, -1 when
 * the exchange ended (answered), or -2 when the connection was closed.
 */
static int
body_feed(struct h1 *h)
{
	struct conn *c = &h->c;
	struct exchange *x = h->x;
	struct request *r = &x->req;
	int deliver = h->state == H1_HANDLER;
	int rc = 0;

	while (!x->body_done && c->rpos < c->rlen) {
		size_t off = 0, len;
		if (!(x->hr.flags & HTTP_F_CHUNKED)) {
			size_t avail = c->rlen - c->rpos;
			len = (uint64_t)x->body_left < avail ? (size_t)x->body_left : avail;
			x->body_left -= (int64_t)len;
			c->rpos += len;
			off = c->rpos - len;
			x->body_done = x->body_left == 0;
		} else {
			size_t doff;
			ssize_t n = http_chunked_parse(&x->chunk, c->rbuf + c->rpos, c->rlen - c->rpos,
			    &doff, &len, c->conf->global.max_header_size);
			if (n < 0)
				return body_error(h, 400, "bad chunked framing");
			off = c->rpos + doff;
			c->rpos += (size_t)n;
			/* Extensions count: else megabytes of them could ride on a tiny body. */
			if (x->chunk.total + x->chunk.ext_bytes > c->conf->global.max_body_size)
				return body_error(h, 413, "chunked body larger than max_body_size");
			x->body_done = x->chunk.state == CHUNK_DONE;
		}
		if (deliver && (len > 0 || x->body_done)) {
			if (len > 0)
				rc = r->route->handler->body(r, c->rbuf + off, len);
			if (rc == 0 && x->body_done && h->x == x)
				rc = r->route->handler->body(r, NULL, 0);
			if (h->x != x)
				return -1; /* answered and finished inside the callback */
			if (rc < 0) {
				deliver = 0; /* the handler answered; drop the rest */
				continue;
			}
			if (rc == 1) {
				x->body_paused = 1;
				break;
			}
		}
	}
	if (x->body_done)
		return 1;
	/* Everything read so far was body and is handled: reuse the space after the head. */
	if (c->rpos == c->rlen)
		c->rlen = c->rpos = x->hr.head_len;
	return x->body_paused ? 2 : 0;
}

/* Handles the requests in the read buffer until output backs up.
 * Returns -1 if the connection was closed. */
static int
h1_parse(struct h1 *h)
{
	struct conn *c = &h->c;
	struct worker *w = c->w;

	while (!c->closing && c->fo == NULL && c->olen - c->osent < OUT_HIGH_WATER) {
		if (h->state == H1_IDLE) {
			if (c->rpos == c->rlen)
				break;
			request_begin(h);
			if (h->x == NULL)
				return -1; /* closed */
		}
		if (h->state == H1_HEAD) {
			ssize_t n = http_parse_request(&h->x->hr, c->rbuf, c->rlen, &w->limits);
			if (n == 0) {
				/* Slowloris: the whole head must arrive within header_timeout. */
				uint64_t ms = usec_since(&h->x->req.start) / 1000;
				uint64_t limit = (uint64_t)c->conf->global.header_timeout;
				if (ms >= limit)
					request_fail(h, 408, "request head too slow");
				else
					conn_arm_deadline(c, limit - ms);
				break;
			}
			if (n < 0) {
				request_fail(h, (int)-n, h->x->hr.error);
				continue;
			}
			c->rpos = (size_t)n;
			dispatch(h);
			continue;
		}
		if (h->state == H1_BODY) {
			int rc = body_feed(h);
			if (rc == -2)
				return -1;
			if (rc == 1)
				handler_start(h);
			if (rc == 0)
				break;
			continue;
		}
		if (h->state == H1_HANDLER && !h->x->body_done && !h->x->body_paused) {
			int rc = body_feed(h);
			if (rc == -2)
				return -1;
			if (rc == 0 || rc == 2)
				break;
			continue;
		}
		break; /* H1_HANDLER waits for the handler */
	}
	return 0;
}

/* Parses what is buffered and sends what that produced, for as long as
 * output goes out at once. */
static void
h1_process(struct conn *c)
{
	struct h1 *h = h1_of(c);

	for (;;) {
		c->in_loop = 1;
		if (h1_parse(h) < 0)
			return;
		c->in_loop = 0;
		if (conn_flush(c) < 0)
			return;
		/* Output went out at once: go on with requests already read. */
		if (c->writing || c->closing || h->state != H1_IDLE || c->rpos == c->rlen)
			return;
	}
}

static void
h1_input(struct conn *c, size_t n)
{
	struct h1 *h = h1_of(c);

	if (h->state == H1_TUNNEL) {
		struct request *r = &h->x->req;
		/* The buffer keeps the head: tunnel bytes go after it and are
		 * handed over at once. */
		if (r->route->handler->body(r, c->rbuf + c->rlen, n) == 1) {
			h->x->body_paused = 1;
			c->no_read = 1;
			conn_disarm(c);
		}
		return;
	}
	c->rlen += n;
	if (h->nrequests == 0 && h2c_preface(h))
		return;
	h1_process(c);
}

static void
h1_full(struct conn *c)
{
	/* The parser's limits fit in the buffer and bodies are consumed as they
	 * come: only a handler still at work (with pipelined requests behind
	 * it) fills it.  Reading goes on once it is done (h1_drained). */
	if (h1_of(c)->state != H1_HANDLER)
		conn_close(c, "read buffer full");
}

static void
h1_eof(struct conn *c, int err)
{
	struct h1 *h = h1_of(c);

	if (h->state == H1_TUNNEL && err == 0 && !h->x->body_done) {
		/* The client is done sending; the other way may go on. */
		h->x->body_done = 1;
		conn_disarm(c);
		h->x->req.route->handler->body(&h->x->req, NULL, 0);
		return;
	}
	h1_term(c, REQ_TERM_CLIENT_CLOSED);
	if (h->state == H1_BODY && err == 0)
		conn_close(c, "client closed during request body");
	else if (h->state == H1_HEAD && c->rlen > 0 && err == 0)
		conn_close(c, "client closed during request head");
	else
		conn_close(c, err == 0 ? "client closed" : strerror(err));
}

/* Everything queued is sent: what to wait for next. */
static int
h1_drained(struct conn *c)
{
	struct h1 *h = h1_of(c);
	struct worker *w = c->w;
	const struct handler_ops *hd = h->x != NULL && h->x->req.route != NULL ?
	    h->x->req.route->handler : NULL;

	if (h->state == H1_IDLE)
		conn_release_input(c);
	if (w->draining && h->state == H1_IDLE && c->rpos == c->rlen) {
		conn_close(c, "shutting down");
		return -1;
	}
	switch (h->state) {
	case H1_IDLE:
		conn_arm(c, EV_READ, c->rlen > 0 ? w->tv_header : w->tv_keepalive);
		break;
	case H1_HEAD:
		conn_arm(c, EV_READ, w->tv_header);
		break;
	case H1_BODY:
		conn_arm(c, EV_READ, w->tv_body);
		break;
	case H1_TUNNEL:
		if (h->x->body_done || h->x->body_paused)
			conn_disarm(c);
		else
			conn_arm(c, EV_READ, NULL);
		if (hd->writable != NULL)
			hd->writable(&h->x->req);
		break;
	case H1_HANDLER:
		/* Waiting for the handler: read the body if it wants more, else only
		 * watch for the client going away (its own timeouts apply; a paused
		 * middleware's too: what the client sends meanwhile waits in rbuf). */
		if (h->x->body_done || (h->x->req.flags & REQ_MW_PAUSED))
			conn_arm(c, EV_READ, NULL);
		else if (h->x->body_paused)
			conn_disarm(c);
		else
			conn_arm(c, EV_READ, w->tv_body);
		/* Filtered file bytes go on as the output drains. */
		if ((h->x->req.flags & REQ_FILTERED) && pipeline_writable(&h->x->req))
			break;
		if (hd != NULL && hd->writable != NULL && (h->x->req.flags & REQ_STARTED))
			hd->writable(&h->x->req);
		break;
	case H1_UPGRADED:
		break; /* not reached: the upgraded callbacks have the connection */
	}
	return 0;
}

static void
h1_timeout(struct conn *c)
{
	struct h1 *h = h1_of(c);

	switch (h->state) {
	case H1_HEAD:
		if (c->rlen > 0) {
			request_fail(h, 408, "request head timed out");
			conn_flush(c);
			return;
		}
		conn_close(c, "idle");
		return;
	case H1_BODY:
		request_fail(h, 408, "request body timed out");
		conn_flush(c);
		return;
	case H1_IDLE:
		conn_close(c, c->writing ? "send timed out" : "keep-alive timeout");
		return;
	case H1_HANDLER:
		/* A handler taking the body as it comes (a proxied upload) waits
		 * for the rest: 408 as when nobody takes it, if nothing was sent. */
		if (!c->writing && !h->x->body_done) {
			if (body_error(h, 408, "request body timed out") == -1)
				conn_flush(c);
			return;
		}
		conn_close(c, c->writing ? "send timed out" : "timed out");
		return;
	default:
		conn_close(c, c->writing ? "send timed out" : "timed out");
		return;
	}
}

static const struct conn_proto h1_proto = {
	.start = h1_start,
	.input = h1_input,
	.full = h1_full,
	.eof = h1_eof,
	.resume = h1_process,
	.drained = h1_drained,
	.timeout = h1_timeout,
	.close = h1_close,
};

static const struct exchange_ops h1_exchange_ops = {
	.start = h1_resp_start,
	.head = h1_resp_head,
	.interim = h1_resp_interim,
	.interim_header = h1_resp_interim_header,
	.interim_end = h1_resp_interim_end,
	.data = h1_resp_data,
	.file = h1_resp_file,
	.end = h1_resp_end,
	.pending = h1_pending,
	.abort = h1_abort,
	.resume = h1_resume,
	.close_when_sent = h1_close_when_sent,
	.dispatch_resume = h1_dispatch_resume,
	.tunnel_start = h1_tunnel_start,
	.tunnel_write = h1_tunnel_write,
	.tunnel_close = h1_tunnel_close,
	.upgrade = h1_upgrade,
};
