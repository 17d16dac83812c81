/*
 * h2_head: an HTTP/2 request head as its fields arrive (pseudo-headers
 * kept apart, Cookie crumbs joined, the rest as "name: value" lines),
 * then turned into HTTP/1.1 text, so that the one request parser
 * (http_parse_request) checks every request whatever protocol it came in.
 */
#ifndef PORTICO_H2_HEAD_H
#define PORTICO_H2_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

struct h2_head {
	char *method, *path, *authority, *host;
	char *protocol;                /* :protocol of an extended CONNECT (RFC 8441) */
	struct sbuf fields;            /* "name: value\r\n" lines */
	struct sbuf cookie;            /* the crumbs, joined with "; " */
	size_t bytes;                  /* as RFC 9113 counts a header list */
	unsigned nfields;
	unsigned has_length : 1;       /* a content-length field came */
	unsigned https : 1;            /* the scheme (the listener's): 443 is its default port */
	int refuse;                    /* a status to answer with instead: 431, 400 */
	size_t inl_used;
	char inl[192];                 /* the pseudo-headers' values while they fit */
};

/*
 * Takes one field of a request's header block (names in lower case, as
 * nghttp2 checked them).  Past max_bytes (32 counted per field, as
 * SETTINGS_MAX_HEADER_LIST_SIZE counts) or max_fields, the rest is only
 * counted and refuse becomes 431; a second Host makes it 400.  Returns
 * 0, or -1 when the stream must be reset: a byte that would end a line
 * of the text (CR, LF, NUL), a pseudo-header given twice, or no memory.
 */
int h2_head_field(struct h2_head *hh, const uint8_t *name, size_t nlen, const uint8_t *value,
    size_t vlen, uint64_t max_bytes, uint64_t max_fields);
/*
 * The whole head as HTTP/1.1 text: the request line, Host (from
 * :authority, which must name the same host as a Host field if both
 * came, once both are normalized by their scheme: RFC 9113 8.3.1 and RFC
 * 3986 6.2.3, host in any case, an empty or default port as none; else
 * refuse becomes 400 and NULL is returned),
 * the fields, the joined Cookie, and "transfer-encoding: chunked"
 * standing for a body (has_body) of no declared length, so that readers
 * of the head (the proxy) frame it as they would an HTTP/1.1 one.
 *
 * An extended CONNECT (RFC 8441: CONNECT with :protocol) becomes the
 * HTTP/1.1 request it stands for: a GET of :path with "upgrade:
 * PROTOCOL" and "connection: upgrade", and for WebSocket the
 * Sec-WebSocket-Key an HTTP/2 client does not send (ws_key, 24 base64
 * characters), so handlers and backends see an ordinary RFC 6455
 * handshake; the stream's data is then the tunnel's.
 *
 * Returns a malloc'd string of *len bytes, the caller's; NULL also when
 * out of memory or when refuse was already set.
 */
char *h2_head_text(struct h2_head *hh, int has_body, const char *ws_key, size_t *len);
void h2_head_free(struct h2_head *hh);

#endif
