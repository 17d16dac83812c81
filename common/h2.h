/*
 * h2: HTTP/2 on a transport connection (RFC 9113), with libnghttp2 doing
 * the framing, HPACK and flow control.  Each stream is one exchange, so
 * routes, middleware, handlers, logs and metrics run as they do for
 * HTTP/1.  h2.c is the session and the glue from nghttp2's callbacks to
 * routing and the handlers; h2_head.c makes a request head HTTP/1.1 text
 * for the one parser; h2_out.c is the exchange ops that put a response on
 * the wire as HEADERS and DATA frames; h2_tunnel.c is WebSocket over
 * HTTP/2 (RFC 8441); h2_flood.c the defences of h2.c's own.  A
 * connection comes here from h1.c: after
 * ALPN chose h2, or on a listener with http2 = on when a plain client's
 * first bytes are the HTTP/2 preface.
 */
#ifndef PORTICO_H2_H
#define PORTICO_H2_H

#include "common/conn.h"

/* The client connection preface (RFC 9113 3.4). */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/*
 * Takes connection c over for HTTP/2 (through h1's upgraded callbacks):
 * bytes already read, c->rbuf[c->rpos..c->rlen), are the first the
 * session gets.  Returns 0, or -1 (c was closed: out of memory).
 */
int h2_start(struct conn *c);

#endif
