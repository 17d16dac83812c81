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
 *                  (req_header_set ...) and returns MW_NEXT, or answers
 *                  with the http_resp_* calls and returns MW_ANSWERED,
 *                  which ends the chain: later middleware and the handler
 *                  never see the request;
 *   response_head  once per response, whoever made it (handler, another
 *                  middleware, an error page), just before its head is
 *                  turned into bytes, in reverse order, for the middleware
 *                  whose request phase ran: changes the response headers
 *                  (http_resp_header_set ...).
 * Body filters, a paused request phase and a log phase come with the
 * modules that need them.
 */
#ifndef PORTICO_PIPELINE_H
#define PORTICO_PIPELINE_H

#include "common/handler.h"

struct request;

enum { MW_NEXT = 0, MW_ANSWERED = 1 };

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
};

/* The first entry of every module's keys: the key that picks the module. */
#define MW_TYPE_KEY { "type", NULL, 0, NULL }

/* One [middleware:NAME] block: the data of its conf_section. */
struct mw {
	const struct mw_ops *ops;
	void *conf;
};

/* Owns the [middleware:NAME] sections; goes in the handler table. */
extern const struct handler_ops pipeline_section_ops;

/* Runs the request phase of the route's chain: MW_NEXT, or MW_ANSWERED
 * when a middleware answered (the exchange may be over then). */
int pipeline_request(struct request *r);
/* Runs the response-head phase, last middleware first. */
void pipeline_response_head(struct request *r);

#endif
