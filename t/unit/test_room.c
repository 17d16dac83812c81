/*
 * Unit tests for origin/room.c, the chat-room hub, without a backplane:
 * threads with event loops of their own stand for workers.  20 members
 * on 4 workers publish 10 messages each and every member gets all 200
 * once, in one order; a member that does not drain is dropped with 1008
 * past max_backlog while the others get everything; a worker that falls
 * ROOM_QUEUE_MAX behind has its members dropped; notices; references
 * back to the publisher's own once delivered; rooms gone when empty;
 * concurrent joins, leaves and publishes (for make tsan); what deliver
 * callbacks may do (leave, make others leave, join); the table growing
 * and status cutting its list.
 */
#include "origin/room.h"
#include "common/sbuf.h"
#include "t/unit/tap.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEADLINE_SEC 20
#define MAXGOT 256
#define HDR 2                          /* the test encoder's "F:" */

/* A member as the WebSocket side would keep one: what it received. */
struct tmember {
	struct room_member *h;
	int draining;                  /* 0: its backlog only grows */
	size_t backlog;
	int ngot;
	char got[MAXGOT][64];
	uint64_t seq[MAXGOT];
	uint64_t lastseq;               /* of the last one received */
	int bad;                       /* a frame without the header, or a seq out of order */
	int dropped;                   /* times drop was called */
	int drop_code;
};

static struct room_msg *
encode(void *arg, const char *text, size_t len)
{
	struct room_msg *m = room_msg_alloc(HDR + len, HDR);

	(void)arg;
	if (m != NULL) {
		memcpy(m->data, "F:", HDR);
		memcpy(m->data + HDR, text, len);
	}
	return m;
}

static size_t
t_deliver(void *p, struct room_msg *msg, uint64_t seq)
{
	struct tmember *tm = p;
	size_t n = msg->len - HDR;

	if (memcmp(msg->data, "F:", HDR) != 0 || msg->text_off != HDR ||
	    (tm->ngot > 0 && seq <= tm->lastseq))
		tm->bad++;
	if (tm->ngot < MAXGOT) {
		if (n >= sizeof(tm->got[0]))
			n = sizeof(tm->got[0]) - 1;
		memcpy(tm->got[tm->ngot], msg->data + HDR, n);
		tm->got[tm->ngot][n] = '\0';
		tm->seq[tm->ngot] = seq;
	}
	tm->lastseq = seq;
	tm->ngot++;
	if (!tm->draining)
		tm->backlog += msg->len;
	return tm->backlog;
}

static void
t_drop(void *p, int code)
{
	struct tmember *tm = p;

	tm->dropped++;
	tm->drop_code = code;
	tm->h = NULL;
}

static const struct room_member_ops tops = { t_deliver, t_drop };

static void
publish_text(struct room_member *m, const char *text)
{
	struct room_msg *msg = encode(NULL, text, strlen(text));
	room_publish(m, msg);
	room_msg_release(msg);
}

static time_t
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void
on_nothing(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs base until done(arg) or the deadline; returns done(arg). */
static int
run_until(struct event_base *base, int (*done)(void *), void *arg)
{
	static const struct timeval tick = { 0, 10 * 1000 };
	struct event *t = event_new(base, -1, EV_PERSIST, on_nothing, NULL);
	time_t end = now_sec() + DEADLINE_SEC;
	int r;

	event_add(t, &tick);
	while (!(r = done(arg)) && now_sec() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return r;
}

/* ---- 20 members x 10 messages on 4 workers ---- */

#define NW 4
#define PER 5
#define NMSG 10

struct fan {
	struct room_hub *hub;
	pthread_barrier_t joined, published, checked;
	struct tmember m[NW][PER];
	struct room_msg *kept;          /* one message the test holds a reference on */
	atomic_int kept_refs;           /* its count once all delivered */
	int refs_seen;
	unsigned rooms_after_leave;
};

struct fan_arg {
	struct fan *f;
	int w;
};

static int
fan_done(void *p)
{
	struct fan_arg *a = p;

	for (int i = 0; i < PER; i++)
		if (a->f->m[a->w][i].ngot < NW * PER * NMSG)
			return 0;
	return 1;
}

static void *
fan_worker(void *p)
{
	struct fan_arg *a = p;
	struct fan *f = a->f;
	struct event_base *base = event_base_new();
	struct room_worker *rw = room_worker_start(f->hub, base);
	char text[32];

	for (int i = 0; i < PER; i++) {
		f->m[a->w][i].draining = 1;
		f->m[a->w][i].h = room_join(rw, "lobby", &f->m[a->w][i], &tops);
	}
	pthread_barrier_wait(&f->joined);
	for (int k = 0; k < NMSG; k++)
		for (int i = 0; i < PER; i++) {
			snprintf(text, sizeof(text), "w%d-m%d-%d", a->w, i, k);
			if (a->w == 0 && i == 0 && k == 0) {
				f->kept = encode(NULL, text, strlen(text));
				room_publish(f->m[0][0].h, f->kept);
			} else {
				publish_text(f->m[a->w][i].h, text);
			}
		}
	run_until(base, fan_done, a);
	pthread_barrier_wait(&f->published);
	/* Every worker got everything: no reference is left in a queue. */
	if (a->w == 0)
		f->refs_seen = (int)atomic_load(&f->kept->refs);
	pthread_barrier_wait(&f->checked);
	for (int i = 0; i < PER; i++)
		room_leave(f->m[a->w][i].h);
	room_worker_stop(rw);
	event_base_free(base);
	return NULL;
}

static void
test_fanout(void)
{
	struct room_hub_conf conf = { .encode = encode };
	const char *why;
	struct fan *f = calloc(1, sizeof(*f));
	pthread_t t[NW];
	struct fan_arg args[NW];
	int all = 1, same = 1, bad = 0, once = 1;

	f->hub = room_hub_new(&conf, &why);
	ok(f->hub != NULL, "a hub without a backplane");
	pthread_barrier_init(&f->joined, NULL, NW);
	pthread_barrier_init(&f->published, NULL, NW);
	pthread_barrier_init(&f->checked, NULL, NW + 1);
	for (int w = 0; w < NW; w++) {
		args[w] = (struct fan_arg){ f, w };
		pthread_create(&t[w], NULL, fan_worker, &args[w]);
	}
	pthread_barrier_wait(&f->checked);
	for (int w = 0; w < NW; w++)
		pthread_join(t[w], NULL);
	struct tmember *first = &f->m[0][0];
	for (int w = 0; w < NW; w++)
		for (int i = 0; i < PER; i++) {
			struct tmember *tm = &f->m[w][i];
			all &= tm->ngot == NW * PER * NMSG;
			bad += tm->bad;
			for (int k = 0; k < tm->ngot && k < MAXGOT; k++)
				same &= strcmp(tm->got[k], first->got[k]) == 0 &&
				    tm->seq[k] == first->seq[k];
		}
	/* Each of the 200 exactly once: sorted, no two alike, and 200 of them. */
	for (int a = 0; a < first->ngot && a < MAXGOT; a++)
		for (int b = a + 1; b < first->ngot && b < MAXGOT; b++)
			once &= strcmp(first->got[a], first->got[b]) != 0;
	ok(all, "all 20 members got 200 messages");
	ok(once, "no message twice");
	ok(same, "every member saw the same order (texts and sequence numbers)");
	is(bad, 0, "every frame had the encoder's header, sequences rose");
	is(first->seq[0], 1, "sequences start at 1");
	is(first->seq[NW * PER * NMSG - 1], NW * PER * NMSG, "... and end at 200");
	is(f->refs_seen, 1, "the kept message's references are back to the publisher's one");
	is(room_hub_rooms(f->hub), 0, "the room is gone once all left");
	room_msg_release(f->kept);
	room_hub_free(f->hub);
	pthread_barrier_destroy(&f->joined);
	pthread_barrier_destroy(&f->published);
	pthread_barrier_destroy(&f->checked);
	free(f);
}

/* ---- a member that does not drain ---- */

struct two {
	struct tmember a, b, c;
	int want;
};

static int
two_done(void *p)
{
	struct two *t = p;

	return t->a.ngot >= t->want && t->c.ngot >= t->want;
}

static void
test_backlog(void)
{
	struct room_hub_conf conf = { .encode = encode, .max_backlog = 1000 };
	const char *why;
	struct room_hub *hub = room_hub_new(&conf, &why);
	struct event_base *b1 = event_base_new(), *b2 = event_base_new();
	struct room_worker *w1 = room_worker_start(hub, b1), *w2 = room_worker_start(hub, b2);
	struct two t = { .a.draining = 1, .c.draining = 1, .want = 50 };
	char text[128];

	t.a.h = room_join(w1, "slow", &t.a, &tops);
	t.b.h = room_join(w2, "slow", &t.b, &tops);
	t.c.h = room_join(w2, "slow", &t.c, &tops);
	is(room_hub_members(hub, "slow"), 3, "three members");
	for (int k = 0; k < t.want; k++) {
		snprintf(text, sizeof(text), "%02d%098d", k, 0); /* 100 bytes, 102 framed */
		publish_text(t.a.h, text);
		/* Both workers run between messages, as they would. */
		event_base_loop(b1, EVLOOP_NONBLOCK);
		event_base_loop(b2, EVLOOP_NONBLOCK);
	}
	ok(run_until(b2, two_done, &t) || run_until(b1, two_done, &t), "the others got all 50");
	is(t.a.ngot, 50, "the sender got its 50");
	is(t.c.ngot, 50, "the draining member on the slow one's worker got 50");
	is(t.b.dropped, 1, "the member that does not drain was dropped once");
	is(t.b.drop_code, 1008, "... with 1008");
	is(t.b.ngot, 10, "... after the message that took it past 1000 bytes (10 x 102)");
	ok(t.b.h == NULL, "its handle was given up in drop");
	is(room_hub_members(hub, "slow"), 2, "two members left");
	ok(strcmp(t.c.got[49], t.a.got[49]) == 0 && t.c.bad == 0 && t.a.bad == 0,
	    "the others in one order");
	room_leave(t.a.h);
	room_leave(t.c.h);
	is(room_hub_rooms(hub), 0, "no room left");
	room_worker_stop(w1);
	room_worker_stop(w2);
	event_base_free(b1);
	event_base_free(b2);
	room_hub_free(hub);
}

/* ---- a worker ROOM_QUEUE_MAX behind ---- */

static int
got_at_least(void *p)
{
	struct tmember *tm = p;

	return tm->ngot + tm->dropped > 0;
}

static void
test_lagged_worker(void)
{
	struct room_hub_conf conf = { .max_backlog = (size_t)1 << 40 };
	const char *why;
	struct room_hub *hub = room_hub_new(&conf, &why);
	struct event_base *b1 = event_base_new(), *b2 = event_base_new();
	struct room_worker *w1 = room_worker_start(hub, b1), *w2 = room_worker_start(hub, b2);
	struct tmember *a = calloc(1, sizeof(*a)), *old = calloc(1, sizeof(*old)),
	    *late = calloc(1, sizeof(*late));
	struct room_msg *msg = encode(NULL, "x", 1);

	a->draining = old->draining = late->draining = 1;
	a->h = room_join(w1, "lag", a, &tops);
	old->h = room_join(w2, "lag", old, &tops);
	/* Worker 2 does not run while worker 1 publishes (and drains). */
	for (int k = 0; k < ROOM_QUEUE_MAX + 10; k++) {
		room_publish(a->h, msg);
		event_base_loop(b1, EVLOOP_NONBLOCK);
	}
	late->h = room_join(w2, "lag", late, &tops);
	room_publish(a->h, msg);
	event_base_loop(b1, EVLOOP_NONBLOCK);
	is(atomic_load(&msg->refs), 1 + ROOM_QUEUE_MAX,
	    "references: the caller's and the 8192 queued for worker 2, no more");
	run_until(b2, got_at_least, old);
	event_base_loop(b2, EVLOOP_NONBLOCK);
	is(old->dropped, 1, "the member of the lagging worker was dropped");
	is(old->drop_code, 1008, "... with 1008");
	is(old->ngot, ROOM_QUEUE_MAX, "... after the 8192 that were queued");
	is(late->dropped, 1, "one that joined while it lagged, and missed the next, too");
	is(room_hub_members(hub, "lag"), 1, "the sender is left");
	late->h = room_join(w2, "lag", late, &tops);
	late->ngot = late->dropped = 0;
	room_publish(a->h, msg);
	run_until(b2, got_at_least, late);
	is(late->ngot, 1, "a member joining after that gets the next message");
	is(late->dropped, 0, "... and stays");
	event_base_loop(b1, EVLOOP_NONBLOCK);
	is(a->ngot, ROOM_QUEUE_MAX + 12, "the sender's worker got all");
	is(atomic_load(&msg->refs), 1, "references back to the caller's");
	room_msg_release(msg);
	room_leave(a->h);
	room_leave(late->h);
	is(room_hub_rooms(hub), 0, "no room left");
	room_worker_stop(w1);
	room_worker_stop(w2);
	event_base_free(b1);
	event_base_free(b2);
	room_hub_free(hub);
	free(a);
	free(old);
	free(late);
}

/* ---- notices, status, a worker stopping with work queued ---- */

static void
test_notices(void)
{
	struct room_hub_conf conf = { .notices = 1, .encode = encode };
	const char *why;
	struct room_hub *hub = room_hub_new(&conf, &why);
	struct event_base *b = event_base_new();
	struct room_worker *w = room_worker_start(hub, b);
	struct tmember x = { .draining = 1 }, y = { .draining = 1 };
	struct sbuf s = { 0 };

	x.h = room_join(w, "n\"1", &x, &tops);
	event_base_loop(b, EVLOOP_NONBLOCK);
	y.h = room_join(w, "n\"1", &y, &tops);
	event_base_loop(b, EVLOOP_NONBLOCK);
	room_hub_status(hub, &s);
	sbuf_add(&s, "", 1);
	is_str(s.p, "{\"rooms\":1,\"members\":2,\"backplane\":\"off\",\"by_room\":{\"n\\\"1\":2}}",
	    "status JSON");
	room_leave(y.h);
	event_base_loop(b, EVLOOP_NONBLOCK);
	is(x.ngot, 3, "the first member got three notices");
	is_str(x.got[0], "{\"type\":\"join\",\"room\":\"n\\\"1\",\"members\":1}", "its own join");
	is(y.ngot, 1, "the second got its own join only");
	ok(strstr(x.got[1], "join") != NULL, "then the second's join");
	ok(strstr(x.got[2], "leave") != NULL, "then its leave");
	ok(room_join(w, "", &y, &tops) == NULL, "an empty name is refused");
	/* Stopping a worker with a member in and a message queued. */
	room_msg_release(NULL);
	struct room_msg *msg = encode(NULL, "bye", 3);
	room_publish(x.h, msg);
	room_worker_stop(w);
	is(atomic_load(&msg->refs), 1, "stopping the worker released what was queued");
	room_msg_release(msg);
	is(room_hub_rooms(hub), 0, "... and took its members out");
	event_base_free(b);
	room_hub_free(hub);
	sbuf_free(&s);
}

/* ---- concurrent joins, leaves and publishes ---- */

#define CW 4
#define ROUNDS 300

struct churn {
	struct room_hub *hub;
	atomic_int running;
};

static int
churn_quiet(void *p)
{
	return atomic_load(&((struct churn *)p)->running) == 0;
}

static void *
churn_worker(void *p)
{
	struct churn *c = p;
	struct event_base *base = event_base_new();
	struct room_worker *rw = room_worker_start(c->hub, base);
	struct tmember *tm = calloc(3, sizeof(*tm));
	static const char *const names[] = { "a", "b", "c" };
	unsigned seed = (unsigned)(uintptr_t)&seed;

	for (int i = 0; i < 3; i++)
		tm[i].draining = 1;
	for (int r = 0; r < ROUNDS; r++) {
		int i = (int)(rand_r(&seed) % 3);
		if (tm[i].h == NULL) {
			tm[i].h = room_join(rw, names[rand_r(&seed) % 3], &tm[i], &tops);
		} else if (rand_r(&seed) % 4 == 0) {
			room_leave(tm[i].h);
			tm[i].h = NULL;
		} else {
			publish_text(tm[i].h, "hello");
		}
		tm[i].ngot = 0;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	for (int i = 0; i < 3; i++)
		room_leave(tm[i].h);
	atomic_fetch_sub(&c->running, 1);
	/* Others may still queue to us until they left too. */
	run_until(base, churn_quiet, c);
	room_worker_stop(rw);
	event_base_free(base);
	free(tm);
	return NULL;
}

static void
test_churn(void)
{
	struct room_hub_conf conf = { .notices = 1, .encode = encode };
	const char *why;
	struct churn c = { .hub = room_hub_new(&conf, &why) };
	pthread_t t[CW];

	atomic_init(&c.running, CW);
	for (int i = 0; i < CW; i++)
		pthread_create(&t[i], NULL, churn_worker, &c);
	for (int i = 0; i < CW; i++)
		pthread_join(t[i], NULL);
	is(room_hub_rooms(c.hub), 0, "after concurrent joins, leaves and publishes, no room left");
	room_hub_free(c.hub);
}

/* ---- what a deliver or drop callback may do ---- */

struct reent {
	struct tmember self;            /* first: the callbacks get &r->self */
	struct room_member *other;      /* left from inside the callback */
	struct room_worker *rw;
	struct tmember joiner;          /* joined from inside the callback */
};

static size_t
leave_deliver(void *p, struct room_msg *msg, uint64_t seq)
{
	struct reent *r = p;

	t_deliver(&r->self, msg, seq);
	if (r->self.ngot == 2) {
		room_leave(r->self.h); /* itself, mid-delivery */
		r->self.h = NULL;
		room_leave(r->other);  /* and another of the room, further on in the list */
		r->other = NULL;
		r->joiner.draining = 1;
		r->joiner.h = room_join(r->rw, "re", &r->joiner, &tops);
	}
	return 0;
}

static const struct room_member_ops leave_ops = { leave_deliver, t_drop };

static void
test_reentry(void)
{
	struct room_hub_conf conf = { 0 };
	const char *why;
	struct room_hub *hub = room_hub_new(&conf, &why);
	struct event_base *b = event_base_new();
	struct room_worker *w = room_worker_start(hub, b);
	struct reent *r = calloc(1, sizeof(*r));
	struct tmember *o = calloc(1, sizeof(*o)), *z = calloc(1, sizeof(*z));
	char name[16];

	o->draining = z->draining = 1;
	r->rw = w;
	z->h = room_join(w, "re", z, &tops);
	r->self.h = room_join(w, "re", r, &leave_ops);
	r->other = room_join(w, "re", o, &tops);
	for (int k = 0; k < 3; k++) {
		struct room_msg *msg = encode(NULL, "abc", 3);
		is(room_publish_name(hub, "re", msg), 0, "published by name from outside");
		room_msg_release(msg);
	}
	event_base_loop(b, EVLOOP_NONBLOCK);
	is(r->self.ngot, 2, "a member leaving from its own deliver gets no more");
	is(o->ngot, 1, "one it made leave got the first only");
	is(z->ngot, 3, "the others get everything");
	is(r->joiner.ngot, 0, "one joined mid-delivery gets nothing published before its join");
	struct room_msg *msg = encode(NULL, "def", 3);
	room_publish(z->h, msg);
	room_msg_release(msg);
	event_base_loop(b, EVLOOP_NONBLOCK);
	is(r->joiner.ngot, 1, "... and what follows it");
	is(z->ngot, 4, "the others too");
	is(room_hub_members(hub, "re"), 2, "two members left");
	room_leave(z->h);
	room_leave(r->joiner.h);
	/* Enough rooms for the table to grow, and for status to cut its list. */
	struct tmember *many = calloc(150, sizeof(*many));
	for (int i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "room%d", i);
		many[i].h = room_join(w, name, &many[i], &tops);
	}
	is(room_hub_rooms(hub), 150, "150 rooms");
	is(room_hub_members(hub, "room149"), 1, "found after the table grew");
	struct sbuf s = { 0 };
	room_hub_status(hub, &s);
	sbuf_add(&s, "", 1);
	ok(s.p != NULL && strncmp(s.p, "{\"rooms\":150,\"members\":150,", 27) == 0 &&
	    strstr(s.p, "},\"truncated\":true}") != NULL, "status lists 100, says truncated: %.60s", s.p);
	int listed = 0;
	for (const char *q = s.p; q != NULL && (q = strstr(q, "\"room")) != NULL; q++)
		listed += q[5] != 's' || q[6] != '"';
	is(listed, 100, "... 100 rooms listed");
	sbuf_free(&s);
	for (int i = 0; i < 150; i++)
		room_leave(many[i].h);
	is(room_hub_rooms(hub), 0, "all gone");
	room_worker_stop(w);
	event_base_free(b);
	room_hub_free(hub);
	free(many);
	free(r);
	free(o);
	free(z);
}

/* ---- the deliver room.h describes: a reference in the connection's output ---- */

static void
release_ref(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	room_msg_release(arg);
}

static size_t
evbuf_deliver(void *p, struct room_msg *msg, uint64_t seq)
{
	struct evbuffer *out = p;

	(void)seq;
	room_msg_hold(msg);
	if (evbuffer_add_reference(out, msg->data, msg->len, release_ref, msg) != 0)
		room_msg_release(msg);
	return evbuffer_get_length(out);
}

static const struct room_member_ops evbuf_ops = { evbuf_deliver, t_drop };

static void
test_evbuffer_member(void)
{
	struct room_hub_conf conf = { .encode = encode };
	const char *why;
	struct room_hub *hub = room_hub_new(&conf, &why);
	struct event_base *b = event_base_new();
	struct room_worker *w = room_worker_start(hub, b);
	struct evbuffer *out1 = evbuffer_new(), *out2 = evbuffer_new();
	struct room_member *m1 = room_join(w, "eb", out1, &evbuf_ops);
	struct room_member *m2 = room_join(w, "eb", out2, &evbuf_ops);
	struct room_msg *msg = room_msg_text(hub, "hi", 2);
	char got[8] = "";

	room_publish(m1, msg);
	event_base_loop(b, EVLOOP_NONBLOCK);
	is(atomic_load(&msg->refs), 3, "each connection's output holds one reference");
	ok(evbuffer_get_length(out1) == 4 && evbuffer_pullup(out1, -1) == msg->data,
	    "the output refers to the message's own bytes, not a copy");
	evbuffer_remove(out1, got, sizeof(got) - 1);
	is_str(got, "F:hi", "the frame as the encoder made it");
	is(atomic_load(&msg->refs), 2, "sent on one: its reference goes");
	evbuffer_free(out2);
	is(atomic_load(&msg->refs), 1, "a connection freed with it queued lets go too");
	room_msg_release(msg);
	room_leave(m1);
	room_leave(m2);
	room_worker_stop(w);
	event_base_free(b);
	evbuffer_free(out1);
	room_hub_free(hub);
}

int
main(void)
{
	test_fanout();
	test_backlog();
	test_lagged_worker();
	test_notices();
	test_reentry();
	test_evbuffer_member();
	test_churn();
	return done_testing();
}
