/*
 * route: which route a request goes to (listener, Host, longest path
 * prefix), and the path normalization routing is done on.
 */
#ifndef PORTICO_ROUTE_H
#define PORTICO_ROUTE_H

#include <stddef.h>

#include "common/config.h"

/*
 * Decodes percent-escapes once, merges repeated slashes and resolves "."
 * and ".." in path[0..len) into out (at least len + 1 bytes).  Returns the
 * output length, or -1 for a bad escape, a decoded NUL, a path not starting
 * with '/' or one that climbs above the root.  out is NUL-terminated.
 */
long route_normalize_path(const char *path, size_t len, char *out);

/*
 * The route for a request on listener listen_idx with the given Host (may
 * carry a port; NULL or empty matches only host-less routes) and normalized
 * path, or NULL.  Routes are kept most specific first, so the first match
 * wins; O(routes).
 */
const struct conf_route *route_match(const struct config *conf, unsigned listen_idx,
    const char *host, size_t host_len, const char *path, size_t path_len);

#endif
