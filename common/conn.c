#include "common/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/freelist.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/tls.h"

static void conn_on_event(evutil_socket_t fd, short what, void *arg);

const char *
conn_peer(const struct conn *c, char *buf, size_t len)
{
	const struct sockaddr_in6 *s6 = &c->peer;

	if (s6->sin6_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)s6)->sin_addr, buf, (socklen_t)len);
	else if (s6->sin6_family == AF_INET6)
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
	else if (s6->sin6_family == AF_UNIX)
		snprintf(buf, len, "unix:"); /* as nginx's $remote_addr */
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

/* What c->ev_tv points at while a one-off deadline is armed (conn_arm_deadline). */
static const struct timeval deadline_tv;

/*
 * A persistent event restarts its timeout whenever it fires, so when
 * neither the mode nor the timeout changes there is nothing to do: a
 * keep-alive connection serving one request per read makes no event_add
 * call at all.
 */
void
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
		event_assign(&c->ev, c->env->base, c->fd, mode | EV_PERSIST | conn_et(c),
		    conn_on_event, c);
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

void
conn_arm_deadline(struct conn *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if ((event_get_events(&c->ev) & (EV_READ | EV_WRITE)) != EV_READ)
		conn_arm(c, EV_READ, NULL);
	c->ev_tv = &deadline_tv; /* not a common timeout: the next conn_arm re-adds */
	event_add(&c->ev, &tv);
}

const struct timeval *
conn_timeval(struct event_base *base, int64_t ms, struct timeval *spare)
{
	const struct timeval *common;

	spare->tv_sec = (time_t)(ms / 1000);
	spare->tv_usec = (suseconds_t)(ms % 1000) * 1000;
	common = event_base_init_common_timeout(base, spare);
	return common != NULL ? common : spare;
}

void
conn_disarm(struct conn *c)
{
	event_del(&c->ev);
}

struct conn *
conn_new(const struct conn_env *env, const struct conn_proto *proto, size_t size, int fd,
    const struct sockaddr *sa, socklen_t salen, struct tls_listener *tls, int64_t handshake_ms)
{
	struct conn *c = calloc(1, size);
	int one = 1;

	if (c == NULL) {
		log_warnx("out of memory for a new connection");
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->env = env;
	c->proto = proto;
	if (salen <= sizeof(c->peer))
		memcpy(&c->peer, sa, salen);
	else if (sa->sa_family == AF_UNIX)
		c->peer.sin6_family = AF_UNIX; /* a named client socket: its path is not kept */
	/* Responses leave in one write; Nagle would only delay pipelined ones. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tls != NULL) {
		c->ssl = tls_accept(tls, fd);
		c->handshaking = 1;
	}
	/* After ssl is set: conn_et tells the two kinds apart by it. */
	event_assign(&c->ev, env->base, fd, EV_READ | EV_PERSIST | conn_et(c), conn_on_event, c);
	if (tls != NULL) {
		/* The whole handshake within handshake_ms, however it trickles in. */
		c->deadline = clock_ms() + handshake_ms;
		conn_arm_deadline(c, (uint64_t)handshake_ms);
	}
	return c;
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
	ERR_clear_error();
	int rc = SSL_do_handshake(c->ssl);
	if (rc == 1) {
		c->handshaking = 0;
		c->proto->start(c);
		return 1;
	}
	int64_t left = c->deadline - clock_ms();
	int err = SSL_get_error(c->ssl, rc);
	if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && left <= 0) {
		conn_close(c, "TLS handshake too slow");
		return -1;
	}
	switch (err) {
	case SSL_ERROR_WANT_READ:
		conn_arm_deadline(c, (uint64_t)left);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		conn_arm(c, EV_WRITE, c->env->tv_send);
		return 0;
	default:
		if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_HTTP_REQUEST) {
			/* Plain HTTP on the TLS port: say so in plain HTTP, as nginx does. */
			static const char plain400[] = "HTTP/1.1 400 Bad Request\r\n"
			    "Content-Type: text/plain\r\nContent-Length: 46\r\nConnection: close\r\n\r\n"
			    "The plain HTTP request was sent to HTTPS port\n";
			ssize_t sent = send(c->fd, plain400, sizeof(plain400) - 1, MSG_NOSIGNAL);
			(void)sent; /* best effort: the connection closes either way */
			stats_add(&c->env->stats->responses[4], 1);
		}
		if (log_enabled(LOG_LVL_INFO) && c->env->log_ok(c->env->owner)) {
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
buf_put(struct conn *c, char *buf, size_t cap)
{
	if (cap == c->env->bufs->size)
		freelist_put(c->env->bufs, buf);
	else
		free(buf);
}

void
conn_release_input(struct conn *c)
{
	if (c->rbuf != NULL && c->rpos == c->rlen) {
		freelist_put(c->env->bufs, c->rbuf);
		c->rbuf = NULL;
		c->rlen = c->rpos = 0;
	}
}

static void
release_output(struct conn *c)
{
	if (c->obuf != NULL && c->osent == c->olen) {
		buf_put(c, c->obuf, c->ocap);
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
	const struct conn_env *env = c->env;

	if (log_enabled(LOG_LVL_DEBUG)) {
		char peer[INET6_ADDRSTRLEN];
		log_debug("conn %d from %s closed: %s", c->fd, conn_peer(c, peer, sizeof(peer)), reason);
	}
	c->proto->close(c, reason);
	event_del(&c->ev);
	if (c->ssl != NULL) {
		if (!c->handshaking)
			SSL_shutdown(c->ssl); /* close_notify, best effort: the socket is non-blocking */
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	close(c->fd);
	file_out_free(c);
	if (c->rbuf != NULL)
		freelist_put(env->bufs, c->rbuf);
	if (c->obuf != NULL)
		buf_put(c, c->obuf, c->ocap);
	free(c);
	env->closed(env->owner);
}

/* Makes room for n more output bytes.  0, or -1 (out of memory, or over
 * CONN_OUT_MAX: a writer that ignored the high-water mark). */
static int
obuf_reserve(struct conn *c, size_t n)
{
	struct freelist *bufs = c->env->bufs;

	if (c->olen - c->osent + n > CONN_OUT_MAX) {
		log_warnx("conn %d: more than %d KiB of output queued (a writer ignored the "
		    "high-water mark); closing", c->fd, CONN_OUT_MAX / 1024);
		return -1;
	}
	if (c->obuf == NULL) {
		if (n <= bufs->size) {
			c->obuf = freelist_get(bufs);
			c->ocap = bufs->size;
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
	buf_put(c, c->obuf, c->ocap);
	c->obuf = nb;
	c->ocap = cap;
	return 0;
}

void
conn_out(struct conn *c, const void *p, size_t n)
{
	if (n == 0 || c->out_failed)
		return;
	if (obuf_reserve(c, n) < 0) {
		/* The rest of the response cannot be framed: nothing more goes
		 * out after what is queued, or the client would get a hole. */
		c->out_failed = 1;
		c->closing = 1;
		return;
	}
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
}

/* Runs of at most this many bytes are copied into the output buffer: one
 * pread and one send beat a send and a sendfile for small files. */
#define FILE_COPY_MAX (16 * 1024)

int
conn_out_file(struct conn *c, int fd, off_t off, off_t len)
{
	if (c->out_failed) {
		if (c->fo == NULL || c->fo->fd != fd)
			close(fd);
		return -1;
	}
	if (c->fo != NULL && c->fo->fd != fd) {
		close(fd); /* one file per response: a second one cannot be framed in */
		goto fail;
	}
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
	c->out_failed = 1;
	c->closing = 1;
	return -1;
}

int
conn_out_pread(struct conn *c, int fd, off_t off, size_t len)
{
	ssize_t n;

	if (c->out_failed)
		return -1;
	if (obuf_reserve(c, len) < 0)
		goto fail;
	n = pread(fd, c->obuf + c->olen, len, off);
	if (n != (ssize_t)len) {
		if (n >= 0)
			errno = EIO; /* the file shrank */
		log_warn("conn %d: cannot read file body", c->fd);
		return -1; /* nothing queued: the caller's frame is its to undo */
	}
	c->olen += len;
	return 0;
fail:
	c->out_failed = 1;
	c->closing = 1;
	return -1;
}

size_t
conn_out_mark(const struct conn *c)
{
	return c->olen - c->osent; /* unmoved by obuf_reserve's compaction */
}

void
conn_out_unwrite(struct conn *c, size_t mark)
{
	if (c->olen - c->osent > mark)
		c->olen = c->osent + mark;
}

size_t
conn_pending(const struct conn *c)
{
	return c->olen - c->osent + (c->fo != NULL ? 1 : 0);
}

void
conn_kick(struct conn *c)
{
	if (!c->in_loop)
		event_active(&c->ev, EV_WRITE, 0);
}

/*
 * Whether the client has sent bytes we have not handled: pipelined requests
 * behind the last one we answer.  Closing on them would reset the
 * connection and could destroy responses still in flight.  One recv, on
 * the closing path only.
 */
int
conn_input_waiting(struct conn *c)
{
	char b;

	if (c->rpos < c->rlen || (c->ssl != NULL && SSL_has_pending(c->ssl)))
		return 1;
	return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Output is done and the connection closes: at once, or after lingering. */
static int
conn_finish(struct conn *c)
{
	if (c->lingering)
		return 0;
	if (!c->linger && !conn_input_waiting(c)) {
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
	c->lingering = 1;
	c->deadline = clock_ms() + c->env->linger_time;
	release_output(c);
	conn_arm(c, EV_READ, c->env->tv_linger);
	return 0;
}

int
conn_flush(struct conn *c)
{
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
			stats_add(&c->env->stats->bytes_sent, (uint64_t)n);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->writing = 1;
			conn_arm(c, EV_WRITE, c->env->tv_send);
			return 0;
		}
		conn_close(c, strerror(errno));
		return -1;
	}
	file_out_free(c);
	c->writing = 0;
	if (c->closing)
		return conn_finish(c);
	release_output(c);
	return c->proto->drained(c);
}

/* Lingering: read and drop until EOF, linger_timeout between reads or
 * linger_time in all. */
static void
conn_linger_read(struct conn *c)
{
	char sink[4096];
	ssize_t n = tls_io_recv(c->fd, c->ssl, sink, sizeof(sink));

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c, n == 0 ? "client closed" : strerror(errno));
		return;
	}
	stats_add(&c->env->stats->bytes_received, (uint64_t)n);
	if (c->ssl == NULL || SSL_has_pending(c->ssl))
		event_active(&c->ev, EV_READ, 0); /* edge-triggered: drain what is there */
	/* linger_timeout restarts with each read; linger_time does not. */
	int64_t left = c->deadline - clock_ms();
	if (left <= 0)
		conn_close(c, "lingered for linger_time");
	else if (left < c->env->linger_timeout)
		conn_arm_deadline(c, (uint64_t)left);
}

static void
conn_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		if (c->handshaking)
			conn_close(c, "TLS handshake too slow");
		else if (c->lingering)
			conn_close(c, "linger timeout");
		else
			c->proto->timeout(c);
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
			c->proto->resume(c);
		return;
	}
	if (c->lingering) {
		conn_linger_read(c);
		return;
	}
	if (c->no_read)
		return; /* a turn asked for before the protocol paused: it resumes us */
	if (c->rbuf == NULL) {
		c->rbuf = freelist_get(c->env->bufs);
		if (c->rbuf == NULL) {
			conn_close(c, "out of memory");
			return;
		}
		c->rlen = c->rpos = 0;
	}
	size_t room = c->env->bufs->size - c->rlen;
	if (room == 0) {
		event_del(&c->ev);
		c->proto->full(c);
		return;
	}
	ssize_t n = tls_io_recv(c->fd, c->ssl, c->rbuf + c->rlen, room);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		c->proto->eof(c, n == 0 ? 0 : errno);
		return;
	}
	stats_add(&c->env->stats->bytes_received, (uint64_t)n);
	/* Edge-triggered: a full read may have left bytes behind, and a FIN
	 * behind the data gives no new edge; come back for them (conn_close
	 * cancels this if the connection goes first).  TLS sockets are level-
	 * triggered, but records OpenSSL read ahead no longer wake the socket. */
	if (c->ssl == NULL ? (size_t)n == room || (what & EV_CLOSED) : SSL_has_pending(c->ssl))
		event_active(&c->ev, EV_READ, 0);
	c->proto->input(c, (size_t)n);
}
