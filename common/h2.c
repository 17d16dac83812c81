/*
 * h2: HTTP/2 connections (RFC 9113) on libnghttp2.
 *
 * nghttp2 owns the protocol: framing, HPACK, flow control, stream states,
 * and the checks RFC 9113 8 asks of a request (pseudo-headers, connection
 * -specific fields, content-length against DATA).  This file is the glue:
 *
 *  - input: what the transport read goes to nghttp2_session_mem_recv,
 *    whose callbacks build each stream's request and run it;
 *  - a request's head is turned into HTTP/1.1 text and read by the same
 *    parser as every HTTP/1 request (http_parse_request), so the limits
 *    and rules on header names, values, Host and Content-Length are one
 *    code path; the exchange then runs as h1's does (route, middleware,
 *    handler), the log showing "HTTP/2.0";
 *  - output: a response head becomes a HEADERS frame, the body a queue of
 *    memory and file runs per stream that nghttp2 pulls as DATA frames
 *    within the peer's windows.  Frames go to the transport's output
 *    buffer directly (file bytes are read straight into it, one copy, as
 *    TLS needs anyway) while it is below HTTP_OUT_HIGH_WATER;
 *  - back-pressure: a stream's own queue is what http_resp_pending says,
 *    so a handler (the proxy) stops reading its backend while the client
 *    does not open its window; request body bytes a paused handler has
 *    not taken are held and not acknowledged (no WINDOW_UPDATE), so the
 *    client's window is the bound on what is held.
 *
 * Floods (RFC 9113 10.5 and the known attacks) are bounded by nghttp2's
 * options and a budget of "glitches" per connection: frames that make no
 * request progress (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, empty DATA,
 * invalid frames, refused header blocks) cost one token each, tokens come
 * back at H2_GLITCH_RATE a second up to H2_GLITCH_BURST, and a connection
 * that runs out is sent GOAWAY ENHANCE_YOUR_CALM and closed.
 */
#include "common/h2.h"
#include "common/h2_int.h"

#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/h1.h"
#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"
#include "common/pipeline.h"
#include "common/route.h"
#include "common/sbuf.h"
#include "common/server.h"

static const struct upgraded_ops h2_upgraded_ops;
static int h2_pump(struct h2c *h);

/* Records why the exchange of st, if any, ends now. */
static void
stream_term(struct h2_stream *st, const char *term)
{
	if (st->x != NULL)
		http_req_term(&st->x->req, term);
}

/* The exchange is over: counted, logged, its memory back to the pool. */
void
h2_stream_log(struct h2_stream *st)
{
	struct request *r = &st->x->req;
	uint64_t us = usec_since(&r->start);

	if (st->logged)
		return; /* a tunnel's, when it opened */
	st->logged = 1;
	if (r->flags & (REQ_IN_MW | REQ_MW_PAUSED))
		http_req_term(r, REQ_TERM_MIDDLEWARE);
	if (!(r->flags & REQ_STARTED))
		r->status = 499;
	http_resp_log(r, us);
}

void
h2_stream_release(struct h2_stream *st)
{
	struct exchange *x = st->x;

	if (x == NULL)
		return;
	http_req_release(&x->req);
	freelist_put(&st->h->c->w->heads, x);
	st->x = NULL;
}

/* The exchange ends before its response did (reset, connection gone):
 * the handler lets go, the line is logged. */
static void
stream_abort(struct h2_stream *st, const char *term)
{
	struct request *r;

	if (st->x == NULL)
		return;
	r = &st->x->req;
	http_req_term(r, (r->flags & REQ_IN_MW) ? REQ_TERM_MIDDLEWARE : term);
	if (st->handler_on && !(r->flags & (REQ_DONE | REQ_MW_PAUSED)) && r->route != NULL &&
	    r->route->handler->abort != NULL)
		r->route->handler->abort(r);
	h2_stream_log(st);
	h2_stream_release(st);
}

static void
stream_free(struct h2_stream *st)
{
	struct h2c *h = st->h;

	/* Bytes held unacknowledged go back to the connection's window, or
	 * it would shrink with every stream that ended before taking them. */
	size_t unread = st->held_len + h2_relay_unread(st);
	if (unread > 0)
		nghttp2_session_consume_connection(h->s, unread);
	h2_relay_free(st);
	h2_stream_out_free(st);
	h2_head_free(&st->in);
	free(st->head);
	free(st->held);
	sbuf_free(&st->interim);
	TAILQ_REMOVE(&h->streams, st, link);
	h->nstreams--;
	free(st);
}

static int
on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct h2c *h = arg;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->h = h;
	st->id = frame->hd.stream_id;
	st->fd = -1;
	st->in.https = h->c->ssl != NULL; /* :scheme is the listener's */
	clock_gettime(CLOCK_MONOTONIC, &st->start);
	TAILQ_INSERT_TAIL(&h->streams, st, link);
	h->nstreams++;
	nghttp2_session_set_stream_user_data(s, st->id, st);
	return 0;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
	struct h2c *h = arg;
	const struct conf_global *g = &h->c->conf->global;
	struct h2_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);

	(void)flags;
	if (st == NULL || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers: read and dropped, as nginx does */
	if (h2_head_field(&st->in, name, nlen, value, vlen, g->max_header_size, g->max_headers) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
	return 0;
}

/* Answers st's request with an error, the handler never started. */
void
h2_stream_fail(struct h2_stream *st, int status, const char *why)
{
	struct conn *c = st->h->c;
	struct request *r = &st->x->req;

	if (log_enabled(LOG_LVL_INFO) && worker_log_client_error(c->w)) {
		char peer[64];
		log_info("conn %d from %s: h2 stream %d: %d: %s", c->fd,
		    conn_peer(c, peer, sizeof(peer)), st->id, status, why);
	}
	http_req_term(r, REQ_TERM_BAD_REQUEST);
	st->body_drop = 1;
	http_resp_error(r, status);
}

/* A Sec-WebSocket-Key for an extended CONNECT's HTTP/1.1 form: any
 * 16 bytes will do (it proves nothing here), base64.  0 or -1. */
static int
ws_key(char out[25])
{
	unsigned char raw[16];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw)) == 24 ? 0 : -1;
}

/* Tells the client to take its next requests to a new connection: the
 * streams up to the last one seen are served, later ones refused. */
static void
goaway(struct h2c *h)
{
	if (h->goaway)
		return;
	h->goaway = 1;
	h->goaway_id = h->max_id;
	nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, h->goaway_id, NGHTTP2_NO_ERROR, NULL, 0);
}

/* The exchange of a stream whose head is whole, from the worker's pool;
 * NULL when there is none. */
static struct exchange *
stream_exchange(struct h2_stream *st)
{
	struct exchange *x = freelist_get(&st->h->c->w->heads);

	if (x == NULL)
		return NULL;
	http_request_reset(&x->hr);
	memset(&x->req, 0, sizeof(x->req));
	x->req.conn = st->h->c;
	x->req.xo = &h2_exchange_ops;
	x->req.xs = st;
	x->req.hr = &x->hr;
	x->req.start = st->start;
	resp_head_init(&x->req, x->resp_inline, sizeof(x->resp_inline));
	st->x = x;
	return x;
}

/*
 * Reads the head as the one parser reads an HTTP/1.1 one.  0, or -1 when
 * the stream was answered instead (a 4xx).
 */
static int
stream_parse(struct h2_stream *st, int end_stream)
{
	struct exchange *x = st->x;
	char key[25];
	size_t len = 0;

	st->ext = st->in.protocol != NULL;
	st->head = h2_head_text(&st->in, !end_stream,
	    st->ext && ws_key(key) == 0 ? key : NULL, &len);
	ssize_t n = st->head != NULL ?
	    http_parse_request(&x->hr, st->head, len, &st->h->c->w->limits) : 0;
	if (n > 0) {
		/* The log shows the protocol the client spoke. */
		x->hr.version = 20;
		memcpy((char *)x->hr.line + x->hr.line_len - 8, "HTTP/2.0", 8);
		return 0;
	}
	int refuse = st->in.refuse;
	/* Something must be in the log line: the pseudo-headers as sent. */
	x->hr.line = st->in.path != NULL ? st->in.path : "-";
	x->hr.line_len = (uint32_t)strlen(x->hr.line);
	x->hr.meth = st->in.method != NULL && strcmp(st->in.method, "HEAD") == 0 ?
	    HTTP_M_HEAD : HTTP_M_OTHER;
	if (x->hr.meth == HTTP_M_HEAD)
		x->req.flags |= REQ_HEAD_ONLY;
	h2_stream_fail(st, refuse != 0 ? refuse : n < 0 ? (int)-n : 500,
	    refuse == 431 ? "header list too large" : refuse == 400 ?
	    "Host and :authority differ" : x->hr.error != NULL ? x->hr.error :
	    "out of memory");
	if (refuse == 431)
		(void)h2_glitch(st->h, 10);
	return -1;
}

/* The request head is whole: the exchange begins, as h1's dispatch does. */
static void
stream_begin(struct h2_stream *st, int end_stream)
{
	struct h2c *h = st->h;
	struct conn *c = h->c;
	struct worker *w = c->w;

	/* Past a GOAWAY's last stream: not taken, so the client may retry it
	 * elsewhere (RFC 9113 6.8). */
	if (h->goaway && st->id > h->goaway_id) {
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
		return;
	}
	/* After a reload, or past keepalive_requests, this one is served and
	 * the client is told to take the next to a new connection. */
	if (c->snap != w->snap || ++h->nreq >= c->conf->global.keepalive_requests || w->draining)
		goaway(h);
	if (stream_exchange(st) == NULL) {
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	st->body_done = end_stream;
	st->body_ms = clock_ms();
	/* An extended CONNECT's data waits for the tunnel (h2_tunnel_start). */
	st->body_paused = st->in.protocol != NULL;
	if (stream_parse(st, end_stream) < 0)
		return;

	struct exchange *x = st->x;
	struct request *r = &x->req;
	const char *why;
	int status;
	if ((status = http_req_route(r, (char *)(x + 1), &why)) != 0) {
		h2_stream_fail(st, status, why);
		return;
	}
	if (r->route != NULL && r->route->nmw > 0) {
		r->flags |= REQ_IN_MW;
		int rc = pipeline_request(r);
		if (rc == MW_ANSWERED)
			return; /* the exchange may be over */
		r->flags &= ~REQ_IN_MW;
		if (rc == MW_PAUSE) {
			/* Body bytes wait (unacknowledged) for the handler. */
			st->mw_paused = 1;
			st->body_paused = 1;
			return;
		}
	}
	h2_stream_handler_start(st);
}

/* The request phase went through: the handler, now if it takes the body
 * as it comes (or there is none), else once the body is in (dropped). */
void
h2_stream_handler_start(struct h2_stream *st)
{
	struct request *r = &st->x->req;

	int takes_body = r->route != NULL && (r->route->handler->flags & HANDLER_WANTS_BODY) &&
	    r->route->handler->body != NULL;

	/* 100 (Continue) for a client waiting for it (RFC 9110 10.1.1): the
	 * body is wanted now, by the handler or to be read and dropped. */
	if (!st->body_done && !st->ext && !st->continued && (r->hr->flags & HTTP_F_EXPECT_100)) {
		st->continued = 1;
		h2_continue(st);
	}
	/* An extended CONNECT's data is a tunnel's, never a body to wait for. */
	if (!st->body_done && !st->ext && !takes_body)
		return; /* h2_stream_body_end starts it */
	st->handler_on = 1;
	if (r->route != NULL) {
		r->route->handler->start(r);
	} else if (r->hr->meth == HTTP_M_CONNECT) {
		http_resp_error(r, 501); /* we tunnel for no one */
	} else if (r->hr->path_len == 1 && r->hr->path[0] == '*') {
		http_resp_start(r, 200, NULL, 0);
		http_resp_end(r);
	} else {
		http_resp_error(r, 404);
	}
}

static int
on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
    void *arg)
{
	struct h2c *h = arg;
	struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	if (st == NULL) {
		nghttp2_session_consume(s, id, len);
		return 0;
	}
	st->body_in += len;
	if (st->x != NULL && st->body_in > h->c->conf->global.max_body_size && !st->body_drop &&
	    !st->ext) {
		struct request *r = &st->x->req;
		nghttp2_session_consume(s, id, len);
		if (!(r->flags & REQ_STARTED)) {
			if (st->handler_on && r->route->handler->abort != NULL)
				r->route->handler->abort(r);
			st->handler_on = 0;
			h2_stream_fail(st, 413, "request body larger than max_body_size");
		} else {
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		}
		return 0;
	}
	h2_stream_body(st, data, len);
	return 0;
}

static int
on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct h2c *h = arg;
	struct h2_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
	int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (st != NULL && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			stream_begin(st, end);
			return 0;
		}
		break;
	case NGHTTP2_DATA:
		if (frame->hd.length == 0 && !end && h2_glitch(h, 1) < 0)
			return 0;
		break;
	case NGHTTP2_PING:
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
			(void)h2_glitch(h, 1);
		break;
	case NGHTTP2_GOAWAY:
		/* The client is done: ours before the close (RFC 9113 6.8: an
		 * endpoint SHOULD send one), its streams still served. */
		goaway(h);
		break;
	case NGHTTP2_WINDOW_UPDATE:
		/* Progress when it opens a window a response waits on; else noise. */
		if (frame->hd.stream_id == 0 ? !h2_output_waiting(h) :
		    st == NULL || st->queued == 0)
			(void)h2_glitch(h, 1);
		break;
	default:
		break;
	}
	if (end && st != NULL && (st->x != NULL || st->relay != NULL) && !st->body_done)
		h2_stream_body_end(st);
	return 0;
}

static int
on_invalid_frame(nghttp2_session *s, const nghttp2_frame *frame, int err, void *arg)
{
	(void)s;
	(void)frame;
	(void)err;
	(void)h2_glitch(arg, 10);
	return 0;
}

/* Our END_STREAM went out before the client's: the rest of its body is
 * not wanted (RFC 9113 8.1, RST_STREAM NO_ERROR). */
static int
on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct h2c *h = arg;
	struct h2_stream *st;

	/* A window the client made overflow, or DATA past ours: nghttp2 resets
	 * the stream, but a SETTINGS_INITIAL_WINDOW_SIZE that overflows a
	 * window is a connection error (RFC 9113 6.9.2), and any flow-control
	 * error is the client's, which 5.4.1 lets end the connection. */
	if (frame->hd.type == NGHTTP2_RST_STREAM &&
	    frame->rst_stream.error_code == NGHTTP2_FLOW_CONTROL_ERROR) {
		/* After a graceful GOAWAY too; a second call does nothing. */
		nghttp2_session_terminate_session(s, NGHTTP2_FLOW_CONTROL_ERROR);
		h->goaway = 1;
		return 0;
	}
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
	if (st != NULL && !st->body_done)
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
	return 0;
}

static int
on_stream_close(nghttp2_session *s, int32_t id, uint32_t err, void *arg)
{
	struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)arg;
	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	if (st->x != NULL) {
		if (err == NGHTTP2_NO_ERROR && st->out_end)
			h2_stream_release(st);
		else
			stream_abort(st, REQ_TERM_CLIENT_CLOSED);
	}
	stream_free(st);
	return 0;
}

/*
 * The connection: input to nghttp2, frames out, and what to wait for.
 */

/* Whether some stream's response waits on the client's window. */
int
h2_output_waiting(const struct h2c *h)
{
	const struct h2_stream *st;

	TAILQ_FOREACH(st, &h->streams, link)
		if (st->queued > 0 && !st->cut)
			return 1;
	return 0;
}

/* Everything is sent: wait for the client, for as long as the state says. */
static void
arm(struct h2c *h)
{
	struct conn *c = h->c;
	struct worker *w = c->w;
	int64_t oldest;

	if (h->goaway && h->nstreams == 0 && !nghttp2_session_want_write(h->s)) {
		c->closing = 1;
		c->linger = 1;
		conn_kick(c);
		return;
	}
	if (h->nstreams == 0)
		conn_arm(c, EV_READ, w->tv_keepalive);
	else if (h2_output_waiting(h))
		conn_arm(c, EV_READ, w->tv_send);   /* a zero window times out as a slow reader */
	else if ((oldest = h2_awaiting_body(h)) >= 0) {
		int64_t left = oldest + c->conf->global.body_timeout - clock_ms();
		conn_arm_deadline(c, left > 0 ? (uint64_t)left : 1);
	}
	else
		conn_arm(c, EV_READ, NULL);         /* the handlers' own timeouts run */
}

/* Frames out while the transport takes them at once.  -1: closed. */
static int
h2_pump(struct h2c *h)
{
	struct conn *c = h->c;

	for (;;) {
		c->in_loop = 1;
		if (h->calm && !h->goaway) {
			nghttp2_session_terminate_session(h->s, NGHTTP2_ENHANCE_YOUR_CALM);
			h->goaway = 1;
		}
		int rv = nghttp2_session_send(h->s);
		if (rv == 0)
			h2_notify_writable(h);
		c->in_loop = 0;
		if (rv != 0) {
			conn_close(c, nghttp2_strerror(rv));
			return -1;
		}
		if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s) &&
		    !c->closing) {
			/* Over (GOAWAY both ways, or a fatal error sent). */
			c->closing = 1;
			c->linger = 1;
		}
		h->flushing = 1;
		h->again = 0;
		if (conn_flush(c) < 0)
			return -1;
		h->flushing = 0;
		if (!h->again)
			return 0;
	}
}

static void
h2_input(void *arg, struct conn *c, size_t n)
{
	struct h2c *h = arg;
	ssize_t rv;

	c->rlen += n;
	c->in_loop = 1;
	rv = nghttp2_session_mem_recv(h->s, (const uint8_t *)c->rbuf + c->rpos, c->rlen - c->rpos);
	c->in_loop = 0;
	c->rpos = c->rlen = 0;
	conn_release_input(c);
	if (rv < 0) {
		char peer[64];
		if (worker_log_client_error(c->w))
			log_info("conn %d from %s: h2: %s", c->fd, conn_peer(c, peer, sizeof(peer)),
			    nghttp2_strerror((int)rv));
		if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
			conn_close(c, "not an HTTP/2 client");
			return;
		}
		if (!h->goaway)
			nghttp2_session_terminate_session(h->s, rv == NGHTTP2_ERR_FLOODED ?
			    NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
		h->goaway = 1;
	}
	h2_pump(h);
}

static void
h2_eof(void *arg, struct conn *c, int err)
{
	(void)arg;
	conn_close(c, err == 0 ? "client closed" : strerror(err));
}

/*
 * Filtered bodies whose pump gave the worker's other connections a turn
 * (pipeline.c's slices: it kicks the connection to come back) go on,
 * where their stream's queue has room; h1_drained does the same.
 */
static void
filters_go(struct h2c *h)
{
	struct h2_stream *st;

	TAILQ_FOREACH(st, &h->streams, link) {
		struct request *r = st->x != NULL ? &st->x->req : NULL;
		if (r != NULL && (r->flags & REQ_FILTERED) && st->queued < HTTP_OUT_HIGH_WATER &&
		    pipeline_pending(r))
			pipeline_writable(r); /* may end the exchange; never frees st */
	}
}

static int
h2_drained(void *arg, struct conn *c)
{
	struct h2c *h = arg;

	(void)c;
	if (h->flushing) {
		h->again = nghttp2_session_want_write(h->s) || h->notify;
		if (!h->again)
			arm(h);
		return 0;
	}
	filters_go(h);
	if (nghttp2_session_want_write(h->s) || h->notify)
		return h2_pump(h);
	arm(h);
	return 0;
}

static void
h2_timeout(void *arg, struct conn *c)
{
	struct h2c *h = arg;
	struct h2_stream *st;

	if (c->writing) {
		conn_close(c, "send timed out");
		return;
	}
	if (h->nstreams == 0) {
		/* Idle: say so before going (RFC 9113 6.8). */
		nghttp2_session_terminate_session(h->s, NGHTTP2_NO_ERROR);
		h->goaway = 1;
		c->closing = 1;
		h2_pump(h);
		return;
	}
	if (!h2_output_waiting(h) && h2_awaiting_body(h) >= 0) {
		/* The deadline of the stream whose body stalled longest; none
		 * due (the timer fired a little early): the rest of the wait. */
		if (h2_body_timeouts(h) == 0)
			arm(h);
		else if (h2_pump(h) == 0)
			arm(h);
		return;
	}
	const char *why = h2_output_waiting(h) ? "send timed out (the client's window stayed shut)" :
	    "request body timed out";
	TAILQ_FOREACH(st, &h->streams, link)
		stream_term(st, REQ_TERM_CLIENT_TIMEOUT);
	conn_close(c, why);
}

/* Graceful stop: no new streams; those begun finish, then we close. */
static void
h2_drain(void *arg, struct conn *c)
{
	struct h2c *h = arg;

	goaway(h);
	conn_kick(c);
}

static void
h2_close(void *arg, struct conn *c, const char *reason)
{
	struct h2c *h = arg;
	struct h2_stream *st;
	const char *term = strcmp(reason, "process stopping") == 0 ? REQ_TERM_SHUTDOWN :
	    strncmp(reason, "send timed out", 14) == 0 || strcmp(reason, "request body timed out") == 0 ?
	    REQ_TERM_CLIENT_TIMEOUT : REQ_TERM_CLIENT_CLOSED;

	(void)c;
	while ((st = TAILQ_FIRST(&h->streams)) != NULL) {
		stream_abort(st, term);
		stream_free(st);
	}
	nghttp2_session_del(h->s);
	free(h);
}

static const struct upgraded_ops h2_upgraded_ops = {
	.input = h2_input,
	.eof = h2_eof,
	.drained = h2_drained,
	.timeout = h2_timeout,
	.drain = h2_drain,
	.close = h2_close,
};

static nghttp2_session_callbacks *
callbacks(void)
{
	nghttp2_session_callbacks *cb;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_send_callback(cb, h2_on_send);
	nghttp2_session_callbacks_set_send_data_callback(cb, h2_on_send_data);
	nghttp2_session_callbacks_set_on_begin_frame_callback(cb, h2_on_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	return cb;
}

int
h2_start(struct conn *c)
{
	const struct conf_global *g = &c->conf->global;
	struct h2c *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb = callbacks();
	nghttp2_option *opt = NULL;
	int rv = -1;

	if (h == NULL || cb == NULL || nghttp2_option_new(&opt) != 0)
		goto out;
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
	nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
	nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
	nghttp2_option_set_max_settings(opt, 32);
	h->c = c;
	TAILQ_INIT(&h->streams);
	h->glitches = H2_GLITCH_BURST;
	h->glitch_ms = clock_ms();
	h->max_id = -1;
	if (nghttp2_session_server_new2(&h->s, cb, h, opt) != 0)
		goto out;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)g->h2_max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)g->h2_window },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)g->max_header_size },
		/* WebSocket over HTTP/2 (RFC 8441). */
		{ NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 },
	};
	if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0,
	    (int32_t)g->h2_conn_window) != 0)
		goto out;
	rv = 0;
out:
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (rv < 0) {
		if (h != NULL && h->s != NULL)
			nghttp2_session_del(h->s);
		free(h);
		conn_close(c, "out of memory");
		return -1;
	}
	h1_handover(c, &h2_upgraded_ops, h);
	/* What came with the preface (or after the handshake) is the session's. */
	h2_input(h, c, 0);
	return 0;
}
