/*
 * exchange: one request and its response, as handlers build it.
 *
 * A response is a status, a reason and headers, kept here until the first
 * body byte or the end is ready and then turned into bytes once (commit):
 * until then anything may still change them.  The headers portico itself
 * owns (Server, Date, Content-Type, the framing, HSTS, Connection) are
 * fields; the others are kept as the lines they will be on the wire, in
 * the order given, in a buffer of the exchange's own (inline, growing up
 * to RESP_HDR_MAX).  The wire form is the protocol's (r->xo): HTTP/1
 * bytes in h1_out.c, HTTP/2 frames in h2_out.c.
 */
#include "common/exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http.h"
#include "common/accesslog.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/pipeline.h"
#include "common/route.h"
#include "common/sbuf.h"
#include "common/server.h"

#define REQ_HDR_OPEN 0x100 /* interim status line and headers queued, blank line not yet */

/* The most response header bytes kept for one response: a backend's head
 * passed the proxy's own bound before it got here. */
#define RESP_HDR_MAX (256 * 1024)

/* Room for n more bytes in the response's header buffer.  0 or -1. */
static int
hdr_reserve(struct request *r, size_t n)
{
	struct resp_head *h = &r->resp;

	if (h->cap - h->len >= n)
		return 0;
	if (h->len + n > RESP_HDR_MAX)
		return -1;
	size_t cap = h->cap * 2 > h->len + n ? h->cap * 2 : h->len + n;
	char *nb = h->buf == h->inl ? malloc(cap) : realloc(h->buf, cap);
	if (nb == NULL)
		return -1;
	if (h->buf == h->inl)
		memcpy(nb, h->inl, h->len);
	h->buf = nb;
	h->cap = cap;
	return 0;
}

static void
hdr_append(struct request *r, const void *p, size_t n)
{
	if (n == 0)
		return; /* p may be NULL then (no reason phrase) */
	if (hdr_reserve(r, n) < 0) {
		r->resp.overflow = 1;
		return;
	}
	memcpy(r->resp.buf + r->resp.len, p, n);
	r->resp.len += n;
}

/* One "Name: value\r\n" line, whole or not at all. */
static void
hdr_line(struct request *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
	char *p;

	if (hdr_reserve(r, nlen + vlen + 4) < 0) {
		r->resp.overflow = 1;
		return;
	}
	p = r->resp.buf + r->resp.len;
	memcpy(p, name, nlen);
	p += nlen;
	*p++ = ':';
	*p++ = ' ';
	if (vlen > 0) /* value may be NULL then */
		memcpy(p, value, vlen);
	p += vlen;
	*p++ = '\r';
	*p++ = '\n';
	r->resp.len = (size_t)(p - r->resp.buf);
}

void
resp_head_init(struct request *r, char *inl, size_t inl_cap)
{
	r->resp.buf = r->resp.inl = inl;
	r->resp.cap = inl_cap;
	r->resp.len = 0;
}

void
resp_head_release(struct request *r)
{
	if (r->resp.buf != NULL && r->resp.buf != r->resp.inl)
		free(r->resp.buf);
	r->resp.buf = r->resp.inl;
	r->resp.len = 0;
}

void
http_resp_log(struct request *r, uint64_t us)
{
	struct worker *w = r->conn->w;

	if (r->mw_ran > 0)
		pipeline_log(r);
	stats_response(&w->stats, r->status, us);
	metrics_response(r, us);
	if (w->srv->access_log_fd >= 0)
		access_log_write(w, r, us);
}

void
http_req_release(struct request *r)
{
	resp_head_release(r);
	req_overlay_free(r);
	pipeline_end(r);
}

void
http_resp_start(struct request *r, int status, const char *ctype, int64_t clen)
{
	http_resp_start_reason(r, status, NULL, 0, ctype, clen);
}

void
http_resp_start_reason(struct request *r, int status, const char *reason, size_t reason_len,
    const char *ctype, int64_t clen)
{
	r->status = status;
	r->flags |= REQ_STARTED;
	r->xo->start(r);
	/* The reason goes first in the buffer; header lines follow it. */
	r->resp.len = 0;
	r->resp.overflow = 0;
	r->resp.hide = 0;
	hdr_append(r, reason, reason_len);
	r->resp.reason_len = r->resp.len;
	r->resp.has_ctype = ctype != NULL;
	if (ctype != NULL)
		hdr_append(r, ctype, strlen(ctype));
	r->resp.ctype_len = r->resp.len - r->resp.reason_len;
	r->resp.lines = r->resp.len;
	r->resp.clen = clen;
}

/*
 * Turns the response head into bytes: the status line, portico's own
 * headers, then those the handler added, in the order given.
 */
void
http_resp_commit(struct request *r)
{
	if (!(r->flags & REQ_STARTED) || (r->flags & REQ_COMMITTED))
		return;
	if (r->route != NULL && r->mw_ran > 0 && !(r->flags & REQ_IN_PIPELINE)) {
		r->flags |= REQ_IN_PIPELINE; /* a middleware adding a body cannot recurse */
		pipeline_response_head(r);
		r->flags &= ~REQ_IN_PIPELINE;
	}
	r->flags |= REQ_COMMITTED;
	if (r->resp.overflow) {
		log_warnx("conn %d: response headers over %d bytes; closing", r->conn->fd, RESP_HDR_MAX);
		r->flags |= REQ_CLOSE;
	}
	worker_update_time(r->conn->w);
	r->xo->head(r);
	resp_head_release(r);
}

/*
 * An interim (1xx) response before the final one: its status here, its
 * headers through http_resp_header_n, and http_resp_interim_end.  Only an
 * HTTP/1.1 or HTTP/2 client gets one (RFC 9110 15.2); returns 0 when it
 * was not sent.  It goes out as it is given: nothing is kept.
 */
int
http_resp_interim(struct request *r, int status, const char *reason, size_t reason_len)
{
	if ((r->flags & REQ_STARTED) || status < 102 || status > 199 ||
	    !r->xo->interim(r, status, reason, reason_len))
		return 0;
	r->flags |= REQ_HDR_OPEN;
	return 1;
}

void
http_resp_interim_end(struct request *r)
{
	if (!(r->flags & REQ_HDR_OPEN) || (r->flags & REQ_STARTED))
		return;
	r->flags &= ~REQ_HDR_OPEN;
	r->xo->interim_end(r);
}

void
http_resp_header_n(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen)
{
	struct conn *c = r->conn;

	if (r->flags & REQ_HDR_OPEN) { /* an interim response's */
		r->xo->interim_header(r, name, nlen, value, vlen);
		return;
	}
	if (!(r->flags & REQ_STARTED) || (r->flags & REQ_COMMITTED))
		return;
	/* The listener's own HSTS goes out with the head: not twice. */
	if (c->ssl != NULL && c->conf->listens[c->listen_idx].hsts != NULL &&
	    http_token_eq(name, nlen, "strict-transport-security"))
		return;
	hdr_line(r, name, nlen, value, vlen);
}

void
http_resp_header(struct request *r, const char *name, const char *value)
{
	http_resp_header_n(r, name, strlen(name), value, strlen(value));
}

int
http_resp_header_changeable(const char *name, size_t nlen)
{
	return !http_token_eq(name, nlen, "content-length") &&
	    !http_token_eq(name, nlen, "transfer-encoding") &&
	    !http_token_eq(name, nlen, "connection");
}

void
http_resp_header_remove(struct request *r, const char *name, size_t nlen)
{
	struct resp_head *h = &r->resp;

	if (!(r->flags & REQ_STARTED) || (r->flags & REQ_COMMITTED) ||
	    !http_resp_header_changeable(name, nlen))
		return;
	if (http_token_eq(name, nlen, "server"))
		h->hide |= RESP_HIDE_SERVER;
	else if (http_token_eq(name, nlen, "date"))
		h->hide |= RESP_HIDE_DATE;
	else if (http_token_eq(name, nlen, "strict-transport-security"))
		h->hide |= RESP_HIDE_HSTS;
	else if (http_token_eq(name, nlen, "content-type"))
		h->has_ctype = 0;
	/* The lines: "Name: value\r\n" each, after the reason. */
	size_t at = h->lines;
	while (at < h->len) {
		char *line = h->buf + at;
		char *eol = memchr(line, '\n', h->len - at);
		size_t ll = eol != NULL ? (size_t)(eol - line) + 1 : h->len - at;
		if (ll > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
			memmove(line, line + ll, h->len - at - ll);
			h->len -= ll;
		} else {
			at += ll;
		}
	}
}

const char *
http_resp_header_next(const struct request *r, const char *name, size_t nlen, size_t *it,
    size_t *vlen)
{
	const struct resp_head *h = &r->resp;

	if (!(r->flags & REQ_STARTED) || (r->flags & REQ_COMMITTED))
		return NULL;
	if (*it < h->lines)
		*it = h->lines;
	while (*it < h->len) {
		const char *line = h->buf + *it;
		const char *eol = memchr(line, '\n', h->len - *it);
		size_t ll = eol != NULL ? (size_t)(eol - line) + 1 : h->len - *it;
		*it += ll;
		if (ll < nlen + 3 || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
			continue;
		/* "Name: value\r\n", as hdr_line wrote it. */
		const char *v = line + nlen + 1, *e = line + ll;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*vlen = (size_t)(e - v);
		return v;
	}
	return NULL;
}

void
http_resp_header_set(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen)
{
	if (!(r->flags & REQ_STARTED) || (r->flags & REQ_COMMITTED) ||
	    !http_resp_header_changeable(name, nlen))
		return;
	/* The removal hides portico's own of that name (HSTS included), so the
	 * line goes in as given, without http_resp_header_n's HSTS check. */
	http_resp_header_remove(r, name, nlen);
	hdr_line(r, name, nlen, value, vlen);
}

/* Body bytes with the head committed, after the filters if any. */
void
http_resp_frame(struct request *r, const void *data, size_t len)
{
	r->xo->data(r, data, len);
}

void
http_resp_body(struct request *r, const void *data, size_t len)
{
	http_resp_commit(r);
	if ((r->flags & REQ_HEAD_ONLY) || len == 0 || !http_status_has_body(r->status))
		return;
	if (r->flags & REQ_FILTERED)
		pipeline_body(r, data, len);
	else
		http_resp_frame(r, data, len);
}

int
http_resp_file(struct request *r, int fd, off_t off, off_t len)
{
	http_resp_commit(r);
	/* Filters must see the bytes: no sendfile then (never for HEAD). */
	if (r->flags & REQ_FILTERED)
		return pipeline_file(r, fd, off, len);
	return r->xo->file(r, fd, off, (r->flags & REQ_HEAD_ONLY) ? 0 : len);
}

void
http_resp_flush(struct request *r)
{
	if (r->flags & REQ_FILTERED)
		pipeline_flush(r);
}

void
http_resp_length_unknown(struct request *r)
{
	if ((r->flags & REQ_STARTED) && !(r->flags & REQ_COMMITTED))
		r->resp.clen = -1;
}

void
http_resp_end(struct request *r)
{
	http_resp_commit(r);
	/* The filters get their last call; with file bytes still queued for
	 * them, the pipeline finishes once those are through. */
	if ((r->flags & REQ_FILTERED) && pipeline_body_end(r) == 1) {
		r->flags |= REQ_DONE; /* the handler is done with it */
		return;
	}
	http_resp_finish(r);
}

void
http_resp_finish(struct request *r)
{
	r->flags |= REQ_DONE;
	r->xo->end(r);
}

int
http_req_route(struct request *r, char *npath, const char **why)
{
	const struct http_request *hr = r->hr;
	const struct conn *c = r->conn;

	if (hr->meth == HTTP_M_HEAD)
		r->flags |= REQ_HEAD_ONLY;
	if (hr->meth == HTTP_M_CONNECT || (hr->path_len == 1 && hr->path[0] == '*')) {
		r->npath = hr->path;
		r->npath_len = hr->path_len;
	} else {
		long n = route_normalize_path(hr->path, hr->path_len, npath);
		if (n < 0)
			return *why = "bad path", 400;
		r->npath = npath;
		r->npath_len = (size_t)n;
	}
	r->route = route_match(c->conf, c->listen_idx, hr->host, hr->host_len, r->npath,
	    r->npath_len);
	if ((hr->flags & HTTP_F_HAS_CL) && (uint64_t)hr->content_length > c->conf->global.max_body_size)
		return *why = "request body larger than max_body_size", 413;
	return 0;
}

/* The calls that are the protocol's alone. */
size_t
http_resp_pending(const struct request *r)
{
	return r->xo->pending(r);
}

void
http_resp_abort(struct request *r, const char *reason)
{
	r->flags |= REQ_DONE; /* no abort callback: the handler is the one asking */
	r->xo->abort(r, reason);
}

void
http_req_resume(struct request *r)
{
	r->xo->resume(r);
}

void
http_tunnel_start(struct request *r)
{
	r->xo->tunnel_start(r);
}

void
http_tunnel_write(struct request *r, const void *data, size_t len)
{
	r->xo->tunnel_write(r, data, len);
}

void
http_tunnel_close(struct request *r)
{
	r->xo->tunnel_close(r);
}

int
http_upgrade(struct request *r, const struct upgraded_ops *ops, void *st)
{
	return r->xo->upgrade(r, ops, st);
}

void
http_resp_simple(struct request *r, int status, const char *ctype, const char *body,
    size_t len)
{
	http_resp_start(r, status, ctype, (int64_t)len);
	http_resp_body(r, body, len);
	http_resp_end(r);
}

void
http_resp_sbuf(struct request *r, int status, const char *content_type, struct sbuf *out)
{
	if (sbuf_failed(out)) {
		sbuf_free(out);
		http_resp_error(r, 500);
		return;
	}
	http_resp_start(r, status, content_type, (int64_t)out->len);
	http_resp_header(r, "Cache-Control", "no-store");
	http_resp_body(r, out->p, out->len);
	http_resp_end(r);
	sbuf_free(out);
}

void
http_resp_error_hdr(struct request *r, int status, const char *name, const char *value)
{
	char body[256];
	const char *text = http_status_text(status);
	int n = snprintf(body, sizeof(body),
	    "<html><head><title>%d %s</title></head><body><h1>%d %s</h1></body></html>\n",
	    status, text, status, text);

	http_resp_start(r, status, "text/html", n);
	if (name != NULL)
		http_resp_header(r, name, value);
	http_resp_body(r, body, (size_t)n);
	http_resp_end(r);
}

void
http_resp_error(struct request *r, int status)
{
	/* RFC 9110 9.1: a method we do not know at all is 501, not 405. */
	if (status == 405 && r->hr->meth == HTTP_M_OTHER)
		status = 501;
	if (status == 405)
		http_resp_error_hdr(r, status, "Allow", "GET, HEAD");
	else
		http_resp_error_hdr(r, status, NULL, NULL);
}

/*
 * The request headers as every reader sees them: those the client sent,
 * less those a middleware removed, then those it added, in that order.
 * The overlay is made on first change, so a request nothing touches
 * costs nothing.  Framing and routing headers cannot be changed: the
 * request was framed and routed by them already.
 */
struct req_overlay {
	uint64_t removed[HTTP_MAX_HEADERS / 64];  /* bit i: hr->headers[i] is hidden */
	struct http_header *added;                /* name and value strings owned */
	unsigned nadded, cap;
	size_t bytes;                             /* of the added names and values */
};

static int
frozen_name(const char *name, size_t nlen)
{
	static const char *const names[] = { "host", "content-length", "transfer-encoding",
		"connection", "upgrade", "te", "expect", "keep-alive", NULL };

	for (size_t i = 0; names[i] != NULL; i++)
		if (http_token_eq(name, nlen, names[i]))
			return 1;
	return 0;
}

int
req_header_changeable(const char *name, size_t nlen)
{
	return !frozen_name(name, nlen);
}

static int
visible(const struct request *r, unsigned i)
{
	const struct req_overlay *o = r->overlay;

	return o == NULL || !(o->removed[i / 64] & (1ULL << (i % 64)));
}

int
req_header_next(const struct request *r, unsigned *it, const struct http_header **out)
{
	const struct http_request *hr = r->hr;

	for (; *it < hr->nheaders; (*it)++)
		if (visible(r, *it)) {
			*out = &hr->headers[(*it)++];
			return 1;
		}
	unsigned k = *it - hr->nheaders;
	if (r->overlay == NULL || k >= r->overlay->nadded)
		return 0;
	*out = &r->overlay->added[k];
	(*it)++;
	return 1;
}

const struct http_header *
req_header(const struct request *r, const char *lower)
{
	const struct http_header *h;
	unsigned it = 0;

	if (r->overlay == NULL)
		return http_find_header(r->hr, lower);
	while (req_header_next(r, &it, &h))
		if (http_token_eq(h->name, h->name_len, lower))
			return h;
	return NULL;
}

static struct req_overlay *
overlay(struct request *r)
{
	if (r->overlay == NULL)
		r->overlay = calloc(1, sizeof(*r->overlay));
	return r->overlay;
}

void
req_header_remove(struct request *r, const char *name, size_t nlen)
{
	struct req_overlay *o;

	if (frozen_name(name, nlen) || (o = overlay(r)) == NULL)
		return;
	for (unsigned i = 0; i < r->hr->nheaders; i++) {
		const struct http_header *h = &r->hr->headers[i];
		if (h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0)
			o->removed[i / 64] |= 1ULL << (i % 64);
	}
	for (unsigned i = 0; i < o->nadded;) {
		struct http_header *h = &o->added[i];
		if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0) {
			i++;
			continue;
		}
		o->bytes -= h->name_len + h->value_len;
		free((char *)h->name);
		free((char *)h->value);
		memmove(h, h + 1, (o->nadded - i - 1) * sizeof(*h));
		o->nadded--;
	}
}

int
req_header_add(struct request *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct req_overlay *o;
	const struct config *conf = r->conn->conf;

	if (frozen_name(name, nlen) || (o = overlay(r)) == NULL)
		return -1;
	/* The head grows by no more than a client could have sent. */
	if (o->nadded >= conf->global.max_headers ||
	    o->bytes + nlen + vlen > conf->global.max_header_size)
		return -1;
	if (o->nadded == o->cap) {
		unsigned cap = o->cap ? o->cap * 2 : 8;
		struct http_header *v = realloc(o->added, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		o->added = v;
		o->cap = cap;
	}
	char *n = strndup(name, nlen), *v = strndup(value, vlen);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return -1;
	}
	o->added[o->nadded++] = (struct http_header){ n, v, (uint32_t)nlen, (uint32_t)vlen };
	o->bytes += nlen + vlen;
	return 0;
}

int
req_header_set(struct request *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
	req_header_remove(r, name, nlen);
	return req_header_add(r, name, nlen, value, vlen);
}

void
req_overlay_free(struct request *r)
{
	struct req_overlay *o = r->overlay;

	if (o == NULL)
		return;
	for (unsigned i = 0; i < o->nadded; i++) {
		free((char *)o->added[i].name);
		free((char *)o->added[i].value);
	}
	free(o->added);
	free(o);
	r->overlay = NULL;
}
