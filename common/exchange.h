/*
 * exchange: one request and its response, as handlers and middleware see
 * them.  The request is the parsed head plus an overlay of header changes
 * that every reader sees through req_header*; the response is a status, a
 * reason and a header list, turned into bytes once (http_resp_commit), when
 * the first body byte or the end is ready.  An exchange reaches its
 * connection only through the transport's conn_out* and the protocol's
 * h1_* calls (see h1.h), never assuming it is the connection's only one.
 */
#ifndef PORTICO_EXCHANGE_H
#define PORTICO_EXCHANGE_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/conn.h"
#include "common/http_parse.h"

struct conf_route;
struct req_overlay;
struct mw_exchange;

/* A response head until it is turned into bytes (see exchange.c). */
struct resp_head {
	char *buf;                     /* the reason, the Content-Type, then
	                                * "Name: value\r\n" lines: all copied, so
	                                * a caller's buffers may go before commit */
	size_t len, cap;
	size_t reason_len;
	size_t ctype_len;              /* the Content-Type value, after the reason */
	size_t lines;                  /* where the header lines start */
	char *inl;                     /* the exchange's inline buffer buf starts as */
	unsigned has_ctype : 1;
	int64_t clen;                  /* -1: chunked (HTTP/1.1) or close-delimited */
	unsigned overflow : 1;         /* a header did not fit: the response closes */
	unsigned hide : 3;             /* RESP_HIDE_*: portico's own headers removed */
};

#define RESP_HIDE_SERVER 0x1
#define RESP_HIDE_DATE   0x2
#define RESP_HIDE_HSTS   0x4

/* The longest request id kept (X-Request-Id): a longer one is replaced. */
#define REQ_ID_MAX 128

/*
 * What the access log tells of an exchange besides its head and status.
 * term says why it ended short of a whole answer (the first cause
 * recorded wins); NULL when it did not.
 */
struct req_log {
	const char *term;              /* a REQ_TERM_* token */
	int64_t up_connect_us;         /* the last upstream attempt: connect and TLS */
	int64_t up_header_us;          /* ... until the response head was in */
	int64_t up_total_us;           /* ... until the response was whole; -1: not known */
	char up_addr[120];             /* "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock";
	                                * "": not proxied */
	char id[REQ_ID_MAX + 1];       /* the X-Request-Id sent upstream; "": none */
};

#define REQ_TERM_CLIENT_CLOSED  "client_closed"   /* the client went away first */
#define REQ_TERM_CLIENT_TIMEOUT "client_timeout"  /* the client was too slow (read or send) */
#define REQ_TERM_BAD_REQUEST    "bad_request"     /* refused before routing (4xx, then closed) */
#define REQ_TERM_MIDDLEWARE     "middleware"      /* a middleware answered instead of the handler */
#define REQ_TERM_NO_SERVER      "no_server"       /* no upstream server in service */
#define REQ_TERM_UP_REFUSED     "upstream_refused" /* connecting to the server failed */
#define REQ_TERM_UP_TIMEOUT     "upstream_timeout" /* the server was too slow */
#define REQ_TERM_UP_RESET       "upstream_reset"  /* the server closed or reset mid-exchange */
#define REQ_TERM_UP_BAD         "upstream_invalid" /* the server's answer was malformed */
#define REQ_TERM_SHUTDOWN       "shutdown"        /* cut when the process stopped */
#define REQ_TERM_INTERNAL       "internal"        /* portico failed (out of memory...) */

struct request;
struct upgraded_ops;

/*
 * The protocol an exchange runs on (HTTP/1 in h1.c and h1_out.c, HTTP/2
 * in h2_out.c): what puts a response on the wire and ends the exchange.  The
 * calls of this header that depend on the protocol go through it; the
 * rest (head building, overlays, claims) is the same for every protocol.
 */
struct exchange_ops {
	/* A response was started: decide what the protocol must (HTTP/1:
	 * whether the connection closes after it, REQ_CLOSE). */
	void (*start)(struct request *r);
	/* The head is committed (r->status, r->resp, r->flags): its wire
	 * form, and the body framing it implies (r->resp_left, chunking). */
	void (*head)(struct request *r);
	/* An interim response: 1 if it goes out (then headers, then end). */
	int (*interim)(struct request *r, int status, const char *reason, size_t reason_len);
	void (*interim_header)(struct request *r, const char *name, size_t nlen, const char *value,
	    size_t vlen);
	void (*interim_end)(struct request *r);
	/* Body bytes after the filters, copied; never for HEAD or an empty run. */
	void (*data)(struct request *r, const void *p, size_t n);
	/* File bytes after the head (HEAD: len 0, for fd's ownership): see
	 * http_resp_file.  0 or -1. */
	int (*file)(struct request *r, int fd, off_t off, off_t len);
	/* The body is complete: end the stream, count and log the exchange,
	 * free it (r is gone after). */
	void (*end)(struct request *r);
	/* http_resp_pending, http_resp_abort (REQ_DONE already set: the
	 * handler is the one asking) and http_req_resume, as described there. */
	size_t (*pending)(const struct request *r);
	void (*abort)(struct request *r, const char *reason);
	void (*resume)(struct request *r);
	/* Ends the exchange once what is queued is sent, whether or not the
	 * handler ends the response (a cut body); the handler is told (abort). */
	void (*close_when_sent)(struct request *r);
	/* A paused request phase went through: the body, then the handler. */
	void (*dispatch_resume)(struct request *r);
	/* http_tunnel_start, _write, _close and http_upgrade, as described
	 * there (HTTP/2: an extended CONNECT's, RFC 8441). */
	void (*tunnel_start)(struct request *r);
	void (*tunnel_write)(struct request *r, const void *data, size_t len);
	void (*tunnel_close)(struct request *r);
	int (*upgrade)(struct request *r, const struct upgraded_ops *ops, void *st);
};

/* One request/response exchange, as a handler sees it. */
struct request {
	struct conn *conn;
	const struct exchange_ops *xo; /* its protocol's */
	void *xs;                      /* the protocol's state for it (an HTTP/2 stream) */
	struct http_request *hr;       /* the parsed head: slices of the read buffer */
	const struct conf_route *route;
	const char *npath;             /* normalized, decoded path used for routing */
	size_t npath_len;
	int status;                    /* of the response, once started */
	uint64_t body_bytes;           /* response body bytes queued */
	int64_t resp_left;             /* declared Content-Length not yet queued */
	unsigned flags;
	struct timespec start;
	struct resp_head resp;
	struct req_overlay *overlay;   /* request headers changed by middleware, or NULL */
	unsigned mw_ran;               /* the route's middleware whose request phase ran */
	unsigned mw_cur;               /* the one whose phase is running (pipeline.c) */
	struct mw_exchange *mwx;       /* the pipeline's per-exchange state, or NULL */
	struct req_log log;
	void *hdata;                   /* the handler's */
};

#define REQ_HEAD_ONLY   0x01 /* HEAD: headers, no body */
#define REQ_CLOSE       0x02 /* close the connection after this response */
#define REQ_STARTED     0x04 /* the status line is queued */
#define REQ_DONE        0x08 /* the response is complete */
#define REQ_CHUNKED_OUT 0x10 /* the response body is chunked */
#define REQ_COMMITTED   0x20 /* the response head is in the output */
#define REQ_IN_PIPELINE 0x40 /* the response-head phase is running */
#define REQ_IN_MW       0x80 /* the request phase is running: an answer is a middleware's */
#define REQ_FILTERED    0x200 /* body filters are active (pipeline.c) */
#define REQ_MW_PAUSED   0x400 /* a middleware's request phase paused: no handler yet */
#define REQ_MW_LOGGED   0x800 /* the log phase ran */

/* Whether a response with this status has a body (RFC 9110 6.4.1). */
static inline int
http_status_has_body(int status)
{
	return !(status < 200 || status == 204 || status == 304);
}

/*
 * A parsed head's route: the path normalized into npath (the exchange's
 * buffer of max_request_line + 1 bytes), the route matched by listener,
 * Host and path, and the declared body held to max_body_size; HEAD
 * marked.  Returns 0, or the status to answer with (400 for a path that
 * cannot be normalized, 413) and *why, for the log.
 */
int http_req_route(struct request *r, char *npath, const char **why);

/* Records why r ends short of a whole answer, unless a cause already is. */
static inline void
http_req_term(struct request *r, const char *term)
{
	if (r->log.term == NULL)
		r->log.term = term;
}

void resp_head_init(struct request *r, char *inl, size_t inl_cap);
void resp_head_release(struct request *r);
/* The end of r as every protocol records it, us after it began: the
 * middleware's log phase (once), the counters, the metrics and the access
 * log line.  A tunnel's is written when it opens. */
void http_resp_log(struct request *r, uint64_t us);
/* Lets go of what r holds besides its pool block (the response head's
 * buffer, the header overlay, the middleware state). */
void http_req_release(struct request *r);

/*
 * The request headers, as every reader (handlers, the proxy, the log) must
 * see them: those the client sent as changed by middleware.  req_header
 * finds the first named lower (lower case); req_header_next walks them all
 * (*it starts at 0).  Changes refuse (-1, or nothing for remove) the
 * headers that framed and routed the request (Host, Content-Length,
 * Transfer-Encoding, Connection, Upgrade, TE, Expect, Keep-Alive), and
 * additions past max_headers or max_header_size.
 */
const struct http_header *req_header(const struct request *r, const char *lower);
int req_header_next(const struct request *r, unsigned *it, const struct http_header **out);
int req_header_add(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen);
int req_header_set(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen);
void req_header_remove(struct request *r, const char *name, size_t nlen);
/* Whether a middleware may change the request header name. */
int req_header_changeable(const char *name, size_t nlen);
void req_overlay_free(struct request *r);

/*
 * The response writer, for handlers.  The status and headers are kept
 * until the first body byte or the end, then go out together.
 */
/* Starts a response; content_length -1 means chunked (or close-delimited for HTTP/1.0). */
void http_resp_start(struct request *r, int status, const char *content_type,
    int64_t content_length);
/* The same with a reason phrase of our caller's (a backend's, checked by the
 * response parser); the standard one when reason_len is 0. */
void http_resp_start_reason(struct request *r, int status, const char *reason, size_t reason_len,
    const char *content_type, int64_t clen);
/* Adds a header line; call between start and the first body byte. */
void http_resp_header(struct request *r, const char *name, const char *value);
/* Removes every response header named name (any case) added so far, and
 * portico's own of that name (Server, Date, Content-Type,
 * Strict-Transport-Security); the framing headers (Content-Length,
 * Transfer-Encoding, Connection) are portico's alone and stay.  Before
 * the head is committed only; http_resp_header_set is remove, then add. */
void http_resp_header_remove(struct request *r, const char *name, size_t nlen);
void http_resp_header_set(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen);
/*
 * Reads the response headers added so far (not portico's own fields:
 * Content-Type is r->resp, the framing is portico's), before the head is
 * committed: the value of the next header named name (any case) from *it
 * on (0 to start), with *vlen set and *it moved past it; NULL after the
 * last.  The value lives in the head buffer: copy it before changing the
 * headers.
 */
const char *http_resp_header_next(const struct request *r, const char *name, size_t nlen,
    size_t *it, size_t *vlen);
/* Whether a middleware may change the response header name. */
int http_resp_header_changeable(const char *name, size_t nlen);
/* An interim 1xx response (102 to 199) to an HTTP/1.1 client before the
 * final one: status line, then headers with http_resp_header_n, then
 * http_resp_interim_end.  Returns 0, and sends nothing, to any other client. */
int http_resp_interim(struct request *r, int status, const char *reason, size_t reason_len);
void http_resp_interim_end(struct request *r);
/* The same with counted strings (a header relayed from a backend). */
void http_resp_header_n(struct request *r, const char *name, size_t nlen, const char *value,
    size_t vlen);
/* Ends the header section and queues body bytes (copied).  Ignored for HEAD. */
void http_resp_body(struct request *r, const void *data, size_t len);
/*
 * Queues file bytes [off, off + len) of fd as body at this point of the
 * response: small runs are read into the output buffer, larger ones go out
 * with sendfile(2) later.  The connection owns fd from the first call on
 * (every call of one response passes the same fd) and closes it when the
 * response is sent or the connection ends.  Returns 0, or -1 if the file
 * could not be read (the response is then cut and the connection closed).
 */
int http_resp_file(struct request *r, int fd, off_t off, off_t len);
/*
 * Drops the declared Content-Length, before the head is committed (a
 * body filter that changes the length, from the response-head phase):
 * the body goes chunked to an HTTP/1.1 client, close-delimited to 1.0.
 */
void http_resp_length_unknown(struct request *r);
/* The producer has nothing more for now (a backend paused): body filters
 * holding bytes back emit them.  Nothing without filters. */
void http_resp_flush(struct request *r);
/* Turns the head into bytes now (before a tunnel; body calls do it). */
void http_resp_commit(struct request *r);
/* Completes the response: the connection goes on with the next request. */
void http_resp_end(struct request *r);
/*
 * Handlers that answer later (HANDLER_WANTS_BODY or not): body bytes stop
 * coming after ops->body returns 1, until http_req_resume.
 */
void http_req_resume(struct request *r);
/* Output bytes queued and not yet sent: a handler stops producing above
 * HTTP_OUT_HIGH_WATER and goes on when ops->writable is called. */
size_t http_resp_pending(const struct request *r);
#define HTTP_OUT_HIGH_WATER (64 * 1024)
/* Ends the exchange by closing the client connection (a response cut short). */
void http_resp_abort(struct request *r, const char *reason);
/*
 * Upgrade: after http_resp_start(r, 101, ...) and its headers, turns the
 * connection into a byte tunnel.  The response is logged now; from here on
 * client bytes go to ops->body (len 0 when the client closed its side) and
 * the handler sends with http_tunnel_write.  http_tunnel_close sends what
 * is queued, then closes; http_resp_abort closes at once.
 */
void http_tunnel_start(struct request *r);
void http_tunnel_write(struct request *r, const void *data, size_t len);
void http_tunnel_close(struct request *r);
/*
 * Upgrade to a protocol of portico's own (WebSocket): after
 * http_resp_start(r, 101, ...) and its headers, http_upgrade commits and
 * logs the 101, frees the exchange (r is gone when it returns) and hands
 * the connection to ops with state st: from then on the transport's
 * callbacks go to ops, the worker still counts, drains and stops the
 * connection, and ops->close is the one place st is freed.  Nothing is
 * called before http_upgrade returns: bytes the client sent after the
 * request head wait in c->rbuf[c->rpos..c->rlen) for the first drained
 * call (sent once the 101 is out).  Returns 0, or -1 when the connection
 * cannot be upgraded (the response was not a 101): nothing was done.
 *
 * The protocol reads and writes with the transport's calls (conn.h):
 * input arrives at c->rbuf + c->rlen as for conn_proto.input; it queues
 * with conn_out, keeps c->in_loop set while it produces inside a callback
 * (and then calls conn_flush), or conn_kick from elsewhere; it waits with
 * conn_arm and conn_disarm; conn_release_input gives the read buffer back
 * while it holds nothing; conn_close ends the connection (ops->close runs).
 */
struct upgraded_ops {
	/* The connection the protocol now owns, before http_upgrade returns:
	 * the client's over HTTP/1.1; over HTTP/2 one end of a socketpair
	 * whose other end the stream relays (RFC 8441).  May be NULL. */
	void (*attach)(void *st, struct conn *c);
	void (*input)(void *st, struct conn *c, size_t n);
	/* The client closed its side (err 0) or reading failed (errno). */
	void (*eof)(void *st, struct conn *c, int err);
	/* Everything queued is sent: go on, arm the next wait.  -1 if closed. */
	int (*drained)(void *st, struct conn *c);
	/* The wait armed last timed out. */
	void (*timeout)(void *st, struct conn *c);
	/* Graceful stop: end soon (a WebSocket sends close 1001). */
	void (*drain)(void *st, struct conn *c);
	/* The connection is being torn down, buffers still there: free st. */
	void (*close)(void *st, struct conn *c, const char *reason);
};

int http_upgrade(struct request *r, const struct upgraded_ops *ops, void *st);

/*
 * Verified claims, for middleware later in the route (a rate limit keyed
 * on a claim): set by the middleware that verified them (type = jwt),
 * after verification only; strings as they are, numbers as their JSON
 * text.  The name and value are copied and kept until the exchange ends:
 * at most REQ_CLAIMS of them, REQ_CLAIM_BYTES in all.  A set returns 0,
 * or -1 past those bounds (or out of memory); setting a name again
 * replaces its value.  http_req_claim returns 1 with *value (not
 * NUL-terminated) and *len, or 0 when the claim was not set.
 */
#define REQ_CLAIMS 16
#define REQ_CLAIM_BYTES 2048
int http_req_claim(const struct request *r, const char *name, const char **value, size_t *len);
int http_req_claim_set(struct request *r, const char *name, const char *value, size_t len);
/* A whole response in one call. */
void http_resp_simple(struct request *r, int status, const char *content_type,
    const char *body, size_t len);
/* A generated document as the whole response, not to be cached (status
 * JSON, metrics), or 500 when building it ran out of memory; frees out. */
struct sbuf;
void http_resp_sbuf(struct request *r, int status, const char *content_type, struct sbuf *out);
/* A short HTML error page for status. */
void http_resp_error(struct request *r, int status);
/* The same page with one more header (name NULL for none): 503 + Retry-After. */
void http_resp_error_hdr(struct request *r, int status, const char *name, const char *value);

#endif
