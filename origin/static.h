/*
 * static: files from a document root (`root = DIR`): GET and HEAD,
 * index files, conditional requests, ranges, precompressed sidecars and
 * optional directory listings.  No path ever leaves the root: the path is
 * normalized lexically first, then opened beneath the root directory with
 * openat2(RESOLVE_BENEATH), so symlinks cannot lead out either (unless
 * follow_symlinks = outside).  The TLS keys of the configuration (every
 * tls_key, the tls_ticket_key) are never served, by any name: a lookup
 * that opens one answers 404, and one under a root is warned about at load.
 */
#ifndef PORTICO_STATIC_H
#define PORTICO_STATIC_H

#include <stddef.h>

#include "common/handler.h"

extern const struct handler_ops static_ops;

/*
 * Checks a request path (raw, as sent, before percent-decoding) and its
 * decoded, normalized form for what a file server must refuse.  Returns 0
 * when it may be looked up, or the status to answer: 400 for an encoded
 * slash or backslash, a backslash, or bytes that are not valid UTF-8
 * (overlong forms included); 404 for a dot-file segment other than
 * /.well-known; 414 for a path too long to open.
 */
int static_check_path(const char *raw, size_t raw_len, const char *norm, size_t norm_len);

#endif
