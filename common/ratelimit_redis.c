/*
 * ratelimit_redis: the fleet store of `type = ratelimit` (see
 * ratelimit_redis.h).
 *
 * One decision is one EVALSHA of the script below (EVAL when Redis does
 * not know it yet, after a restart): GCRA on the key's TAT, kept in
 * microseconds of Redis's own clock (TIME), so edges whose clocks
 * differ still share one timeline; the key expires when its bucket is
 * full again, so Redis holds only keys that are being limited.  Redis 5
 * and later replicate a script's effects, not the script, so reading
 * TIME in it is allowed.
 */
#include "common/ratelimit_redis.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/handler.h"
#include "common/log.h"
#include "common/mw_ratelimit.h"
#include "common/server.h"

/*
 * KEYS[1] the bucket; ARGV: interval, tolerance, queue (microseconds).
 * Returns {allowed, wait, reset}: wait before passing (or, refused,
 * until one would be accepted), reset until the bucket is full.
 */
static const char script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local tolerance = tonumber(ARGV[2])\n"
    "local queue = tonumber(ARGV[3])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or 0)\n"
    "if tat < now then tat = now end\n"
    "local wait = tat - tolerance - now\n"
    "if wait > queue then return {0, wait - queue, tat - now} end\n"
    "local new = tat + interval\n"
    "redis.call('SET', KEYS[1], string.format('%d', new), 'PX',\n"
    "    math.floor((new - now) / 1000) + 1)\n"
    "if wait < 0 then wait = 0 end\n"
    "return {1, wait, new - now}\n";

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* Questions in flight on one connection: beyond, a Redis that stopped
 * answering (but keeps the connection) would hold them all. */
#define PENDING_MAX 4096

/* One worker's connection to one Redis address. */
struct rl_link {
	struct rl_link *next;
	char *host;
	int port;
	redisAsyncContext *ac;           /* NULL: down */
	int64_t retry_at;                /* ms, monotonic: no new connection before */
	int64_t backoff;                 /* ms; 0 after a success */
	int64_t down_since;              /* ms: failing since; 0: answering */
	unsigned pending;
	int64_t progress;                /* ms: connected, or answered, last */
	int64_t stall_ms;                /* the longest of its stores' */
	struct event *watchdog;          /* armed while questions wait */
	char why[128];                   /* the last failure */
};

struct rl_worker {
	struct rl_link *links;
};

struct rl_redis_call {
	rl_redis_done *done;             /* NULL: cancelled, freed by its reply */
	void *arg;
	struct rl_link *link;
	int evaled;                      /* sent as EVAL already */
	char key[CONF_MAX_NAME + 64];
	char args[3][24];
};

int64_t
rl_redis_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
rl_redis_parse(const char *url, struct rl_redis *st, const char **why)
{
	const char *h = url + 8, *colon;
	char host[256], port[8] = "6379";
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen;

	memset(st, 0, sizeof(*st));
	if (strncmp(url, "redis://", 8) != 0) {
		*why = "expected local or redis://HOST:PORT";
		return -1;
	}
	if (*h == '[') {
		const char *end = strchr(h, ']');
		if (end == NULL || (size_t)(end - h - 1) >= sizeof(host)) {
			*why = "bad [IPv6] address";
			return -1;
		}
		memcpy(host, h + 1, (size_t)(end - h - 1));
		host[end - h - 1] = '\0';
		colon = end[1] == ':' ? end + 1 : end[1] == '\0' ? NULL : end;
	} else {
		colon = strchr(h, ':');
		size_t n = colon != NULL ? (size_t)(colon - h) : strlen(h);
		if (n == 0 || n >= sizeof(host)) {
			*why = "expected redis://HOST:PORT";
			return -1;
		}
		memcpy(host, h, n);
		host[n] = '\0';
	}
	if (colon != NULL) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (*colon != ':' || end == colon + 1 || *end != '\0' || p < 1 || p > 65535) {
			*why = "expected a port from 1 to 65535 after the host";
			return -1;
		}
		snprintf(port, sizeof(port), "%ld", p);
	}
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		*why = "cannot resolve the host";
		return -1;
	}
	char num[NI_MAXHOST];
	int rc = getnameinfo(ai->ai_addr, ai->ai_addrlen, num, sizeof(num), NULL, 0,
	    NI_NUMERICHOST);
	freeaddrinfo(ai);
	if (rc != 0 || (st->host = strdup(num)) == NULL) {
		*why = "cannot resolve the host";
		return -1;
	}
	st->port = atoi(port);
	snprintf(st->url, sizeof(st->url), "%s", url);
	if (EVP_Digest(script, strlen(script), md, &mdlen, EVP_sha1(), NULL) != 1) {
		rl_redis_clear(st);
		*why = "cannot hash the script";
		return -1;
	}
	for (unsigned i = 0; i < mdlen && i < 20; i++)
		snprintf(st->sha + 2 * i, 3, "%02x", md[i]);
	return 0;
}

void
rl_redis_clear(struct rl_redis *st)
{
	free(st->host);
	st->host = NULL;
}

/* ---- one worker's connections ---- */

static void
link_failed(struct rl_link *l, const char *why)
{
	snprintf(l->why, sizeof(l->why), "%s", why);
	if (l->down_since == 0)
		l->down_since = rl_redis_now();
	l->backoff = l->backoff == 0 ? BACKOFF_MIN_MS :
	    l->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff * 2;
	l->retry_at = rl_redis_now() + l->backoff;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rl_link *l = ac->data;

	if (l == NULL) /* given up by the watchdog */
		return;
	if (status == REDIS_OK) {
		/* Connected is not answering (a stopped Redis's kernel accepts
		 * connections): the failure ends at the first answer. */
		l->progress = rl_redis_now();
		return;
	}
	/* hiredis frees the context after this; its questions fail next. */
	l->ac = NULL;
	link_failed(l, ac->errstr[0] != '\0' ? ac->errstr : "cannot connect");
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rl_link *l = ac->data;

	if (l == NULL) /* given up by the watchdog */
		return;
	l->ac = NULL;
	if (status != REDIS_OK)
		link_failed(l, ac->errstr[0] != '\0' ? ac->errstr : "disconnected");
}

static void
watchdog_arm(struct rl_link *l, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000) };

	evtimer_add(l->watchdog, &tv);
}

/* Questions waited stall_ms with no answer, connecting or connected:
 * give the connection up (its questions fail now) and make a new one
 * after the backoff. */
static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct rl_link *l = arg;
	int64_t idle = rl_redis_now() - l->progress;
	char why[64];

	(void)fd;
	(void)what;
	if (l->ac == NULL || l->pending == 0)
		return;
	if (idle < l->stall_ms) {
		watchdog_arm(l, l->stall_ms - idle);
		return;
	}
	redisAsyncContext *ac = l->ac;
	snprintf(why, sizeof(why), "no answer for %lld ms", (long long)idle);
	if (l->down_since == 0) /* once per incident, not at every retry */
		log_info("ratelimit store redis://%s:%d: %s: connecting again", l->host, l->port, why);
	l->ac = NULL;
	link_failed(l, why);
	ac->data = NULL; /* its disconnect callback, if any, is ours no more */
	redisAsyncFree(ac);
}

static int
link_connect(struct rl_link *l, struct event_base *base)
{
	redisAsyncContext *ac = redisAsyncConnect(l->host, l->port);

	if (ac == NULL) {
		link_failed(l, "out of memory");
		return -1;
	}
	if (ac->err != 0) {
		link_failed(l, ac->errstr);
		redisAsyncFree(ac);
		return -1;
	}
	ac->data = l;
	if (redisLibeventAttach(ac, base) != REDIS_OK) {
		link_failed(l, "cannot attach to the event loop");
		redisAsyncFree(ac);
		return -1;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (l->watchdog == NULL && (l->watchdog = evtimer_new(base, on_watchdog, l)) == NULL) {
		link_failed(l, "out of memory");
		redisAsyncFree(ac);
		return -1;
	}
	l->ac = ac;
	l->progress = rl_redis_now();
	return 0;
}

static void *
rl_worker_new(void)
{
	return calloc(1, sizeof(struct rl_worker));
}

/* With the worker, after its thread ended: questions still in flight
 * (none: every exchange was closed first) are answered NULL and freed. */
static void
rl_worker_free(void *p)
{
	struct rl_worker *rw = p;
	struct rl_link *l, *next;

	for (l = rw->links; l != NULL; l = next) {
		next = l->next;
		if (l->ac != NULL)
			redisAsyncFree(l->ac);
		if (l->watchdog != NULL)
			event_free(l->watchdog);
		free(l->host);
		free(l);
	}
	free(rw);
}

/* Not a handler: the per-worker state of the fleet store. */
static const struct handler_ops rl_worker_ops = {
	.name = "ratelimit store",
	.worker_new = rl_worker_new,
	.worker_free = rl_worker_free,
};

static struct rl_link *
link_of(struct worker *w, const struct rl_redis *st)
{
	struct rl_worker *rw = worker_handler_state(w, &rl_worker_ops);
	struct rl_link *l;

	if (rw == NULL)
		return NULL;
	for (l = rw->links; l != NULL; l = l->next)
		if (l->port == st->port && strcmp(l->host, st->host) == 0)
			return l;
	if ((l = calloc(1, sizeof(*l))) == NULL || (l->host = strdup(st->host)) == NULL) {
		free(l);
		return NULL;
	}
	l->port = st->port;
	l->next = rw->links;
	rw->links = l;
	return l;
}

/* ---- questions ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int
send_call(struct rl_link *l, struct rl_redis_call *call, const char *sha)
{
	const char *argv[7] = { call->evaled ? "EVAL" : "EVALSHA", call->evaled ? script : sha, "1",
		call->key, call->args[0], call->args[1], call->args[2] };
	size_t lens[7];

	for (int i = 0; i < 7; i++)
		lens[i] = strlen(argv[i]);
	if (redisAsyncCommandArgv(l->ac, on_reply, call, 7, argv, lens) != REDIS_OK)
		return -1;
	if (l->pending++ == 0) {
		l->progress = rl_redis_now(); /* idle until now: not waiting */
		watchdog_arm(l, l->stall_ms);
	}
	return 0;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rl_redis_call *call = privdata;
	struct rl_link *l = call->link;
	redisReply *rep = reply;
	rl_redis_done *done = call->done;
	void *arg = call->arg;
	char why[160];

	l->pending--;
	l->progress = rl_redis_now();
	if (rep != NULL) {
		l->backoff = 0;
		l->down_since = 0;
	}
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && !call->evaled &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0 && l->ac != NULL) {
		call->evaled = 1;
		if (send_call(l, call, NULL) == 0)
			return;
	}
	free(call);
	if (done == NULL)
		return;
	if (rep == NULL) {
		done(arg, 0, ac->errstr[0] != '\0' ? ac->errstr : "disconnected",
		    l->down_since != 0 ? l->down_since : rl_redis_now(), 0, 0, 0);
		return;
	}
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	    rep->element[0]->type == REDIS_REPLY_INTEGER &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER &&
	    rep->element[2]->type == REDIS_REPLY_INTEGER) {
		done(arg, 1, NULL, 0, rep->element[0]->integer == 1, rep->element[1]->integer,
		    rep->element[2]->integer);
		return;
	}
	snprintf(why, sizeof(why), "unexpected reply%s%.100s", rep->type == REDIS_REPLY_ERROR ?
	    ": " : "", rep->type == REDIS_REPLY_ERROR ? rep->str : "");
	done(arg, 0, why, rl_redis_now(), 0, 0, 0);
}

struct rl_redis_call *
rl_redis_check(const struct rl_redis *st, struct worker *w, const char *prefix, const void *key,
    size_t klen, const struct gcra *g, rl_redis_done *done, void *arg, const char **why,
    int64_t *since)
{
	struct rl_link *l = link_of(w, st);
	struct rl_redis_call *call;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen;

	*since = rl_redis_now();
	if (l == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (st->stall_ms > l->stall_ms)
		l->stall_ms = st->stall_ms;
	if (l->ac == NULL && (*since < l->retry_at || link_connect(l, w->base) < 0)) {
		*why = l->why;
		*since = l->down_since;
		return NULL;
	}
	if (l->pending >= PENDING_MAX) {
		*why = "too many questions in flight";
		return NULL;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	/* A digest, not the key itself: a header value may be long or binary,
	 * and the same on every edge, which a keyed hash would not be. */
	if (EVP_Digest(key, klen, md, &mdlen, EVP_sha256(), NULL) != 1) {
		free(call);
		*why = "cannot hash the key";
		return NULL;
	}
	int n = snprintf(call->key, sizeof(call->key), "%s", prefix);
	for (unsigned i = 0; i < 16 && n + 3 <= (int)sizeof(call->key); i++)
		n += snprintf(call->key + n, sizeof(call->key) - (size_t)n, "%02x", md[i]);
	snprintf(call->args[0], sizeof(call->args[0]), "%lld", (long long)g->interval);
	snprintf(call->args[1], sizeof(call->args[1]), "%lld", (long long)g->tolerance);
	snprintf(call->args[2], sizeof(call->args[2]), "%lld", (long long)g->queue);
	call->done = done;
	call->arg = arg;
	call->link = l;
	if (send_call(l, call, st->sha) < 0) {
		free(call);
		*why = "cannot send the command";
		return NULL;
	}
	return call;
}

void
rl_redis_cancel(struct rl_redis_call *call)
{
	call->done = NULL;
}
