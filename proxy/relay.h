/*
 * relay: one proxied exchange between a client's request and a server of
 * the route's pool.  It picks the server, sends the request head and body
 * over an upstream connection (upstream.h), parses the response head with
 * http_parse_response, relays the body to the client through the
 * http_resp_* writer (by length, by chunks or to the close), turns a 101
 * into a tunnel, and decides when a failed attempt goes to another server.
 */
#ifndef PORTICO_RELAY_H
#define PORTICO_RELAY_H

#include <stddef.h>

#include "proxy/proxy-t.h"

struct request;

/*
 * Starts relaying r to a server of pw's pool, as the route's pc says: at
 * once, or once the body is read when it fits pc->request_buffer.  From
 * here on r->hdata is the exchange's until it answers (now, on failure).
 */
void relay_start(struct request *r, const struct proxy_conf *pc, struct pool_worker *pw);
/* The handler ops body, writable and abort (handler.h) for a request
 * relay_start took. */
int relay_body(struct request *r, const char *data, size_t len);
void relay_writable(struct request *r);
void relay_abort(struct request *r);
/* Frees the exchange states pw keeps for reuse (its worker is ending). */
void relay_worker_free(struct pool_worker *pw);

#endif
