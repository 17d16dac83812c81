/*
 * h2_int: what the HTTP/2 files share: h2.c (the session, the request
 * side), h2_body.c (request bodies, body_timeout per stream), h2_out.c
 * (the response side, h2's exchange ops), h2_tunnel.c
 * (RFC 8441) and h2_flood.c (the frame budget, skipped stream ids).  Not
 * for other modules.  They are one module split by concern, so their
 * names carry the module's prefix, h2_, and not each file's (STYLE.md's
 * rule read at the module's grain, as for h1.c, h1_out.c, h1_upgrade.c).
 */
#ifndef PORTICO_H2_INT_H
#define PORTICO_H2_INT_H

#include <nghttp2/nghttp2.h>
#include <sys/queue.h>
#include <time.h>

#include "common/exchange.h"
#include "common/h2_head.h"

/* Frames that make no progress, per connection: a burst, then a rate. */
#define H2_GLITCH_BURST 1000
#define H2_GLITCH_RATE  100
/* RST_STREAM from the client (rapid reset, CVE-2023-44487): nghttp2's
 * token bucket, a burst then a rate per second. */
#define H2_RESET_BURST 200
#define H2_RESET_RATE  50
/* CONTINUATION frames after one HEADERS (the 2024 CONTINUATION flood). */
#define H2_MAX_CONTINUATIONS 8
/* Queued SETTINGS and PING acknowledgements a client does not read. */
#define H2_MAX_OUTBOUND_ACK 1000
/* Memory runs of a stream's output queue are allocated at least this big,
 * so a producer of small pieces does not make a chunk each. */
#define H2_CHUNK_MIN 4096
/* Runs of skipped stream ids remembered (clients number streams 1, 3, 5...). */
#define H2_GAPS 16

struct h2_chunk {
	struct h2_chunk *next;
	int file;                      /* a run of the stream's fd, else data[] */
	off_t off;                     /* file: where the run starts */
	size_t len, sent, cap;
	char data[];
};

struct h2c;
struct h2_relay;

struct h2_stream {
	struct h2c *h;
	int32_t id;
	struct exchange *x;            /* while the exchange runs; NULL after */
	struct timespec start;
	TAILQ_ENTRY(h2_stream) link;
	struct h2_head in;             /* the request head as it arrives */
	char *head;                    /* ... then as text: x->hr points into it */
	/* The request body. */
	uint64_t body_in;
	int64_t body_ms;               /* when its body last moved (clock_ms): body_timeout */
	char *held;                    /* bytes a paused handler has not taken */
	size_t held_len, held_cap;
	unsigned body_done : 1;        /* END_STREAM came */
	unsigned body_end_told : 1;    /* the handler got its (NULL, 0) */
	unsigned body_paused : 1;
	unsigned body_drop : 1;        /* the handler answered: drop the rest */
	unsigned handler_on : 1;       /* the handler was started */
	unsigned mw_paused : 1;
	unsigned continued : 1;        /* 100 (Continue) sent */
	unsigned ext : 1;              /* an extended CONNECT (RFC 8441) */
	unsigned tunnel : 1;           /* ... answered: its DATA is the tunnel's */
	unsigned logged : 1;           /* the exchange's line is written */
	struct h2_relay *relay;        /* after h2_upgrade: the tunnel's other end */
	/* The response. */
	unsigned head_sent : 1;
	unsigned has_data : 1;         /* a data provider runs (not HEAD, not 204) */
	unsigned out_end : 1;          /* the handler ended the body */
	unsigned cut : 1;              /* reset it after what is queued */
	unsigned deferred : 1;         /* the provider waits for bytes */
	unsigned want_writable : 1;    /* the handler stopped above the mark */
	struct h2_chunk *q, *qtail;
	size_t queued;
	int fd;                        /* the file body's, owned; -1 */
	struct sbuf interim;           /* an interim response's fields: "name\0value\0" */
	int interim_status;
};

TAILQ_HEAD(h2_streams, h2_stream);

struct h2c {
	struct conn *c;
	nghttp2_session *s;
	struct h2_streams streams;
	unsigned nstreams;
	uint64_t nreq;
	int64_t glitch_ms;             /* when the budget was last topped up */
	int64_t glitches;              /* tokens left */
	/* Stream ids the client skipped, the latest H2_GAPS runs: a HEADERS
	 * on one later is a connection error (RFC 9113 5.1.1), unlike a late
	 * frame on a stream that was used (trailers racing a reset). */
	int32_t max_id;
	int32_t goaway_id;             /* the last stream the GOAWAY sent takes */
	struct { int32_t lo, hi; } gaps[H2_GAPS];
	unsigned ngaps;
	unsigned flushing : 1;         /* in h2_pump's conn_flush */
	unsigned again : 1;
	unsigned goaway : 1;           /* GOAWAY submitted: no new streams */
	unsigned calm : 1;             /* out of budget: end with ENHANCE_YOUR_CALM */
	unsigned notify : 1;           /* a stream's handler may write again */
};


static inline struct h2_stream *
h2_stream_of(const struct request *r)
{
	return r->xs;
}

/* h2_flood.c */
/* Charges cost to the connection's budget of frames that do no work: 0,
 * or -1 once it is spent (the connection is then ended, h->calm). */
int h2_glitch(struct h2c *h, int64_t cost);
/* nghttp2's on_begin_frame callback: the stream ids a client skipped. */
int h2_on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *arg);

/* h2.c */
/* The exchange of st is over: counted and logged; then its memory goes
 * back to the worker's pool (st->x is NULL after release). */
void h2_stream_log(struct h2_stream *st);
void h2_stream_release(struct h2_stream *st);
/* The handler's start once the request phase went through. */
void h2_stream_handler_start(struct h2_stream *st);
/* Answers st with status before its handler did (logged at info, why). */
void h2_stream_fail(struct h2_stream *st, int status, const char *why);
/* Whether some stream's response has bytes queued (waiting on a window). */
int h2_output_waiting(const struct h2c *h);

/* h2_body.c */
/* The exchange ops of http_req_resume (exchange.h) and, for a paused
 * request phase taken up, dispatch_resume. */
void h2_resume(struct request *r);
void h2_dispatch_resume(struct request *r);
/* Body bytes for the handler (held while it paused), the client's
 * END_STREAM. */
void h2_stream_body(struct h2_stream *st, const uint8_t *data, size_t len);
void h2_stream_body_end(struct h2_stream *st);
/* The oldest body_ms of the streams that wait on their client for body
 * bytes, or -1 when none does. */
int64_t h2_awaiting_body(const struct h2c *h);
/* Answers (408) or resets the streams whose body has not moved for
 * body_timeout; how many. */
int h2_body_timeouts(struct h2c *h);

/* h2_out.c */
extern const struct exchange_ops h2_exchange_ops;
/* nghttp2's send and send_data callbacks: frames into the transport's
 * output while it is below HTTP_OUT_HIGH_WATER. */
ssize_t h2_on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg);
int h2_on_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd, size_t len,
    nghttp2_data_source *src, void *arg);
/* Handlers that stopped above the mark go on (never inside nghttp2's calls). */
void h2_notify_writable(struct h2c *h);
/* Queues body bytes (copied) for DATA frames.  0 or -1 (no memory). */
int h2_queue(struct h2_stream *st, const void *data, size_t len);
/* The exchange op of http_resp_abort (exchange.h). */
void h2_abort(struct request *r, const char *reason);
/* More for st's data provider (bytes, or the end): wake it if it waits. */
void h2_provider_wake(struct h2_stream *st);
/* Sends an interim 100 (Continue) on st. */
void h2_continue(struct h2_stream *st);
/* Frees st's queued output and closes its file. */
void h2_stream_out_free(struct h2_stream *st);

/* h2_tunnel.c: an extended CONNECT after its 101 (RFC 8441). */
void h2_tunnel_start(struct request *r);
void h2_tunnel_write(struct request *r, const void *data, size_t len);
void h2_tunnel_close(struct request *r);
int h2_upgrade(struct request *r, const struct upgraded_ops *ops, void *st);
/* The client's data and its END_STREAM for an upgraded stream's relay. */
void h2_relay_input(struct h2_stream *st, const uint8_t *data, size_t len);
void h2_relay_end(struct h2_stream *st);
/* The stream's queue went below the mark: read from the relay again. */
void h2_relay_writable(struct h2_stream *st);
void h2_relay_free(struct h2_stream *st);
/* Client bytes the relay holds unacknowledged. */
size_t h2_relay_unread(const struct h2_stream *st);

#endif
