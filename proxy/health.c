#include "proxy/health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/config.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "proxy/pool.h"

struct probe {
	struct pool_check *pc;
	unsigned idx;
	int fd;                       /* -1 when no check is in flight */
	int armed;                    /* ev is assigned and may be pending */
	SSL *ssl;                     /* for servers marked tls */
	int connected;
	struct event ev;
	struct sbuf req;              /* sized to the path and Host: no fixed bound */
	size_t sent;
	char resp[64];
	size_t resplen;
};

struct pool_check {
	const struct pool *pool;
	struct event_base *base;
	struct event *timer;
	struct probe *probes;
};

struct checker {
	struct pool_check *pools;
	size_t n;
};

static void
set_result(struct probe *pb, int ok, const char *why)
{
	const struct pool *p = pb->pc->pool;
	struct backend *b = &p->servers[pb->idx];

	if (ok) {
		atomic_store(&b->hc_fail, 0);
		unsigned n = atomic_fetch_add(&b->hc_ok, 1) + 1;
		if (atomic_load(&b->health_down) && n >= p->rise) {
			atomic_store(&b->health_down, 0);
			log_info("[pool:%s] server %s is up: %u check%s passed", p->name, b->name, n,
			    n == 1 ? "" : "s");
		}
	} else {
		atomic_store(&b->hc_ok, 0);
		unsigned n = atomic_fetch_add(&b->hc_fail, 1) + 1;
		if (!atomic_load(&b->health_down) && n >= p->fall) {
			atomic_store(&b->health_down, 1);
			log_warnx("[pool:%s] server %s is down: %s (%u check%s failed)", p->name, b->name,
			    why, n, n == 1 ? "" : "s");
		}
	}
}

static void
probe_end(struct probe *pb, int ok, const char *why)
{
	event_del(&pb->ev);
	pb->armed = 0;
	if (pb->ssl != NULL) {
		SSL_free(pb->ssl);
		pb->ssl = NULL;
		ERR_clear_error();
	}
	close(pb->fd);
	pb->fd = -1;
	set_result(pb, ok, why);
}

static void probe_event(evutil_socket_t fd, short what, void *arg);

static void
probe_wait(struct probe *pb, short what)
{
	const struct pool *p = pb->pc->pool;
	int64_t ms = p->hc_interval < p->read_timeout ? p->hc_interval : p->read_timeout;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (pb->armed)
		event_del(&pb->ev);
	event_assign(&pb->ev, pb->pc->base, pb->fd, what | EV_PERSIST, probe_event, pb);
	event_add(&pb->ev, &tv);
	pb->armed = 1;
}

static void
probe_event(evutil_socket_t fd, short what, void *arg)
{
	struct probe *pb = arg;
	const struct pool *p = pb->pc->pool;

	if (what & EV_TIMEOUT) {
		probe_end(pb, 0, "timed out");
		return;
	}
	if (!pb->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			probe_end(pb, 0, strerror(err ? err : errno));
			return;
		}
		pb->connected = 1;
		if (p->servers[pb->idx].tls && (pb->ssl = pool_tls_new(p, pb->idx, fd)) == NULL) {
			probe_end(pb, 0, "cannot start TLS");
			return;
		}
	}
	if (pb->ssl != NULL && !SSL_is_init_finished(pb->ssl)) {
		ERR_clear_error();
		int rc = SSL_do_handshake(pb->ssl);
		if (rc != 1) {
			int e = SSL_get_error(pb->ssl, rc);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				probe_wait(pb, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
			} else {
				static _Thread_local char why[160];
				long vr = SSL_get_verify_result(pb->ssl);
				snprintf(why, sizeof(why), "TLS handshake failed%s%s", vr != X509_V_OK ?
				    ": certificate: " : "", vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
				probe_end(pb, 0, why);
			}
			return;
		}
		probe_wait(pb, EV_WRITE);
		return;
	}
	if (pb->sent < pb->req.len) {
		ssize_t n;
		if (pb->ssl != NULL) {
			ERR_clear_error();
			int w = SSL_write(pb->ssl, pb->req.p + pb->sent, (int)(pb->req.len - pb->sent));
			n = w > 0 ? w : -1;
			errno = w > 0 ? 0 : (SSL_get_error(pb->ssl, w) == SSL_ERROR_WANT_WRITE ||
			    SSL_get_error(pb->ssl, w) == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
		} else {
			n = send(fd, pb->req.p + pb->sent, pb->req.len - pb->sent, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				probe_end(pb, 0, strerror(errno));
			return;
		}
		pb->sent += (size_t)n;
		if (pb->sent == pb->req.len)
			probe_wait(pb, EV_READ);
		return;
	}
	if (!(what & EV_READ))
		return;
	ssize_t n;
	if (pb->ssl != NULL) {
		ERR_clear_error();
		int r = SSL_read(pb->ssl, pb->resp + pb->resplen, (int)(sizeof(pb->resp) - 1 - pb->resplen));
		int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(pb->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return;
		n = r > 0 ? r : e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
	} else {
		n = recv(fd, pb->resp + pb->resplen, sizeof(pb->resp) - 1 - pb->resplen, 0);
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR) && pb->ssl == NULL)
		return;
	if (n <= 0) {
		probe_end(pb, 0, n == 0 ? "closed before answering" : strerror(errno));
		return;
	}
	pb->resplen += (size_t)n;
	pb->resp[pb->resplen] = '\0';
	if (pb->resplen < 12 && strchr(pb->resp, '\n') == NULL)
		return;
	int status = 0;
	if (sscanf(pb->resp, "HTTP/1.%*1[01] %3d", &status) != 1) {
		probe_end(pb, 0, "not an HTTP response");
		return;
	}
	if (status >= p->hc_lo && status <= p->hc_hi) {
		probe_end(pb, 1, NULL);
	} else {
		char why[48];
		snprintf(why, sizeof(why), "status %d", status);
		probe_end(pb, 0, why);
	}
}

static void
probe_start(struct probe *pb)
{
	const struct pool *p = pb->pc->pool;
	const struct backend *b = &p->servers[pb->idx];

	if (pb->fd >= 0)
		return; /* the last one has not finished: its own timeout will tell */
	struct sockaddr_storage ss;
	socklen_t alen = backend_addr(b, &ss);
	if (alen == 0)
		return;
	/* Made once and kept: it only changes with the configuration. */
	if (pb->req.len == 0) {
		sbuf_printf(&pb->req, "%s %s HTTP/1.1\r\nHost: %s\r\n"
		    "User-Agent: portico-health-check\r\nConnection: close\r\n\r\n", p->hc_method,
		    p->hc_path, b->name);
		if (sbuf_failed(&pb->req)) {
			log_warnx("[pool:%s] server %s: health check skipped: out of memory", p->name,
			    b->name);
			sbuf_free(&pb->req);
			return;
		}
	}
	pb->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pb->fd < 0) {
		log_warn("[pool:%s] health check socket", p->name);
		return;
	}
	pb->sent = pb->resplen = 0;
	pb->connected = 0;
	(void)connect(pb->fd, (struct sockaddr *)&ss, alen);
	probe_wait(pb, EV_WRITE);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pool_check *pc = arg;

	(void)fd;
	(void)what;
	for (unsigned i = 0; i < pc->pool->nservers; i++)
		if (!pc->pool->servers[i].disabled)
			probe_start(&pc->probes[i]);
}

void *
health_start(struct event_base *base, const struct config *conf)
{
	struct checker *ck = calloc(1, sizeof(*ck));

	if (ck == NULL)
		return NULL;
	for (size_t i = 0; i < conf->nsections; i++) {
		const struct conf_section *sec = &conf->sections[i];
		const struct pool *p = sec->data;
		if (strcmp(sec->kind, "pool") != 0 || p == NULL || p->hc_path == NULL)
			continue;
		struct pool_check *v = realloc(ck->pools, (ck->n + 1) * sizeof(*v));
		if (v == NULL)
			break;
		ck->pools = v;
		struct pool_check *pc = &v[ck->n];
		pc->pool = p;
		pc->base = base;
		pc->probes = calloc(p->nservers, sizeof(*pc->probes));
		if (pc->probes == NULL)
			break;
		for (unsigned s = 0; s < p->nservers; s++) {
			pc->probes[s].idx = s;
			pc->probes[s].fd = -1;
		}
		ck->n++;
	}
	/* The pool_check array is final now: hand out pointers to it. */
	for (size_t i = 0; i < ck->n; i++) {
		struct pool_check *pc = &ck->pools[i];
		struct timeval tv = { pc->pool->hc_interval / 1000, (pc->pool->hc_interval % 1000) * 1000 };
		for (unsigned s = 0; s < pc->pool->nservers; s++)
			pc->probes[s].pc = pc;
		pc->timer = event_new(base, -1, EV_PERSIST, on_tick, pc);
		event_add(pc->timer, &tv);
		on_tick(-1, 0, pc); /* check at once, not one interval from now */
	}
	return ck;
}

void
health_stop(void *state)
{
	struct checker *ck = state;

	if (ck == NULL)
		return;
	for (size_t i = 0; i < ck->n; i++) {
		struct pool_check *pc = &ck->pools[i];
		for (unsigned s = 0; s < pc->pool->nservers; s++) {
			struct probe *pb = &pc->probes[s];
			if (pb->fd >= 0) {
				if (pb->armed)
					event_del(&pb->ev);
				SSL_free(pb->ssl);
				close(pb->fd);
			}
			sbuf_free(&pb->req);
		}
		if (pc->timer != NULL)
			event_free(pc->timer);
		free(pc->probes);
	}
	free(ck->pools);
	free(ck);
}
