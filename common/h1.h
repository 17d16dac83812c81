/*
 * h1: HTTP/1.x on a transport connection: requests parsed from its read
 * buffer one after the other (pipelining included), routed, run through
 * the route's middleware, their bodies framed and handed to the handler,
 * keep-alive, upgrades to a byte tunnel (http_tunnel_start) or to another
 * protocol that takes the connection over (http_upgrade), and the end of
 * each exchange (counting, logging, the next request).  One module in
 * three files, all of whose names start h1_: h1.c (the connection, the
 * requests), h1_out.c (the response's wire form) and h1_upgrade.c
 * (tunnels, upgrades, handing the connection to another protocol).
 */
#ifndef PORTICO_H1_H
#define PORTICO_H1_H

#include <sys/socket.h>

#include "common/exchange.h"

enum h1_state {
	H1_IDLE,        /* between requests */
	H1_HEAD,        /* reading a request head */
	H1_BODY,        /* reading (discarding) a request body before the handler */
	H1_HANDLER,     /* the handler has the request */
	H1_TUNNEL,      /* after a 101: raw bytes both ways through the handler */
	H1_UPGRADED,    /* after http_upgrade: another protocol has the connection */
};

/* An HTTP/1 connection: the transport's, then ours. */
struct h1 {
	struct conn c;                 /* first: a struct conn * is a struct h1 * */
	enum h1_state state;
	unsigned nrequests;
	struct exchange *x;            /* the request in progress, NULL between requests */
	unsigned inner : 1;            /* no client's: one end of an HTTP/2 stream's
	                                * relay (h1_adopt), not counted as a connection */
	const struct upgraded_ops *up; /* H1_UPGRADED: the protocol now in charge */
	void *up_state;                /* ... and its state, handed to each call */
};

/*
 * What one request needs while it is in progress.  It comes from the
 * worker's pool and goes back when the response is queued, so an idle
 * keep-alive connection costs only its struct h1.  The pool block is
 * followed by max_request_line + 1 bytes for the normalized path.
 */
struct exchange {
	struct request req;
	struct http_chunked chunk;
	int64_t body_left;             /* request body bytes still to read (Content-Length) */
	unsigned body_done : 1;        /* the whole request body has been read */
	unsigned body_paused : 1;      /* the handler asked for no more body for now */
	char resp_inline[1024];        /* the response head's buffer, until it outgrows it */
	struct http_request hr;        /* last: its header array is large */
};

static inline struct h1 *
h1_of(struct conn *c)
{
	return (struct h1 *)c;
}

/* Takes ownership of fd, a freshly accepted socket of listener listen_idx. */
void h1_accept(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
    unsigned listen_idx);
/* Graceful shutdown: closes c now if it is idle, else after its response
 * (an upgraded connection is told through its drain callback). */
void h1_drain(struct conn *c);
/* The process stops: closes c now, an exchange in progress logged as cut
 * at shutdown. */
void h1_stop(struct conn *c);
/* The response of r is queued: count it, log it, go on with the next request. */
void h1_request_done(struct request *r);
/* A paused request phase was taken up and the chain went through: the
 * body and the handler, as if the pipeline had not paused. */
void h1_dispatch_resume(struct request *r);
/* Whether r is answered before its request body was read (the connection
 * will then close). */
int h1_answering_early(const struct request *r);
/* Closes r's connection once what is queued is sent, whether or not the
 * handler ends the response (a cut body); the handler is told (abort). */
void h1_close_when_sent(struct request *r);
/* Requests begun on r's connection so far, r included. */
unsigned h1_requests(const struct request *r);
/* The worker's bookkeeping of a connection that goes, whatever spoke on it. */
void h1_conn_gone(struct conn *c);

/* The response as HTTP/1 bytes (h1_out.c): h1's exchange ops. */
void h1_resp_start(struct request *r);
void h1_resp_head(struct request *r);
int h1_resp_interim(struct request *r, int status, const char *reason, size_t reason_len);
void h1_resp_interim_header(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen);
void h1_resp_interim_end(struct request *r);
void h1_resp_data(struct request *r, const void *data, size_t len);
int h1_resp_file(struct request *r, int fd, off_t off, off_t len);
void h1_resp_end(struct request *r);

/* After a 101 (h1_upgrade.c): the exchange ops of http_tunnel_* and
 * http_upgrade, as exchange.h describes them. */
void h1_tunnel_start(struct request *r);
void h1_tunnel_write(struct request *r, const void *data, size_t len);
void h1_tunnel_close(struct request *r);
int h1_upgrade(struct request *r, const struct upgraded_ops *ops, void *st);
/* Hands connection c, with no exchange in progress, to another protocol
 * (HTTP/2): from now on the transport's callbacks go to ops with st, as
 * after http_upgrade. */
void h1_handover(struct conn *c, const struct upgraded_ops *ops, void *st);
/*
 * A connection of the worker's for fd, one end of a socketpair, handed to
 * ops with st at once, as after http_upgrade: the way an HTTP/2 stream
 * reaches a protocol written for a transport connection (the origin's
 * WebSocket endpoints).  Its peer, snapshot and listener are outer's.  It
 * is drained and stopped with the worker's others, but not counted as a
 * client connection.  NULL when out of memory (fd is closed).
 */
struct conn *h1_adopt(struct worker *w, int fd, const struct conn *outer,
    const struct upgraded_ops *ops, void *st);

#endif
