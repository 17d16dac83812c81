/*
 * ratelimit_redis: the fleet store of `type = ratelimit`: one GCRA
 * decision per request, made by a Lua script in Redis, so every edge
 * that shares the Redis server shares the limit exactly.
 *
 * Each worker keeps its own asynchronous hiredis connection per Redis
 * address, on its own event base (worker_handler_state), made on first
 * use and after a failure again with a backoff, kept across reloads and
 * freed with the worker.  A connection is touched by its worker only.
 * hiredis 0.14 has no timeouts of its own: a watchdog gives a connection
 * up when questions have waited stall_ms with no answer at all (a Redis
 * that stopped answering, or a connect to an address that drops SYNs), so
 * the link recovers without waiting for TCP to give up.
 */
#ifndef PORTICO_RATELIMIT_REDIS_H
#define PORTICO_RATELIMIT_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct gcra;
struct rl_redis_call;

/* A store address, from "redis://HOST:PORT" (PORT defaults to 6379). */
struct rl_redis {
	char *host;                    /* numeric: a name is resolved at load */
	int port;
	char url[300];                 /* as written, for logs */
	char sha[41];                  /* SHA-1 of the script, for EVALSHA */
	int64_t stall_ms;              /* questions unanswered this long: the connection
	                                * (or its connecting) is given up and made again */
};

/* Parses url into st, resolving a host name now (the workers must not
 * block on DNS).  0, or -1 with *why set (st then holds nothing). */
int rl_redis_parse(const char *url, struct rl_redis *st, const char **why);
void rl_redis_clear(struct rl_redis *st);

/*
 * The answer to rl_redis_check: ok 0 when the store failed (why says
 * how: "connection refused", "disconnected", an error reply; since is
 * when that failure began, in milliseconds of CLOCK_MONOTONIC: a
 * connection that went down earlier fails its questions until it is up
 * again), else the verdict in microseconds of Redis's clock.
 */
typedef void rl_redis_done(void *arg, int ok, const char *why, int64_t since, int allow,
    int64_t wait_us, int64_t reset_us);

/*
 * Asks the store about key (any bytes; the Redis key is a digest of it
 * under prefix) for limit g (in microseconds).  done is called later,
 * from the worker's event loop, exactly once unless the call is
 * cancelled first.  Returns the call, or NULL when the store cannot be
 * asked now (the connection is down and waits to be tried again), with
 * *why and *since set as for done, which is then never called.
 */
struct rl_redis_call *rl_redis_check(const struct rl_redis *st, struct worker *w,
    const char *prefix, const void *key, size_t klen, const struct gcra *g, rl_redis_done *done,
    void *arg, const char **why, int64_t *since);
/* Milliseconds of CLOCK_MONOTONIC, as since above. */
int64_t rl_redis_now(void);
/* done will not be called for call (the request went away or timed out). */
void rl_redis_cancel(struct rl_redis_call *call);

#endif
