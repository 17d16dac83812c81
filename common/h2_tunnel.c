/*
 * h2_tunnel: WebSocket over HTTP/2 (RFC 8441).  An extended CONNECT
 * (:method CONNECT, :protocol websocket) reaches its route as the
 * HTTP/1.1 upgrade request it stands for (h2_head.c); the handler answers
 * 101 as it would over HTTP/1.1, and the stream, answered 200, becomes a
 * tunnel whose DATA frames carry the WebSocket frames both ways.
 *
 * Two ways in, as over HTTP/1.1:
 *
 *  - http_tunnel_start (the proxy, to a backend's WebSocket): the
 *    client's DATA goes to the handler's body callback, what the handler
 *    writes (http_tunnel_write) goes out as DATA, http_tunnel_close ends
 *    the stream after it;
 *
 *  - http_upgrade (the origin's WebSocket endpoints, written for a
 *    transport connection of their own): the protocol gets one end of a
 *    socketpair as its connection (h1_adopt) and the stream relays bytes
 *    to and from the other end.  A second implementation of the
 *    transport's reading, writing, timers and draining over a stream
 *    would cost far more than the two descriptors and one copy each way
 *    this costs per WebSocket.
 *
 * Back-pressure both ways: the client's data is acknowledged (its window
 * opened) only as the relay's socket takes it, and the relay is read only
 * while the stream's queue is below HTTP_OUT_HIGH_WATER.
 */
#include "common/h2_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/h1.h"
#include "common/log.h"
#include "common/server.h"

struct h2_relay {
	struct h2_stream *st;
	int fd;                        /* our end of the socketpair */
	struct event ev;
	short armed;                   /* EV_READ, EV_WRITE as ev is added */
	char *out;                     /* client bytes the socket has not taken */
	size_t olen;
	unsigned client_ended : 1;     /* shut our writing down once out is empty */
	unsigned read_paused : 1;      /* the stream's queue is above the mark */
	unsigned eof : 1;              /* the protocol closed its end */
	unsigned wfailed : 1;          /* ... or writing to it failed: nothing more is */
};

void
h2_tunnel_start(struct request *r)
{
	struct h2_stream *st = h2_stream_of(r);

	if (!st->ext) {
		h2_abort(r, "a tunnel on a stream that is no extended CONNECT");
		return;
	}
	http_resp_commit(r);
	/* The line is written now, as for an HTTP/1.1 tunnel. */
	h2_stream_log(st);
	st->tunnel = 1;
	h2_resume(r); /* data the client sent early, and its END_STREAM */
}

void
h2_tunnel_write(struct request *r, const void *data, size_t len)
{
	struct h2_stream *st = h2_stream_of(r);

	if (!st->tunnel || st->out_end || st->cut)
		return;
	/* Out of memory: the stream is reset, and its close (not this call,
	 * inside the handler's) tells the handler and frees the exchange. */
	if (h2_queue(st, data, len) < 0) {
		st->cut = 1;
		nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		conn_kick(st->h->c);
	}
}

void
h2_tunnel_close(struct request *r)
{
	struct h2_stream *st = h2_stream_of(r);

	r->flags |= REQ_DONE;
	st->out_end = 1;
	h2_provider_wake(st);
	conn_kick(st->h->c);
}

static void relay_rearm(struct h2_relay *rl);

/* Writes what the client sent to the protocol's end; acknowledges it. */
static void
relay_flush(struct h2_relay *rl)
{
	struct h2_stream *st = rl->st;
	size_t done = 0;

	while (done < rl->olen && !rl->wfailed) {
		ssize_t n = send(rl->fd, rl->out + done, rl->olen - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			/* The protocol's end is gone: what it will never read is
			 * dropped (and acknowledged), and so is the stream. */
			rl->wfailed = 1;
			done = rl->olen;
			nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
			break;
		}
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (done > 0) {
		memmove(rl->out, rl->out + done, rl->olen - done);
		rl->olen -= done;
		nghttp2_session_consume(st->h->s, st->id, done);
		conn_kick(st->h->c); /* the WINDOW_UPDATE */
	}
	if (rl->olen == 0 && rl->client_ended && !rl->wfailed)
		shutdown(rl->fd, SHUT_WR);
}

void
h2_relay_input(struct h2_stream *st, const uint8_t *data, size_t len)
{
	struct h2_relay *rl = st->relay;

	if (rl->wfailed) {
		nghttp2_session_consume(st->h->s, st->id, len);
		return;
	}
	/* Unacknowledged, so the client's window bounds it. */
	char *nb = realloc(rl->out, rl->olen + len);

	if (nb == NULL) {
		nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	rl->out = nb;
	memcpy(rl->out + rl->olen, data, len);
	rl->olen += len;
	relay_flush(rl);
	relay_rearm(rl);
}

void
h2_relay_end(struct h2_stream *st)
{
	struct h2_relay *rl = st->relay;

	rl->client_ended = 1;
	relay_flush(rl);
	relay_rearm(rl);
}

/* What the protocol wrote goes out as DATA, while the queue has room. */
static void
relay_read(struct h2_relay *rl)
{
	struct h2_stream *st = rl->st;
	char buf[16384];

	while (!rl->eof && st->queued < HTTP_OUT_HIGH_WATER) {
		ssize_t n = recv(rl->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* The protocol closed: the stream ends after what is queued. */
			rl->eof = 1;
			st->out_end = 1;
			h2_provider_wake(st);
			conn_kick(st->h->c);
			return;
		}
		if (h2_queue(st, buf, (size_t)n) < 0) {
			nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id,
			    NGHTTP2_INTERNAL_ERROR);
			rl->eof = 1;
			return;
		}
	}
	rl->read_paused = !rl->eof; /* the queue is full: h2_relay_writable */
}

static void
on_relay(evutil_socket_t fd, short what, void *arg)
{
	struct h2_relay *rl = arg;

	(void)fd;
	rl->armed = 0; /* not persistent */
	if (what & EV_WRITE)
		relay_flush(rl);
	if (what & EV_READ)
		relay_read(rl);
	relay_rearm(rl);
}

static void
relay_rearm(struct h2_relay *rl)
{
	short want = 0;

	if (rl->olen > 0 && !rl->wfailed)
		want |= EV_WRITE;
	if (!rl->eof && !rl->read_paused)
		want |= EV_READ;
	if (want == rl->armed)
		return;
	if (rl->armed != 0)
		event_del(&rl->ev);
	rl->armed = 0;
	if (want == 0)
		return;
	event_assign(&rl->ev, rl->st->h->c->env->base, rl->fd, want, on_relay, rl);
	if (event_add(&rl->ev, NULL) == 0)
		rl->armed = want;
}

void
h2_relay_writable(struct h2_stream *st)
{
	struct h2_relay *rl = st->relay;

	if (!rl->read_paused)
		return;
	rl->read_paused = 0;
	relay_read(rl);
	relay_rearm(rl);
}

void
h2_relay_free(struct h2_stream *st)
{
	struct h2_relay *rl = st->relay;

	if (rl == NULL)
		return;
	if (rl->armed != 0)
		event_del(&rl->ev);
	close(rl->fd); /* the protocol's end sees the stream go */
	free(rl->out);
	free(rl);
	st->relay = NULL;
}

int
h2_upgrade(struct request *r, const struct upgraded_ops *ops, void *pst)
{
	struct h2_stream *st = h2_stream_of(r);
	struct conn *c = r->conn;
	struct h2_relay *rl;
	int sv[2];

	if (!st->ext || r->status != 101 || st->relay != NULL)
		return -1;
	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("conn %d: h2 stream %d: socketpair", c->fd, st->id);
		free(rl);
		return -1;
	}
	struct conn *inner = h1_adopt(c->w, sv[0], c, ops, pst);
	if (inner == NULL) {
		close(sv[1]);
		free(rl);
		return -1;
	}
	rl->st = st;
	rl->fd = sv[1];
	st->relay = rl;
	http_resp_commit(r);
	h2_stream_log(st);
	st->tunnel = 1;
	/* As after an HTTP/1.1 upgrade, the exchange goes: the stream keeps
	 * only its queue and the relay. */
	h2_stream_release(st);
	if (st->held_len > 0) {
		h2_relay_input(st, (const uint8_t *)st->held, st->held_len);
		free(st->held);
		st->held = NULL;
		st->held_len = st->held_cap = 0;
	}
	st->body_paused = 0;
	if (st->body_done)
		h2_relay_end(st);
	relay_rearm(rl);
	conn_kick(inner); /* the protocol's first turn (its drained call) */
	conn_kick(c);
	return 0;
}

size_t
h2_relay_unread(const struct h2_stream *st)
{
	return st->relay != NULL ? st->relay->olen : 0;
}
