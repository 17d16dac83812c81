/*
 * h1_upgrade: an HTTP/1 connection after a 101.  Either a byte tunnel
 * through the handler (h1_tunnel_*: a proxied WebSocket), or a protocol
 * of portico's own that takes the connection over (h1_upgrade: the
 * origin's WebSocket endpoints, HTTP/2 after ALPN or a prior-knowledge
 * preface), reached through its upgraded_ops.
 */
#include "common/h1.h"

#include <string.h>

#include "common/clock.h"
#include "common/handler.h"
#include "common/pipeline.h"
#include "common/server.h"

void
h1_tunnel_start(struct request *r)
{
	struct conn *c = r->conn;
	struct h1 *h = h1_of(c);

	http_resp_commit(r);
	http_resp_log(r, usec_since(&r->start));
	h->state = H1_TUNNEL;
	h->x->body_done = 0;
	h->x->body_paused = 0;
	/* Bytes the client sent after the head already belong to the tunnel. */
	if (c->rpos < c->rlen) {
		const struct handler_ops *hd = r->route->handler;
		if (hd->body(r, c->rbuf + c->rpos, c->rlen - c->rpos) == 1) {
			h->x->body_paused = 1;
			c->no_read = 1;
		}
	}
	c->rlen = c->rpos = h->x->hr.head_len;
	conn_kick(c);
}

/*
 * After http_upgrade the connection's callbacks come here and go on to the
 * protocol in charge.  The HTTP/1 callbacks are not in the way: the
 * transport calls these directly (c->proto is switched), so the request
 * path pays nothing for upgrades.
 */
static void
up_start(struct conn *c)
{
	(void)c; /* only after a TLS handshake, long done */
}

static void
up_input(struct conn *c, size_t n)
{
	h1_of(c)->up->input(h1_of(c)->up_state, c, n);
}

static void
up_full(struct conn *c)
{
	conn_close(c, "read buffer full");
}

static void
up_eof(struct conn *c, int err)
{
	h1_of(c)->up->eof(h1_of(c)->up_state, c, err);
}

static void
up_resume(struct conn *c)
{
	(void)c; /* drained came first, with everything sent */
}

static int
up_drained(struct conn *c)
{
	return h1_of(c)->up->drained(h1_of(c)->up_state, c);
}

static void
up_timeout(struct conn *c)
{
	h1_of(c)->up->timeout(h1_of(c)->up_state, c);
}

static void
up_close(struct conn *c, const char *reason)
{
	h1_of(c)->up->close(h1_of(c)->up_state, c, reason);
	h1_conn_gone(c);
}

static const struct conn_proto h1_upgraded_proto = {
	.start = up_start,
	.input = up_input,
	.full = up_full,
	.eof = up_eof,
	.resume = up_resume,
	.drained = up_drained,
	.timeout = up_timeout,
	.close = up_close,
};

int
h1_upgrade(struct request *r, const struct upgraded_ops *ops, void *st)
{
	struct conn *c = r->conn;
	struct h1 *h = h1_of(c);
	struct worker *w = c->w;
	struct exchange *x = h->x;

	if (r->status != 101 || h->state != H1_HANDLER || x == NULL || &x->req != r)
		return -1;
	http_resp_commit(r);
	http_resp_log(r, usec_since(&r->start));
	/* What the client sent after the head is the new protocol's already. */
	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	/* The exchange goes back to the pool: an upgraded connection keeps
	 * only its struct h1 and what the protocol allocates. */
	http_req_release(r);
	freelist_put(&w->heads, x);
	h->x = NULL;
	h1_handover(c, ops, st);
	conn_kick(c);
	return 0;
}

void
h1_handover(struct conn *c, const struct upgraded_ops *ops, void *st)
{
	struct h1 *h = h1_of(c);

	h->state = H1_UPGRADED;
	h->up = ops;
	h->up_state = st;
	c->proto = &h1_upgraded_proto;
	c->no_read = 0;
	c->linger = 0;
	if (ops->attach != NULL)
		ops->attach(st, c);
}

void
h1_tunnel_write(struct request *r, const void *data, size_t len)
{
	conn_out(r->conn, data, len);
	conn_kick(r->conn);
}

void
h1_tunnel_close(struct request *r)
{
	struct conn *c = r->conn;

	r->flags |= REQ_DONE;
	c->closing = 1;
	c->linger = 0;
	conn_kick(c);
}

struct conn *
h1_adopt(struct worker *w, int fd, const struct conn *outer, const struct upgraded_ops *ops,
    void *st)
{
	socklen_t salen = outer->peer.sin6_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	struct conn *c = conn_new(&w->cenv, &h1_upgraded_proto, sizeof(struct h1), fd,
	    (const struct sockaddr *)&outer->peer, salen, NULL, 0);

	if (c == NULL)
		return NULL;
	/* Given back by the transport's closed callback, as for any. */
	atomic_fetch_add(&w->srv->nconns, 1);
	c->w = w;
	c->snap = outer->snap;
	c->snap->users++;
	c->conf = outer->conf;
	c->listen_idx = outer->listen_idx;
	TAILQ_INSERT_TAIL(&w->conns, c, link);
	w->nconns++;
	h1_of(c)->inner = 1;
	h1_handover(c, ops, st);
	return c;
}
