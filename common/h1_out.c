/*
 * h1_out: an exchange's response as HTTP/1.x bytes.  The head goes out in
 * one piece when the exchange commits it (status line, portico's own
 * headers, then the handler's lines as exchange.c kept them); the body is
 * framed as the head said: held to its Content-Length, chunked for an
 * HTTP/1.1 client when the length is not known, or close-delimited for
 * HTTP/1.0.  These are h1's exchange ops (h1.c holds the table).
 */
#include "common/h1.h"

#include <stdio.h>
#include <string.h>

#include "common/http.h"
#include "common/log.h"
#include "common/server.h"

#define OUT_LIT(c, s) conn_out((c), (s), sizeof(s) - 1)

static void
out_str(struct conn *c, const char *s)
{
	conn_out(c, s, strlen(s));
}

static void
out_num(struct conn *c, uint64_t v)
{
	char b[24], *p = http_dec(b + sizeof(b), v);

	conn_out(c, p, (size_t)(b + sizeof(b) - p));
}

/* "HTTP/1.1 200 OK\r\n", with the caller's reason phrase or the standard one. */
static void
out_status_line(struct conn *c, int status, const char *reason, size_t reason_len)
{
	OUT_LIT(c, "HTTP/1.1 ");
	out_num(c, (uint64_t)status);
	OUT_LIT(c, " ");
	if (reason_len > 0)
		conn_out(c, reason, reason_len);
	else
		out_str(c, http_status_text(status));
	OUT_LIT(c, "\r\n");
}

void
h1_resp_start(struct request *r)
{
	struct conn *c = r->conn;

	if (c->w->draining || h1_requests(r) >= c->conf->global.keepalive_requests ||
	    c->conf->global.keepalive_timeout == 0)
		r->flags |= REQ_CLOSE;
	/* Answering before the request body is in: the connection will close,
	 * so the head says so. */
	if (h1_answering_early(r))
		r->flags |= REQ_CLOSE;
}

/* The status line, portico's own headers, then those the handler added, in
 * the order given. */
void
h1_resp_head(struct request *r)
{
	struct conn *c = r->conn;
	struct worker *w = c->w;
	struct resp_head *h = &r->resp;
	int status = r->status;
	int version = r->hr->version == 10 ? 10 : 11;

	out_status_line(c, status, h->buf, h->reason_len);
	if (h->hide & RESP_HIDE_SERVER)
		;
	else if (c->conf->global.server_tokens)
		OUT_LIT(c, "Server: portico/" PORTICO_VERSION "\r\n");
	else
		OUT_LIT(c, "Server: portico\r\n");
	if (!(h->hide & RESP_HIDE_DATE)) {
		OUT_LIT(c, "Date: ");
		out_str(c, w->date);
		OUT_LIT(c, "\r\n");
	}
	if (h->has_ctype && http_status_has_body(status)) {
		OUT_LIT(c, "Content-Type: ");
		conn_out(c, h->buf + h->reason_len, h->ctype_len);
		OUT_LIT(c, "\r\n");
	}
	r->resp_left = 0;
	if (!http_status_has_body(status)) {
		/* no body and no length: RFC 9110 8.6 */
	} else if (h->clen >= 0) {
		OUT_LIT(c, "Content-Length: ");
		out_num(c, (uint64_t)h->clen);
		OUT_LIT(c, "\r\n");
		r->resp_left = h->clen;
	} else if (version == 11) {
		OUT_LIT(c, "Transfer-Encoding: chunked\r\n");
		r->flags |= REQ_CHUNKED_OUT;
	} else {
		r->flags |= REQ_CLOSE; /* HTTP/1.0: the body ends when we close */
		r->resp_left = -1;     /* and has no declared length to hold it to */
	}
	if (c->ssl != NULL && c->conf->listens[c->listen_idx].hsts != NULL &&
	    !(h->hide & RESP_HIDE_HSTS)) {
		OUT_LIT(c, "Strict-Transport-Security: ");
		out_str(c, c->conf->listens[c->listen_idx].hsts);
		OUT_LIT(c, "\r\n");
	}
	if (status != 101) { /* a 101's handler names the protocol: Connection: upgrade */
		if (r->flags & REQ_CLOSE)
			OUT_LIT(c, "Connection: close\r\n");
		else if (version == 10)
			OUT_LIT(c, "Connection: keep-alive\r\n");
	}
	conn_out(c, h->buf + h->lines, h->len - h->lines);
	OUT_LIT(c, "\r\n");
}

/* Interim responses go to HTTP/1.1 clients only (RFC 9110 15.2). */
int
h1_resp_interim(struct request *r, int status, const char *reason, size_t reason_len)
{
	if (r->hr->version < 11)
		return 0;
	out_status_line(r->conn, status, reason, reason_len);
	return 1;
}

void
h1_resp_interim_header(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen)
{
	struct conn *c = r->conn;

	conn_out(c, name, nlen);
	OUT_LIT(c, ": ");
	conn_out(c, value, vlen);
	OUT_LIT(c, "\r\n");
}

void
h1_resp_interim_end(struct request *r)
{
	OUT_LIT(r->conn, "\r\n");
	conn_kick(r->conn);
}

/* Chunked, held to the Content-Length, or as they are for a
 * close-delimited body. */
void
h1_resp_data(struct request *r, const void *data, size_t len)
{
	struct conn *c = r->conn;

	if (r->flags & REQ_CHUNKED_OUT) {
		char hex[20];
		int n = snprintf(hex, sizeof(hex), "%zx\r\n", len);
		conn_out(c, hex, (size_t)n);
		conn_out(c, data, len);
		OUT_LIT(c, "\r\n");
	} else {
		if (r->resp_left >= 0 && (int64_t)len > r->resp_left)
			len = (size_t)r->resp_left; /* never send more than we declared */
		conn_out(c, data, len);
		if (r->resp_left >= 0)
			r->resp_left -= (int64_t)len;
	}
	r->body_bytes += len;
	conn_kick(c);
}

int
h1_resp_file(struct request *r, int fd, off_t off, off_t len)
{
	if (conn_out_file(r->conn, fd, off, len) < 0) {
		r->flags |= REQ_CLOSE;
		return -1;
	}
	if (len == 0)
		return 0;
	if (r->resp_left >= 0)
		r->resp_left -= len;
	r->body_bytes += (uint64_t)len;
	return 0;
}

void
h1_resp_end(struct request *r)
{
	struct conn *c = r->conn;

	if ((r->flags & REQ_CHUNKED_OUT) && !(r->flags & REQ_HEAD_ONLY))
		OUT_LIT(c, "0\r\n\r\n");
	if (r->resp_left > 0 && !(r->flags & REQ_HEAD_ONLY)) {
		/* The handler declared more than it sent: the framing is broken. */
		log_warnx("conn %d: response %d ended %lld bytes short; closing", c->fd,
		    r->status, (long long)r->resp_left);
		r->flags |= REQ_CLOSE;
	}
	h1_request_done(r);
	conn_kick(c);
}
