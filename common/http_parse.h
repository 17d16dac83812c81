/*
 * http_parse: the strict, incremental, zero-copy HTTP/1.1 request parser
 * (RFC 9112) and chunked body decoder (http_chunked.c).
 *
 * The parser never copies: every string it reports is a slice of the
 * caller's buffer.  It is incremental: call it again with the same buffer
 * start and more bytes, and it resumes after the last complete line it
 * accepted.  If the buffer moves, call http_request_rebase first.
 */
#ifndef PORTICO_HTTP_PARSE_H
#define PORTICO_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* tchar (RFC 9110 5.6.2): 1 for the bytes a token may hold. */
extern const unsigned char http_tchar[256];

/* Hard ceiling for max_headers; struct http_request holds this many. */
#define HTTP_MAX_HEADERS 256

enum http_method {
	HTTP_M_OTHER = 0, HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_PUT,
	HTTP_M_DELETE, HTTP_M_OPTIONS, HTTP_M_CONNECT, HTTP_M_TRACE, HTTP_M_PATCH,
};

/* Request flags, set while parsing. */
#define HTTP_F_KEEPALIVE   0x0001u /* connection persists after this exchange */
#define HTTP_F_CHUNKED     0x0002u /* body is chunked (Transfer-Encoding) */
#define HTTP_F_HAS_CL      0x0004u /* a Content-Length was given */
#define HTTP_F_HAS_TE      0x0008u /* a Transfer-Encoding was given */
#define HTTP_F_EXPECT_100  0x0010u /* Expect: 100-continue */
#define HTTP_F_CONN_CLOSE  0x0020u /* Connection: close */
#define HTTP_F_CONN_KA     0x0040u /* Connection: keep-alive */
#define HTTP_F_UPGRADE     0x0080u /* Connection: upgrade and an Upgrade header */
#define HTTP_F_ABSOLUTE    0x0100u /* absolute-form target */
#define HTTP_F_HAS_HOST    0x0200u /* a Host header was given */
#define HTTP_F_TE_CHUNKED_SEEN 0x0400u /* internal: chunked seen in TE */
#define HTTP_F_UPGRADE_HDR 0x0800u /* internal: Upgrade header seen */
#define HTTP_F_TE_UNKNOWN  0x1000u /* internal: a coding other than chunked */
#define HTTP_F_NO_PATH     0x2000u /* absolute-form without a path ("http://h"): path is "/" */

struct http_header {
	const char *name;
	const char *value; /* OWS trimmed on both sides */
	uint32_t name_len;
	uint32_t value_len;
};

struct http_limits {
	size_t max_request_line;  /* longer: 414 */
	size_t max_header_size;   /* header section after the request line; larger: 431 */
	unsigned max_headers;     /* more fields: 431 (at most HTTP_MAX_HEADERS) */
};

struct http_request {
	/* Parser position; private. */
	size_t pos;
	int state;

	const char *line;          /* request line without its line ending (for logs) */
	uint32_t line_len;
	const char *method;
	uint32_t method_len;
	enum http_method meth;
	const char *target;        /* exactly as sent */
	uint32_t target_len;
	const char *path;          /* path part of the target, "*" or the authority for CONNECT */
	uint32_t path_len;
	const char *query;         /* after '?', NULL when there is none */
	uint32_t query_len;
	const char *host;          /* authority of an absolute-form target, else Host */
	uint32_t host_len;
	int version;               /* 10 or 11 */
	unsigned flags;
	int64_t content_length;    /* -1 when the request has none */
	size_t head_len;           /* bytes of the whole head, set when complete */
	const char *error;         /* why the request was refused, for logs */
	unsigned nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
};

/* Prepares r for a new request. */
void http_request_reset(struct http_request *r);

/*
 * Parses the request head in buf[0..len).  Returns the head length (> 0)
 * when the head is complete, 0 when more bytes are needed, or the negated
 * HTTP status to answer with (-400, -414, -431, -501, -505, -417) when the
 * request is bad; r->error then says why.  On success the slices in r point
 * into buf and stay valid as long as buf does.
 */
ssize_t http_parse_request(struct http_request *r, const char *buf, size_t len,
    const struct http_limits *lim);

/* Moves every slice of r from a buffer at oldbase to the same offset at newbase. */
void http_request_rebase(struct http_request *r, const char *oldbase, const char *newbase);

/* Finds the first header named name (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_request *r, const char *name);

/*
 * Walks a comma-separated field value (RFC 9110 5.6.1): sets *tok and *len to
 * the next non-empty element, OWS trimmed, and returns 1; 0 at end.  *p
 * starts at the value and is advanced.
 */
int http_list_next(const char **p, const char *end, const char **tok, size_t *len);

/* The value of a hex digit, or -1. */
int http_hexval(int c);

/* Case-insensitive comparison of a slice with a NUL-terminated lower-case token. */
int http_token_eq(const char *s, size_t len, const char *lower);

/* A response head from a backend (RFC 9112 section 4). */
struct http_response {
	size_t pos;               /* private */
	int state;
	size_t hdr_start;
	int version;              /* 10 or 11 */
	int status;               /* 100..599 */
	const char *reason;
	uint32_t reason_len;
	unsigned flags;           /* HTTP_F_CHUNKED, HAS_CL, HAS_TE, KEEPALIVE, CONN_CLOSE, UPGRADE */
	int64_t content_length;   /* -1 when none */
	size_t head_len;
	const char *error;
	unsigned nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
};

void http_response_reset(struct http_response *r);
/*
 * Parses a response head in buf[0..len), incrementally like
 * http_parse_request.  Returns the head length, 0 for more, or -1 when the
 * response is invalid (r->error says why): a proxy answers 502 and never
 * passes such a response on.  Both Content-Length and Transfer-Encoding is
 * invalid, and so is any transfer coding but one chunked (a proxy asks for
 * no other), and any Transfer-Encoding in an HTTP/1.0 response.
 */
ssize_t http_parse_response(struct http_response *r, const char *buf, size_t len,
    const struct http_limits *lim);

/* Chunked transfer coding decoder (RFC 9112 section 7.1). */
enum http_chunked_state {
	CHUNK_SIZE, CHUNK_SIZE_WS, CHUNK_EXT, CHUNK_SIZE_LF, CHUNK_DATA, CHUNK_DATA_CR,
	CHUNK_DATA_LF, CHUNK_TRAILER_START, CHUNK_TRAILER_NAME, CHUNK_TRAILER, CHUNK_TRAILER_LF,
	CHUNK_END_LF, CHUNK_DONE,
};

struct http_chunked {
	enum http_chunked_state state;
	uint64_t remaining;    /* data bytes left in the current chunk */
	unsigned size_digits;
	size_t line_len;       /* bytes of the current size or trailer line */
	size_t trailer_bytes;  /* bytes of the trailer section so far */
	unsigned trailers;     /* trailer fields seen */
	uint64_t total;        /* decoded data bytes so far */
	uint64_t ext_bytes;    /* chunk-extension bytes so far: a body limit counts them too */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Feeds buf[0..len) to the decoder.  Returns the number of bytes consumed
 * (at most len; 0 only when len is 0 or the body is already done), or -1 if
 * the framing is bad.  The consumed part holds at most one run of payload,
 * reported as buf[*data_off .. *data_off + *data_len).  The body is complete
 * when c->state == CHUNK_DONE; bytes after it belong to the next message.
 * max_trailer bounds the trailer section; a bigger one is bad framing.
 */
ssize_t http_chunked_parse(struct http_chunked *c, const char *buf, size_t len,
    size_t *data_off, size_t *data_len, size_t max_trailer);

#endif
