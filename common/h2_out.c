/*
 * h2_out: an HTTP/2 stream's response (h2's exchange ops).  The head
 * becomes a HEADERS frame; the body a queue of memory and file runs per
 * stream that nghttp2 pulls as DATA frames within the client's windows,
 * written straight from the queue into the transport's output (file
 * bytes read into it: one copy, as TLS needs anyway).  A stream's queue
 * is what http_resp_pending says, so a handler stops producing while the
 * client keeps its window shut, and goes on when the queue drains.
 */
#include "common/h2_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/h1.h"
#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"
#include "common/pipeline.h"
#include "common/route.h"
#include "common/server.h"

/*
 * Output: the transport's buffer takes frames while it is below the mark;
 * above it, nghttp2 keeps them until the next pump.
 */
ssize_t
h2_on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg)
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
 * written by h2_on_send_data, straight from the queue. */
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

int
h2_on_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd, size_t len,
    nghttp2_data_source *src, void *arg)
{
	struct h2c *h = arg;
	struct h2_stream *st = src->ptr;
	struct conn *c = h->c;

	(void)s;
	(void)frame;
	if (conn_pending(c) >= HTTP_OUT_HIGH_WATER)
		return NGHTTP2_ERR_WOULDBLOCK;
	size_t mark = conn_out_mark(c);
	conn_out(c, framehd, 9);
	while (len > 0) {
		struct h2_chunk *k = st->q;
		size_t take = k->len - k->sent < len ? k->len - k->sent : len;
		if (!k->file)
			conn_out(c, k->data + k->sent, take);
		else if (conn_out_pread(c, st->fd, k->off + (off_t)k->sent, take) < 0) {
			/* The file shrank or failed: no part of this frame goes
			 * out, and nghttp2 resets the stream alone (INTERNAL_ERROR). */
			conn_out_unwrite(c, mark);
			st->cut = 1;
			if (st->x != NULL)
				http_req_term(&st->x->req, REQ_TERM_INTERNAL);
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
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
void
h2_notify_writable(struct h2c *h)
{
	struct h2_stream *st, *next;

	if (!h->notify)
		return;
	h->notify = 0;
	for (st = TAILQ_FIRST(&h->streams); st != NULL; st = next) {
		next = TAILQ_NEXT(st, link);
		if (!st->want_writable || st->queued >= HTTP_OUT_HIGH_WATER)
			continue;
		if (st->relay != NULL) {
			st->want_writable = 0;
			h2_relay_writable(st);
			continue;
		}
		if (st->x == NULL)
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

static void
h2_resp_start(struct request *r)
{
	(void)r; /* nothing to decide: a stream ends alone */
}

/* name is in lower case.  By length first: it runs for every field. */
static int
connection_specific(const char *name, size_t nlen)
{
	switch (nlen) {
	case 7:
		return memcmp(name, "upgrade", 7) == 0;
	case 10:
		return memcmp(name, "connection", 10) == 0 || memcmp(name, "keep-alive", 10) == 0;
	case 16:
		return memcmp(name, "proxy-connection", 16) == 0;
	case 17:
		return memcmp(name, "transfer-encoding", 17) == 0;
	default:
		return 0;
	}
}

#define NV(n, v, vl) ((nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), \
	NGHTTP2_NV_FLAG_NO_COPY_NAME })

/* Nvs for the handler's "Name: value\r\n" lines (as exchange.c keeps
 * them) in copy, a writable copy of them: names put in lower case (RFC
 * 9113 8.2.1), connection-specific fields and, on a tunnel, the
 * Sec-WebSocket-Accept of its 101 left out.  Returns how many. */
static size_t
lines_to_nva(char *copy, size_t len, int tunnel, nghttp2_nv *nva)
{
	size_t n = 0;

	for (char *p = copy, *end = copy + len; p < end;) {
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
		if (!connection_specific(p, nl) &&
		    !(tunnel && http_token_eq(p, nl, "sec-websocket-accept")))
			nva[n++] = (nghttp2_nv){ (uint8_t *)p, (uint8_t *)v, nl, (size_t)(ve - v),
				NGHTTP2_NV_FLAG_NONE };
		p = next;
	}
	return n;
}

/*
 * The head as a HEADERS frame: :status, portico's own fields, then the
 * handler's.  An extended CONNECT that switched (RFC 8441 5) gets 200
 * and its stream's data is the tunnel's from here; a 2xx that did not
 * switch, or a 101 elsewhere, is refused (HTTP/2 has no 101: RFC 9113
 * 8.6; a 2xx to CONNECT says the tunnel is open: RFC 9110 9.3.6).
 */
static void
h2_resp_head(struct request *r)
{
	struct h2_stream *st = h2_stream_of(r);
	struct h2c *h = st->h;
	struct conn *c = h->c;
	struct resp_head *rh = &r->resp;
	size_t lines = 0, n = 0, len = rh->len - rh->lines;
	char status[12], clen[24], *cl;
	int has_body = http_status_has_body(r->status);
	/* Most heads fit on the stack. */
	nghttp2_nv nva_stack[40];
	char copy_stack[2048];

	if (rh->overflow) {
		/* Cut, as HTTP/1 closes: never a head that lost fields. */
		st->cut = 1;
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		conn_kick(c);
		return;
	}
	for (const char *p = rh->buf + rh->lines, *end = rh->buf + rh->len;
	    (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		lines++;
	nghttp2_nv *nva = lines + 8 <= 40 ? nva_stack : malloc((lines + 8) * sizeof(*nva));
	char *copy = len < sizeof(copy_stack) ? copy_stack : malloc(len + 1);
	if (nva == NULL || copy == NULL) {
		if (nva != nva_stack)
			free(nva);
		if (copy != copy_stack)
			free(copy);
		st->cut = 1;
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	int tunnel = st->ext && r->status == 101;
	int refused = 0;
	if (tunnel) {
		r->status = 200;
	} else if (r->status == 101 || (st->ext && r->status >= 200 && r->status < 300)) {
		/* What the handler sends is dropped. */
		refused = 1;
		if (r->log.up_addr[0] != '\0') {
			r->status = 502;
			http_req_term(r, REQ_TERM_UP_BAD);
		} else {
			r->status = 501;
		}
		has_body = 0;
	}
	const char *sp = http_dec(status + sizeof(status), (uint64_t)r->status);
	nva[n++] = NV(":status", sp, (size_t)(status + sizeof(status) - sp));
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
		cl = http_dec(clen + sizeof(clen), (uint64_t)rh->clen);
		nva[n++] = NV("content-length", cl, (size_t)(clen + sizeof(clen) - cl));
		r->resp_left = rh->clen;
	}
	if (c->ssl != NULL && c->conf->listens[c->listen_idx].hsts != NULL &&
	    !(rh->hide & RESP_HIDE_HSTS))
		nva[n++] = NV("strict-transport-security", c->conf->listens[c->listen_idx].hsts,
		    strlen(c->conf->listens[c->listen_idx].hsts));
	memcpy(copy, rh->buf + rh->lines, len);
	n += lines_to_nva(copy, len, tunnel, nva + n);
	st->has_data = tunnel || (!refused && has_body && !(r->flags & REQ_HEAD_ONLY) && rh->clen != 0);
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = on_read_data };
	int rv = nghttp2_submit_response(h->s, st->id, nva, n, st->has_data ? &prd : NULL);
	if (nva != nva_stack)
		free(nva);
	if (copy != copy_stack)
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
	struct h2_stream *st = h2_stream_of(r);

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
	struct h2_stream *st = h2_stream_of(r);
	size_t at = st->interim.len;

	for (size_t i = 0; i < nlen; i++) {
		char ch = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] + 32) : name[i];
		sbuf_add(&st->interim, &ch, 1);
	}
	if (sbuf_failed(&st->interim))
		return;
	if (connection_specific(st->interim.p + at, nlen)) {
		st->interim.len = at; /* left out, as from a final head */
		return;
	}
	sbuf_add(&st->interim, "", 1);
	sbuf_add(&st->interim, value, vlen);
	sbuf_add(&st->interim, "", 1);
}

static void
h2_resp_interim_end(struct request *r)
{
	struct h2_stream *st = h2_stream_of(r);
	nghttp2_nv nva_stack[16], *nva = nva_stack;
	char status[12];
	size_t n = 0, fields = 0;

	/* "name\0value\0" per field (a value has no NUL: the parsers refuse
	 * them), all of them, however many (a 103 may list many links). */
	if (sbuf_failed(&st->interim)) {
		sbuf_free(&st->interim);
		return; /* an interim response is advisory: none rather than a cut one */
	}
	if (st->interim.len > 0)
		for (const char *p = st->interim.p, *end = p + st->interim.len;
		    (p = memchr(p, '\0', (size_t)(end - p))) != NULL; p++)
			fields++;
	fields /= 2;
	if (fields + 1 > sizeof(nva_stack) / sizeof(nva_stack[0]) &&
	    (nva = malloc((fields + 1) * sizeof(*nva))) == NULL) {
		sbuf_free(&st->interim);
		return;
	}
	const char *sp = http_dec(status + sizeof(status), (uint64_t)st->interim_status);
	nva[n++] = NV(":status", sp, (size_t)(status + sizeof(status) - sp));
	for (size_t at = 0; at < st->interim.len;) {
		const char *k = st->interim.p + at, *v = k + strlen(k) + 1;
		nva[n++] = (nghttp2_nv){ (uint8_t *)k, (uint8_t *)v, strlen(k), strlen(v),
			NGHTTP2_NV_FLAG_NONE };
		at = (size_t)(v - st->interim.p) + strlen(v) + 1;
	}
	nghttp2_submit_headers(st->h->s, NGHTTP2_FLAG_NONE, st->id, NULL, nva, n, NULL);
	if (nva != nva_stack)
		free(nva);
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
	h2_provider_wake(st);
	conn_kick(st->h->c);
}

static void
h2_resp_data(struct request *r, const void *data, size_t len)
{
	struct h2_stream *st = h2_stream_of(r);

	if (!st->has_data || st->cut)
		return;
	if (r->resp_left >= 0 && (int64_t)len > r->resp_left)
		len = (size_t)r->resp_left; /* never more than we declared */
	if (r->resp_left >= 0)
		r->resp_left -= (int64_t)len;
	r->body_bytes += len;
	if (h2_queue(st, data, len) < 0)
		st->cut = 1;
}

int
h2_queue(struct h2_stream *st, const void *data, size_t len)
{
	struct h2_chunk *k = st->qtail;

	if (len == 0)
		return 0;
	if (k == NULL || k->file || k->cap - k->len < len)
		k = queue_run(st, len > H2_CHUNK_MIN ? len : H2_CHUNK_MIN);
	if (k == NULL)
		return -1;
	memcpy(k->data + k->len, data, len);
	k->len += len;
	stream_queued(st, len);
	return 0;
}

static int
h2_resp_file(struct request *r, int fd, off_t off, off_t len)
{
	struct h2_stream *st = h2_stream_of(r);
	struct h2_chunk *k;

	if (st->fd < 0) {
		st->fd = fd;
	} else if (st->fd != fd) {
		close(fd); /* one file per response, as for HTTP/1 */
		st->cut = 1;
		return -1;
	}
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
	struct h2_stream *st = h2_stream_of(r);

	if (r->resp_left > 0 && !(r->flags & REQ_HEAD_ONLY) && st->has_data) {
		/* The handler declared more than it sent: reset, not a short body. */
		log_warnx("conn %d: h2 stream %d: response %d ended %lld bytes short", r->conn->fd,
		    st->id, r->status, (long long)r->resp_left);
		st->cut = 1;
	}
	st->out_end = 1;
	h2_stream_log(st);
	h2_stream_release(st);
	h2_provider_wake(st);
	conn_kick(st->h->c);
}

static size_t
h2_pending(const struct request *r)
{
	return h2_stream_of(r)->queued;
}

void
h2_abort(struct request *r, const char *reason)
{
	struct h2_stream *st = h2_stream_of(r);

	log_debug("conn %d: h2 stream %d: %s", r->conn->fd, st->id, reason);
	nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	/* REQ_DONE is set: no abort callback; the log line says it was cut. */
	http_req_term(r, REQ_TERM_INTERNAL);
	h2_stream_log(st);
	h2_stream_release(st);
	conn_kick(st->h->c);
}

static void
h2_close_when_sent(struct request *r)
{
	struct h2_stream *st = h2_stream_of(r);

	st->cut = 1;
	h2_provider_wake(st);
	conn_kick(r->conn);
}

const struct exchange_ops h2_exchange_ops = {
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

void
h2_stream_out_free(struct h2_stream *st)
{
	while (st->q != NULL) {
		struct h2_chunk *k = st->q;
		st->q = k->next;
		free(k);
	}
	st->qtail = NULL;
	st->queued = 0;
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
}

void
h2_continue(struct h2_stream *st)
{
	nghttp2_nv nv = NV(":status", "100", 3);

	nghttp2_submit_headers(st->h->s, NGHTTP2_FLAG_NONE, st->id, NULL, &nv, 1, NULL);
	conn_kick(st->h->c);
}

void
h2_provider_wake(struct h2_stream *st)
{
	if (!st->deferred)
		return;
	st->deferred = 0;
	nghttp2_session_resume_data(st->h->s, st->id);
}
