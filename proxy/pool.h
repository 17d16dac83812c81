/*
 * pool: upstream pools ([pool:NAME]) and how a request picks a server.
 *
 * A pool's configuration is immutable; its servers' health (down flags,
 * failure counts) and requests in flight are shared by all workers through
 * atomics; everything else (balancing cursors, idle keep-alive connections,
 * the counters /status shows) is per worker, so exact round-robin order
 * holds within one worker.
 */
#ifndef PORTICO_POOL_H
#define PORTICO_POOL_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "common/config.h"

#define POOL_MAX_SERVERS 64 /* a request's tried set is a 64-bit mask */

#define BACKEND_ENABLED 0
#define BACKEND_DISABLED 1
#define BACKEND_DRAIN 2

struct backend {
	char *name;                        /* HOST:PORT as written */
	char *host, *port;                 /* a name to resolve, NULL when numeric */
	/*
	 * The address, its length in word 0, under a sequence lock
	 * (common/seqlock.h): the main thread's resolver changes it while
	 * workers copy it out.  gen 0: not resolved yet.  Through
	 * backend_addr and backend_set_addr only.
	 */
	_Atomic uint64_t addr[1 + sizeof(struct sockaddr_storage) / 8];
	_Atomic unsigned gen;
	unsigned weight;
	unsigned max_conns;                /* 0: no limit */
	int backup;
	/* BACKEND_DISABLED ("down" in the config) or BACKEND_DRAIN: either is
	 * out of service for new requests (one test on the request path);
	 * those running finish on the snapshot they started with. */
	int disabled;
	int tls;                           /* speak TLS to it ("tls" in the config) */
	/* Shared between workers. */
	_Atomic int64_t down_until;        /* monotonic ms; passive health; 0: never down */
	_Atomic int health_down;           /* active health checks said so */
	_Atomic unsigned fails;            /* failures in the current window */
	_Atomic int64_t fail_window;       /* when that window started (ms) */
	/*
	 * Requests in flight, all workers.  The one counter kept shared (two
	 * locked instructions per request): least_conn, random's two choices
	 * and max_conns must see the other workers' load, or max_conns would
	 * become a per-worker limit and least_conn blind to most of the load.
	 */
	_Atomic int active;
	_Atomic unsigned hc_ok, hc_fail;   /* consecutive health check results */
	_Atomic uint64_t hc_passed, hc_failed; /* every check's, for metrics (main thread) */
};

/*
 * One worker's counters for one server.  Only the owning worker writes them
 * (stats_add: a relaxed load and store, no locked instruction, no shared
 * cache line); /status, in any worker, reads them with relaxed loads and
 * sums them over the pool's workers (pool_counters).
 */
struct backend_counters {
	_Atomic uint64_t requests;         /* responses relayed whole, or tunnels opened */
	_Atomic uint64_t failures;
	_Atomic uint64_t latency_us_total;
	_Atomic uint64_t connect_errors;   /* of the failures: connecting (or its TLS) */
	_Atomic uint64_t timeouts;         /* ... the server too slow */
	_Atomic uint64_t retries;          /* a failed attempt at it went to another try */
	_Atomic uint64_t hist[CONF_MAX_BUCKETS + 1]; /* latency by the pool's metrics_buckets */
};

struct pool_worker;

/*
 * What a pool's threads share besides its servers' health.  Workers see the
 * pool as const, so the mutable part hangs off a pointer.
 */
struct pool_shared {
	/* Every worker's state for this pool, newest first, for /status to sum.
	 * Only ever pushed (once per worker and pool); the states are freed with
	 * the pool, once no worker uses it (after a reload, or at exit). */
	_Atomic(struct pool_worker *) workers;
	/* In panic, as last noticed; changed by compare-exchange, so that of
	 * several workers noticing a change one logs it. */
	_Atomic int panic;
};

struct pool;

/* A balancing policy: picks a server index among those allowed, or -1. */
struct balance_ops {
	const char *name;
	int (*select)(struct pool_worker *pw, const struct pool *p, uint64_t allowed,
	    uint64_t key);
	int needs_key;                      /* ip_hash and hash: the caller supplies a key */
};

struct pool {
	char *name;
	struct backend *servers;
	unsigned nservers;
	const struct balance_ops *balance;
	char *hash_header;                  /* balance = hash HEADER */
	unsigned keepalive;
	int64_t keepalive_timeout;
	int64_t connect_timeout;
	int64_t send_timeout;
	int64_t read_timeout;
	int64_t tunnel_timeout;             /* idle limit of an upgraded (WebSocket) connection */
	int64_t resolve;                    /* how often names are looked up again */
	void *tls_ctx;                      /* SSL_CTX for servers marked tls, else NULL */
	char *tls_ca;                       /* CA file; NULL: the system store */
	char *tls_cert, *tls_key;           /* the client certificate sent, or NULL */
	int tls_verify;                     /* check the certificate and its name (default on) */
	unsigned retries;
	unsigned max_fails;
	int64_t fail_timeout;
	unsigned panic_threshold;           /* percent; 0: never panic */
	/* health_check = METHOD PATH every DURATION [expect LO-HI] */
	char *hc_method, *hc_path;
	int64_t hc_interval;
	int hc_lo, hc_hi;
	unsigned rise, fall;
	unsigned nbuckets;                  /* metrics_buckets: the latency histogram's bounds */
	int64_t le_ms[CONF_MAX_BUCKETS];
	struct pool_shared *shared;
};

struct upstream;
LIST_HEAD(upstream_list, upstream);

/* What one worker keeps for one pool. */
struct pool_worker {
	const struct pool *pool;
	int64_t cw[POOL_MAX_SERVERS];       /* smooth weighted round-robin state */
	unsigned active[POOL_MAX_SERVERS];  /* this worker's requests per server */
	struct upstream_list idle[POOL_MAX_SERVERS];
	unsigned nidle[POOL_MAX_SERVERS];
	uint64_t rng;
	/* The pool's timeouts as this worker's libevent common timeouts. */
	const struct timeval *tv_connect, *tv_send, *tv_read, *tv_idle, *tv_tunnel;
	struct timeval tv_spare[5];        /* theirs when libevent has no common timeout left */
	void *spare;                        /* recycled request states (relay.c) */
	unsigned nspare;
	struct backend_counters cnt[POOL_MAX_SERVERS];
	/* The last TLS session each server gave this worker (SSL_SESSION),
	 * resumed by its next connection; a new snapshot starts without. */
	void *tls_session[POOL_MAX_SERVERS];
	struct pool_worker *next;           /* in pool->shared->workers; set once */
};

struct conf_ctx;
struct conf_section;

/* Parses a [pool:NAME] section into sec->data.  0 or -1 (errors reported). */
int pool_configure(struct conf_ctx *ctx, struct conf_section *sec);
/* The keys of a [pool:NAME] section with their defaults, for -T. */
const struct conf_key *pool_keys(const struct conf_section *sec);
void pool_free(void *p);
/*
 * Picks a server for a request: usable servers not in tried, primaries
 * before backups, or in panic (see pool.c) any not marked down by active
 * checks.  key feeds the hash policies.  Returns the index or -1.
 */
int pool_select(struct pool_worker *pw, uint64_t tried, uint64_t key);
/* Servers in service now: enabled, resolved, not marked down by active
 * checks or passive health.  Any thread; changes nothing. */
unsigned pool_in_service(const struct pool *p);
/* Whether the pool is in panic now (logging a change, as pool_select does). */
int pool_panic(const struct pool *p);
/* Records a failure of server i in the worker's counters and for passive
 * health (max_fails within fail_timeout). */
void pool_server_failed(struct pool_worker *pw, unsigned i);
/* Records a response from server i relayed whole, taking latency_us. */
void pool_server_ok(struct pool_worker *pw, unsigned i, uint64_t latency_us);
/*
 * Makes a worker's new state for a pool known to /status (pool_counters).
 * Called once, by the owning worker, when pw is complete.
 */
void pool_worker_register(struct pool_worker *pw);
/*
 * Whether server i of a and server j of b are the same server (name, and
 * TLS to it with the same checks), as a reload compares them.
 */
int pool_same_server(const struct pool *a, unsigned i, const struct pool *b, unsigned j);
/*
 * A reload, in the main thread, before p is in use: servers of p that
 * old has too take their health (passive marks, and active checks' when p
 * is still checked), their resolved address and the pool's panic state.
 */
void pool_carry(struct pool *p, const struct pool *old);
/* Server i's counters summed over every worker into *out (zeroed first). */
void pool_counters(const struct pool *p, unsigned i, struct backend_counters *out);
/* Adds every counter of src into dst, which only the caller writes. */
void pool_counters_add(struct backend_counters *dst, struct backend_counters *src);
/*
 * Copies the server's current address into *out, from any thread; returns
 * its length, or 0 while the name is unresolved.  A copy, not a pointer:
 * the resolver may change the address at any time.
 */
socklen_t backend_addr(const struct backend *b, struct sockaddr_storage *out);
/* Publishes a new address (the main thread, or the configuration before
 * the workers start).  Returns 1 if it changed. */
int backend_set_addr(struct backend *b, const struct sockaddr *sa, socklen_t len);
/*
 * A client-side SSL on connected socket fd for server i (marked tls): SNI
 * and the name check use its host name, or its IP address when it was
 * given as one.  With pw, it resumes pw's last session with that server
 * and keeps the ones the server gives.  NULL when out of memory.
 */
struct ssl_st *pool_tls_new(const struct pool *p, unsigned i, int fd, struct pool_worker *pw);
/* A connection's new sessions no longer go to the state it was made for
 * (it moves to another snapshot's: upstream_idle_move). */
void pool_tls_detach(struct ssl_st *ssl);
/* Frees pw's TLS sessions (its worker, as the pool state ends). */
void pool_tls_sessions_free(struct pool_worker *pw);
struct sbuf;
/* Appends the pools' metric families (pool_metrics.c): their servers' state,
 * load, failures, health checks and response times. */
void pool_metrics(const struct pool *const *pools, size_t n, struct sbuf *out);
/* "enabled", "disabled" or "drain": a server's administrative state. */
const char *backend_admin_state(const struct backend *b);
/* Its state as /status and metrics name it: "disabled", "drain",
 * "unresolved", "down" (active checks), "failed" (passive) or "up". */
const char *backend_state(const struct backend *b, int64_t now);
/* Its health whatever its administrative state: "unresolved", "down"
 * (active checks), "failed" (passive, until down_until) or "up". */
const char *backend_health(const struct backend *b, int64_t now);
/* pool_addr.c */
/* The server's host for a Host header: its name (HOST:PORT as written),
 * or "localhost" for unix:/PATH, as nginx says. */
const char *backend_host(const struct backend *b);
/*
 * A `server =` line's address, HOST:PORT, [V6]:PORT or unix:/PATH, into
 * b: a numeric address or a path set at once, a name kept (b->host,
 * b->port) for the main thread's resolver.  0, or -1 with the reason in
 * *why.
 */
int pool_parse_address(const char *hostport, struct backend *b, const char **why);
/* The same check alone, b's strings freed: looks nothing up. */
int pool_check_address(const char *hostport, const char **why);
/* 64-bit hash of bytes (for hash keys). */
uint64_t pool_hash(const void *data, size_t len);

#endif
