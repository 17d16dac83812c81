/*
 * mw_headers: `type = headers`, header rules for requests and responses.
 *
 *   [middleware:secure]
 *   type = headers
 *   request_set = X-Forwarded-Prefix: /app
 *   request_remove = Cookie
 *   response_set = X-Frame-Options: DENY
 *   response_add = Link: <https://$host/style.css>; rel=preload
 *   response_remove = Server
 *
 * Each key may be repeated; the rules run in the order written, request
 * rules before the handler, response rules on every response of the
 * route.  Values may hold the variables of vars.h.
 */
#ifndef PORTICO_MW_HEADERS_H
#define PORTICO_MW_HEADERS_H

#include "common/pipeline.h"

extern const struct mw_ops headers_mw_ops;

#endif
