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

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#include "common/accesslog.h"
#include "common/clock.h"
#include "common/h1.h"
#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"
#include "common/pipeline.h"
#include "common/route.h"
#include "common/sbuf.h"
#include "common/server.h"

/* Frames that make no progress, per connection: a burst, then a rate. */
#define H2_GLITCH_BURST 1000
#define H2_GLITCH_RATE  100
/* RST_STREAM from the client (rapid reset, CVE-2023-44487): nghttp2's
 * token bucket, a burst then a rate per second. */
#define H2_RESET_BURST 200
#define H2_RESET_RATE  50
/* CONTINUATION frames after one HEADERS (the 2024 CONTINUATION flood). */
#define H2_MAX_CONTINUATIONS 8
/* Queued SETTINGS and PING acknowledgements a client does not read. */
#define H2_MAX_OUTBOUND_ACK 1000
/* Memory runs of a stream's output queue are allocated at least this big,
 * so a producer of small pieces does not make a chunk each. */
#define H2_CHUNK_MIN 4096

struct h2_chunk {
	struct h2_chunk *next;
	int file;                      /* a run of the stream's fd, else data[] */
	off_t off;                     /* file: where the run starts */
	size_t len, sent, cap;
	char data[];
};

struct h2c;

struct h2_stream {
	struct h2c *h;
	int32_t id;
	struct exchange *x;            /* while the exchange runs; NULL after */
	struct timespec start;
	TAILQ_ENTRY(h2_stream) link;
	/* The request head as it arrives (pseudo-headers kept apart), then
	 * as HTTP/1.1 text for the parser; x->hr points into head. */
	char *method, *path, *authority, *host;
	struct sbuf fields, cookie;
	char *head;
	size_t hbytes;                 /* as RFC 9113 counts a header list */
	unsigned nhdr;
	int refuse;                    /* a status to answer with instead (431) */
	/* The request body. */
	uint64_t body_in;
	char *held;                    /* bytes a paused handler has not taken */
	size_t held_len;
	unsigned body_done : 1;        /* END_STREAM came */
	unsigned body_end_told : 1;    /* the handler got its (NULL, 0) */
	unsigned body_paused : 1;
	unsigned body_drop : 1;        /* the handler answered: drop the rest */
	unsigned handler_on : 1;       /* the handler was started */
	unsigned mw_paused : 1;
	/* The response. */
	unsigned head_sent : 1;
	unsigned has_data : 1;         /* a data provider runs (not HEAD, not 204) */
	unsigned out_end : 1;          /* the handler ended the body */
	unsigned cut : 1;              /* reset it after what is queued */
	unsigned deferred : 1;         /* the provider waits for bytes */
	unsigned want_writable : 1;    /* the handler stopped above the mark */
	struct h2_chunk *q, *qtail;
	size_t queued;
	int fd;                        /* the file body's, owned; -1 */
	struct sbuf interim;           /* an interim response's fields: "name\0value\0" */
	int interim_status;
};

TAILQ_HEAD(h2_streams, h2_stream);

struct h2c {
	struct conn *c;
	nghttp2_session *s;
	struct h2_streams streams;
	unsigned nstreams;
	uint64_t nreq;
	int64_t glitch_ms;             /* when the budget was last topped up */
	int64_t glitches;              /* tokens left */
	unsigned flushing : 1;         /* in h2_pump's conn_flush */
	unsigned again : 1;
	unsigned goaway : 1;           /* GOAWAY submitted: no new streams */
	unsigned calm : 1;             /* out of budget: end with ENHANCE_YOUR_CALM */
	unsigned notify : 1;           /* a stream's handler may write again */
};

static const struct exchange_ops h2_exchange_ops;
static const struct upgraded_ops h2_upgraded_ops;
static int h2_pump(struct h2c *h);
static void stream_handler_start(struct h2_stream *st);

static struct h2_stream *
stream_of(const struct request *r)
{
	return r->xs;
}

/* One frame that does no work: -1 once the budget is spent. */
static int
glitch(struct h2c *h, int64_t cost)
{
	int64_t now = clock_ms();

	h->glitches += (now - h->glitch_ms) * H2_GLITCH_RATE / 1000;
	if (h->glitches > H2_GLITCH_BURST)
		h->glitches = H2_GLITCH_BURST;
	h->glitch_ms = now;
	if ((h->glitches -= cost) >= 0)
		return 0;
	if (!h->calm) {
		char peer[64];
		h->calm = 1;
		if (worker_log_client_error(h->c->w))
			log_info("conn %d from %s: h2: too many frames that do no work; closing",
			    h->c->fd, conn_peer(h->c, peer, sizeof(peer)));
	}
	return -1;
}

/* Records why the exchange of st, if any, ends now. */
static void
stream_term(struct h2_stream *st, const char *term)
{
	if (st->x != NULL)
		http_req_term(&st->x->req, term);
}

/* The exchange is over: counted, logged, its memory back to the pool. */
static void
stream_log(struct h2_stream *st)
{
	struct worker *w = st->h->c->w;
	struct request *r = &st->x->req;
	uint64_t us = usec_since(&r->start);

	if (r->flags & (REQ_IN_MW | REQ_MW_PAUSED))
		http_req_term(r, REQ_TERM_MIDDLEWARE);
	if (r->mw_ran > 0)
		pipeline_log(r);
	if (!(r->flags & REQ_STARTED))
		r->status = 499;
	stats_response(&w->stats, r->status, us);
	metrics_response(r, us);
	if (w->srv->access_log_fd >= 0)
		access_log_write(w, r, us);
}

static void
stream_release(struct h2_stream *st)
{
	struct exchange *x = st->x;

	if (x == NULL)
		return;
	resp_head_release(&x->req);
	req_overlay_free(&x->req);
	pipeline_end(&x->req);
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
	stream_log(st);
	stream_release(st);
}

static void
stream_free(struct h2_stream *st)
{
	struct h2c *h = st->h;

	while (st->q != NULL) {
		struct h2_chunk *k = st->q;
		st->q = k->next;
		free(k);
	}
	if (st->fd >= 0)
		close(st->fd);
	free(st->method);
	free(st->path);
	free(st->authority);
	free(st->host);
	free(st->head);
	free(st->held);
	sbuf_free(&st->fields);
	sbuf_free(&st->cookie);
	sbuf_free(&st->interim);
	TAILQ_REMOVE(&h->streams, st, link);
	h->nstreams--;
	free(st);
}

/*
 * Output: the transport's buffer takes frames while it is below the mark;
 * above it, nghttp2 keeps them until the next pump.
 */
static ssize_t
on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg)
{
	struct h2c *h = arg;

	(void)s;
	(void)flags;
	if (conn_pending(h->c) >= HTTP_OUT_HIGH_WATER)
		return NGHTTP2_ERR_WOULDBLOCK;
	conn_out(h->c, data, len);
	return (ssize_t)len;
}

/* How much of a stream's queue the next DATA frame carries; its bytes are
 * written by on_send_data, straight from the queue. */
static ssize_t
on_read_data(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
    nghttp2_data_source *src, void *arg)
{
	struct h2_stream *st = src->ptr;

	(void)s;
	(void)id;
	(void)buf;
	(void)arg;
	if (st->queued == 0) {
		if (st->cut)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM INTERNAL_ERROR */
		if (st->out_end) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		st->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = len < st->queued ? len : st->queued;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (n == st->queued && st->out_end && !st->cut)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int
on_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd, size_t len,
    nghttp2_data_source *src, void *arg)
{
	struct h2c *h = arg;
	struct h2_stream *st = src->ptr;
	struct conn *c = h->c;

	(void)s;
	(void)frame;
	if (conn_pending(c) >= HTTP_OUT_HIGH_WATER)
		return NGHTTP2_ERR_WOULDBLOCK;
	conn_out(c, framehd, 9);
	while (len > 0) {
		struct h2_chunk *k = st->q;
		size_t take = k->len - k->sent < len ? k->len - k->sent : len;
		if (!k->file)
			conn_out(c, k->data + k->sent, take);
		else if (conn_out_pread(c, st->fd, k->off + (off_t)k->sent, take) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE; /* the frame is cut: so is the connection */
		k->sent += take;
		len -= take;
		st->queued -= take;
		if (k->sent == k->len) {
			st->q = k->next;
			if (st->q == NULL)
				st->qtail = NULL;
			free(k);
		}
	}
	if (st->want_writable && st->queued < HTTP_OUT_HIGH_WATER)
		h->notify = 1;
	return 0;
}

/* Handlers that stopped above the mark go on (outside nghttp2's calls). */
static void
notify_writable(struct h2c *h)
{
	struct h2_stream *st, *next;

	if (!h->notify)
		return;
	h->notify = 0;
	for (st = TAILQ_FIRST(&h->streams); st != NULL; st = next) {
		next = TAILQ_NEXT(st, link);
		if (!st->want_writable || st->queued >= HTTP_OUT_HIGH_WATER || st->x == NULL)
			continue;
		st->want_writable = 0;
		struct request *r = &st->x->req;
		if ((r->flags & REQ_FILTERED) && pipeline_writable(r))
			continue;
		if (r->route != NULL && r->route->handler->writable != NULL &&
		    (r->flags & REQ_STARTED))
			r->route->handler->writable(r);
	}
}

/*
 * The request head.  Pseudo-headers are kept apart, Cookie crumbs are
 * joined (RFC 9113 8.2.3), everything else becomes "name: value" lines.
 * The list is bounded by max_header_size and max_headers; past them the
 * rest is only counted and the stream is answered 431.
 */
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
	clock_gettime(CLOCK_MONOTONIC, &st->start);
	TAILQ_INSERT_TAIL(&h->streams, st, link);
	h->nstreams++;
	nghttp2_session_set_stream_user_data(s, st->id, st);
	return 0;
}

static int
bad_bytes(const uint8_t *p, size_t n)
{
	return memchr(p, '\r', n) != NULL || memchr(p, '\n', n) != NULL || memchr(p, '\0', n) != NULL;
}

static int
keep_pseudo(char **slot, const uint8_t *v, size_t vlen)
{
	if (*slot != NULL)
		return -1; /* nghttp2 refuses duplicates first; never two */
	*slot = strndup((const char *)v, vlen);
	return *slot == NULL ? -1 : 0;
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
	/* nghttp2 checked the characters already; the head is about to become
	 * text with line ends, so this is checked here again, whatever. */
	if (bad_bytes(name, nlen) || bad_bytes(value, vlen))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->hbytes += nlen + vlen + 32;
	if (st->refuse != 0)
		return 0;
	if (st->hbytes > g->max_header_size || ++st->nhdr > g->max_headers) {
		st->refuse = 431;
		return 0;
	}
	if (name[0] == ':') {
		char **slot = nlen == 7 && memcmp(name, ":method", 7) == 0 ? &st->method :
		    nlen == 5 && memcmp(name, ":path", 5) == 0 ? &st->path :
		    nlen == 10 && memcmp(name, ":authority", 10) == 0 ? &st->authority : NULL;
		if (slot != NULL && keep_pseudo(slot, value, vlen) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		return 0; /* :scheme: the listener says which */
	}
	if (nlen == 4 && memcmp(name, "host", 4) == 0) {
		if (st->host != NULL) {
			st->refuse = 400;
			return 0;
		}
		return keep_pseudo(&st->host, value, vlen) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
	}
	if (nlen == 6 && memcmp(name, "cookie", 6) == 0) {
		if (st->cookie.len > 0)
			sbuf_add(&st->cookie, "; ", 2);
		sbuf_add(&st->cookie, value, vlen);
		return 0;
	}
	sbuf_add(&st->fields, name, nlen);
	sbuf_add(&st->fields, ": ", 2);
	sbuf_add(&st->fields, value, vlen);
	sbuf_add(&st->fields, "\r\n", 2);
	return 0;
}

/* Answers st's request with an error, the handler never started. */
static void
stream_fail(struct h2_stream *st, int status, const char *why)
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

/*
 * The head as HTTP/1.1 text: request line, Host (from :authority, which
 * must agree with a Host field if both came: RFC 9113 8.3.1), the fields,
 * the joined Cookie, and Transfer-Encoding: chunked standing for a body
 * of no declared length, so that readers of the head (the proxy) frame it
 * as they would an HTTP/1.1 one.  NULL when out of memory.
 */
static char *
head_text(struct h2_stream *st, int has_body, size_t *len)
{
	const char *host = st->authority != NULL ? st->authority : st->host;
	struct sbuf b = { 0 };

	sbuf_str(&b, st->method);
	sbuf_add(&b, " ", 1);
	sbuf_str(&b, st->path != NULL ? st->path : st->authority);
	sbuf_str(&b, " HTTP/1.1\r\n");
	if (host != NULL) {
		sbuf_str(&b, "host: ");
		sbuf_str(&b, host);
		sbuf_str(&b, "\r\n");
	}
	sbuf_add(&b, st->fields.p, st->fields.len);
	if (st->cookie.len > 0) {
		sbuf_str(&b, "cookie: ");
		sbuf_add(&b, st->cookie.p, st->cookie.len);
		sbuf_str(&b, "\r\n");
	}
	if (has_body && memmem(st->fields.p != NULL ? st->fields.p : "", st->fields.len,
	    "content-length:", 15) == NULL)
		sbuf_str(&b, "transfer-encoding: chunked\r\n");
	sbuf_str(&b, "\r\n");
	if (sbuf_failed(&b)) {
		sbuf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* The request head is whole: the exchange begins, as h1's dispatch does. */
static void
stream_begin(struct h2_stream *st, int end_stream)
{
	struct h2c *h = st->h;
	struct conn *c = h->c;
	struct worker *w = c->w;
	struct exchange *x;
	size_t len = 0;

	/* After a reload, or past keepalive_requests, this one is served and
	 * the client is told to take the next to a new connection. */
	if (!h->goaway && (c->snap != w->snap || ++h->nreq >= c->conf->global.keepalive_requests ||
	    w->draining)) {
		nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL, 0);
		h->goaway = 1;
	}
	x = freelist_get(&w->heads);
	if (x == NULL) {
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	http_request_reset(&x->hr);
	memset(&x->req, 0, sizeof(x->req));
	x->req.conn = c;
	x->req.xo = &h2_exchange_ops;
	x->req.xs = st;
	x->req.hr = &x->hr;
	x->req.start = st->start;
	resp_head_init(&x->req, x->resp_inline, sizeof(x->resp_inline));
	st->x = x;
	st->body_done = end_stream;
	if (st->refuse == 0 && st->authority != NULL && st->host != NULL &&
	    strcasecmp(st->authority, st->host) != 0)
		st->refuse = 400;
	st->head = st->refuse == 0 ? head_text(st, !end_stream, &len) : NULL;
	ssize_t n = st->head != NULL ? http_parse_request(&x->hr, st->head, len, &w->limits) : 0;
	if (n <= 0) {
		/* Something must be in the log line: the pseudo-headers as sent. */
		x->hr.line = st->path != NULL ? st->path : "-";
		x->hr.line_len = (uint32_t)strlen(x->hr.line);
		x->hr.meth = st->method != NULL && strcmp(st->method, "HEAD") == 0 ? HTTP_M_HEAD :
		    HTTP_M_OTHER;
		if (x->hr.meth == HTTP_M_HEAD)
			x->req.flags |= REQ_HEAD_ONLY;
		stream_fail(st, st->refuse != 0 ? st->refuse : n < 0 ? (int)-n : 500,
		    st->refuse == 431 ? "header list too large" : st->refuse == 400 ?
		    "Host and :authority differ" : x->hr.error != NULL ? x->hr.error :
		    "out of memory");
		if (st->refuse == 431)
			(void)glitch(h, 10);
		return;
	}
	/* The log shows the protocol the client spoke. */
	x->hr.version = 20;
	memcpy((char *)x->hr.line + x->hr.line_len - 8, "HTTP/2.0", 8);
	sbuf_free(&st->fields);
	sbuf_free(&st->cookie);

	struct http_request *hr = &x->hr;
	struct request *r = &x->req;
	char *npath = (char *)(x + 1);
	if (hr->meth == HTTP_M_HEAD)
		r->flags |= REQ_HEAD_ONLY;
	if (hr->meth == HTTP_M_CONNECT || (hr->path_len == 1 && hr->path[0] == '*')) {
		r->npath = hr->path;
		r->npath_len = hr->path_len;
	} else {
		long np = route_normalize_path(hr->path, hr->path_len, npath);
		if (np < 0) {
			stream_fail(st, 400, "bad path");
			return;
		}
		r->npath = npath;
		r->npath_len = (size_t)np;
	}
	r->route = route_match(c->conf, c->listen_idx, hr->host, hr->host_len, r->npath,
	    r->npath_len);
	if ((hr->flags & HTTP_F_HAS_CL) &&
	    (uint64_t)hr->content_length > c->conf->global.max_body_size) {
		stream_fail(st, 413, "request body larger than max_body_size");
		return;
	}
	if (r->route != NULL && r->route->nmw > 0) {
		r->flags |= REQ_IN_MW;
		int rc = pipeline_request(r);
		if (rc == MW_ANSWERED)
			return; /* the exchange may be over */
		r->flags &= ~REQ_IN_MW;
		if (rc == MW_PAUSE) {
			st->mw_paused = 1;
			return;
		}
	}
	stream_handler_start(st);
}

/* The request phase went through: the handler, now if it takes the body
 * as it comes (or there is none), else once the body is in (dropped). */
static void
stream_handler_start(struct h2_stream *st)
{
	struct request *r = &st->x->req;

	if (!st->body_done && !(r->route != NULL && (r->route->handler->flags & HANDLER_WANTS_BODY)))
		return; /* stream_body_end starts it */
	st->handler_on = 1;
	if (r->route != NULL) {
		if (!st->body_done && (r->hr->flags & HTTP_F_EXPECT_100) &&
		    http_resp_interim(r, 100, NULL, 0))
			http_resp_interim_end(r);
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

/* Body bytes: to the handler if it takes them, held while it paused. */
static void
stream_body(struct h2_stream *st, const uint8_t *data, size_t len)
{
	struct h2c *h = st->h;
	struct request *r = st->x != NULL ? &st->x->req : NULL;

	if (r == NULL || st->body_drop || !st->handler_on) {
		nghttp2_session_consume(h->s, st->id, len);
		return;
	}
	if (st->body_paused) {
		char *nb = realloc(st->held, st->held_len + len);
		if (nb == NULL) {
			nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id,
			    NGHTTP2_INTERNAL_ERROR);
			return;
		}
		memcpy(nb + st->held_len, data, len);
		st->held = nb;
		st->held_len += len;
		return;
	}
	int rc = r->route->handler->body(r, (const char *)data, len);
	nghttp2_session_consume(h->s, st->id, len);
	if (st->x == NULL)
		return;
	if (rc < 0)
		st->body_drop = 1;
	else if (rc == 1)
		st->body_paused = 1;
}

/* The client's END_STREAM. */
static void
stream_body_end(struct h2_stream *st)
{
	struct request *r;

	st->body_done = 1;
	if (st->x == NULL)
		return;
	r = &st->x->req;
	if (st->mw_paused)
		return; /* dispatch_resume goes on */
	if (!st->handler_on) {
		if (!st->body_drop)
			stream_handler_start(st);
		return;
	}
	if (st->body_drop || st->body_paused || st->held_len > 0 || st->body_end_told)
		return;
	st->body_end_told = 1;
	r->route->handler->body(r, NULL, 0);
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
	if (st->x != NULL && st->body_in > h->c->conf->global.max_body_size && !st->body_drop) {
		struct request *r = &st->x->req;
		nghttp2_session_consume(s, id, len);
		if (!(r->flags & REQ_STARTED)) {
			if (st->handler_on && r->route->handler->abort != NULL)
				r->route->handler->abort(r);
			st->handler_on = 0;
			stream_fail(st, 413, "request body larger than max_body_size");
		} else {
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		}
		return 0;
	}
	stream_body(st, data, len);
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
		if (frame->hd.length == 0 && !end && glitch(h, 1) < 0)
			return 0;
		break;
	case NGHTTP2_PING:
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
			(void)glitch(h, 1);
		break;
	case NGHTTP2_PRIORITY:
	case NGHTTP2_WINDOW_UPDATE:
		(void)glitch(h, 1);
		break;
	default:
		break;
	}
	if (end && st != NULL && st->x != NULL && !st->body_done)
		stream_body_end(st);
	return 0;
}

static int
on_invalid_frame(nghttp2_session *s, const nghttp2_frame *frame, int err, void *arg)
{
	(void)s;
	(void)frame;
	(void)err;
	(void)glitch(arg, 10);
	return 0;
}

/* Our END_STREAM went out before the client's: the rest of its body is
 * not wanted (RFC 9113 8.1, RST_STREAM NO_ERROR). */
static int
on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct h2_stream *st;

	(void)arg;
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
			stream_release(st);
		else
			stream_abort(st, REQ_TERM_CLIENT_CLOSED);
	}
	stream_free(st);
	return 0;
}

/*
 * The exchange ops: a response as frames.
 */
static void
h2_resp_start(struct request *r)
{
	(void)r; /* nothing to decide: a stream ends alone */
}

static int
connection_specific(const char *name, size_t nlen)
{
	return http_token_eq(name, nlen, "connection") || http_token_eq(name, nlen, "keep-alive") ||
	    http_token_eq(name, nlen, "proxy-connection") ||
	    http_token_eq(name, nlen, "transfer-encoding") || http_token_eq(name, nlen, "upgrade");
}

#define NV(n, v, vl) ((nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), \
	NGHTTP2_NV_FLAG_NO_COPY_NAME })

/* The head as a HEADERS frame: :status, portico's own fields, then the
 * handler's lines with their names in lower case (RFC 9113 8.2.1) and
 * the connection-specific ones left out. */
static void
h2_resp_head(struct request *r)
{
	struct h2_stream *st = stream_of(r);
	struct h2c *h = st->h;
	struct conn *c = h->c;
	struct resp_head *rh = &r->resp;
	size_t lines = 0, n = 0;
	char status[8], clen[24];
	int has_body = http_status_has_body(r->status);

	for (size_t i = rh->lines; i < rh->len; i++)
		lines += rh->buf[i] == '\n';
	nghttp2_nv *nva = malloc((lines + 8) * sizeof(*nva));
	char *copy = malloc(rh->len - rh->lines + 1);
	if (nva == NULL || copy == NULL) {
		free(nva);
		free(copy);
		st->cut = 1;
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	snprintf(status, sizeof(status), "%d", r->status);
	nva[n++] = NV(":status", status, strlen(status));
	if (!(rh->hide & RESP_HIDE_SERVER))
		nva[n++] = c->conf->global.server_tokens ?
		    NV("server", "portico/" PORTICO_VERSION, sizeof("portico/" PORTICO_VERSION) - 1) :
		    NV("server", "portico", 7);
	if (!(rh->hide & RESP_HIDE_DATE))
		nva[n++] = NV("date", c->w->date, strlen(c->w->date));
	if (rh->has_ctype && has_body)
		nva[n++] = NV("content-type", rh->buf + rh->reason_len, rh->ctype_len);
	r->resp_left = -1;
	if (has_body && rh->clen >= 0) {
		snprintf(clen, sizeof(clen), "%lld", (long long)rh->clen);
		nva[n++] = NV("content-length", clen, strlen(clen));
		r->resp_left = rh->clen;
	}
	if (c->ssl != NULL && c->conf->listens[c->listen_idx].hsts != NULL &&
	    !(rh->hide & RESP_HIDE_HSTS))
		nva[n++] = NV("strict-transport-security", c->conf->listens[c->listen_idx].hsts,
		    strlen(c->conf->listens[c->listen_idx].hsts));
	/* "Name: value\r\n" lines, as exchange.c keeps them. */
	memcpy(copy, rh->buf + rh->lines, rh->len - rh->lines);
	for (char *p = copy, *end = copy + (rh->len - rh->lines); p < end;) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		char *colon = memchr(p, ':', (size_t)((eol != NULL ? eol : end) - p));
		char *next = eol != NULL ? eol + 1 : end;
		if (colon == NULL) {
			p = next;
			continue;
		}
		char *v = colon + 1, *ve = eol != NULL ? eol : end;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t nl = (size_t)(colon - p);
		for (size_t i = 0; i < nl; i++)
			if (p[i] >= 'A' && p[i] <= 'Z')
				p[i] = (char)(p[i] + 32);
		if (!connection_specific(p, nl))
			nva[n++] = (nghttp2_nv){ (uint8_t *)p, (uint8_t *)v, nl, (size_t)(ve - v),
				NGHTTP2_NV_FLAG_NONE };
		p = next;
	}
	st->has_data = has_body && !(r->flags & REQ_HEAD_ONLY) && rh->clen != 0;
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = on_read_data };
	int rv = nghttp2_submit_response(h->s, st->id, nva, n, st->has_data ? &prd : NULL);
	free(nva);
	free(copy);
	st->head_sent = 1;
	if (rv != 0) {
		log_warnx("conn %d: h2 stream %d: cannot send the response head: %s", c->fd, st->id,
		    nghttp2_strerror(rv));
		st->cut = 1;
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	}
	conn_kick(c);
}

static int
h2_resp_interim(struct request *r, int status, const char *reason, size_t reason_len)
{
	struct h2_stream *st = stream_of(r);

	(void)reason;
	(void)reason_len;
	if (status == 101)
		return 0; /* no upgrades in HTTP/2 (RFC 9113 8.6) */
	st->interim_status = status;
	st->interim.len = 0;
	return 1;
}

static void
h2_resp_interim_header(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen)
{
	struct h2_stream *st = stream_of(r);

	if (connection_specific(name, nlen))
		return;
	for (size_t i = 0; i < nlen; i++) {
		char ch = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] + 32) : name[i];
		sbuf_add(&st->interim, &ch, 1);
	}
	sbuf_add(&st->interim, "", 1);
	sbuf_add(&st->interim, value, vlen);
	sbuf_add(&st->interim, "", 1);
}

static void
h2_resp_interim_end(struct request *r)
{
	struct h2_stream *st = stream_of(r);
	nghttp2_nv nva[33];
	char status[8];
	size_t n = 0;

	snprintf(status, sizeof(status), "%d", st->interim_status);
	nva[n++] = NV(":status", status, strlen(status));
	for (size_t at = 0; !sbuf_failed(&st->interim) && at < st->interim.len && n < 33;) {
		const char *k = st->interim.p + at, *v = k + strlen(k) + 1;
		nva[n++] = (nghttp2_nv){ (uint8_t *)k, (uint8_t *)v, strlen(k), strlen(v),
			NGHTTP2_NV_FLAG_NONE };
		at = (size_t)(v - st->interim.p) + strlen(v) + 1;
	}
	nghttp2_submit_headers(st->h->s, NGHTTP2_FLAG_NONE, st->id, NULL, nva, n, NULL);
	sbuf_free(&st->interim);
	conn_kick(st->h->c);
}

/* A new run at the queue's end; memory ones take data, file ones none. */
static struct h2_chunk *
queue_run(struct h2_stream *st, size_t room)
{
	struct h2_chunk *k = malloc(sizeof(*k) + room);

	if (k == NULL)
		return NULL;
	k->next = NULL;
	k->file = room == 0;
	k->off = 0;
	k->len = k->sent = 0;
	k->cap = room;
	if (st->qtail != NULL)
		st->qtail->next = k;
	else
		st->q = k;
	st->qtail = k;
	return k;
}

/* More bytes for the provider: wake it if it waits. */
static void
stream_queued(struct h2_stream *st, size_t len)
{
	st->queued += len;
	if (st->queued >= HTTP_OUT_HIGH_WATER)
		st->want_writable = 1;
	if (st->deferred) {
		st->deferred = 0;
		nghttp2_session_resume_data(st->h->s, st->id);
	}
	conn_kick(st->h->c);
}

static void
h2_resp_data(struct request *r, const void *data, size_t len)
{
	struct h2_stream *st = stream_of(r);
	struct h2_chunk *k = st->qtail;

	if (!st->has_data || st->cut)
		return;
	if (r->resp_left >= 0 && (int64_t)len > r->resp_left)
		len = (size_t)r->resp_left; /* never more than we declared */
	if (r->resp_left >= 0)
		r->resp_left -= (int64_t)len;
	r->body_bytes += len;
	if (k == NULL || k->file || k->cap - k->len < len)
		k = queue_run(st, len > H2_CHUNK_MIN ? len : H2_CHUNK_MIN);
	if (k == NULL) {
		st->cut = 1;
		return;
	}
	memcpy(k->data + k->len, data, len);
	k->len += len;
	stream_queued(st, len);
}

static int
h2_resp_file(struct request *r, int fd, off_t off, off_t len)
{
	struct h2_stream *st = stream_of(r);
	struct h2_chunk *k;

	if (st->fd < 0)
		st->fd = fd;
	else if (st->fd != fd)
		close(fd); /* one file per response, as for HTTP/1 */
	if (len == 0 || !st->has_data || st->cut)
		return st->cut ? -1 : 0;
	if (r->resp_left >= 0)
		r->resp_left -= len;
	r->body_bytes += (uint64_t)len;
	if ((k = queue_run(st, 0)) == NULL) {
		st->cut = 1;
		return -1;
	}
	k->off = off;
	k->len = (size_t)len;
	stream_queued(st, (size_t)len);
	return 0;
}

static void
h2_resp_end(struct request *r)
{
	struct h2_stream *st = stream_of(r);

	if (r->resp_left > 0 && !(r->flags & REQ_HEAD_ONLY) && st->has_data) {
		/* The handler declared more than it sent: reset, not a short body. */
		log_warnx("conn %d: h2 stream %d: response %d ended %lld bytes short", r->conn->fd,
		    st->id, r->status, (long long)r->resp_left);
		st->cut = 1;
	}
	st->out_end = 1;
	stream_log(st);
	stream_release(st);
	if (st->deferred) {
		st->deferred = 0;
		nghttp2_session_resume_data(st->h->s, st->id);
	}
	conn_kick(st->h->c);
}

static size_t
h2_pending(const struct request *r)
{
	return stream_of(r)->queued;
}

static void
h2_abort(struct request *r, const char *reason)
{
	struct h2_stream *st = stream_of(r);

	log_debug("conn %d: h2 stream %d: %s", r->conn->fd, st->id, reason);
	nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	/* REQ_DONE is set: no abort callback; the log line says it was cut. */
	http_req_term(r, REQ_TERM_INTERNAL);
	stream_log(st);
	stream_release(st);
	conn_kick(st->h->c);
}

static void
h2_resume(struct request *r)
{
	struct h2_stream *st = stream_of(r);
	struct h2c *h = st->h;

	if (!st->body_paused)
		return;
	st->body_paused = 0;
	if (st->held_len > 0) {
		char *held = st->held;
		size_t n = st->held_len;
		st->held = NULL;
		st->held_len = 0;
		stream_body(st, (const uint8_t *)held, n);
		free(held);
		if (st->x == NULL || st->body_paused)
			goto out;
	}
	if (st->body_done)
		stream_body_end(st);
out:
	conn_kick(h->c);
}

static void
h2_close_when_sent(struct request *r)
{
	struct h2_stream *st = stream_of(r);

	st->cut = 1;
	if (st->deferred) {
		st->deferred = 0;
		nghttp2_session_resume_data(st->h->s, st->id);
	}
	conn_kick(r->conn);
}

static void
h2_dispatch_resume(struct request *r)
{
	struct h2_stream *st = stream_of(r);

	r->flags &= ~REQ_IN_MW;
	st->mw_paused = 0;
	conn_kick(r->conn);
	stream_handler_start(st);
}

/* No 101 in HTTP/2: nothing reaches these (a handler tunnels only after
 * one); they end the stream rather than corrupt the connection. */
static void
h2_tunnel_start(struct request *r)
{
	h2_abort(r, "no tunnels over HTTP/2");
}

static void
h2_tunnel_write(struct request *r, const void *data, size_t len)
{
	(void)r;
	(void)data;
	(void)len;
}

static void
h2_tunnel_close(struct request *r)
{
	(void)r;
}

static int
h2_upgrade(struct request *r, const struct upgraded_ops *ops, void *st)
{
	(void)r;
	(void)ops;
	(void)st;
	return -1;
}

static const struct exchange_ops h2_exchange_ops = {
	.start = h2_resp_start,
	.head = h2_resp_head,
	.interim = h2_resp_interim,
	.interim_header = h2_resp_interim_header,
	.interim_end = h2_resp_interim_end,
	.data = h2_resp_data,
	.file = h2_resp_file,
	.end = h2_resp_end,
	.pending = h2_pending,
	.abort = h2_abort,
	.resume = h2_resume,
	.close_when_sent = h2_close_when_sent,
	.dispatch_resume = h2_dispatch_resume,
	.tunnel_start = h2_tunnel_start,
	.tunnel_write = h2_tunnel_write,
	.tunnel_close = h2_tunnel_close,
	.upgrade = h2_upgrade,
};

/*
 * The connection: input to nghttp2, frames out, and what to wait for.
 */

/* Whether some stream's response waits on the client's window. */
static int
stalled(const struct h2c *h)
{
	const struct h2_stream *st;

	TAILQ_FOREACH(st, &h->streams, link)
		if (st->queued > 0 && !st->cut)
			return 1;
	return 0;
}

static int
awaiting_body(const struct h2c *h)
{
	const struct h2_stream *st;

	TAILQ_FOREACH(st, &h->streams, link)
		if (!st->body_done && st->x != NULL && !st->body_paused)
			return 1;
	return 0;
}

/* Everything is sent: wait for the client, for as long as the state says. */
static void
arm(struct h2c *h)
{
	struct conn *c = h->c;
	struct worker *w = c->w;

	if (h->goaway && h->nstreams == 0 && !nghttp2_session_want_write(h->s)) {
		c->closing = 1;
		c->linger = 1;
		conn_kick(c);
		return;
	}
	if (h->nstreams == 0)
		conn_arm(c, EV_READ, w->tv_keepalive);
	else if (stalled(h))
		conn_arm(c, EV_READ, w->tv_send);   /* a zero window times out as a slow reader */
	else if (awaiting_body(h))
		conn_arm(c, EV_READ, w->tv_body);
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
			notify_writable(h);
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
	const char *why = stalled(h) ? "send timed out (the client's window stayed shut)" :
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

	if (!h->goaway) {
		nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE,
		    nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR, NULL, 0);
		h->goaway = 1;
	}
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
	nghttp2_session_callbacks_set_send_callback(cb, on_send);
	nghttp2_session_callbacks_set_send_data_callback(cb, on_send_data);
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
		goto fail;
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
	nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
	nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
	nghttp2_option_set_max_settings(opt, 32);
	h->c = c;
	TAILQ_INIT(&h->streams);
	h->glitches = H2_GLITCH_BURST;
	h->glitch_ms = clock_ms();
	if (nghttp2_session_server_new2(&h->s, cb, h, opt) != 0)
		goto fail;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)g->h2_max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)g->h2_window },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)g->max_header_size },
	};
	if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0,
	    (int32_t)g->h2_conn_window) != 0)
		goto fail;
	rv = 0;
fail:
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
