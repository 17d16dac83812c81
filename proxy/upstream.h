/*
 * upstream: one connection to a server of a pool.  It connects without
 * blocking, speaks TLS to a server marked tls (SNI and the certificate
 * check as pool_tls_new sets them up), sends what its owner queued in out,
 * reads into in, and times every wait out.  A worker's idle keep-alive
 * connections wait in its pool_worker, per server, for the next request.
 *
 * It knows nothing of requests or handlers.  Its owner (a proxied request,
 * a health check) hears from it through a const ops table, and ends it
 * with upstream_release or upstream_close, the one teardown path.  It
 * needs an event base and a pool, not a worker: without a pool_worker
 * (the main thread's health checks) nothing is kept alive.
 */
#ifndef PORTICO_UPSTREAM_H
#define PORTICO_UPSTREAM_H

#include <stddef.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "common/sbuf.h"
#include "proxy/pool.h"

#define UPSTREAM_IN_SIZE (32 * 1024) /* a response head must fit */

enum upstream_state {
	UPSTREAM_CONNECTING,
	UPSTREAM_HANDSHAKE,          /* TLS */
	UPSTREAM_ACTIVE,             /* an owner's */
	UPSTREAM_IDLE,               /* in its worker's keep-alive list */
};

/* What went wrong, for the owner's choice of answer and of a retry. */
enum upstream_error {
	UPSTREAM_CONNECT_FAILED,     /* refused, unreachable, TLS failed: nothing was sent */
	UPSTREAM_CONNECT_TIMEOUT,    /* connect or TLS handshake timed out: nothing was sent */
	UPSTREAM_SEND_FAILED,        /* the connection broke while sending */
	UPSTREAM_TIMEOUT,            /* sending or waiting for the server timed out */
	UPSTREAM_EOF,                /* the server closed the connection */
	UPSTREAM_READ_FAILED,        /* reading failed (a reset, a TLS error) */
	UPSTREAM_NO_MEMORY,
};

/* How long each wait may last; pointers to timevals (libevent common
 * timeouts on a worker) that outlive the connection. */
struct upstream_timeouts {
	const struct timeval *connect;   /* connect and TLS handshake */
	const struct timeval *send;      /* output waiting for the socket */
	const struct timeval *read;      /* waiting for the server while active */
	const struct timeval *idle;      /* kept alive; unused without a pool_worker */
};

struct upstream;

/*
 * What an owner is told.  read and sent return 0, or -1 once u is no
 * longer the owner's (closed, released, handed on): the layer then leaves
 * it alone.  After error the layer never touches u again either; the owner
 * closes or releases it.
 */
struct upstream_ops {
	/* New bytes are in u->in[0..u->inlen); take them with upstream_consume. */
	int (*read)(struct upstream *u);
	/* Everything queued in u->out has been sent. */
	int (*sent)(struct upstream *u);
	/* why is a short phrase for logs ("connect timed out", strerror). */
	void (*error)(struct upstream *u, enum upstream_error e, const char *why);
};

struct upstream {
	int fd;
	int connect_errno;                 /* connect(2) failed at once (a Unix socket) */
	enum upstream_state state;
	unsigned rarmed : 1, warmed : 1;
	unsigned hs_write : 1;       /* the handshake waits for writable */
	unsigned reused : 1;         /* came from the idle list */
	int64_t ready_us;            /* monotonic us when connect (and TLS) completed */
	unsigned paused : 1;         /* the owner reads no more for now (upstream_arm) */
	struct event ev;             /* EV_READ, kept registered while connected */
	struct event wev;            /* EV_WRITE, only while connecting or output waits */
	const struct timeval *rtv;   /* the timeout ev is armed with */
	struct upstream_timeouts tv;
	const struct pool *pool;
	unsigned idx;                /* the server, in pool->servers */
	struct pool_worker *pw;      /* whose idle list it may join; NULL: none */
	struct ssl_st *ssl;          /* for servers marked tls */
	const struct upstream_ops *ops;
	void *owner;                 /* NULL while idle */
	struct sbuf out;             /* bytes for the server: the owner appends */
	size_t osent;
	char *in;                    /* bytes from the server, UPSTREAM_IN_SIZE */
	size_t inlen;
	LIST_ENTRY(upstream) link;
};

/*
 * Opens a connection to server idx of pool p on base, and TLS on it when the
 * server is marked tls.  pw, this worker's state for p, gives the idle list
 * upstream_release may put it in, or is NULL.  tv is copied.  The owner
 * queues its bytes in out and calls upstream_send.  Returns NULL when the
 * server's name is unresolved or no socket could be made.
 */
struct upstream *upstream_connect(struct event_base *base, const struct pool *p, unsigned idx,
    struct pool_worker *pw, const struct upstream_timeouts *tv, const struct upstream_ops *ops,
    void *owner);
/*
 * Takes an idle connection to server idx from pw's list for owner, or
 * returns NULL.  With alive, ones the server has closed (or spoken on) are
 * closed and passed over: for a request that cannot be sent twice.
 */
struct upstream *upstream_take_idle(struct pool_worker *pw, unsigned idx, int alive,
    const struct upstream_ops *ops, void *owner);
/*
 * Sends what is queued in out, at once if connected, and waits for the
 * rest.  Returns 0, or -1 when the owner has heard of a failure (u is
 * then the owner's to end, or already ended).
 */
int upstream_send(struct upstream *u);
/* Registers what u waits for after its owner queued output in out or set
 * u->paused; output queued this way goes out when the socket is writable. */
void upstream_arm(struct upstream *u);
/* After resuming (u->paused cleared and upstream_arm): bytes OpenSSL
 * decrypted ahead will not wake the socket, so this schedules a read. */
void upstream_read_ahead(struct upstream *u);
/* Drops n bytes from the front of in. */
void upstream_consume(struct upstream *u, size_t n);
/* The read timeout from now on (a tunnel's), armed at the next wait. */
void upstream_set_read_timeout(struct upstream *u, const struct timeval *tv);
/* Starts the read timeout over (traffic the other way keeps a tunnel alive). */
void upstream_touch(struct upstream *u);
/* Ends the sending side (half-close) once out is empty. */
void upstream_shutdown_write(struct upstream *u);
/* Bytes queued and not yet sent. */
size_t upstream_pending(const struct upstream *u);
/*
 * The owner is done with u.  A reusable connection goes to its worker's
 * idle list when there is one with room and nothing unread is left;
 * otherwise it is closed.
 */
void upstream_release(struct upstream *u, int reusable);
/* Closes and frees u, whatever its state; reason is logged at debug level. */
void upstream_close(struct upstream *u, const char *reason);
/*
 * A reload: the idle connections to server i of from (the old pool) go to
 * server j of to (the new pool's state in the same worker), the same
 * server in both, as far as to's keepalive allows; the rest close.
 */
void upstream_idle_move(struct pool_worker *from, unsigned i, struct pool_worker *to, unsigned j);
/* Closes every idle connection in pw's lists (the worker is ending). */
void upstream_close_idle(struct pool_worker *pw);

#endif
