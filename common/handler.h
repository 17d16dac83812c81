/*
 * handler: what a route hands a request to.
 *
 * A handler is one const ops table.  The route key named by `key` selects
 * it (`status = json` selects the status handler); extra route keys the
 * handler reads are declared in `keys` with their defaults, so the config
 * loader can tell a misspelt key from one that belongs to another handler,
 * and -T can print them.
 */
#ifndef PORTICO_HANDLER_H
#define PORTICO_HANDLER_H

#include <stddef.h>

struct conf_ctx;
struct conf_key;
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
	/* Further route keys it reads, with their defaults, or NULL.  Those
	 * marked CONF_KEY_LIST may be repeated, each line adding to a list
	 * (read them with conf_route_list); any other key given twice in a
	 * route is an error. */
	const struct conf_key *keys;
	unsigned flags;
	/*
	 * Checks the route's keys and builds rt->hconf.  Reports problems with
	 * conf_err and returns -1; 0 on success.
	 */
	int (*configure)(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv);
	void (*free_conf)(void *hconf);
	/* A route of a snapshot going into service, on the main thread: at
	 * start, and at a reload once it is sure to be taken, before any
	 * worker sees it (configure also runs for -t; this does not). */
	void (*route_start)(struct conf_route *rt);
	/* Appends the JSON value describing a route's state (for /status,
	 * under the handler's name). */
	void (*route_status)(const struct conf_route *rt, struct sbuf *out);
	/* A section kind this handler owns ("pool" for [pool:NAME]), or NULL.
	 * configure_section checks one (all are done before any route) and
	 * sets sec->data; free_section frees that.  section_keys gives the
	 * table of a section's keys, for -T (a middleware block's depend on
	 * its type); NULL from it, or no section_keys, prints the lines as
	 * written. */
	const char *section;
	int (*configure_section)(struct conf_ctx *ctx, struct conf_section *sec);
	void (*free_section)(void *data);
	const struct conf_key *(*section_keys)(const struct conf_section *sec);
	/* Appends the JSON value describing a section's state (for /status). */
	void (*section_status)(const struct conf_section *sec, struct sbuf *out);
	/* Appends the Prometheus metric families (HELP, TYPE, samples) of the
	 * sections of conf it owns, from any worker; for metrics = prometheus. */
	void (*metrics)(const struct config *conf, struct sbuf *out);
	/* How many servers of a section are in service now, from any thread
	 * (a pool's: enabled, resolved, not marked down); for health = pools. */
	unsigned (*section_in_service)(const struct conf_section *sec);
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
