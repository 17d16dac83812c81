/*
 * handler: what a route hands a request to.
 *
 * A handler is one const ops table.  The route key named by `key` selects
 * it (`status = json` selects the status handler); extra route keys the
 * handler reads are listed in `keys`, so the config loader can tell a
 * misspelt key from one that belongs to another handler.
 */
#ifndef PORTICO_HANDLER_H
#define PORTICO_HANDLER_H

#include <stddef.h>

struct conf_ctx;
struct conf_route;
struct conf_kv;
struct conf_section;
struct config;
struct event_base;
struct sbuf;
struct request;

#define HANDLER_WANTS_BODY 0x1 /* body bytes go to ops->body, else they are discarded */

struct handler_ops {
	const char *name;
	const char *key;            /* the route key that selects this handler */
	const char *const *keys;    /* further route keys it reads, NULL-terminated */
	/* Those of keys that hold a list and may be repeated, each line adding
	 * to it (read them with conf_route_next); NULL-terminated or NULL.
	 * Any other key given twice in a route is an error. */
	const char *const *list_keys;
	unsigned flags;
	/*
	 * Checks the route's keys and builds rt->hconf.  Reports problems with
	 * conf_err and returns -1; 0 on success.
	 */
	int (*configure)(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv);
	void (*free_conf)(void *hconf);
	/* A section kind this handler owns ("pool" for [pool:NAME]), or NULL.
	 * configure_section checks one (all are done before any route) and
	 * sets sec->data; free_section frees that. */
	const char *section;
	int (*configure_section)(struct conf_ctx *ctx, struct conf_section *sec);
	void (*free_section)(void *data);
	/* Appends the JSON value describing a section's state (for /status). */
	void (*section_status)(const struct conf_section *sec, struct sbuf *out);
	/* Work of the main thread (health checks): started once before the
	 * workers, stopped after them. */
	void *(*main_start)(struct event_base *base, const struct config *conf);
	void (*main_stop)(void *state);
	/*
	 * A reload, in the main thread, before the new snapshot is published:
	 * sec (of the new one) takes what it keeps from old, the section of the
	 * same kind and name in the running one (the health of servers that
	 * stayed).  Main-thread work is then stopped on the old snapshot and
	 * started on the new one.
	 */
	void (*section_carry)(struct conf_section *sec, const struct conf_section *old);
	/* The request head is in (and the body too, without HANDLER_WANTS_BODY).
	 * The handler answers now with the resp_* calls, or later. */
	void (*start)(struct request *req);
	/*
	 * Body bytes, with HANDLER_WANTS_BODY, copied or sent on before
	 * returning; len 0 marks the end.  Returns 0 for more, 1 to pause
	 * (until http_req_resume), or -1 when the handler has answered and
	 * wants no more.
	 */
	int (*body)(struct request *req, const char *data, size_t len);
	/* The response output drained below the high-water mark. */
	void (*writable)(struct request *req);
	/* The client went away or the connection is being torn down. */
	void (*abort)(struct request *req);
	/* Optional per-worker state (caches), made on first use by
	 * worker_handler_state and freed with the worker. */
	void *(*worker_new)(void);
	void (*worker_free)(void *state);
	/* The worker takes snapshot to for its new requests; requests on from
	 * go on.  Per-worker state may hand over what stays the same (idle
	 * upstream connections of servers in both). */
	void (*worker_switch)(void *state, struct event_base *base, const struct config *from,
	    const struct config *to);
	/* The worker runs nothing on conf any more: what it kept for it goes. */
	void (*worker_release)(void *state, const struct config *conf);
};

#endif
