/*
 * h2_body: a stream's request body, from the client's DATA to the
 * handler: held while the handler pauses (unacknowledged, so the
 * stream's window bounds it), resumed, ended, and timed out per stream
 * (body_timeout).
 */
#include "common/h2_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/h1.h"
#include "common/handler.h"
#include "common/route.h"

/* http_req_resume: the handler takes body bytes again; those held while
 * it paused go first, then the client's END_STREAM if it came. */
void
h2_resume(struct request *r)
{
	struct h2_stream *st = h2_stream_of(r);
	struct h2c *h = st->h;

	if (!st->body_paused)
		return;
	st->body_paused = 0;
	st->body_ms = clock_ms(); /* its body_timeout starts again */
	if (st->held_len > 0) {
		char *held = st->held;
		size_t n = st->held_len;
		st->held = NULL;
		st->held_len = st->held_cap = 0;
		h2_stream_body(st, (const uint8_t *)held, n);
		free(held);
		if (st->x == NULL || st->body_paused)
			goto out;
	}
	if (st->body_done)
		h2_stream_body_end(st);
out:
	conn_kick(h->c);
}

/* A paused request phase went through.  The body the client sent
 * meanwhile was held: it goes to a handler that takes it, else it is
 * dropped (and acknowledged) as for any such handler. */
void
h2_dispatch_resume(struct request *r)
{
	struct h2_stream *st = h2_stream_of(r);
	int takes_body = r->route != NULL && (r->route->handler->flags & HANDLER_WANTS_BODY) &&
	    r->route->handler->body != NULL;

	r->flags &= ~REQ_IN_MW;
	st->mw_paused = 0;
	conn_kick(r->conn);
	if (!takes_body && !st->ext) {
		nghttp2_session_consume(st->h->s, st->id, st->held_len);
		free(st->held);
		st->held = NULL;
		st->held_len = st->held_cap = 0;
		st->body_paused = 0;
		st->body_ms = clock_ms();
	}
	h2_stream_handler_start(st);
	if (st->x != NULL && st->handler_on && !st->ext)
		h2_resume(r);
}

/* Body bytes: to the handler if it takes them, held while it paused. */
void
h2_stream_body(struct h2_stream *st, const uint8_t *data, size_t len)
{
	struct h2c *h = st->h;
	struct request *r = st->x != NULL ? &st->x->req : NULL;

	st->body_ms = clock_ms();
	if (st->relay != NULL) {
		h2_relay_input(st, data, len);
		return;
	}
	if (r != NULL && st->body_paused && !st->body_drop && !(r->flags & REQ_DONE)) {
		/* Held unacknowledged: the stream's window bounds it. */
		if (st->held_len + len > st->held_cap) {
			size_t cap = st->held_cap * 2 > st->held_len + len ? st->held_cap * 2 :
			    st->held_len + len;
			char *nb = realloc(st->held, cap);
			if (nb == NULL) {
				nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id,
				    NGHTTP2_INTERNAL_ERROR);
				return;
			}
			st->held = nb;
			st->held_cap = cap;
		}
		memcpy(st->held + st->held_len, data, len);
		st->held_len += len;
		return;
	}
	if (r == NULL || st->body_drop || !st->handler_on || (r->flags & REQ_DONE) ||
	    r->route == NULL || r->route->handler->body == NULL) {
		nghttp2_session_consume(h->s, st->id, len);
		return;
	}
	int rc = r->route->handler->body(r, (const char *)data, len);
	nghttp2_session_consume(h->s, st->id, len);
	if (st->x == NULL)
		return;
	if (rc < 0)
		st->body_drop = 1;
	else if (rc == 1)
		st->body_paused = 1;
}

/* The client's END_STREAM. */
void
h2_stream_body_end(struct h2_stream *st)
{
	struct request *r;

	st->body_done = 1;
	if (st->relay != NULL) {
		h2_relay_end(st);
		return;
	}
	if (st->x == NULL)
		return;
	r = &st->x->req;
	if (st->mw_paused)
		return; /* dispatch_resume goes on */
	if (!st->handler_on) {
		if (!st->body_drop)
			h2_stream_handler_start(st);
		return;
	}
	if (st->body_drop || st->body_paused || st->held_len > 0 || st->body_end_told ||
	    r->route == NULL || r->route->handler->body == NULL)
		return;
	st->body_end_told = 1;
	r->route->handler->body(r, NULL, 0);
}

/* Whether st waits on its client for body bytes (a tunnel's idle time is
 * its handler's to judge; a paused handler's wait is its own). */
static int
stream_awaits_body(const struct h2_stream *st)
{
	return !st->body_done && st->x != NULL && !st->body_paused && !st->body_drop && !st->ext;
}

/* The oldest body_ms of the streams that wait on a body, or -1. */
int64_t
h2_awaiting_body(const struct h2c *h)
{
	const struct h2_stream *st;
	int64_t oldest = -1;

	TAILQ_FOREACH(st, &h->streams, link)
		if (stream_awaits_body(st) && (oldest < 0 || st->body_ms < oldest))
			oldest = st->body_ms;
	return oldest;
}

/*
 * body_timeout, per stream: a body that has not moved for that long is
 * answered 408 (or, its response begun, reset), and the connection and
 * its other streams go on; other frames (a PING now and then) do not
 * keep it waiting.  Returns how many streams timed out.
 */
int
h2_body_timeouts(struct h2c *h)
{
	struct h2_stream *st, *next;
	int64_t now = clock_ms(), limit = h->c->conf->global.body_timeout;
	int n = 0;

	for (st = TAILQ_FIRST(&h->streams); st != NULL; st = next) {
		next = TAILQ_NEXT(st, link);
		if (!stream_awaits_body(st) || now - st->body_ms < limit)
			continue;
		struct request *r = &st->x->req;
		n++;
		http_req_term(r, REQ_TERM_CLIENT_TIMEOUT);
		st->body_drop = 1;
		if (!(r->flags & REQ_STARTED)) {
			if (st->handler_on && r->route->handler->abort != NULL)
				r->route->handler->abort(r);
			st->handler_on = 0;
			h2_stream_fail(st, 408, "request body timed out");
		} else {
			nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
		}
	}
	return n;
}
