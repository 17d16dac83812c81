/*
 * upstream: connections to a pool's servers, see upstream.h.
 */
#include "proxy/upstream.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/tls.h"

static void on_event(evutil_socket_t fd, short what, void *arg);

void
upstream_close(struct upstream *u, const char *reason)
{
	if (log_enabled(LOG_LVL_DEBUG))
		log_debug("upstream [pool:%s] server %s: fd %d closed: %s", u->pool->name,
		    u->pool->servers[u->idx].name, u->fd, reason);
	if (u->rarmed)
		event_del(&u->ev);
	if (u->warmed)
		event_del(&u->wev);
	if (u->ssl != NULL) {
		if (u->state == UPSTREAM_ACTIVE || u->state == UPSTREAM_IDLE)
			SSL_shutdown(u->ssl);
		SSL_free(u->ssl);
		ERR_clear_error();
	}
	close(u->fd);
	sbuf_free(&u->out);
	free(u->in);
	free(u);
}

/*
 * Registers what u waits for in its state.  The read event stays in epoll
 * for the connection's life and only its (common) timeout changes, so a
 * kept-alive connection costs no epoll_ctl per request; the write event is
 * there only while connecting or while output is backed up.
 */
void
upstream_arm(struct upstream *u)
{
	const struct timeval *rtv = NULL;
	int want_read = 1, want_write = 0;
	const struct timeval *wtv = u->tv.send;

	if (u->state == UPSTREAM_CONNECTING) {
		want_read = 0;
		want_write = 1;
		wtv = u->tv.connect;
	} else if (u->state == UPSTREAM_HANDSHAKE) {
		want_read = !u->hs_write;
		want_write = u->hs_write;
		rtv = wtv = u->tv.connect;
	} else if (u->state == UPSTREAM_IDLE) {
		rtv = u->tv.idle;
	} else {
		rtv = u->tv.read;
		want_write = u->osent < u->out.len;
		want_read = !u->paused;
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

struct upstream *
upstream_connect(struct event_base *base, const struct pool *p, unsigned idx,
    struct pool_worker *pw, const struct upstream_timeouts *tv, const struct upstream_ops *ops,
    void *owner)
{
	struct upstream *u = calloc(1, sizeof(*u));
	int one = 1;

	if (u == NULL)
		return NULL;
	struct sockaddr_storage ss;
	socklen_t alen = backend_addr(&p->servers[idx], &ss);
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
	u->pool = p;
	u->idx = idx;
	u->pw = pw;
	u->tv = *tv;
	u->ops = ops;
	u->owner = owner;
	event_assign(&u->ev, base, u->fd, EV_READ | EV_PERSIST, on_event, u);
	event_assign(&u->wev, base, u->fd, EV_WRITE | EV_PERSIST, on_event, u);
	/* Refused at once (loopback does that) or in progress: either way the
	 * socket turns writable and on_event looks at the outcome.  A Unix
	 * socket fails in connect itself (no such file, refused, backlog
	 * full), with nothing in SO_ERROR: its errno is kept for then. */
	if (connect(u->fd, (struct sockaddr *)&ss, alen) < 0 && errno != EINPROGRESS)
		u->connect_errno = errno;
	u->state = UPSTREAM_CONNECTING;
	return u;
}

/* An idle connection the server has not closed: no EOF or data waiting. */
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
idle_remove(struct upstream *u)
{
	LIST_REMOVE(u, link);
	u->pw->nidle[u->idx]--;
}

struct upstream *
upstream_take_idle(struct pool_worker *pw, unsigned idx, int alive, const struct upstream_ops *ops,
    void *owner)
{
	struct upstream *u;

	while ((u = LIST_FIRST(&pw->idle[idx])) != NULL) {
		idle_remove(u);
		if (!alive || idle_alive(u))
			break;
		upstream_close(u, "closed by the server while idle");
	}
	if (u == NULL)
		return NULL;
	u->reused = 1;
	u->state = UPSTREAM_ACTIVE;
	u->ops = ops;
	u->owner = owner;
	return u;
}

void
upstream_release(struct upstream *u, int reusable)
{
	struct pool_worker *pw = u->pw;

	u->owner = NULL;
	u->ops = NULL;
	if (!reusable || pw == NULL || pw->nidle[u->idx] >= u->pool->keepalive || u->inlen > 0) {
		upstream_close(u, reusable ? "not kept alive" : "not reusable");
		return;
	}
	u->state = UPSTREAM_IDLE;
	u->out.len = 0;
	u->osent = 0;
	u->paused = 0;
	LIST_INSERT_HEAD(&pw->idle[u->idx], u, link);
	pw->nidle[u->idx]++;
	upstream_arm(u);
}

void
upstream_idle_move(struct pool_worker *from, unsigned i, struct pool_worker *to, unsigned j)
{
	struct upstream *u;

	while ((u = LIST_FIRST(&from->idle[i])) != NULL) {
		idle_remove(u);
		if (to->nidle[j] >= to->pool->keepalive) {
			upstream_close(u, "not kept alive");
			continue;
		}
		u->pool = to->pool;
		u->idx = j;
		u->pw = to;
		/* Its sessions were for the old state's slot, freed with it. */
		if (u->ssl != NULL)
			pool_tls_detach(u->ssl);
		u->tv = (struct upstream_timeouts){ to->tv_connect, to->tv_send, to->tv_read, to->tv_idle };
		LIST_INSERT_HEAD(&to->idle[j], u, link);
		to->nidle[j]++;
		upstream_arm(u);
	}
}

void
upstream_close_idle(struct pool_worker *pw)
{
	for (unsigned s = 0; s < POOL_MAX_SERVERS; s++) {
		struct upstream *u;
		while ((u = LIST_FIRST(&pw->idle[s])) != NULL) {
			idle_remove(u);
			upstream_close(u, "worker ending");
		}
	}
}

/* Writes what is queued.  Returns -1 once the owner has u (failed or done). */
static int
write_out(struct upstream *u)
{
	while (u->osent < u->out.len) {
		ssize_t n = tls_io_send(u->fd, u->ssl, u->out.p + u->osent, u->out.len - u->osent, 0);
		if (n > 0) {
			u->osent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		u->ops->error(u, UPSTREAM_SEND_FAILED, n < 0 ? strerror(errno) : "send returned 0");
		return -1;
	}
	u->out.len = 0;
	u->osent = 0;
	return u->ops->sent(u);
}

/* Reads what the server sent.  Returns -1 once the owner has u. */
static int
read_in(struct upstream *u)
{
	if (u->in == NULL && (u->in = malloc(UPSTREAM_IN_SIZE)) == NULL) {
		u->ops->error(u, UPSTREAM_NO_MEMORY, "out of memory");
		return -1;
	}
	ssize_t n = tls_io_recv(u->fd, u->ssl, u->in + u->inlen, UPSTREAM_IN_SIZE - u->inlen);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n > 0) {
		u->inlen += (size_t)n;
		if (u->ops->read(u) < 0)
			return -1;
		upstream_read_ahead(u);
		return 0;
	}
	if (n == 0)
		u->ops->error(u, UPSTREAM_EOF, "closed");
	else
		u->ops->error(u, UPSTREAM_READ_FAILED, strerror(errno));
	return -1;
}

int
upstream_send(struct upstream *u)
{
	/* A kept-alive connection takes the bytes at once: no wait for writable. */
	if (u->state == UPSTREAM_ACTIVE && write_out(u) < 0)
		return -1;
	upstream_arm(u);
	return 0;
}

void
upstream_read_ahead(struct upstream *u)
{
	if (u->ssl != NULL && !u->paused && SSL_has_pending(u->ssl))
		event_active(&u->ev, EV_READ, 0);
}

void
upstream_consume(struct upstream *u, size_t n)
{
	memmove(u->in, u->in + n, u->inlen - n);
	u->inlen -= n;
}

void
upstream_set_read_timeout(struct upstream *u, const struct timeval *tv)
{
	u->tv.read = tv;
}

void
upstream_touch(struct upstream *u)
{
	if (u->rarmed) {
		event_add(&u->ev, u->tv.read);
		u->rtv = u->tv.read;
	}
}

void
upstream_shutdown_write(struct upstream *u)
{
	shutdown(u->fd, SHUT_WR);
}

size_t
upstream_pending(const struct upstream *u)
{
	return u->out.len - u->osent;
}

/* The connect finished, or failed: starts TLS if the server wants it.  0 or -1. */
static int
connected(struct upstream *u)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0 ||
	    (err = u->connect_errno) != 0) {
		u->ops->error(u, UPSTREAM_CONNECT_FAILED, strerror(err ? err : errno));
		return -1;
	}
	struct sockaddr_storage ss;
	len = sizeof(ss);
	if (getpeername(u->fd, (struct sockaddr *)&ss, &len) < 0) {
		u->ops->error(u, UPSTREAM_CONNECT_FAILED, "connection refused");
		return -1;
	}
	u->state = UPSTREAM_ACTIVE;
	u->ready_us = clock_us();
	if (u->pool->servers[u->idx].tls) {
		if ((u->ssl = pool_tls_new(u->pool, u->idx, u->fd, u->pw)) == NULL) {
			u->ops->error(u, UPSTREAM_CONNECT_FAILED, "cannot start TLS");
			return -1;
		}
		u->state = UPSTREAM_HANDSHAKE;
	}
	return 0;
}

/* One step of the TLS handshake.  1 done, 0 waiting, -1 failed (owner told). */
static int
handshake(struct upstream *u)
{
	ERR_clear_error();
	int rc = SSL_do_handshake(u->ssl);
	if (rc == 1) {
		u->state = UPSTREAM_ACTIVE;
		u->ready_us = clock_us();
		return 1;
	}
	int e = SSL_get_error(u->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		u->hs_write = e == SSL_ERROR_WANT_WRITE;
		upstream_arm(u);
		return 0;
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
	u->ops->error(u, UPSTREAM_CONNECT_FAILED, why);
	return -1;
}

static void
on_event(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;

	(void)fd;
	if (u->state == UPSTREAM_IDLE) {
		/* An idle connection spoke or closed, or timed out: drop it.  Over
		 * TLS, records that are not data (tickets) are not speaking. */
		if (!(what & EV_TIMEOUT) && u->ssl != NULL && idle_alive(u))
			return;
		idle_remove(u);
		upstream_close(u, what & EV_TIMEOUT ? "idle timeout" : "closed by the server while idle");
		return;
	}
	if (what & EV_TIMEOUT) {
		if (u->state == UPSTREAM_CONNECTING || u->state == UPSTREAM_HANDSHAKE)
			u->ops->error(u, UPSTREAM_CONNECT_TIMEOUT, u->state == UPSTREAM_CONNECTING ?
			    "connect timed out" : "TLS handshake timed out");
		else
			u->ops->error(u, UPSTREAM_TIMEOUT, u->osent < u->out.len ? "send timed out" :
			    "read timed out");
		return;
	}
	if (u->state == UPSTREAM_CONNECTING) {
		if (connected(u) < 0)
			return;
		what |= EV_WRITE;
	}
	if (u->state == UPSTREAM_HANDSHAKE) {
		if (handshake(u) <= 0)
			return;
		what |= EV_WRITE;
	}
	if ((what & EV_WRITE) && write_out(u) < 0)
		return;
	if ((what & EV_READ) && read_in(u) < 0)
		return;
	upstream_arm(u);
}
