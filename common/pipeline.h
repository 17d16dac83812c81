/*
 * pipeline: the middleware chain between a connection's exchange and the
 * route's handler.
 *
 * A middleware is a block of configuration, [middleware:NAME] with a
 * `type` key naming its module, and a route lists the blocks it runs, in
 * order: `middleware = NAME, NAME`.  A module is one const ops table with
 * phases, each optional:
 *   request        when the request head is in, in the route's order,
 *                  before any body is read: changes the request headers
 *                  (req_header_set ...) and returns MW_NEXT; or answers
 *                  with the http_resp_* calls and returns MW_ANSWERED,
 *                  which ends the chain: later middleware and the handler
 *                  never see the request; or returns MW_PAUSE after
 *                  arranging to call pipeline_resume (from a timer, a
 *                  store's answer) or to answer later.  While paused no
 *                  body is read and the handler has not started; if the
 *                  exchange ends meanwhile (the client went away, shutdown)
 *                  the middleware learns it from free_state;
 *   response_head  once per response, whoever made it (handler, another
 *                  middleware, an error page), just before its head is
 *                  turned into bytes, in reverse order, for the middleware
 *                  whose request phase ran: changes the response headers
 *                  (http_resp_header_set ...), and may ask to filter the
 *                  body (mw_filter_start), dropping the Content-Length
 *                  first if it changes the length (http_resp_length_unknown:
 *                  the response is then chunked to HTTP/1.1 clients and
 *                  close-delimited to HTTP/1.0 ones);
 *   body           the body filter: sees every body byte of the response,
 *                  whether pushed from memory, read from a file or relayed
 *                  from a backend, and passes on what it makes with
 *                  mw_emit.  Filters run in the order their response_head
 *                  ran (the route's last middleware first), so the first
 *                  middleware of the route sees the final bytes.  Responses
 *                  without a body (HEAD, 1xx, 204, 304) never reach one;
 *   log            once per exchange, however it ended (answered, cut, the
 *                  client gone: status 499), just before its access-log
 *                  line, in the route's order, for the middleware whose
 *                  request phase ran: counters, http_log_field.
 * A middleware keeps per-exchange state with mw_state_set; free_state
 * frees it when the exchange ends, whichever way.
 */
#ifndef PORTICO_PIPELINE_H
#define PORTICO_PIPELINE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/handler.h"

struct request;
struct mw;

enum { MW_NEXT = 0, MW_ANSWERED = 1, MW_PAUSE = 2 };

/* Flags of a body call. */
#define MW_BODY_FLUSH 0x1 /* the producer has nothing more for now: emit what is held */
#define MW_BODY_END   0x2 /* the last call: emit the tail */

/* One active body filter of an exchange. */
struct mw_filter {
	struct request *r;
	const struct mw *m;
	void *state;                     /* the middleware's, from mw_state_set */
};

struct mw_ops {
	const char *type;                /* `type = ...` */
	/* Every key of a block of this type, with defaults: MW_TYPE_KEY first. */
	const struct conf_key *keys;
	/* Checks the block's keys (conf_err with their lines) and returns the
	 * module's configuration, or NULL when it has errors. */
	void *(*configure)(struct conf_ctx *ctx, const struct conf_section *sec);
	void (*free_conf)(void *conf);
	int (*request)(struct request *r, const void *conf);
	void (*response_head)(struct request *r, const void *conf);
	/*
	 * Body bytes (len may be 0 with flags alone), flags MW_BODY_FLUSH or
	 * MW_BODY_END.  Bytes made go on with mw_emit, any number of calls,
	 * at once or later; the flags are passed on by the pipeline after the
	 * call returns, so a filter holding bytes back emits them before
	 * returning from a call that has a flag.  Returns 0, or -1 to cut the
	 * response (logged; the connection closes).
	 */
	int (*body)(struct mw_filter *f, const void *data, size_t len, unsigned flags);
	void (*log)(struct request *r, const void *conf);
	void (*free_state)(void *state);
};

/* The first entry of every module's keys: the key that picks the module. */
#define MW_TYPE_KEY { "type", NULL, 0, NULL }

/* One [middleware:NAME] block: the data of its conf_section. */
struct mw {
	const struct mw_ops *ops;
	void *conf;
	const char *name;                /* the block's NAME */
};

/* Owns the [middleware:NAME] sections; goes in the handler table. */
extern const struct handler_ops pipeline_section_ops;

/* ---- for middleware, from inside one of its phases ---- */

/* Sets the running middleware's state for this exchange (it owns it;
 * ops->free_state gets it back when the exchange ends).  0, or -1 out of
 * memory (state stays the caller's). */
int mw_state_set(struct request *r, void *state);
/* The running middleware's state, or NULL. */
void *mw_state(const struct request *r);
/* From response_head: have the body go through this middleware's body op
 * (its state, if any, is set first).  0, or -1 when the response has no
 * body to filter (HEAD, 1xx, 204, 304) or out of memory. */
int mw_filter_start(struct request *r);
/* From a body op: passes bytes on to the next filter (or the client). */
void mw_emit(struct mw_filter *f, const void *data, size_t len);
/* Takes up a paused request phase: the next middleware runs, then the
 * handler.  From an event of the middleware's own, never from inside its
 * request op.  (To answer instead, answer: the exchange then ends.) */
void pipeline_resume(struct request *r);

/*
 * Fields for the access log: key and value copied, kept until the
 * exchange ends.  At most MW_LOG_FIELDS of them, MW_LOG_BYTES in all;
 * -1 beyond (or out of memory).  http_log_field_next walks them in the
 * order given (*it starts at 0): 1 and the field, or 0 after the last.
 */
#define MW_LOG_FIELDS 16
#define MW_LOG_BYTES 1024
int http_log_field(struct request *r, const char *key, const char *value, size_t vlen);
int http_log_field_next(const struct request *r, unsigned *it, const char **key, size_t *klen,
    const char **value, size_t *vlen);

/* ---- for the connection and the exchange ---- */

/* Runs the request phase of the route's chain: MW_NEXT, MW_ANSWERED when
 * a middleware answered (the exchange may be over then), or MW_PAUSE
 * (the protocol's dispatch_resume is called when it is taken up). */
int pipeline_request(struct request *r);
/* Runs the response-head phase, last middleware first. */
void pipeline_response_head(struct request *r);
/* The log phase: once per exchange, before its access-log line (a
 * request that got no response is given status 499 first). */
void pipeline_log(struct request *r);
/* The exchange is over: frees the middleware's states and the filters'. */
void pipeline_end(struct request *r);
/* With REQ_FILTERED: body bytes (copied), file bytes (fd owned from the
 * first call: 0 or -1), a flush, and the end (1 when the pipeline ends
 * the response itself later, with http_resp_finish; 0: finish now). */
void pipeline_body(struct request *r, const void *data, size_t len);
int pipeline_file(struct request *r, int fd, off_t off, off_t len);
void pipeline_flush(struct request *r);
int pipeline_body_end(struct request *r);
/* The output drained: 1 when the pipeline used the turn (queued file
 * bytes went on, or the exchange ended), 0 for the handler's writable. */
int pipeline_writable(struct request *r);
/* Whether filtered body bytes are still queued (the handler may have
 * ended: the response is not whole until they are through). */
int pipeline_pending(const struct request *r);

/* exchange.c, for the pipeline: body bytes to the framing (chunked,
 * Content-Length or close-delimited), and the end of the response. */
void http_resp_frame(struct request *r, const void *data, size_t len);
void http_resp_finish(struct request *r);

#endif
