/*
 * room: the chat-room hub (see room.h for the design and the API).
 */
#include "origin/room.h"
#include "origin/backplane.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sbuf.h"

#define DEFAULT_MAX_BACKLOG (1024 * 1024)
#define DEFAULT_MAX_TEXT (1024 * 1024)
#define DEFAULT_PREFIX "portico:room:"
#define STATUS_ROOMS_MAX 100
#define HASH_MIN 64
/* What one round of a worker's queue delivers before the loop runs again:
 * the members' connections write in between, so a burst is not counted
 * whole against the backlog of a member that reads (and other
 * connections of the worker get a turn). */
#define BATCH_ENTRIES 256
#define BATCH_BYTES (16 * 1024)      /* a quarter of the least max_backlog */

struct room_local;

/* One message for one worker: a reference and its sequence in the room.
 * msg NULL is the "lagged" marker (see publish_locked). */
struct room_entry {
	struct room_entry *next;
	struct room_local *local;
	struct room_msg *msg;
	uint64_t seq;
};

struct room_member {
	TAILQ_ENTRY(room_member) link;
	struct room_local *local;
	void *member;
	const struct room_member_ops *ops;
	uint64_t join_seq;             /* delivered: sequences after this */
	int gone;                      /* left or dropped during a delivery: unlinked after it */
};

TAILQ_HEAD(room_members, room_member);

/*
 * A room's members on one worker.  Found by publishers through the
 * room's list (room lock) and freed by its worker once it has no member
 * and no entry queued: after it leaves the room's list nothing new is
 * queued for it, so `queued` only falls from then on.
 */
struct room_local {
	struct room_local *next;       /* in room->locals (room lock) */
	LIST_ENTRY(room_local) wlink;  /* in rw->locals (worker only) */
	struct room *room;             /* NULL once it left the room's list */
	struct room_worker *rw;
	struct room_members members;   /* worker only */
	unsigned nmembers;             /* written under the room lock, by the worker */
	_Atomic unsigned queued;       /* entries in rw's queue for it */
	int lagged;                    /* the marker is queued (room lock) */
	int delivering;                /* worker only */
	struct room_entry marker;
};

struct room {
	struct room *hnext;            /* hash chain (hub lock) */
	pthread_mutex_t lock;
	uint64_t seq;                  /* room lock */
	struct room_local *locals;     /* room lock */
	unsigned nmembers;             /* hub lock */
	char name[];
};

struct room_worker {
	struct room_hub *hub;
	struct event_base *base;
	int fd;
	struct event *ev;
	pthread_mutex_t lock;
	struct room_entry *head, **tail; /* lock */
	int woken;                     /* eventfd written, not drained yet (lock) */
	LIST_HEAD(, room_local) locals; /* worker only */
	struct room_entry *pending, **ptail; /* taken from the queue, not delivered yet (worker only) */
};

struct room_hub {
	pthread_mutex_t lock;
	struct room **buckets;         /* lock */
	size_t nbuckets;
	unsigned nrooms;               /* lock */
	unsigned nmembers;             /* lock */
	size_t max_backlog;
	size_t max_text;
	int notices;
	room_encode_fn *encode;
	void *encode_arg;
	struct backplane *bp;          /* NULL: local only */
};

/* ---- messages ---- */

struct room_msg *
room_msg_alloc(size_t len, size_t text_off)
{
	struct room_msg *m;

	if (text_off > len || len > SIZE_MAX - sizeof(*m))
		return NULL;
	if ((m = malloc(sizeof(*m) + len)) == NULL)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	m->text_off = text_off;
	return m;
}

struct room_msg *
room_msg_new(const void *data, size_t len)
{
	struct room_msg *m = room_msg_alloc(len, 0);

	if (m != NULL && len > 0)
		memcpy(m->data, data, len);
	return m;
}

struct room_msg *
room_msg_text(struct room_hub *hub, const char *text, size_t len)
{
	if (hub->encode != NULL)
		return hub->encode(hub->encode_arg, text, len);
	return room_msg_new(text, len);
}

void
room_msg_hold(struct room_msg *msg)
{
	atomic_fetch_add_explicit(&msg->refs, 1, memory_order_relaxed);
}

void
room_msg_release(struct room_msg *msg)
{
	/* acq_rel: every holder's reads of data happen before the free. */
	if (msg != NULL && atomic_fetch_sub_explicit(&msg->refs, 1, memory_order_acq_rel) == 1)
		free(msg);
}

/* ---- the registry (hub lock) ---- */

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct room *
room_find(struct room_hub *hub, const char *name)
{
	struct room *r;

	for (r = hub->buckets[name_hash(name) & (hub->nbuckets - 1)]; r != NULL; r = r->hnext)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

/* Doubles the table when rooms outnumber buckets; failing to is harmless. */
static void
hash_grow(struct room_hub *hub)
{
	size_t n = hub->nbuckets * 2;
	struct room **b;

	if (hub->nrooms < hub->nbuckets || (b = calloc(n, sizeof(*b))) == NULL)
		return;
	for (size_t i = 0; i < hub->nbuckets; i++) {
		struct room *r, *next;
		for (r = hub->buckets[i]; r != NULL; r = next) {
			next = r->hnext;
			r->hnext = b[name_hash(r->name) & (n - 1)];
			b[name_hash(r->name) & (n - 1)] = r;
		}
	}
	free(hub->buckets);
	hub->buckets = b;
	hub->nbuckets = n;
}

static struct room *
room_make(struct room_hub *hub, const char *name, size_t len)
{
	struct room *r = calloc(1, sizeof(*r) + len + 1);

	if (r == NULL)
		return NULL;
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r);
		return NULL;
	}
	memcpy(r->name, name, len + 1);
	size_t i = name_hash(name) & (hub->nbuckets - 1);
	r->hnext = hub->buckets[i];
	hub->buckets[i] = r;
	hub->nrooms++;
	hash_grow(hub);
	return r;
}

static void
room_unlink(struct room_hub *hub, struct room *r)
{
	struct room **pp = &hub->buckets[name_hash(r->name) & (hub->nbuckets - 1)];

	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	hub->nrooms--;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* ---- worker queues ---- */

/* Appends e to rw's queue; wakes the worker if the queue was empty.
 * Under the room lock, so each worker's queue holds a room's messages
 * in sequence order. */
static void
queue_push(struct room_worker *rw, struct room_entry *e)
{
	uint64_t one = 1;
	int wake;

	e->next = NULL;
	atomic_fetch_add_explicit(&e->local->queued, 1, memory_order_relaxed);
	pthread_mutex_lock(&rw->lock);
	*rw->tail = e;
	rw->tail = &e->next;
	wake = !rw->woken;
	rw->woken = 1;
	pthread_mutex_unlock(&rw->lock);
	/* EAGAIN only when the counter is near 2^64: the worker is awake. */
	if (wake && write(rw->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("room: eventfd write");
}

/*
 * Gives msg the room's next sequence and queues a reference for every
 * worker with members in it.  A worker with ROOM_QUEUE_MAX of the room's
 * messages still queued gets none: its marker goes instead (once), and
 * its members that should have had this one are dropped when it gets
 * there.  An allocation failure is handled the same way.
 */
static void
publish_locked(struct room *r, struct room_msg *msg)
{
	uint64_t seq = ++r->seq;

	for (struct room_local *l = r->locals; l != NULL; l = l->next) {
		struct room_entry *e = NULL;
		if (l->lagged)
			continue;
		if (atomic_load_explicit(&l->queued, memory_order_relaxed) < ROOM_QUEUE_MAX)
			e = malloc(sizeof(*e));
		if (e == NULL) {
			l->lagged = 1;
			e = &l->marker;
			e->msg = NULL;
		} else {
			room_msg_hold(msg);
			e->msg = msg;
		}
		e->local = l;
		e->seq = seq;
		queue_push(l->rw, e);
	}
}

int
room_fanout_name(struct room_hub *hub, const char *name, struct room_msg *msg)
{
	struct room *r;

	pthread_mutex_lock(&hub->lock);
	if ((r = room_find(hub, name)) != NULL) {
		pthread_mutex_lock(&r->lock);
		publish_locked(r, msg);
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&hub->lock);
	return 0;
}

/* ---- leaving ---- */

static void
local_free(struct room_local *l)
{
	LIST_REMOVE(l, wlink);
	free(l);
}

/* Frees l if it is out of its room, has no member and nothing queued
 * (worker thread). */
static void
local_gc(struct room_local *l)
{
	if (l->room == NULL && l->delivering == 0 && TAILQ_EMPTY(&l->members) &&
	    atomic_load_explicit(&l->queued, memory_order_acquire) == 0)
		local_free(l);
}

static void publish_notice(struct room_hub *hub, struct room *r, const char *type);

/*
 * Takes m out of its room's counts (and the room out of the registry if
 * it was the last), without touching the member list.  notice: publish
 * a leave notice if the hub does.
 */
static void
member_account_leave(struct room_member *m, int notice)
{
	struct room_local *l = m->local;
	struct room *r = l->room;
	struct room_hub *hub = l->rw->hub;

	m->gone = 1;
	pthread_mutex_lock(&hub->lock);
	hub->nmembers--;
	r->nmembers--;
	pthread_mutex_lock(&r->lock);
	if (--l->nmembers == 0) {
		struct room_local **pp = &r->locals;
		while (*pp != l)
			pp = &(*pp)->next;
		*pp = l->next;
		l->room = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	if (r->nmembers == 0)
		room_unlink(hub, r);
	else if (notice && hub->notices)
		publish_notice(hub, r, "leave");
	pthread_mutex_unlock(&hub->lock);
}

static void
member_unlink(struct room_member *m)
{
	struct room_local *l = m->local;

	TAILQ_REMOVE(&l->members, m, link);
	free(m);
	local_gc(l);
}

void
room_leave(struct room_member *m)
{
	if (m == NULL || m->gone)
		return;
	member_account_leave(m, 1);
	if (m->local->delivering == 0)
		member_unlink(m);
}

/* ---- delivery, in the worker ---- */

static void
member_drop(struct room_member *m)
{
	member_account_leave(m, 1);
	m->ops->drop(m->member, ROOM_CLOSE_POLICY);
}

/*
 * The marker: the worker fell ROOM_QUEUE_MAX messages behind in l's room
 * (or memory ran short), and messages were not queued for it from the
 * marker's sequence on.  Members that were here before the last of those
 * would miss some: they are dropped.  Later ones get everything.
 */
static void
deliver_marker(struct room_local *l)
{
	struct room_member *m;
	uint64_t last;

	if (l->room == NULL)
		return;
	pthread_mutex_lock(&l->room->lock);
	l->lagged = 0;
	last = l->room->seq;
	pthread_mutex_unlock(&l->room->lock);
	TAILQ_FOREACH(m, &l->members, link)
		if (!m->gone && m->join_seq < last)
			member_drop(m);
}

/* Delivers one entry to the worker's members of its room. */
static void
deliver_entry(struct room_hub *hub, struct room_entry *e)
{
	struct room_local *l = e->local;
	struct room_member *m, *next;

	l->delivering++;
	if (e->msg == NULL)
		deliver_marker(l);
	else
		TAILQ_FOREACH(m, &l->members, link) {
			if (m->gone || e->seq <= m->join_seq)
				continue;
			if (m->ops->deliver(m->member, e->msg, e->seq) > hub->max_backlog && !m->gone)
				member_drop(m);
		}
	l->delivering--;
	if (l->delivering == 0)
		for (m = TAILQ_FIRST(&l->members); m != NULL; m = next) {
			next = TAILQ_NEXT(m, link);
			if (m->gone) {
				TAILQ_REMOVE(&l->members, m, link);
				free(m);
			}
		}
	atomic_fetch_sub_explicit(&l->queued, 1, memory_order_release);
	local_gc(l);
}

static struct room_entry *
queue_take(struct room_worker *rw)
{
	struct room_entry *list;

	pthread_mutex_lock(&rw->lock);
	list = rw->head;
	rw->head = NULL;
	rw->tail = &rw->head;
	rw->woken = 0;
	pthread_mutex_unlock(&rw->lock);
	return list;
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct room_worker *rw = arg;
	struct room_entry *e;
	uint64_t v;
	size_t bytes = 0;
	unsigned n = 0;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("room: eventfd read");
	/* What arrives meanwhile writes the eventfd again: one more round. */
	if ((e = queue_take(rw)) != NULL) {
		*rw->ptail = e;
		while (e->next != NULL)
			e = e->next;
		rw->ptail = &e->next;
	}
	while ((e = rw->pending) != NULL && n < BATCH_ENTRIES && bytes < BATCH_BYTES) {
		if ((rw->pending = e->next) == NULL)
			rw->ptail = &rw->pending;
		struct room_msg *msg = e->msg;
		int marker = e == &e->local->marker;
		n++;
		bytes += msg != NULL ? msg->len : 0;
		deliver_entry(rw->hub, e); /* may free e->local, and the marker with it */
		room_msg_release(msg);
		if (!marker)
			free(e);
	}
	/* The rest after what is active now (the connections' writes). */
	if (rw->pending != NULL)
		event_active(rw->ev, EV_READ, 0);
}

/* ---- joining ---- */

static struct room_local *
local_get(struct room *r, struct room_worker *rw)
{
	struct room_local *l;

	for (l = r->locals; l != NULL; l = l->next) /* O(workers) */
		if (l->rw == rw)
			return l;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->room = r;
	l->rw = rw;
	TAILQ_INIT(&l->members);
	atomic_init(&l->queued, 0);
	l->next = r->locals;
	r->locals = l;
	LIST_INSERT_HEAD(&rw->locals, l, wlink);
	return l;
}

struct room_member *
room_join(struct room_worker *rw, const char *name, void *member,
    const struct room_member_ops *ops)
{
	struct room_hub *hub = rw->hub;
	size_t len = strlen(name);
	struct room_member *m;
	struct room_local *l = NULL;
	struct room *r;

	if (len == 0 || len > ROOM_NAME_MAX || (m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	pthread_mutex_lock(&hub->lock);
	if ((r = room_find(hub, name)) == NULL && (r = room_make(hub, name, len)) == NULL)
		goto fail;
	pthread_mutex_lock(&r->lock);
	if ((l = local_get(r, rw)) != NULL) {
		l->nmembers++;
		m->join_seq = r->seq;
	}
	pthread_mutex_unlock(&r->lock);
	if (l == NULL) {
		if (r->nmembers == 0)
			room_unlink(hub, r);
		goto fail;
	}
	r->nmembers++;
	hub->nmembers++;
	m->local = l;
	m->member = member;
	m->ops = ops;
	TAILQ_INSERT_TAIL(&l->members, m, link);
	if (hub->notices)
		publish_notice(hub, r, "join");
	pthread_mutex_unlock(&hub->lock);
	return m;
fail:
	pthread_mutex_unlock(&hub->lock);
	free(m);
	return NULL;
}

const char *
room_member_room(const struct room_member *m)
{
	return m->local->room != NULL ? m->local->room->name : "";
}

/* ---- publishing ---- */

static int
publish_room(struct room_hub *hub, struct room *r, struct room_msg *msg)
{
	if (hub->bp != NULL)
		return backplane_publish(hub->bp, r->name, msg);
	pthread_mutex_lock(&r->lock);
	publish_locked(r, msg);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int
room_publish(struct room_member *m, struct room_msg *msg)
{
	/* m is in its room, so the room lives: no hub lock. */
	if (m->gone || m->local->room == NULL)
		return -1;
	return publish_room(m->local->rw->hub, m->local->room, msg);
}

int
room_publish_name(struct room_hub *hub, const char *name, struct room_msg *msg)
{
	if (hub->bp != NULL)
		return backplane_publish(hub->bp, name, msg);
	return room_fanout_name(hub, name, msg);
}

/*
 * {"type":"join","room":"NAME","members":N}, or "leave", where N is the
 * room's members in this process after the change.  Under the hub lock
 * (r lives); a notice that cannot be made is not sent.
 */
static void
publish_notice(struct room_hub *hub, struct room *r, const char *type)
{
	struct sbuf b = { .max = ROOM_NAME_MAX * 6 + 128 };
	struct room_msg *msg;

	sbuf_printf(&b, "{\"type\":\"%s\",\"room\":\"", type);
	sbuf_json(&b, r->name);
	sbuf_printf(&b, "\",\"members\":%u}", r->nmembers);
	if (!sbuf_failed(&b) && (msg = room_msg_text(hub, b.p, b.len)) != NULL) {
		publish_room(hub, r, msg);
		room_msg_release(msg);
	}
	sbuf_free(&b);
}

/* ---- the hub and its workers ---- */

struct room_hub *
room_hub_new(const struct room_hub_conf *conf, const char **why)
{
	struct room_hub *hub = calloc(1, sizeof(*hub));

	*why = "out of memory";
	if (hub == NULL)
		return NULL;
	if (pthread_mutex_init(&hub->lock, NULL) != 0) {
		free(hub);
		return NULL;
	}
	hub->nbuckets = HASH_MIN;
	if ((hub->buckets = calloc(hub->nbuckets, sizeof(*hub->buckets))) == NULL)
		goto fail;
	hub->max_backlog = conf->max_backlog != 0 ? conf->max_backlog : DEFAULT_MAX_BACKLOG;
	hub->max_text = conf->max_text != 0 ? conf->max_text : DEFAULT_MAX_TEXT;
	hub->notices = conf->notices;
	hub->encode = conf->encode;
	hub->encode_arg = conf->encode_arg;
	if (conf->backplane != NULL &&
	    (hub->bp = backplane_new(hub, conf->backplane,
	    conf->prefix != NULL ? conf->prefix : DEFAULT_PREFIX, hub->max_text, why)) == NULL)
		goto fail;
	return hub;
fail:
	free(hub->buckets);
	pthread_mutex_destroy(&hub->lock);
	free(hub);
	return NULL;
}

void
room_hub_free(struct room_hub *hub)
{
	if (hub == NULL)
		return;
	if (hub->bp != NULL)
		backplane_free(hub->bp);
	/* Every worker stopped, so every room is gone. */
	if (hub->nrooms != 0)
		log_warnx("room: hub freed with %u rooms in use", hub->nrooms);
	free(hub->buckets);
	pthread_mutex_destroy(&hub->lock);
	free(hub);
}

struct room_worker *
room_worker_start(struct room_hub *hub, struct event_base *base)
{
	struct room_worker *rw = calloc(1, sizeof(*rw));

	if (rw == NULL)
		return NULL;
	rw->hub = hub;
	rw->base = base;
	rw->tail = &rw->head;
	rw->ptail = &rw->pending;
	LIST_INIT(&rw->locals);
	if (pthread_mutex_init(&rw->lock, NULL) != 0) {
		free(rw);
		return NULL;
	}
	if ((rw->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto fail;
	if ((rw->ev = event_new(base, rw->fd, EV_READ | EV_PERSIST, on_wake, rw)) == NULL ||
	    event_add(rw->ev, NULL) != 0)
		goto fail;
	return rw;
fail:
	if (rw->ev != NULL)
		event_free(rw->ev);
	if (rw->fd >= 0)
		close(rw->fd);
	pthread_mutex_destroy(&rw->lock);
	free(rw);
	return NULL;
}

void
room_worker_stop(struct room_worker *rw)
{
	struct room_local *l;
	struct room_member *m;
	struct room_entry *e, *next;

	if (rw == NULL)
		return;
	/* Out of every room first: then no one queues for us any more. */
	LIST_FOREACH(l, &rw->locals, wlink)
		TAILQ_FOREACH(m, &l->members, link)
			if (!m->gone)
				member_account_leave(m, 0);
	*rw->ptail = queue_take(rw);
	for (e = rw->pending; e != NULL; e = next) {
		next = e->next;
		room_msg_release(e->msg);
		if (e != &e->local->marker)
			free(e);
	}
	while ((l = LIST_FIRST(&rw->locals)) != NULL) {
		while ((m = TAILQ_FIRST(&l->members)) != NULL) {
			TAILQ_REMOVE(&l->members, m, link);
			free(m);
		}
		local_free(l);
	}
	event_free(rw->ev);
	close(rw->fd);
	pthread_mutex_destroy(&rw->lock);
	free(rw);
}

/* ---- counts ---- */

unsigned
room_hub_rooms(struct room_hub *hub)
{
	pthread_mutex_lock(&hub->lock);
	unsigned n = hub->nrooms;
	pthread_mutex_unlock(&hub->lock);
	return n;
}

unsigned
room_hub_members(struct room_hub *hub, const char *name)
{
	struct room *r;
	unsigned n = 0;

	pthread_mutex_lock(&hub->lock);
	if ((r = room_find(hub, name)) != NULL)
		n = r->nmembers;
	pthread_mutex_unlock(&hub->lock);
	return n;
}

int
room_hub_backplane(struct room_hub *hub)
{
	return hub->bp == NULL ? -1 : backplane_up(hub->bp);
}

void
room_hub_status(struct room_hub *hub, struct sbuf *out)
{
	unsigned listed = 0;

	pthread_mutex_lock(&hub->lock);
	sbuf_printf(out, "{\"rooms\":%u,\"members\":%u,\"backplane\":\"%s\",\"by_room\":{",
	    hub->nrooms, hub->nmembers,
	    hub->bp == NULL ? "off" : backplane_up(hub->bp) ? "up" : "down");
	for (size_t i = 0; i < hub->nbuckets && listed < STATUS_ROOMS_MAX; i++)
		for (struct room *r = hub->buckets[i]; r != NULL && listed < STATUS_ROOMS_MAX;
		    r = r->hnext) {
			sbuf_str(out, listed++ == 0 ? "\"" : ",\"");
			sbuf_json(out, r->name);
			sbuf_printf(out, "\":%u", r->nmembers);
		}
	sbuf_printf(out, "}%s}", listed < hub->nrooms ? ",\"truncated\":true" : "");
	pthread_mutex_unlock(&hub->lock);
}
