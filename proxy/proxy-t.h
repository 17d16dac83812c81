/*
 * proxy-t: the proxy's types, shared by proxy.c (the handler), relay.c
 * (the exchange with a server) and head.c (the request head for it).
 */
#ifndef PORTICO_PROXY_T_H
#define PORTICO_PROXY_T_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "common/http_parse.h"
#include "common/sbuf.h"
#include "proxy/pool.h"

#define MAX_TRUSTED 16
#define REPLAY_MAX (64 * 1024)  /* request body kept for retries */
#define REQUEST_BUFFER_MAX (16 * 1024 * 1024)
#define UPGRADE_MAX 8           /* protocols one route lets through an Upgrade */
#define UPGRADE_LEN 48          /* the longest, "name/version", with its NUL */
#define REQUEST_ID_MAX REQ_ID_MAX /* a longer X-Request-Id is replaced */
/* The longest X-Client-Cert-Subject: a longer one is left out, never cut
 * (RFC 2253 puts the most specific name, the CN, at the end). */
#define CERT_SUBJECT_MAX 4096

struct cidr {
	int family;
	unsigned char addr[16];
	unsigned bits;
};

struct proxy_conf {
	struct pool *pool;
	char *strip;                 /* the route's path prefix, when strip_prefix = yes */
	size_t strip_len;
	int host_backend;            /* host_header = backend */
	int forwarded;               /* add an RFC 7239 Forwarded header */
	size_t request_buffer;       /* a body up to this is read whole before a server is picked */
	struct cidr trusted[MAX_TRUSTED];
	unsigned ntrusted;
	int underscores;             /* [global] underscores_in_headers */
	enum { RID_TRUSTED, RID_KEEP, RID_GENERATE } request_id;
	unsigned nupgrade;           /* upgrade = ...: protocols passed on, lower case */
	char upgrade[UPGRADE_MAX][UPGRADE_LEN];
};

enum rstate { R_HEAD, R_LENGTH, R_CHUNKED, R_CLOSE, R_DONE, R_TUNNEL };

struct upstream;

/* 1xx heads one response may have before its final one; a server that
 * sends more would fill the client's output without bound. */
#define INTERIM_MAX 16

/* One proxied request: the client side is r, the server side is u (upstream.h). */
struct proxy_req {
	struct request *r;
	const struct proxy_conf *pc;
	struct pool_worker *pw;
	struct upstream *u;
	uint64_t tried;
	unsigned attempts;
	int fresh_retry;             /* retried once after a reused connection was dead */
	struct sbuf head;            /* the request head as sent, kept for retries */
	int body_chunked;            /* the body goes to the backend chunked */
	int body_done;               /* the client's body is all queued */
	int buffering;               /* reading the body into replay before any attempt */
	int body_whole;              /* replay holds the whole body, unframed: Content-Length */
	struct sbuf replay;          /* the body so far, for a retry (up to replay_limit) */
	int replay_lost;             /* the body outgrew it: no retry once any is sent */
	size_t replay_mark;          /* where the bytes being queued start in u->out */
	int last_status;             /* of the last failed attempt, for the final answer */
	const char *last_why;
	const char *last_term;       /* ... and its REQ_TERM_* */
	int64_t t_attempt;           /* monotonic us when the current attempt began */
	int client_paused;           /* the client's body waits for u->out to drain */
	int client_eof;              /* tunnel: the client closed its sending side */
	int framed;                  /* the response has a length or is chunked */
	enum rstate rs;
	int64_t resp_left;
	struct http_chunked ch;
	int resp_started;
	unsigned interim;            /* 1xx heads seen (bounded: INTERIM_MAX) */
	int64_t t0;
	struct http_response resp;   /* last: large */
};

#endif
