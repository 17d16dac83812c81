#include "common/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/handler.h"
#include "common/http.h"
#include "common/log.h"
#include "common/pipeline.h"
#include "common/route.h"
#include "common/server.h"
#include "common/tls.h"

/* Stop parsing pipelined requests while this much output waits. */
#define OUT_HIGH_WATER HTTP_OUT_HIGH_WATER

static void conn_on_event(evutil_socket_t fd, short what, void *arg);
static void conn_process(struct conn *c);
static int conn_parse_loop(struct conn *c);
static uint64_t usec_since(const struct timespec *t0);
static void access_log(struct conn *c, uint64_t usec);

/* Monotonic milliseconds. */
static int64_t
now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

const char *
conn_peer(const struct conn *c, char *buf, size_t len)
{
	const struct sockaddr_in6 *s6 = &c->peer;

	if (s6->sin6_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)s6)->sin_addr, buf, (socklen_t)len);
	else if (s6->sin6_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
	else
		snprintf(buf, len, "-");
	return buf;
}

/*
 * Plain connections are edge-triggered, as nginx's are: level-triggered
 * epoll would poll every socket that was ready once more on the next
 * epoll_wait, a cost per request.  So a read that fills the buffer must
 * ask for another turn itself (see conn_on_event).  TLS connections stay
 * level-triggered: OpenSSL reads a record at a time and may leave bytes
 * in the socket.
 */
static short
conn_et(const struct conn *c)
{
	/* EV_CLOSED (EPOLLRDHUP): a FIN that came with the last data still
	 * gets noticed, since no further edge will come for it. */
	return c->ssl == NULL ? EV_ET | EV_CLOSED : 0;
}

/* What c->ev_tv points at while a one-off deadline is armed (arm_deadline). */
static const struct timeval deadline_tv;

/*
 * Arms the connection's one event for reading or writing with timeout tv
 * (NULL: none).  A persistent event restarts its timeout whenever it fires,
 * so when neither the mode nor the timeout changes there is nothing to do:
 * a keep-alive connection serving one request per read makes no event_add
 * call at all.
 */

static void
conn_arm(struct conn *c, short mode, const struct timeval *tv)
{
	short cur = event_get_events(&c->ev) & (EV_READ | EV_WRITE);

	/*
	 * Bytes OpenSSL holds (decrypted, or records read ahead) will not wake
	 * the socket.  Not during the handshake: SSL_do_handshake takes every
	 * whole record it has, so what is left is part of one, and waking for
	 * it would spin until the rest arrives.
	 */
	if (c->ssl != NULL && !c->handshaking && mode == EV_READ && SSL_has_pending(c->ssl))
		event_active(&c->ev, EV_READ, 0);
	if (cur == mode && c->ev_tv == tv && event_pending(&c->ev, mode, NULL))
		return;
	if (cur != mode) {
		event_del(&c->ev);
		event_assign(&c->ev, c->w->base, c->fd, mode | EV_PERSIST | conn_et(c), conn_on_event, c);
	} else if (tv == NULL && c->ev_tv != NULL) {
		/* event_add with no timeout keeps one already scheduled: a wait
		 * with no deadline of ours (a slow backend's answer) must not
		 * inherit the header or body deadline.  No syscall: the socket
		 * stays registered. */
		event_remove_timer(&c->ev);
	}
	c->ev_tv = tv;
	event_add(&c->ev, tv);
}

/* Arms a one-off read timeout of ms: the rest of an absolute deadline. */
static void
arm_deadline(struct conn *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if ((event_get_events(&c->ev) & (EV_READ | EV_WRITE)) != EV_READ)
		conn_arm(c, EV_READ, NULL);
	c->ev_tv = &deadline_tv; /* not a common timeout: the next conn_arm re-adds */
	event_add(&c->ev, &tv);
}

void
conn_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
    unsigned listen_idx)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL) {
		log_warnx("out of memory for a new connection");
		close(fd);
		worker_conn_closed(w);
		return;
	}
	c->fd = fd;
	c->w = w;
	c->snap = w->snap;
	c->snap->users++;
	c->conf = c->snap->conf;
	c->listen_idx = listen_idx;
	if (salen <= sizeof(c->peer))
		memcpy(&c->peer, sa, salen);
	/* Responses leave in one write; Nagle would only delay pipelined ones. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->nconns++;
	stats_add(&w->stats.connections_total, 1);
	stats_add(&w->stats.connections_active, 1);
	struct tls_listener *tls = atomic_load_explicit(&c->conf->listens[listen_idx].tls,
	    memory_order_acquire);
	if (tls != NULL) {
		c->ssl = tls_accept(tls, fd);
		c->handshaking = 1;
		/* The whole handshake within tls_handshake_timeout, however it trickles in. */
		int64_t limit = c->conf->global.tls_handshake_timeout > 0 ?
		    c->conf->global.tls_handshake_timeout : c->conf->global.header_timeout;
		c->deadline = now_ms() + limit;
	}
	event_assign(&c->ev, w->base, fd, EV_READ | EV_PERSIST | conn_et(c), conn_on_event, c);
	c->ev_tv = w->tv_header;
	event_add(&c->ev, w->tv_header);
	if (tls != NULL && c->ssl == NULL)
		conn_close(c, "cannot start TLS");
	else if (tls != NULL && c->conf->global.tls_handshake_timeout > 0)
		arm_deadline(c, (uint64_t)c->conf->global.tls_handshake_timeout);
}

/* File bytes to a TLS client: read in bounded chunks and encrypted (no
 * sendfile there), never the whole file in memory. */
static ssize_t
conn_send_file_tls(struct conn *c, struct file_seg *sg, int fd)
{
	char chunk[16384];
	size_t want = sg->len < (off_t)sizeof(chunk) ? (size_t)sg->len : sizeof(chunk);
	ssize_t r = pread(fd, chunk, want, sg->off);

	if (r <= 0)
		return r;
	ssize_t n = tls_io_send(c->fd, c->ssl, chunk, (size_t)r, 0);
	if (n > 0)
		sg->off += n;
	return n;
}

/* Drives the TLS handshake.  Returns 1 when done, 0 to wait, -1 if closed. */
static int
conn_handshake(struct conn *c)
{
	struct worker *w = c->w;

	ERR_clear_error();
	int rc = SSL_do_handshake(c->ssl);
	if (rc == 1) {
		c->handshaking = 0;
		conn_arm(c, EV_READ, w->tv_header);
		return 1;
	}
	int64_t left = c->deadline - now_ms();
	int err = SSL_get_error(c->ssl, rc);
	if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && left <= 0) {
		conn_close(c, "TLS handshake too slow");
		return -1;
	}
	switch (err) {
	case SSL_ERROR_WANT_READ:
		arm_deadline(c, (uint64_t)left);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		conn_arm(c, EV_WRITE, w->tv_header);
		return 0;
	default:
		if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_HTTP_REQUEST) {
			/* Plain HTTP on the TLS port: say so in plain HTTP, as nginx does. */
			static const char plain400[] = "HTTP/1.1 400 Bad Request\r\n"
			    "Content-Type: text/plain\r\nContent-Length: 46\r\nConnection: close\r\n\r\n"
			    "The plain HTTP request was sent to HTTPS port\n";
			ssize_t sent = send(c->fd, plain400, sizeof(plain400) - 1, MSG_NOSIGNAL);
			(void)sent; /* best effort: the connection closes either way */
			stats_add(&w->stats.responses[4], 1);
		}
		if (log_enabled(LOG_LVL_INFO) && worker_log_client_error(w)) {
			char peer[INET6_ADDRSTRLEN], why[160];
			unsigned long e = ERR_peek_last_error();
			ERR_error_string_n(e, why, sizeof(why));
			log_info("conn %d from %s: TLS handshake failed: %s", c->fd,
			    conn_peer(c, peer, sizeof(peer)), e ? why : "connection closed");
		}
		ERR_clear_error();
		conn_close(c, "TLS handshake failed");
		return -1;
	}
}

static void
release_buffers(struct conn *c)
{
	struct worker *w = c->w;

	if (c->rbuf != NULL && c->rpos == c->rlen && c->state == CONN_IDLE) {
		freelist_put(&w->rbufs, c->rbuf);
		c->rbuf = NULL;
		c->rlen = c->rpos = 0;
	}
	if (c->obuf != NULL && c->osent == c->olen) {
		if (c->ocap == w->rbufs.size)
			freelist_put(&w->rbufs, c->obuf);
		else
			free(c->obuf);
		c->obuf = NULL;
		c->olen = c->osent = c->ocap = 0;
	}
}

static void
file_out_free(struct conn *c)
{
	if (c->fo == NULL)
		return;
	close(c->fo->fd);
	free(c->fo);
	c->fo = NULL;
}

void
conn_close(struct conn *c, const char *reason)
{
	struct worker *w = c->w;

	if (log_enabled(LOG_LVL_DEBUG)) {
		char peer[INET6_ADDRSTRLEN];
		log_debug("conn %d from %s closed: %s", c->fd, conn_peer(c, peer, sizeof(peer)), reason);
	}
	if (c->x != NULL && (c->state == CONN_HANDLER || c->state == CONN_TUNNEL) &&
	    !(c->x->req.flags & REQ_DONE) &&
	    c->x->req.route != NULL && c->x->req.route->handler->abort != NULL)
		c->x->req.route->handler->abort(&c->x->req);
	/* A request cut short leaves its line too: with the status sent, or 499
	 * (as nginx logs it) when the client got no answer.  A tunnel's line was
	 * written when it opened. */
	if (c->x != NULL && (c->state == CONN_HANDLER || c->state == CONN_BODY) &&
	    w->srv->access_log_fd >= 0) {
		if (!(c->x->req.flags & REQ_STARTED))
			c->x->req.status = 499;
		access_log(c, usec_since(&c->x->req.start));
	}
	event_del(&c->ev);
	if (c->ssl != NULL) {
		if (!c->handshaking)
			SSL_shutdown(c->ssl); /* close_notify, best effort: the socket is non-blocking */
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	close(c->fd);
	TAILQ_REMOVE(&w->conns, c, link);
	w->nconns--;
	stats_add(&w->stats.connections_active, (uint64_t)-1);
	if (c->x != NULL) {
		resp_head_release(&c->x->req);
		req_overlay_free(&c->x->req);
	}
	freelist_put(&w->heads, c->x);
	file_out_free(c);
	if (c->rbuf != NULL)
		freelist_put(&w->rbufs, c->rbuf);
	if (c->obuf != NULL) {
		if (c->ocap == w->rbufs.size)
			freelist_put(&w->rbufs, c->obuf);
		else
			free(c->obuf);
	}
	worker_snap_put(w, c->snap);
	free(c);
	worker_conn_closed(w);
}

void
conn_drain(struct conn *c)
{
	if (c->state == CONN_IDLE && c->osent == c->olen && c->rpos == c->rlen)
		conn_close(c, "shutting down");
	/* Otherwise the response in progress carries "Connection: close". */
}

/* Makes room for n more output bytes.  0 or -1 (out of memory). */
static int
obuf_reserve(struct conn *c, size_t n)
{
	struct worker *w = c->w;

	if (c->obuf == NULL) {
		if (n <= w->rbufs.size) {
			c->obuf = freelist_get(&w->rbufs);
			c->ocap = w->rbufs.size;
		} else {
			c->obuf = malloc(n);
			c->ocap = n;
		}
		if (c->obuf == NULL) {
			c->ocap = 0;
			return -1;
		}
		return 0;
	}
	if (c->ocap - c->olen >= n)
		return 0;
	if (c->osent > 0) {
		memmove(c->obuf, c->obuf + c->osent, c->olen - c->osent);
		for (unsigned i = c->fo != NULL ? c->fo->cur : 0; c->fo != NULL && i < c->fo->n; i++)
			c->fo->seg[i].at -= c->osent;
		c->olen -= c->osent;
		c->osent = 0;
		if (c->ocap - c->olen >= n)
			return 0;
	}
	size_t cap = c->ocap * 2 > c->olen + n ? c->ocap * 2 : c->olen + n;
	char *nb = malloc(cap);
	if (nb == NULL)
		return -1;
	memcpy(nb, c->obuf, c->olen);
	if (c->ocap == w->rbufs.size)
		freelist_put(&w->rbufs, c->obuf);
	else
		free(c->obuf);
	c->obuf = nb;
	c->ocap = cap;
	return 0;
}

void
conn_out(struct conn *c, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (obuf_reserve(c, n) < 0) {
		c->closing = 1; /* cannot frame the rest of the response */
		return;
	}
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
}

#define OUT_LIT(c, s) conn_out((c), (s), sizeof(s) - 1)

/* Answering before the request body is in: the connection will close. */
int
conn_answering_early(const struct conn *c, const struct request *r)
{
	return c->state == CONN_HEAD || c->state == CONN_BODY ||
	    (c->state == CONN_HANDLER && c->x != NULL && &c->x->req == r && !c->x->body_done);
}

/* Runs of at most this many bytes are copied into the output buffer: one
 * pread and one send beat a send and a sendfile for small files. */
#define FILE_COPY_MAX (16 * 1024)

int
conn_out_file(struct conn *c, int fd, off_t off, off_t len)
{
	if (c->fo == NULL) {
		c->fo = malloc(sizeof(*c->fo));
		if (c->fo == NULL) {
			close(fd);
			goto fail;
		}
		c->fo->fd = fd;
		c->fo->n = c->fo->cur = 0;
	}
	if (len == 0)
		return 0;
	if (len <= FILE_COPY_MAX && obuf_reserve(c, (size_t)len) == 0) {
		ssize_t n = pread(fd, c->obuf + c->olen, (size_t)len, off);
		if (n != (ssize_t)len)
			goto fail;
		c->olen += (size_t)len;
	} else {
		if (c->fo->n == FILE_OUT_SEGS)
			goto fail;
		struct file_seg *sg = &c->fo->seg[c->fo->n++];
		sg->at = c->olen;
		sg->off = off;
		sg->len = len;
	}
	return 0;
fail:
	log_warn("conn %d: cannot queue file body", c->fd);
	c->closing = 1;
	return -1;
}

void
http_tunnel_start(struct request *r)
{
	struct conn *c = r->conn;
	struct worker *w = c->w;

	http_resp_commit(r);
	stats_response(&w->stats, r->status, usec_since(&r->start));
	if (w->srv->access_log_fd >= 0)
		access_log(c, usec_since(&r->start));
	c->state = CONN_TUNNEL;
	c->x->body_done = 0;
	c->x->body_paused = 0;
	/* Bytes the client sent after the head already belong to the tunnel. */
	if (c->rpos < c->rlen) {
		const struct handler_ops *h = r->route->handler;
		if (h->body(r, c->rbuf + c->rpos, c->rlen - c->rpos) == 1)
			c->x->body_paused = 1;
	}
	c->rlen = c->rpos = c->x->hr.head_len;
	conn_kick(c);
}

void
http_tunnel_write(struct request *r, const void *data, size_t len)
{
	conn_out(r->conn, data, len);
	conn_kick(r->conn);
}

void
http_tunnel_close(struct request *r)
{
	struct conn *c = r->conn;

	r->flags |= REQ_DONE;
	c->closing = 1;
	c->linger = 0;
	conn_kick(c);
}

/* Output queued from outside conn_process (an answer that came later):
 * have the loop flush it. */
void
conn_kick(struct conn *c)
{
	if (!c->in_loop)
		event_active(&c->ev, EV_WRITE, 0);
}

size_t
http_resp_pending(const struct request *r)
{
	const struct conn *c = r->conn;

	return c->olen - c->osent + (c->fo != NULL ? 1 : 0);
}

void
http_resp_abort(struct request *r, const char *reason)
{
	struct conn *c = r->conn;

	r->flags |= REQ_DONE; /* no abort callback: the handler is the one asking */
	conn_close(c, reason);
}

void
http_req_resume(struct request *r)
{
	struct conn *c = r->conn;

	if (c->x == NULL || !c->x->body_paused)
		return;
	c->x->body_paused = 0;
	conn_arm(c, EV_READ, c->state == CONN_TUNNEL ? NULL : c->w->tv_body);
	conn_kick(c);
}

/* Appends s to buf with quotes, backslashes and control bytes escaped as
 * \xHH (as nginx does), so a client cannot forge log lines. */
static size_t
log_escape(char *buf, size_t cap, size_t n, const char *s, size_t len, int json)
{
	static const char hex[] = "0123456789ABCDEF";

	if (s == NULL || len == 0) {
		if (n < cap)
			buf[n++] = '-';
		return n;
	}
	for (size_t i = 0; i < len && n + 4 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (json && (ch < 0x20 || ch == '"' || ch == '\\' || ch >= 0x7f)) {
			/* \u00XX: valid JSON; bytes >= 0x80 are shown, not decoded */
			if (n + 7 >= cap)
				break;
			memcpy(buf + n, "\\u00", 4);
			n += 4;
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		} else if (ch < 0x20 || ch == '"' || ch == '\\' || ch >= 0x7f) {
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		} else {
			buf[n++] = (char)ch;
		}
	}
	return n;
}

static void
access_log(struct conn *c, uint64_t usec)
{
	struct worker *w = c->w;
	struct request *r = &c->x->req;
	struct http_request *hr = &c->x->hr;
	const struct http_header *ref = NULL, *ua = NULL;
	char line[4096], peer[INET6_ADDRSTRLEN];
	size_t n = 0;
	int json = c->conf->global.access_log_format == ACCESS_LOG_JSON;

	if (hr != NULL && hr->state != 0) {
		ref = req_header(r, "referer");
		ua = req_header(r, "user-agent");
	}
	conn_peer(c, peer, sizeof(peer));
	const char *rl = hr != NULL ? hr->line : NULL;
	size_t rll = hr != NULL && hr->line != NULL ? hr->line_len : 0;
	if (json) {
		n = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"remote_addr\":\"%s\","
		    "\"request\":\"", w->logtime, peer);
		n = log_escape(line, sizeof(line) - 200, n, rl, rll, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"status\":%d,\"body_bytes\":%llu,"
		    "\"request_time_us\":%llu,\"referer\":\"", r->status,
		    (unsigned long long)r->body_bytes, (unsigned long long)usec);
		n = log_escape(line, sizeof(line) - 100, n, ref ? ref->value : NULL, ref ? ref->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"user_agent\":\"");
		n = log_escape(line, sizeof(line) - 8, n, ua ? ua->value : NULL, ua ? ua->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}\n");
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s - - [%s] \"", peer, w->logtime);
		n = log_escape(line, sizeof(line) - 200, n, rl, rll, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\" %d %llu \"", r->status,
		    (unsigned long long)r->body_bytes);
		n = log_escape(line, sizeof(line) - 100, n, ref ? ref->value : NULL, ref ? ref->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\" \"");
		n = log_escape(line, sizeof(line) - 8, n, ua ? ua->value : NULL, ua ? ua->value_len : 0, json);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"\n");
	}
	if (n > sizeof(line))
		n = sizeof(line);
	worker_access_log(w, line, n);
}

static uint64_t
usec_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t us = (int64_t)(now.tv_sec - t0->tv_sec) * 1000000 +
	    (now.tv_nsec - t0->tv_nsec) / 1000;
	return us < 0 ? 0 : (uint64_t)us;
}

/* The response is queued: count it, log it and get ready for the next one. */
void
conn_request_done(struct conn *c)
{
	struct worker *w = c->w;
	struct request *r = &c->x->req;
	uint64_t us = usec_since(&r->start);

	if (c->state != CONN_TUNNEL) { /* a tunnel was counted when it opened */
		stats_response(&w->stats, r->status, us);
		if (w->srv->access_log_fd >= 0)
			access_log(c, us);
	}
	if (r->flags & REQ_CLOSE)
		c->closing = 1;
	if (c->state == CONN_HEAD || c->state == CONN_BODY ||
	    (c->state == CONN_HANDLER && !c->x->body_done)) {
		/* Answered before the request was read whole: framing is in doubt,
		 * and the client may still be sending. */
		c->closing = 1;
		c->linger = 1;
	}
	if (c->closing && c->rpos < c->rlen)
		c->linger = 1; /* pipelined requests we will not answer: see input_waiting */
	/* Drop the head (and any body bytes consumed with it) from the buffer. */
	if (c->rpos < c->rlen && !c->closing) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
	} else {
		c->rlen = 0;
	}
	c->rpos = 0;
	resp_head_release(&c->x->req);
	req_overlay_free(&c->x->req);
	freelist_put(&w->heads, c->x);
	c->x = NULL;
	c->state = CONN_IDLE;
}

/* Answers a request we could not parse or accept, then closes. */
static void
request_fail(struct conn *c, int status, const char *why)
{
	struct request *r = &c->x->req;

	if (log_enabled(LOG_LVL_INFO) && worker_log_client_error(c->w)) {
		char peer[INET6_ADDRSTRLEN];
		log_info("conn %d from %s: %d: %s", c->fd, conn_peer(c, peer, sizeof(peer)),
		    status, why);
	}
	r->flags |= REQ_CLOSE;
	if (c->x->hr.meth == HTTP_M_HEAD)
		r->flags |= REQ_HEAD_ONLY;
	c->state = CONN_HEAD; /* framing in doubt: request_finish closes */
	http_resp_error(r, status);
}

static void
request_begin(struct conn *c)
{
	struct worker *w = c->w;

	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	/* After a reload, each request takes the newest configuration; on a
	 * listener that went, the connection ends with this one. */
	int stale = c->snap != w->snap && worker_conn_follow(c) < 0;
	c->x = freelist_get(&w->heads);
	if (c->x == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	http_request_reset(&c->x->hr);
	memset(&c->x->req, 0, sizeof(c->x->req));
	if (stale)
		c->x->req.flags |= REQ_CLOSE;
	c->x->req.conn = c;
	c->x->req.hr = &c->x->hr;
	resp_head_init(&c->x->req, c->x->resp_inline, sizeof(c->x->resp_inline));
	clock_gettime(CLOCK_MONOTONIC, &c->x->req.start);
	c->state = CONN_HEAD;
	c->nrequests++;
}

static void
handler_start(struct conn *c)
{
	struct request *r = &c->x->req;

	c->state = CONN_HANDLER;
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
dispatch(struct conn *c)
{
	struct worker *w = c->w;
	struct exchange *x = c->x;
	struct http_request *hr = &x->hr;
	struct request *r = &x->req;
	char *npath = (char *)(x + 1);

	if (hr->meth == HTTP_M_HEAD)
		r->flags |= REQ_HEAD_ONLY;
	if (!(hr->flags & HTTP_F_KEEPALIVE))
		r->flags |= REQ_CLOSE;
	if (hr->meth == HTTP_M_CONNECT || (hr->path_len == 1 && hr->path[0] == '*')) {
		r->npath = hr->path;
		r->npath_len = hr->path_len;
	} else {
		long n = route_normalize_path(hr->path, hr->path_len, npath);
		if (n < 0) {
			request_fail(c, 400, "bad path");
			return;
		}
		r->npath = npath;
		r->npath_len = (size_t)n;
	}
	r->route = route_match(c->conf, c->listen_idx, hr->host, hr->host_len, r->npath,
	    r->npath_len);
	if ((hr->flags & HTTP_F_HAS_CL) && (uint64_t)hr->content_length > c->conf->global.max_body_size) {
		request_fail(c, 413, "request body larger than max_body_size");
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
		c->state = CONN_HANDLER;
		if (pipeline_request(r) == MW_ANSWERED)
			return;
		c->state = CONN_HEAD;
	}
	if (!x->body_done) {
		if ((hr->flags & HTTP_F_EXPECT_100) && hr->version == 11)
			OUT_LIT(c, "HTTP/1.1 100 Continue\r\n\r\n");
		conn_arm(c, EV_READ, w->tv_body);
		if (r->route != NULL && (r->route->handler->flags & HANDLER_WANTS_BODY)) {
			/* The handler takes the body as it comes (conn_parse_loop). */
			handler_start(c);
			return;
		}
		c->state = CONN_BODY;
		return;
	}
	handler_start(c);
}

/* Bad body framing: answer if nothing was sent yet (-1), else cut the
 * connection (-2: it is gone). */
static int
body_error(struct conn *c, int status, const char *why)
{
	struct request *r = &c->x->req;

	if (c->state == CONN_HANDLER) {
		const struct handler_ops *h = r->route->handler;
		if (h->abort != NULL)
			h->abort(r);
		if (r->flags & REQ_STARTED) {
			r->flags |= REQ_DONE;
			conn_close(c, why);
			return -2;
		}
	}
	request_fail(c, status, why);
	return -1;
}

/*
 * Reads request body bytes from the buffer, handing them to the handler
 * when it takes them (else dropping them).  Returns 1 when the body is
 * complete, 0 when more must be read, 2 when the handler paused, -1 when
 * the exchange ended (answered), or -2 when the connection was closed.
 */
static int
body_feed(struct conn *c)
{
	struct exchange *x = c->x;
	struct request *r = &x->req;
	int deliver = c->state == CONN_HANDLER;
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
				return body_error(c, 400, "bad chunked framing");
			off = c->rpos + doff;
			c->rpos += (size_t)n;
			/* Extensions count: else megabytes of them could ride on a tiny body. */
			if (x->chunk.total + x->chunk.ext_bytes > c->conf->global.max_body_size)
				return body_error(c, 413, "chunked body larger than max_body_size");
			x->body_done = x->chunk.state == CHUNK_DONE;
		}
		if (deliver && (len > 0 || x->body_done)) {
			if (len > 0)
				rc = r->route->handler->body(r, c->rbuf + off, len);
			if (rc == 0 && x->body_done && c->x == x)
				rc = r->route->handler->body(r, NULL, 0);
			if (c->x != x)
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

/*
 * Whether the client has sent bytes we have not handled: pipelined requests
 * behind the last one we answer.  Closing on them would reset the
 * connection and could destroy responses still in flight.  One recv, on
 * the closing path only.
 */
static int
input_waiting(struct conn *c)
{
	char b;

	if (c->rpos < c->rlen || (c->ssl != NULL && SSL_has_pending(c->ssl)))
		return 1;
	return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Writes pending output.  Returns -1 if the connection was closed. */
static int
conn_flush(struct conn *c)
{
	struct worker *w = c->w;

	for (;;) {
		struct file_out *fo = c->fo;
		struct file_seg *sg = fo != NULL && fo->cur < fo->n ? &fo->seg[fo->cur] : NULL;
		size_t upto = sg != NULL ? sg->at : c->olen;
		ssize_t n;

		if (c->osent < upto) {
			/* MSG_MORE: headers and the file data after them share segments. */
			n = tls_io_send(c->fd, c->ssl, c->obuf + c->osent, upto - c->osent, sg != NULL);
			if (n > 0)
				c->osent += (size_t)n;
		} else if (sg != NULL) {
			size_t chunk = sg->len > (1 << 30) ? (1 << 30) : (size_t)sg->len;
			n = c->ssl != NULL ? conn_send_file_tls(c, sg, fo->fd) :
			    sendfile(c->fd, fo->fd, &sg->off, chunk);
			if (n > 0 && (sg->len -= n) == 0)
				fo->cur++;
			if (n == 0) {
				conn_close(c, "file shrank while being sent");
				return -1;
			}
		} else {
			break;
		}
		if (n > 0) {
			stats_add(&w->stats.bytes_sent, (uint64_t)n);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->writing = 1;
			conn_arm(c, EV_WRITE, w->tv_send);
			return 0;
		}
		conn_close(c, strerror(errno));
		return -1;
	}
	file_out_free(c);
	c->writing = 0;
	if (c->closing) {
		if (c->state == CONN_LINGER)
			return 0;
		if (!c->linger && !input_waiting(c)) {
			conn_close(c, "done");
			return -1;
		}
		/*
		 * An error answer, or requests we will not answer behind the last
		 * one: stop sending, but read what the client still sends for a
		 * while, so that what we sent is not lost to the reset a close
		 * with unread input causes (RFC 9112 9.6).
		 */
		if (c->ssl != NULL) {
			SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		shutdown(c->fd, SHUT_WR);
		c->state = CONN_LINGER;
		c->deadline = now_ms() + c->conf->global.linger_time;
		release_buffers(c);
		conn_arm(c, EV_READ, w->tv_linger);
		return 0;
	}
	release_buffers(c);
	if (w->draining && c->state == CONN_IDLE && c->rpos == c->rlen) {
		conn_close(c, "shutting down");
		return -1;
	}
	switch (c->state) {
	case CONN_IDLE:
		conn_arm(c, EV_READ, c->rlen > 0 ? w->tv_header : w->tv_keepalive);
		break;
	case CONN_HEAD:
		conn_arm(c, EV_READ, w->tv_header);
		break;
	case CONN_BODY:
		conn_arm(c, EV_READ, w->tv_body);
		break;
	case CONN_TUNNEL:
		if (c->x->body_done || c->x->body_paused)
			event_del(&c->ev);
		else
			conn_arm(c, EV_READ, NULL);
		if (c->x->req.route->handler->writable != NULL)
			c->x->req.route->handler->writable(&c->x->req);
		break;
	case CONN_HANDLER:
		/* Waiting for the handler: read the body if it wants more, else only
		 * watch for the client going away (its own timeouts apply). */
		if (c->x->body_done)
			conn_arm(c, EV_READ, NULL);
		else if (c->x->body_paused)
			event_del(&c->ev);
		else
			conn_arm(c, EV_READ, w->tv_body);
		if (c->x->req.route != NULL && c->x->req.route->handler->writable != NULL &&
		    (c->x->req.flags & REQ_STARTED))
			c->x->req.route->handler->writable(&c->x->req);
		break;
	default:
		break;
	}
	return 0;
}

static void
conn_process(struct conn *c)
{
	for (;;) {
		c->in_loop = 1;
		int rc = conn_parse_loop(c);
		if (rc < 0)
			return;
		c->in_loop = 0;
		if (conn_flush(c) < 0)
			return;
		/* Output went out at once: go on with requests already read. */
		if (c->writing || c->closing || c->state != CONN_IDLE || c->rpos == c->rlen)
			return;
	}
}

/* Handles the requests in the read buffer until output backs up.
 * Returns -1 if the connection was closed. */
static int
conn_parse_loop(struct conn *c)
{
	struct worker *w = c->w;

	while (!c->closing && c->fo == NULL && c->olen - c->osent < OUT_HIGH_WATER) {
		if (c->state == CONN_IDLE) {
			if (c->rpos == c->rlen)
				break;
			request_begin(c);
			if (c->x == NULL)
				return -1; /* closed */
		}
		if (c->state == CONN_HEAD) {
			ssize_t n = http_parse_request(&c->x->hr, c->rbuf, c->rlen, &w->limits);
			if (n == 0) {
				/* Slowloris: the whole head must arrive within header_timeout. */
				uint64_t ms = usec_since(&c->x->req.start) / 1000;
				uint64_t limit = (uint64_t)c->conf->global.header_timeout;
				if (ms >= limit)
					request_fail(c, 408, "request head too slow");
				else
					arm_deadline(c, limit - ms);
				break;
			}
			if (n < 0) {
				request_fail(c, (int)-n, c->x->hr.error);
				continue;
			}
			c->rpos = (size_t)n;
			dispatch(c);
			continue;
		}
		if (c->state == CONN_BODY) {
			int rc = body_feed(c);
			if (rc == -2)
				return -1;
			if (rc == 1)
				handler_start(c);
			if (rc == 0)
				break;
			continue;
		}
		if (c->state == CONN_HANDLER && !c->x->body_done && !c->x->body_paused) {
			int rc = body_feed(c);
			if (rc == -2)
				return -1;
			if (rc == 0 || rc == 2)
				break;
			continue;
		}
		break; /* CONN_HANDLER waits for the handler, CONN_LINGER for EOF */
	}
	return 0;
}

static void
conn_on_timeout(struct conn *c)
{
	switch (c->state) {
	case CONN_HEAD:
		if (c->rlen > 0) {
			request_fail(c, 408, "request head timed out");
			conn_flush(c);
			return;
		}
		conn_close(c, "idle");
		return;
	case CONN_BODY:
		request_fail(c, 408, "request body timed out");
		conn_flush(c);
		return;
	case CONN_IDLE:
		conn_close(c, c->writing ? "send timed out" : "keep-alive timeout");
		return;
	case CONN_HANDLER:
		/* A handler taking the body as it comes (a proxied upload) waits
		 * for the rest: 408 as when nobody takes it, if nothing was sent. */
		if (!c->writing && !c->x->body_done) {
			if (body_error(c, 408, "request body timed out") == -1)
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

static void
conn_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct worker *w = c->w;

	(void)fd;
	if (what & EV_TIMEOUT) {
		conn_on_timeout(c);
		return;
	}
	if (c->handshaking) {
		conn_handshake(c);
		return;
	}
	if (what & EV_WRITE) {
		/* A read edge that came with this (kick() ORs EV_WRITE into an
		 * active read) would be lost when edge-triggered: take it next turn. */
		if ((what & (EV_READ | EV_CLOSED)) && c->ssl == NULL)
			event_active(&c->ev, EV_READ, 0);
		if (conn_flush(c) == 0 && !c->writing && !c->closing)
			conn_process(c);
		return;
	}
	if (c->rbuf == NULL) {
		c->rbuf = freelist_get(&w->rbufs);
		if (c->rbuf == NULL) {
			conn_close(c, "out of memory");
			return;
		}
		c->rlen = c->rpos = 0;
	}
	size_t room = w->rbufs.size - c->rlen;
	if (room == 0) {
		/* The parser's limits fit in the buffer and bodies are consumed as
		 * they come: only a handler still at work (with pipelined requests
		 * behind it) fills it.  Read again once it is done. */
		if (c->state == CONN_HANDLER) {
			event_del(&c->ev);
			return;
		}
		conn_close(c, "read buffer full");
		return;
	}
	if (c->state == CONN_TUNNEL && c->x->body_paused)
		return; /* a turn asked for before the handler paused: it resumes us */
	ssize_t n = tls_io_recv(c->fd, c->ssl, c->rbuf + c->rlen, room);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (c->state == CONN_TUNNEL && n == 0 && !c->x->body_done) {
			/* The client is done sending; the other way may go on. */
			c->x->body_done = 1;
			event_del(&c->ev);
			c->x->req.route->handler->body(&c->x->req, NULL, 0);
			return;
		}
		if (c->state == CONN_BODY && n == 0)
			conn_close(c, "client closed during request body");
		else if (c->state == CONN_HEAD && c->rlen > 0 && n == 0)
			conn_close(c, "client closed during request head");
		else
			conn_close(c, n == 0 ? "client closed" : strerror(errno));
		return;
	}
	stats_add(&w->stats.bytes_received, (uint64_t)n);
	/* Edge-triggered: a full read may have left bytes behind, and a FIN
	 * behind the data gives no new edge; come back for them (conn_close
	 * cancels this if the connection goes first).  TLS sockets are level-
	 * triggered, but records OpenSSL read ahead no longer wake the socket. */
	if (c->ssl == NULL ? (size_t)n == room || (what & EV_CLOSED) : SSL_has_pending(c->ssl))
		event_active(&c->ev, EV_READ, 0);
	if (c->state == CONN_TUNNEL) {
		const struct handler_ops *h = c->x->req.route->handler;
		/* The buffer keeps the head: tunnel bytes go after it and are
		 * handed over at once. */
		int rc = h->body(&c->x->req, c->rbuf + c->rlen, (size_t)n);
		if (rc == 1) {
			c->x->body_paused = 1;
			event_del(&c->ev);
		}
		return;
	}
	if (c->state == CONN_LINGER) {
		c->rlen = 0; /* discard */
		/* linger_timeout restarts with each read; linger_time does not. */
		int64_t left = c->deadline - now_ms();
		if (left <= 0)
			conn_close(c, "lingered for linger_time");
		else if (left < c->conf->global.linger_timeout)
			arm_deadline(c, (uint64_t)left);
		return;
	}
	c->rlen += (size_t)n;
	conn_process(c);
}
