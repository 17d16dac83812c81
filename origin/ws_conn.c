#include "origin/ws_conn.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/exchange.h"
#include "common/log.h"
#include "common/server.h"

#define WS_HIGH_WATER HTTP_OUT_HIGH_WATER

/* Frame bytes waiting for room in the transport's buffer: our own copy
 * (data), or someone else's bytes by reference (ref, given back with
 * release(arg) once copied out or dropped). */
struct ws_out {
	struct ws_out *next;
	size_t len, off;
	const uint8_t *ref;           /* NULL: the bytes are in data */
	void (*release)(void *arg);
	void *arg;
	uint8_t data[];
};

struct ws_conn {
	struct conn *c;
	const struct ws_settings *s;
	const struct ws_mode *mode;
	void *mode_data;
	struct ws_pmd pmd;
	struct ws_zs *deflater;       /* the worker's, or NULL */
	struct ws_zs inflater;        /* ours: state only while a compressed message comes in */
	struct ws_buf msg;            /* a fragmented or compressed message so far */
	struct ws_utf8 utf8;          /* of an inflated text message */
	uint8_t msg_op;
	unsigned closing : 1;         /* our close frame is queued: nothing after it */
	unsigned linger : 1;          /* ... and the client may still be sending */
	unsigned flushing : 1;        /* process() is in conn_flush: drained must not recurse */
	unsigned again : 1;           /* ... and asked it to read more from the buffer */
	struct ws_out *head, *tail;
	size_t queued;                /* bytes in the queue not yet handed to the transport */
	int64_t last_rx, last_ping;   /* ms */
	const struct timeval *tv_tick;
	struct timeval tv_spare;
	struct ws_parser p;           /* last: the largest part */
};

size_t
ws_conn_backlog(const struct ws_conn *wc)
{
	return wc->queued + conn_pending(wc->c);
}

const struct ws_pmd *
ws_conn_pmd(const struct ws_conn *wc)
{
	return &wc->pmd;
}

struct ws_zs *
ws_conn_deflater(const struct ws_conn *wc)
{
	return wc->pmd.on ? wc->deflater : NULL;
}

void *
ws_conn_data(const struct ws_conn *wc)
{
	return wc->mode_data;
}

static void
out_free(struct ws_out *o)
{
	if (o->release != NULL)
		o->release(o->arg);
	free(o);
}

/* Moves queued frames into the transport's buffer, up to the high-water mark. */
static void
pump(struct ws_conn *wc)
{
	struct conn *c = wc->c;

	while (wc->head != NULL && c->olen - c->osent < WS_HIGH_WATER && !c->out_failed) {
		struct ws_out *o = wc->head;
		size_t room = WS_HIGH_WATER - (c->olen - c->osent);
		size_t n = o->len - o->off < room ? o->len - o->off : room;
		conn_out(c, (o->ref != NULL ? o->ref : o->data) + o->off, n);
		o->off += n;
		wc->queued -= n;
		if (o->off < o->len)
			break;
		wc->head = o->next;
		out_free(o);
	}
	if (wc->head == NULL)
		wc->tail = NULL;
	if (wc->head == NULL && wc->closing && !c->closing) {
		/* The close frame is in the transport's hands: TCP closes after it. */
		c->closing = 1;
		c->linger = wc->linger;
	}
}

/* Drops what is queued; with keep_started, a frame whose start is in the
 * transport's buffer already stays whole (else its rest would be missing
 * from the stream). */
static void
queue_free(struct ws_conn *wc, int keep_started)
{
	struct ws_out *keep = NULL;

	if (keep_started && wc->head != NULL && wc->head->off > 0) {
		keep = wc->head;
		wc->head = keep->next;
		keep->next = NULL;
	}
	while (wc->head != NULL) {
		struct ws_out *o = wc->head;
		wc->head = o->next;
		out_free(o);
	}
	wc->head = wc->tail = keep;
	wc->queued = keep != NULL ? keep->len - keep->off : 0;
}

static void
append(struct ws_conn *wc, struct ws_out *o)
{
	o->next = NULL;
	o->off = 0;
	if (wc->tail != NULL)
		wc->tail->next = o;
	else
		wc->head = o;
	wc->tail = o;
	wc->queued += o->len;
	pump(wc);
}

/* Queues a then b as one piece of output; straight into the transport's
 * buffer when nothing waits and it fits under the mark.  0 or -1. */
static int
enqueue(struct ws_conn *wc, const void *a, size_t alen, const void *b, size_t blen)
{
	struct conn *c = wc->c;

	if (wc->head == NULL && c->olen - c->osent + alen + blen <= WS_HIGH_WATER) {
		conn_out(c, a, alen);
		conn_out(c, b, blen);
	} else {
		struct ws_out *o = malloc(sizeof(*o) + alen + blen);
		if (o == NULL)
			return -1;
		o->len = alen + blen;
		o->ref = NULL;
		o->release = NULL;
		memcpy(o->data, a, alen);
		if (blen > 0)
			memcpy(o->data + alen, b, blen);
		append(wc, o);
	}
	conn_kick(c);
	return 0;
}

/* A control frame of ours (pong, ping, close). */
static int
send_control(struct ws_conn *wc, unsigned op, const void *payload, size_t len)
{
	uint8_t hdr[WS_HEADER_MAX];

	return enqueue(wc, hdr, ws_frame_header(hdr, 1, 0, op, len), payload, len);
}

/* Our close frame, then TCP closes once it is out; with linger, after
 * reading and dropping what the client still sends for a while (so a
 * reset cannot destroy the frame). */
static void
close_with(struct ws_conn *wc, uint16_t code, const char *reason, int linger)
{
	uint8_t body[WS_CONTROL_MAX];
	size_t rlen = reason != NULL ? strlen(reason) : 0;

	if (wc->closing)
		return;
	if (code == WS_CLOSE_POLICY)
		queue_free(wc, 1); /* a client that does not read gets none of its backlog */
	if (rlen > sizeof(body) - 2)
		rlen = sizeof(body) - 2;
	body[0] = (uint8_t)(code >> 8);
	body[1] = (uint8_t)code;
	if (rlen > 0)
		memcpy(body + 2, reason, rlen);
	wc->linger = linger != 0;
	send_control(wc, WS_OP_CLOSE, body, 2 + rlen);
	wc->closing = 1;
	pump(wc);
	conn_kick(wc->c);
}

void
ws_conn_close(struct ws_conn *wc, uint16_t code, const char *reason)
{
	close_with(wc, code, reason, 1);
}

int
ws_encode_message(struct ws_zs *deflater, unsigned opcode, const void *payload, size_t len,
    struct ws_buf *out)
{
	size_t start = out->len;
	uint8_t hdr[WS_HEADER_MAX];

	if (deflater == NULL) {
		size_t hl = ws_frame_header(hdr, 1, 0, opcode, len);
		if (ws_buf_reserve(out, hl + len) < 0)
			return -1;
		memcpy(out->p + out->len, hdr, hl);
		if (len > 0)
			memcpy(out->p + out->len + hl, payload, len);
		out->len += hl + len;
		return 0;
	}
	/* Compressed after room for the longest header, which then moves up
	 * against it: no second buffer. */
	if (ws_buf_reserve(out, 10) < 0)
		return -1;
	out->len += 10;
	if (ws_deflate(deflater, payload, len, out) < 0) {
		out->len = start;
		return -1;
	}
	size_t clen = out->len - start - 10;
	size_t hl = ws_frame_header(hdr, 1, 1, opcode, clen);
	memcpy(out->p + start, hdr, hl);
	memmove(out->p + start + hl, out->p + start + 10, clen);
	out->len = start + hl + clen;
	return 0;
}

/* Whether one more message may be queued; past max_backlog the client is
 * dropped (1008).  A single message always fits an empty queue. */
static int
may_send(struct ws_conn *wc)
{
	if (wc->closing)
		return 0;
	if (ws_conn_backlog(wc) > wc->s->max_backlog) {
		ws_conn_close(wc, WS_CLOSE_POLICY, "backlog over max_backlog");
		return 0;
	}
	return 1;
}

int
ws_conn_send(struct ws_conn *wc, unsigned opcode, const void *payload, size_t len)
{
	uint8_t hdr[WS_HEADER_MAX];
	int rc;

	if (!may_send(wc))
		return -1;
	if (!wc->pmd.on)
		return enqueue(wc, hdr, ws_frame_header(hdr, 1, 0, opcode, len), payload, len);
	struct ws_buf b = { 0 };
	rc = ws_encode_message(wc->deflater, opcode, payload, len, &b);
	if (rc == 0)
		rc = enqueue(wc, b.p, b.len, NULL, 0);
	ws_buf_free(&b);
	return rc;
}

int
ws_conn_send_frame(struct ws_conn *wc, const void *frame, size_t len)
{
	if (!may_send(wc))
		return -1;
	return enqueue(wc, frame, len, NULL, 0);
}

int
ws_conn_send_ref(struct ws_conn *wc, const void *data, size_t len, void (*release)(void *),
    void *arg)
{
	struct conn *c = wc->c;
	struct ws_out *o;

	if (!may_send(wc))
		goto refused;
	/* Straight into the transport's buffer when nothing waits: the
	 * reference goes back at once. */
	if (wc->head == NULL && c->olen - c->osent + len <= WS_HIGH_WATER) {
		int rc = enqueue(wc, data, len, NULL, 0);
		release(arg);
		return rc;
	}
	if ((o = malloc(sizeof(*o))) == NULL)
		goto refused;
	o->ref = data;
	o->len = len;
	o->release = release;
	o->arg = arg;
	append(wc, o);
	conn_kick(c);
	return 0;
refused:
	release(arg);
	return -1;
}

/* Fails the connection (RFC 6455 7.1.7): a close frame with code, then TCP
 * is closed once it is out. */
void
ws_conn_fail(struct ws_conn *wc, uint16_t code, const char *why)
{
	struct conn *c = wc->c;

	if (log_enabled(LOG_LVL_INFO) && worker_log_client_error(c->w)) {
		char peer[INET6_ADDRSTRLEN];
		log_info("conn %d from %s: websocket: %s; closing with %u", c->fd,
		    conn_peer(c, peer, sizeof(peer)), why, code);
	}
	ws_conn_close(wc, code, NULL);
}

/* A chunk of a data message.  0, or -1 when the connection failed. */
static int
on_data(struct ws_conn *wc, const struct ws_event *ev)
{
	if (ev->first) {
		wc->msg_op = ev->opcode;
		wc->msg.len = 0;
		ws_utf8_init(&wc->utf8);
		/* One frame, all here, plain: handed over from the read buffer. */
		if (ev->last && !ev->compressed) {
			wc->mode->message(wc, ev->opcode, ev->data, ev->len);
			return 0;
		}
	}
	if (ev->compressed) {
		size_t before = wc->msg.len;
		int rc = ws_inflate(&wc->inflater, ev->data, ev->len, ev->last, &wc->msg,
		    wc->s->max_message);
		if (rc != 0) {
			ws_conn_fail(wc, (uint16_t)rc, rc == WS_CLOSE_TOO_BIG ? "inflated message larger than "
			    "max_message" : rc == WS_CLOSE_BAD_DATA ? "bad compressed data" :
			    "out of memory inflating");
			return -1;
		}
		if (wc->msg_op == WS_OP_TEXT &&
		    (ws_utf8_feed(&wc->utf8, wc->msg.p + before, wc->msg.len - before) < 0 ||
		    (ev->last && ws_utf8_done(&wc->utf8) < 0))) {
			ws_conn_fail(wc, WS_CLOSE_BAD_DATA, "text message not UTF-8");
			return -1;
		}
	} else if (ev->len > 0) {
		/* The parser held the message to max_message already. */
		if (ws_buf_reserve(&wc->msg, ev->len) < 0) {
			ws_conn_fail(wc, WS_CLOSE_INTERNAL, "out of memory");
			return -1;
		}
		memcpy(wc->msg.p + wc->msg.len, ev->data, ev->len);
		wc->msg.len += ev->len;
	}
	if (!ev->last)
		return 0;
	wc->mode->message(wc, wc->msg_op, wc->msg.p, wc->msg.len);
	/* Nothing is kept between messages: an idle connection holds no buffer. */
	ws_buf_free(&wc->msg);
	if (ev->compressed)
		ws_zs_idle(&wc->inflater);
	return 0;
}

/* One parser event.  0, or -1 when no more input is to be read. */
static int
on_event(struct ws_conn *wc, const struct ws_event *ev)
{
	switch (ev->type) {
	case WS_EV_ERROR:
		ws_conn_fail(wc, ev->code, ev->why);
		return -1;
	case WS_EV_DATA:
		return on_data(wc, ev);
	case WS_EV_CONTROL:
		if (ev->opcode == WS_OP_PING)
			send_control(wc, WS_OP_PONG, ev->data, ev->len);
		if (ev->opcode != WS_OP_CLOSE)
			return 0;     /* an unsolicited pong is fine */
		/* The client closes: its code back (1000 when it gave none), then
		 * TCP closes (RFC 6455 5.5.1, 7.1.1: the server closes first). */
		close_with(wc, ev->code == 1005 ? WS_CLOSE_NORMAL : ev->code, NULL, 0);
		return -1;
	default:
		return 0;
	}
}

/* Reads frames from the buffer while output is below the mark, then sends,
 * until what is buffered is done or output backs up.  -1 if the
 * connection was closed. */
static int
process(struct ws_conn *wc)
{
	struct conn *c = wc->c;

	for (;;) {
		c->in_loop = 1;
		while (c->rpos < c->rlen && !wc->closing && ws_conn_backlog(wc) < WS_HIGH_WATER) {
			struct ws_event ev;
			c->rpos += ws_parse(&wc->p, (uint8_t *)c->rbuf + c->rpos, c->rlen - c->rpos,
			    &ev);
			if (ev.type != WS_EV_MORE && on_event(wc, &ev) < 0)
				break;
		}
		if (c->rpos == c->rlen || wc->closing) {
			c->rpos = c->rlen = 0;
			conn_release_input(c);
		} else {
			/* Output is high: read nothing more until it drains (else
			 * the buffer fills and the client is cut, not slowed). */
			c->no_read = 1;
		}
		if (c->rpos > 0 && c->rpos < c->rlen) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		c->in_loop = 0;
		/* Output that leaves at once lets more input be read: a loop
		 * here rather than drained calling us back from inside. */
		wc->flushing = 1;
		wc->again = 0;
		if (conn_flush(c) < 0)
			return -1;
		wc->flushing = 0;
		if (!wc->again)
			return 0;
	}
}

static void
up_input(void *st, struct conn *c, size_t n)
{
	struct ws_conn *wc = st;

	wc->last_rx = clock_ms();
	c->rlen += n;
	process(wc);
}

static void
up_eof(void *st, struct conn *c, int err)
{
	struct ws_conn *wc = st;

	if (err != 0)
		conn_close(c, strerror(err));
	else
		conn_close(c, wc->closing ? "closed" : "client closed without a close frame");
}

static int
up_drained(void *st, struct conn *c)
{
	struct ws_conn *wc = st;

	pump(wc);
	if (c->olen > c->osent || c->closing) {
		conn_kick(c);   /* more to send first */
		return 0;
	}
	if (ws_conn_backlog(wc) >= WS_HIGH_WATER) {
		c->no_read = 1;
		conn_disarm(c);
		return 0;
	}
	if (c->rpos < c->rlen) {
		/* What waited while output was high. */
		if (!wc->flushing)
			return process(wc);
		wc->again = 1;
		return 0;
	}
	c->rpos = c->rlen = 0;
	conn_release_input(c);        /* idle: no buffer (the first time, h1's) */
	c->no_read = 0;
	conn_arm(c, EV_READ, wc->tv_tick);
	return 0;
}

static void
up_timeout(void *st, struct conn *c)
{
	struct ws_conn *wc = st;
	int64_t now = clock_ms();

	if (c->writing) {
		conn_close(c, "send timed out");
		return;
	}
	if (wc->closing)
		return; /* nothing may follow our Close (RFC 6455 5.5.1) */
	/* The tick is the shorter of the two; a little slack for the timer. */
	if (wc->s->idle_timeout > 0 && now - wc->last_rx + 20 >= wc->s->idle_timeout) {
		ws_conn_close(wc, WS_CLOSE_GOING_AWAY, "idle timeout");
		return;
	}
	if (wc->s->ping_interval > 0 && now - wc->last_ping + 20 >= wc->s->ping_interval) {
		wc->last_ping = now;
		send_control(wc, WS_OP_PING, NULL, 0);
	}
}

static void
up_drain(void *st, struct conn *c)
{
	(void)c;
	ws_conn_close(st, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static void
up_close(void *st, struct conn *c, const char *reason)
{
	struct ws_conn *wc = st;

	(void)c;
	(void)reason;
	if (wc->mode->gone != NULL)
		wc->mode->gone(wc);
	queue_free(wc, 0);
	ws_buf_free(&wc->msg);
	ws_zs_free(&wc->inflater);
	free(wc);
}

static void
up_attach(void *st, struct conn *c)
{
	struct ws_conn *wc = st;

	wc->c = c;
}

static const struct upgraded_ops ws_upgraded_ops = {
	.attach = up_attach,
	.input = up_input,
	.eof = up_eof,
	.drained = up_drained,
	.timeout = up_timeout,
	.drain = up_drain,
	.close = up_close,
};

struct ws_conn *
ws_conn_open(struct request *r, const struct ws_settings *settings, const struct ws_mode *mode,
    void *mode_data, const struct ws_pmd *pmd, struct ws_zs *deflater)
{
	struct conn *c = r->conn;
	struct ws_conn *wc = calloc(1, sizeof(*wc));
	int64_t tick;

	if (wc == NULL) {
		http_resp_abort(r, "out of memory");
		return NULL;
	}
	wc->c = c;
	wc->s = settings;
	wc->mode = mode;
	wc->mode_data = mode_data;
	if (pmd != NULL && pmd->on) {
		wc->pmd = *pmd;
		wc->deflater = deflater;
	}
	ws_parser_init(&wc->p, settings->max_message, wc->pmd.on);
	ws_zs_init(&wc->inflater, 0, !wc->pmd.on ? 15 : wc->pmd.client_wbits < 9 ? 9 : wc->pmd.client_wbits, 0,
	    !wc->pmd.client_no_ctx);
	wc->last_rx = wc->last_ping = clock_ms();
	tick = settings->idle_timeout;
	if (settings->ping_interval > 0 && (tick == 0 || settings->ping_interval < tick))
		tick = settings->ping_interval;
	wc->tv_tick = tick > 0 ? conn_timeval(c->env->base, tick, &wc->tv_spare) : NULL;
	if (http_upgrade(r, &ws_upgraded_ops, wc) < 0) {
		free(wc);
		http_resp_abort(r, "cannot upgrade");
		return NULL;
	}
	return wc;
}
