/*
 * backplane: rooms across processes through Redis pub/sub (see
 * backplane.h for the design and the guarantees).
 *
 * Everything below the queue runs on the backplane's own thread: the
 * hiredis contexts, their state and the timers are touched by it alone.
 * Other threads reach it through the queue (lock), `stop` and `up`.
 */
#include "origin/backplane.h"
#include "origin/room.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/ratelimit_redis.h"

#define PREFIX_MAX 128
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define BEAT_IDLE_MS 1000          /* quiet this long: a heartbeat */
#define TICK_MS 100

/* A message on its way to Redis, with its room's name. */
struct bp_out {
	struct bp_out *next;
	struct room_msg *msg;
	char name[];
};

struct backplane {
	struct room_hub *hub;
	struct rl_redis addr;          /* numeric host, port, the URL as written */
	char prefix[PREFIX_MAX + 1];
	size_t prefix_len;
	char pattern[2 * PREFIX_MAX + 2]; /* the prefix, glob characters escaped, then '*' */
	size_t max_text;
	struct event_base *base;
	int fd;                        /* eventfd: a message queued, or stop */
	struct event *wake_ev;
	struct event *tick_ev;
	pthread_t thread;
	int started;

	pthread_mutex_t lock;
	struct bp_out *head, **tail;   /* lock */
	unsigned nout;                 /* lock */
	int woken;                     /* lock */
	_Atomic int stop;
	_Atomic int up;

	/* The thread's own. */
	redisAsyncContext *pub, *sub;
	int pub_ok, sub_ok;            /* connected; subscribed */
	int64_t connect_at;            /* ms: this attempt began */
	unsigned pending;              /* commands on pub not answered yet */
	int64_t progress_at;           /* ms: last answer, or first command since */
	int64_t sub_seen_at;           /* ms: the subscription last delivered something */
	int64_t beat_at;               /* ms: a heartbeat was published; 0: none waits */
	int64_t retry_at, backoff;
	int64_t down_at;               /* ms: this outage was logged at; 0: none */
	unsigned long long local_only; /* messages delivered here only, this outage */
	unsigned long long dropped;    /* refused for a Redis that does not keep up */
};

/* ---- connections ---- */

static void bp_fail(struct backplane *bp, const char *why);

static void
check_up(struct backplane *bp)
{
	int64_t now = rl_redis_now();

	if (!bp->pub_ok || !bp->sub_ok)
		return;
	atomic_store(&bp->up, 1);
	bp->backoff = 0;
	bp->progress_at = now;
	if (bp->down_at != 0)
		log_info("backplane %s: up again after %.1fs; %llu message%s delivered in this "
		    "process only meanwhile", bp->addr.url, (double)(now - bp->down_at) / 1000,
		    bp->local_only, bp->local_only == 1 ? " was" : "s were");
	else
		log_debug("backplane %s: up", bp->addr.url);
	bp->down_at = 0;
	bp->local_only = 0;
	bp->dropped = 0;
}

static void
ctx_free(redisAsyncContext **acp)
{
	redisAsyncContext *ac = *acp;

	*acp = NULL;
	if (ac == NULL)
		return;
	ac->data = NULL; /* its callbacks, called from the free, see it is not ours */
	redisAsyncFree(ac); /* deferred by hiredis when inside one of its callbacks */
}

/* One of the connections failed: both go, and rooms turn local. */
static void
bp_fail(struct backplane *bp, const char *why)
{
	int64_t now = rl_redis_now();

	atomic_store(&bp->up, 0);
	ctx_free(&bp->pub);
	ctx_free(&bp->sub);
	bp->pub_ok = bp->sub_ok = 0;
	bp->pending = 0;
	bp->backoff = bp->backoff == 0 ? BACKOFF_MIN_MS :
	    bp->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : bp->backoff * 2;
	bp->retry_at = now + bp->backoff;
	if (bp->down_at == 0) {
		log_warnx("backplane %s: %s; rooms deliver in this process only until it is back",
		    bp->addr.url, why);
		bp->down_at = now;
	}
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct backplane *bp = ac->data;

	if (bp == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees ac after this returns. */
		if (ac == bp->pub)
			bp->pub = NULL;
		else if (ac == bp->sub)
			bp->sub = NULL;
		bp_fail(bp, ac->errstr[0] != '\0' ? ac->errstr : "cannot connect");
		return;
	}
	if (ac == bp->pub) {
		bp->pub_ok = 1;
		check_up(bp);
	}
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct backplane *bp = ac->data;

	(void)status;
	if (bp == NULL)
		return;
	if (ac == bp->pub)
		bp->pub = NULL;
	else if (ac == bp->sub)
		bp->sub = NULL;
	bp_fail(bp, ac->errstr[0] != '\0' ? ac->errstr : "disconnected");
}

/* An answer on the publishing connection (PUBLISH: a message or a heartbeat). */
static void
on_answer(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct backplane *bp = privdata;
	redisReply *r = reply;

	if (ac != bp->pub || r == NULL)
		return; /* a connection given up already */
	bp->pending--;
	bp->progress_at = rl_redis_now();
	if (r->type == REDIS_REPLY_ERROR)
		bp_fail(bp, r->str);
}

static int
pub_command(struct backplane *bp, int argc, const char **argv, const size_t *lens)
{
	if (bp->pending == 0)
		bp->progress_at = rl_redis_now();
	if (redisAsyncCommandArgv(bp->pub, on_answer, bp, argc, argv, lens) != REDIS_OK) {
		bp_fail(bp, "cannot send a command");
		return -1;
	}
	bp->pending++;
	return 0;
}

/* A message from Redis: PREFIX + room on the channel, the text as payload. */
static void
on_pmessage(struct backplane *bp, const redisReply *chan, const redisReply *payload)
{
	char name[ROOM_NAME_MAX + 1];
	struct room_msg *msg;
	size_t n;

	if (chan->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING ||
	    chan->len < bp->prefix_len || memcmp(chan->str, bp->prefix, bp->prefix_len) != 0)
		return;
	/* Whatever comes shows the subscription alive; the prefix alone is
	 * the heartbeat channel (no room has an empty name). */
	bp->sub_seen_at = rl_redis_now();
	bp->beat_at = 0;
	if (chan->len == bp->prefix_len)
		return;
	n = chan->len - bp->prefix_len;
	if (n > ROOM_NAME_MAX || memchr(chan->str + bp->prefix_len, '\0', n) != NULL ||
	    payload->len > bp->max_text)
		return; /* not one a portico could have published */
	memcpy(name, chan->str + bp->prefix_len, n);
	name[n] = '\0';
	if ((msg = room_msg_text(bp->hub, payload->str, payload->len)) == NULL)
		return;
	room_fanout_name(bp->hub, name, msg);
	room_msg_release(msg);
}

static void
on_sub(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct backplane *bp = privdata;
	redisReply *r = reply;

	if (ac != bp->sub || r == NULL)
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		bp_fail(bp, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		return;
	}
	if (strcmp(r->element[0]->str, "pmessage") == 0 && r->elements == 4)
		on_pmessage(bp, r->element[2], r->element[3]);
	else if (strcmp(r->element[0]->str, "psubscribe") == 0) {
		bp->sub_ok = 1;
		bp->sub_seen_at = rl_redis_now();
		bp->beat_at = 0;
		check_up(bp);
	}
}

/* A connection on its way, or NULL with why (a buffer of 128) set. */
static redisAsyncContext *
ctx_new(struct backplane *bp, char *why)
{
	redisAsyncContext *ac = redisAsyncConnect(bp->addr.host, bp->addr.port);

	if (ac == NULL) {
		snprintf(why, 128, "out of memory");
		return NULL;
	}
	if (ac->err != 0 || redisLibeventAttach(ac, bp->base) != REDIS_OK) {
		snprintf(why, 128, "%s", ac->err != 0 ? ac->errstr : "cannot attach to the loop");
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = bp;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return ac;
}

static void
bp_connect(struct backplane *bp)
{
	char why[128];

	bp->connect_at = rl_redis_now();
	bp->beat_at = 0;
	if ((bp->pub = ctx_new(bp, why)) == NULL || (bp->sub = ctx_new(bp, why)) == NULL) {
		bp_fail(bp, why);
		return;
	}
	/* Sent once connected; its answer marks the subscription in place. */
	if (redisAsyncCommand(bp->sub, on_sub, bp, "PSUBSCRIBE %b", bp->pattern,
	    strlen(bp->pattern)) != REDIS_OK)
		bp_fail(bp, "cannot subscribe");
}

/* ---- the thread ---- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct backplane *bp = arg;
	int64_t now = rl_redis_now();

	(void)fd;
	(void)what;
	if (bp->pub == NULL && bp->sub == NULL) {
		if (now >= bp->retry_at)
			bp_connect(bp);
		return;
	}
	if (!atomic_load(&bp->up)) {
		if (now - bp->connect_at > BP_TIMEOUT_MS)
			bp_fail(bp, "no connection within the timeout");
		return;
	}
	if (bp->pending > 0 && now - bp->progress_at > BP_TIMEOUT_MS) {
		bp_fail(bp, "no answer within the timeout");
	} else if (bp->beat_at != 0 && now - bp->beat_at > BP_TIMEOUT_MS) {
		/* The publishing connection answers, the subscription is silent:
		 * every room here would be, since even local members get their
		 * messages back through it. */
		bp_fail(bp, "the subscription delivers nothing");
	} else if (bp->beat_at == 0 && now - bp->sub_seen_at >= BEAT_IDLE_MS) {
		/* Quiet for a second: a heartbeat on the prefix's own channel,
		 * answered on the publishing connection and seen coming back on
		 * the subscribed one, checks both. */
		const char *argv[] = { "PUBLISH", bp->prefix, "" };
		size_t lens[] = { 7, bp->prefix_len, 0 };
		bp->beat_at = now;
		pub_command(bp, 3, argv, lens);
	}
}

static struct bp_out *
out_take(struct backplane *bp)
{
	struct bp_out *list;

	pthread_mutex_lock(&bp->lock);
	list = bp->head;
	bp->head = NULL;
	bp->tail = &bp->head;
	bp->nout = 0;
	bp->woken = 0;
	pthread_mutex_unlock(&bp->lock);
	return list;
}

/* Up: PUBLISH, and deliver when it comes back.  Down: deliver here now. */
static void
send_one(struct backplane *bp, struct bp_out *o)
{
	char chan[PREFIX_MAX + ROOM_NAME_MAX + 1];
	struct room_msg *m = o->msg;
	const char *argv[3];
	size_t lens[3], n = strlen(o->name);

	if (!atomic_load(&bp->up)) {
		room_fanout_name(bp->hub, o->name, m);
		bp->local_only++;
		return;
	}
	if (bp->pending >= BP_PENDING_MAX) {
		if (bp->dropped++ == 0) /* once per time up */
			log_warnx("backplane %s: Redis does not keep up; messages are dropped",
			    bp->addr.url);
		return;
	}
	memcpy(chan, bp->prefix, bp->prefix_len);
	memcpy(chan + bp->prefix_len, o->name, n);
	argv[0] = "PUBLISH";
	lens[0] = 7;
	argv[1] = chan;
	lens[1] = bp->prefix_len + n;
	argv[2] = (const char *)m->data + m->text_off;
	lens[2] = m->len - m->text_off;
	pub_command(bp, 3, argv, lens);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct backplane *bp = arg;
	struct bp_out *o, *next;
	uint64_t v;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("backplane: eventfd read");
	if (atomic_load(&bp->stop)) {
		event_base_loopbreak(bp->base);
		return;
	}
	for (o = out_take(bp); o != NULL; o = next) {
		next = o->next;
		send_one(bp, o);
		room_msg_release(o->msg);
		free(o);
	}
}

static void *
bp_main(void *arg)
{
	struct backplane *bp = arg;
	struct bp_out *o, *next;

	bp_connect(bp);
	event_base_dispatch(bp->base);
	ctx_free(&bp->pub);
	ctx_free(&bp->sub);
	for (o = out_take(bp); o != NULL; o = next) {
		next = o->next;
		room_msg_release(o->msg);
		free(o);
	}
	return NULL;
}

/* ---- other threads ---- */

int
backplane_publish(struct backplane *bp, const char *name, struct room_msg *msg)
{
	size_t n = strlen(name);
	struct bp_out *o;
	uint64_t one = 1;
	int wake;

	if (n == 0 || n > ROOM_NAME_MAX || (o = malloc(sizeof(*o) + n + 1)) == NULL)
		return -1;
	memcpy(o->name, name, n + 1);
	o->msg = msg;
	o->next = NULL;
	pthread_mutex_lock(&bp->lock);
	if (bp->nout >= BP_OUT_MAX) {
		pthread_mutex_unlock(&bp->lock);
		free(o);
		return -1;
	}
	room_msg_hold(msg);
	*bp->tail = o;
	bp->tail = &o->next;
	bp->nout++;
	wake = !bp->woken;
	bp->woken = 1;
	pthread_mutex_unlock(&bp->lock);
	if (wake && write(bp->fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("backplane: eventfd write");
	return 0;
}

int
backplane_up(const struct backplane *bp)
{
	return atomic_load(&bp->up);
}

const char *
backplane_url(const struct backplane *bp)
{
	return bp->addr.url;
}

struct backplane *
backplane_new(struct room_hub *hub, const char *url, const char *prefix, size_t max_text,
    const char **why)
{
	static const struct timeval tick = { 0, TICK_MS * 1000 };
	struct backplane *bp = calloc(1, sizeof(*bp));
	size_t k = 0;

	*why = "out of memory";
	if (bp == NULL)
		return NULL;
	bp->fd = -1;
	/* The rate limiter's parser: the same URLs, resolved the same way. */
	if (strncmp(url, "redis://", 8) != 0)
		*why = "expected redis://HOST:PORT";
	if (strncmp(url, "redis://", 8) != 0 || rl_redis_parse(url, &bp->addr, why) < 0) {
		free(bp);
		return NULL;
	}
	if ((bp->prefix_len = strlen(prefix)) > PREFIX_MAX) {
		*why = "the channel prefix is longer than 128 bytes";
		goto fail;
	}
	memcpy(bp->prefix, prefix, bp->prefix_len + 1);
	/* Glob characters in the prefix stand for themselves. */
	for (size_t i = 0; i < bp->prefix_len; i++) {
		if (strchr("*?[]\\", prefix[i]) != NULL)
			bp->pattern[k++] = '\\';
		bp->pattern[k++] = prefix[i];
	}
	bp->pattern[k++] = '*';
	bp->pattern[k] = '\0';
	bp->hub = hub;
	bp->max_text = max_text;
	bp->tail = &bp->head;
	pthread_mutex_init(&bp->lock, NULL);
	*why = "cannot make the backplane's event loop";
	if ((bp->base = event_base_new()) == NULL ||
	    (bp->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    (bp->wake_ev = event_new(bp->base, bp->fd, EV_READ | EV_PERSIST, on_wake, bp)) == NULL ||
	    (bp->tick_ev = event_new(bp->base, -1, EV_PERSIST, on_tick, bp)) == NULL ||
	    event_add(bp->wake_ev, NULL) != 0 || event_add(bp->tick_ev, &tick) != 0)
		goto fail;
	*why = "cannot start the backplane's thread";
	if (pthread_create(&bp->thread, NULL, bp_main, bp) != 0)
		goto fail;
	bp->started = 1;
	return bp;
fail:
	backplane_free(bp);
	return NULL;
}

void
backplane_free(struct backplane *bp)
{
	uint64_t one = 1;

	if (bp == NULL)
		return;
	if (bp->started) {
		atomic_store(&bp->stop, 1);
		if (write(bp->fd, &one, sizeof(one)) < 0)
			log_warn("backplane: eventfd write");
		pthread_join(bp->thread, NULL);
	}
	if (bp->wake_ev != NULL)
		event_free(bp->wake_ev);
	if (bp->tick_ev != NULL)
		event_free(bp->tick_ev);
	if (bp->fd >= 0)
		close(bp->fd);
	if (bp->base != NULL)
		event_base_free(bp->base);
	if (bp->tail != NULL)
		pthread_mutex_destroy(&bp->lock);
	rl_redis_clear(&bp->addr);
	free(bp);
}
