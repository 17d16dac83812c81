/*
 * conn: the transport of one client connection, bytes only: socket and
 * TLS reads and writes, the TLS handshake, timers, an output buffer with
 * file ranges (sendfile on plain sockets, bounded reads for TLS), lingering
 * close and teardown.  It knows nothing of HTTP: the protocol above it
 * (h1.c) is reached only through the conn_proto callbacks it was handed,
 * and the worker only through its conn_env.
 */
#ifndef PORTICO_CONN_H
#define PORTICO_CONN_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct config;
struct conn;
struct freelist;
struct stats;
struct tls_listener;
struct worker;
struct worker_snap;

/* File bytes queued for sendfile: seg[i] goes out once obuf[0..at) has. */
#define FILE_OUT_SEGS 33
struct file_seg {
	size_t at;
	off_t off;
	off_t len;
};

struct file_out {
	int fd;
	unsigned n, cur;
	struct file_seg seg[FILE_OUT_SEGS];
};

/*
 * What a worker lends all its connections: the event loop, buffers, the
 * counters bytes go to, the timeouts of the transport's own waits, and two
 * ways back to the worker (owner).
 */
struct conn_env {
	struct event_base *base;
	struct freelist *bufs;           /* read and write buffers, bufs->size bytes each */
	struct stats *stats;
	const struct timeval *tv_send;   /* a write that makes no progress */
	const struct timeval *tv_linger; /* between reads while lingering */
	int64_t linger_time;             /* ms: lingering ends by then, reads or not */
	int64_t linger_timeout;          /* ms */
	void *owner;
	int (*log_ok)(void *owner);      /* a line about a client's trouble may be logged */
	void (*closed)(void *owner);     /* a connection ended (after it is freed) */
};

/*
 * The protocol above the transport.  Input: n > 0 new bytes were read to
 * rbuf + rlen; the protocol takes them (rlen += n) or consumes them in
 * place.  Every callback may close the connection.
 */
struct conn_proto {
	/* The connection is ready (TLS handshake done): arm the first read. */
	void (*start)(struct conn *c);
	void (*input)(struct conn *c, size_t n);
	/* The read buffer is full; reading stopped (event_del). */
	void (*full)(struct conn *c);
	/* The client closed its side (err 0) or the read failed (err = errno). */
	void (*eof)(struct conn *c, int err);
	/* Output flushed on a write turn (after a write had to wait, or
	 * conn_kick asked for one): go on producing.  Not when closing. */
	void (*resume)(struct conn *c);
	/* Everything queued is sent and the connection is not closing: arm
	 * the next wait.  Returns -1 if it closed the connection. */
	int (*drained)(struct conn *c);
	void (*timeout)(struct conn *c);
	/* About to be torn down, buffers still there: the protocol lets go. */
	void (*close)(struct conn *c, const char *reason);
};

struct conn {
	int fd;
	struct event ev;
	const struct timeval *ev_tv;   /* the timeout ev is armed with */
	const struct conn_env *env;
	const struct conn_proto *proto;
	unsigned closing : 1;          /* close once output is flushed */
	unsigned linger : 1;           /* ... after draining what the client still sends */
	unsigned lingering : 1;        /* output done, reading until EOF or linger_time */
	unsigned writing : 1;          /* waiting for EV_WRITE */
	unsigned in_loop : 1;          /* the protocol is producing: it flushes on its way out */
	unsigned no_read : 1;          /* the protocol wants no input for now */
	unsigned out_failed : 1;       /* output could not be queued: no more is */
	unsigned handshaking : 1;      /* TLS handshake not finished */
	unsigned cert_noted : 1;       /* a handler logged trouble with the client
	                                * certificate: once a connection is enough */
	struct ssl_st *ssl;            /* NULL on plain HTTP listeners */
	int64_t deadline;              /* monotonic ms by which the TLS handshake, or
	                                * lingering, must be over */
	char *rbuf;                    /* from env->bufs, NULL while idle */
	size_t rlen, rpos;             /* bytes in rbuf; start of unparsed input */
	char *obuf;                    /* pending output, NULL while idle */
	size_t olen, ocap, osent;
	struct file_out *fo;           /* file body in flight, NULL otherwise */
	struct sockaddr_in6 peer;      /* large enough for IPv4 too */
	/* The owner's, untouched here. */
	struct worker *w;
	const struct config *conf;     /* the snapshot its requests run on: snap->conf */
	struct worker_snap *snap;
	unsigned listen_idx;           /* in conf->listens */
	TAILQ_ENTRY(conn) link;
};

TAILQ_HEAD(conn_list, conn);

/*
 * Takes ownership of fd, a freshly accepted socket, in a block of size
 * bytes (at least sizeof(struct conn): the protocol's own state follows
 * it, zeroed).  With tls, the handshake runs first, within handshake_ms,
 * then proto->start; without, proto->start is the caller's to call.
 * Returns NULL (fd closed) when out of memory.
 */
struct conn *conn_new(const struct conn_env *env, const struct conn_proto *proto, size_t size,
    int fd, const struct sockaddr *sa, socklen_t salen, struct tls_listener *tls,
    int64_t handshake_ms);
/* Tears a connection down and frees it; reason is logged at debug level. */
void conn_close(struct conn *c, const char *reason);
/* Formats the peer address ("127.0.0.1" or "::1") into buf. */
const char *conn_peer(const struct conn *c, char *buf, size_t len);

/* Waits for mode (EV_READ or EV_WRITE) with timeout tv (NULL: none). */
void conn_arm(struct conn *c, short mode, const struct timeval *tv);
/* Waits for input for at most ms: the rest of an absolute deadline. */
void conn_arm_deadline(struct conn *c, uint64_t ms);
/*
 * A timeout of ms for conn_arm: libevent's common timeout of that length
 * (one timer queue for all the waits of a length, far cheaper than a heap
 * entry each), or, past libevent's 256 lengths per event base (reloads
 * add lengths), *spare filled in, which the caller keeps alive as long.
 */
const struct timeval *conn_timeval(struct event_base *base, int64_t ms, struct timeval *spare);
/* Stops waiting for anything (the protocol resumes with conn_arm). */
void conn_disarm(struct conn *c);

/*
 * Queues bytes (on failure the connection closes once the rest is sent).
 * Writers stop above their high-water mark (HTTP_OUT_HIGH_WATER) and go on
 * when the protocol says output drained; one that does not is cut off at
 * CONN_OUT_MAX bytes queued, so memory per connection stays bounded.
 */
#define CONN_OUT_MAX (1024 * 1024)
void conn_out(struct conn *c, const void *p, size_t n);
/* Queues file bytes; the connection owns fd from the first call of a
 * response until they are sent.  0, or -1 (the connection will close). */
int conn_out_file(struct conn *c, int fd, off_t off, off_t len);
/* Queues file bytes [off, off + len) by reading them into the output
 * buffer now (a protocol that frames them: HTTP/2's DATA).  fd stays the
 * caller's.  0, or -1: the file could not be read whole (nothing queued;
 * the caller may undo its frame with conn_out_unwrite and go on) or the
 * output is over its bound (the connection will close). */
int conn_out_pread(struct conn *c, int fd, off_t off, size_t len);
/* The output queued and not yet sent, as a mark for conn_out_unwrite. */
size_t conn_out_mark(const struct conn *c);
/* Drops what conn_out and conn_out_pread queued since mark was taken
 * (nothing may have been sent, nor a file queued, since). */
void conn_out_unwrite(struct conn *c, size_t mark);
/* Output bytes queued and not yet sent (a file in flight counts as one). */
size_t conn_pending(const struct conn *c);
/* Output queued from outside the protocol's loop: have it flushed. */
void conn_kick(struct conn *c);
/* Writes what is queued.  Returns -1 if the connection was closed. */
int conn_flush(struct conn *c);
/* Whether the client sent bytes not handled yet (one recv, MSG_PEEK). */
int conn_input_waiting(struct conn *c);
/* Gives the read buffer back while it holds nothing. */
void conn_release_input(struct conn *c);

#endif
