#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/http.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/tls.h"
#include "common/server.h"
#include "common/units.h"
#include "proxy/health.h"
#include "proxy/pool.h"
#include "proxy/resolve.h"

#define UPSTREAM_IN_SIZE (32 * 1024)
#define MAX_TRUSTED 16
#define REPLAY_MAX (64 * 1024)  /* request body kept for retries */
#define REQUEST_BUFFER_MAX (16 * 1024 * 1024)
#define UPGRADE_MAX 8           /* protocols one route lets through an Upgrade */
#define UPGRADE_LEN 48          /* the longest, "name/version", with its NUL */
#define REQUEST_ID_MAX 128      /* a longer X-Request-Id is replaced */
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

enum ustate { U_CONNECTING, U_HANDSHAKE, U_ACTIVE, U_IDLE };
enum rstate { R_HEAD, R_LENGTH, R_CHUNKED, R_CLOSE, R_DONE, R_TUNNEL };

struct proxy_req;

/* One connection to a backend. */
struct upstream {
	int fd;
	struct event ev;             /* EV_READ, kept registered while connected */
	struct event wev;            /* EV_WRITE, only while connecting or output waits */
	const struct timeval *rtv;   /* the timeout ev is armed with */
	unsigned rarmed : 1, warmed : 1;
	struct event_base *base;
	struct pool_worker *pw;
	unsigned idx;
	enum ustate state;
	int reused;                  /* came from the idle pool */
	SSL *ssl;                    /* for servers marked tls */
	int hs_write;                /* the handshake waits for writable */
	struct proxy_req *pr;        /* the request using it; NULL while idle */
	struct sbuf out;             /* bytes for the backend */
	size_t osent;
	char *in;                    /* bytes from the backend */
	size_t inlen;
	LIST_ENTRY(upstream) link;
};

/* 1xx heads one response may have before its final one; a server that
 * sends more would fill the client's output without bound. */
#define INTERIM_MAX 16

/* One proxied request: the client side is r, the backend side is u. */
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
	int body_written;            /* some body byte reached a backend */
	struct sbuf replay;          /* the body so far, for a retry (up to replay_limit) */
	int replay_lost;             /* the body outgrew it: no retry once any is sent */
	size_t replay_mark;          /* where the bytes being queued start in u->out */
	int last_status;             /* of the last failed attempt, for the final answer */
	const char *last_why;
	int client_paused;
	int client_eof;              /* tunnel: the client closed its sending side */
	int reading_paused;          /* client output is backed up */
	int framed;                  /* the response has a length or is chunked */
	enum rstate rs;
	int64_t resp_left;
	struct http_chunked ch;
	int resp_started;
	unsigned interim;            /* 1xx heads seen (bounded: INTERIM_MAX) */
	int64_t t0;
	struct http_response resp;   /* last: large */
};

/* Each worker's pools, found by pointer (a handful per config). */
struct proxy_worker {
	struct pool_worker **pws;
	size_t n;
};

static void u_on_event(evutil_socket_t fd, short what, void *arg);
static int u_write(struct upstream *u);
static void attempt(struct proxy_req *pr);
static int response_bytes(struct proxy_req *pr);
static void retry_fresh(struct proxy_req *pr);

/* ---- configuration ---- */

static int
parse_cidr(const char *s, struct cidr *c)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	uint64_t bits;

	snprintf(buf, sizeof(buf), "%.*s", slash ? (int)(slash - s) : (int)strlen(s), s);
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		c->bits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		c->bits = 128;
	} else {
		return -1;
	}
	if (slash != NULL) {
		if (units_count(slash + 1, c->bits, &bits) < 0)
			return -1;
		c->bits = (unsigned)bits;
	}
	return 0;
}

static int
cidr_match(const struct cidr *c, const struct sockaddr_in6 *peer)
{
	const unsigned char *a;

	if (peer->sin6_family != c->family)
		return 0;
	a = c->family == AF_INET ? (const unsigned char *)&((const struct sockaddr_in *)peer)->sin_addr :
	    (const unsigned char *)&peer->sin6_addr;
	for (unsigned i = 0; i < c->bits; i++) {
		unsigned byte = i / 8, bit = 7 - i % 8;
		if (((a[byte] >> bit) & 1) != ((c->addr[byte] >> bit) & 1))
			return 0;
	}
	return 1;
}

static void
proxy_free_conf(void *p)
{
	struct proxy_conf *pc = p;

	if (pc == NULL)
		return;
	free(pc->strip);
	free(pc);
}

/* Whether s[0..len) is a token (RFC 9110 5.6.2). */
static int
is_token(const char *s, size_t len)
{
	static const char tspecial[] = "!#$%&'*+-.^_`|~";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
		    (c == '\0' || strchr(tspecial, c) == NULL))
			return 0;
	}
	return len > 0;
}

/*
 * upgrade = off | PROTOCOL[/VERSION] ...: the protocols a client may switch
 * to through this route.  Whatever else an Upgrade offers is not passed on,
 * since after a 101 the tunnel's bytes bypass routes and header rules.
 */
static int
configure_upgrade(struct conf_ctx *ctx, struct proxy_conf *pc, const struct conf_kv *k)
{
	char *copy = strdup(k->value), *save = NULL, *tok;
	int rc = 0;

	if (copy == NULL)
		return -1;
	pc->nupgrade = 0;
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL; tok = strtok_r(NULL, " \t,", &save)) {
		const char *slash = strchr(tok, '/');
		size_t len = strlen(tok), nlen = slash != NULL ? (size_t)(slash - tok) : len;
		if (strcmp(tok, "off") == 0 && strcmp(k->value, "off") == 0)
			break; /* alone: no protocol at all */
		if (strcmp(tok, "off") == 0 || !is_token(tok, nlen) ||
		    (slash != NULL && !is_token(slash + 1, len - nlen - 1))) {
			conf_err(ctx, k->line, ctx->section, "upgrade",
			    "expected off or protocol names such as websocket, not \"%s\"", tok);
			rc = -1;
			break;
		}
		if ((nlen == 3 && strncasecmp(tok, "h2c", 3) == 0) ||
		    (nlen == 2 && strncasecmp(tok, "h2", 2) == 0)) {
			conf_err(ctx, k->line, ctx->section, "upgrade", "\"%s\" is never passed on: "
			    "upgrading to HTTP/2 is deprecated (RFC 9113 3.1)", tok);
			rc = -1;
			break;
		}
		if (pc->nupgrade == UPGRADE_MAX || len >= UPGRADE_LEN) {
			conf_err(ctx, k->line, ctx->section, "upgrade", "expected up to %d protocol names "
			    "of up to %d bytes", UPGRADE_MAX, UPGRADE_LEN - 1);
			rc = -1;
			break;
		}
		for (size_t i = 0; i <= len; i++)
			pc->upgrade[pc->nupgrade][i] = (char)tolower((unsigned char)tok[i]);
		pc->nupgrade++;
	}
	free(copy);
	return rc;
}

static int
proxy_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	struct proxy_conf *pc = calloc(1, sizeof(*pc));
	const struct conf_kv *k;
	struct conf_section *sec;
	int on, rc = 0;

	if (pc == NULL)
		return -1;
	rt->hconf = pc;
	sec = conf_section_find(ctx->conf, "pool", kv->value);
	if (sec == NULL) {
		conf_err(ctx, kv->line, ctx->section, "pool", "no [pool:%s] section", kv->value);
		return -1;
	}
	if (sec->data == NULL)
		return -1; /* its own errors were reported */
	pc->pool = sec->data;
	if ((k = conf_route_kv(rt, "strip_prefix")) != NULL) {
		if (units_bool(k->value, &on) < 0) {
			conf_err(ctx, k->line, ctx->section, "strip_prefix", "expected yes or no");
			rc = -1;
		} else if (on && strcmp(rt->path, "/") != 0) {
			pc->strip = strdup(rt->path);
			pc->strip_len = strlen(rt->path);
			/* "/app/" strips "/app", so "/app/x" goes out as "/x" */
			if (pc->strip_len > 1 && pc->strip[pc->strip_len - 1] == '/')
				pc->strip[--pc->strip_len] = '\0';
		}
	}
	if ((k = conf_route_kv(rt, "host_header")) != NULL) {
		if (strcmp(k->value, "backend") == 0)
			pc->host_backend = 1;
		else if (strcmp(k->value, "client") != 0) {
			conf_err(ctx, k->line, ctx->section, "host_header", "expected client or backend");
			rc = -1;
		}
	}
	if ((k = conf_route_kv(rt, "forwarded")) != NULL && units_bool(k->value, &pc->forwarded) < 0) {
		conf_err(ctx, k->line, ctx->section, "forwarded", "expected on or off");
		rc = -1;
	}
	pc->request_buffer = REPLAY_MAX;
	if ((k = conf_route_kv(rt, "request_buffer")) != NULL) {
		uint64_t v;
		if (units_size(k->value, &v) < 0 || v > REQUEST_BUFFER_MAX) {
			conf_err(ctx, k->line, ctx->section, "request_buffer",
			    "expected a size from 0 to 16m");
			rc = -1;
		} else {
			pc->request_buffer = (size_t)v;
		}
	}
	if ((k = conf_route_kv(rt, "trusted_proxies")) != NULL) {
		char *copy = strdup(k->value), *save = NULL, *tok;
		for (tok = strtok_r(copy, " \t,", &save); tok != NULL; tok = strtok_r(NULL, " \t,", &save)) {
			if (pc->ntrusted == MAX_TRUSTED || parse_cidr(tok, &pc->trusted[pc->ntrusted]) < 0) {
				conf_err(ctx, k->line, ctx->section, "trusted_proxies",
				    "expected up to %d addresses or CIDR blocks, not \"%s\"", MAX_TRUSTED, tok);
				rc = -1;
				break;
			}
			pc->ntrusted++;
		}
		free(copy);
	}
	pc->underscores = ctx->conf->global.underscores_in_headers;
	if ((k = conf_route_kv(rt, "request_id")) != NULL) {
		if (strcmp(k->value, "trusted") == 0)
			pc->request_id = RID_TRUSTED;
		else if (strcmp(k->value, "keep") == 0)
			pc->request_id = RID_KEEP;
		else if (strcmp(k->value, "generate") == 0)
			pc->request_id = RID_GENERATE;
		else {
			conf_err(ctx, k->line, ctx->section, "request_id",
			    "expected trusted, keep or generate");
			rc = -1;
		}
	}
	/* WebSocket, and nothing else, unless the route says otherwise. */
	pc->nupgrade = 1;
	strcpy(pc->upgrade[0], "websocket");
	if ((k = conf_route_kv(rt, "upgrade")) != NULL && configure_upgrade(ctx, pc, k) < 0)
		rc = -1;
	return rc;
}

static int
proxy_configure_section(struct conf_ctx *ctx, struct conf_section *sec)
{
	return pool_configure(ctx, sec);
}

/* ---- per-worker state ---- */

static void *
proxy_worker_new(void)
{
	return calloc(1, sizeof(struct proxy_worker));
}

static void
upstream_free(struct upstream *u)
{
	if (u->rarmed)
		event_del(&u->ev);
	if (u->warmed)
		event_del(&u->wev);
	if (u->ssl != NULL) {
		if (u->state == U_ACTIVE || u->state == U_IDLE)
			SSL_shutdown(u->ssl);
		SSL_free(u->ssl);
		ERR_clear_error();
	}
	close(u->fd);
	sbuf_free(&u->out);
	free(u->in);
	free(u);
}

static void
proxy_worker_free(void *p)
{
	struct proxy_worker *pxw = p;

	for (size_t i = 0; i < pxw->n; i++) {
		struct pool_worker *pw = pxw->pws[i];
		for (unsigned s = 0; s < POOL_MAX_SERVERS; s++) {
			struct upstream *u;
			while ((u = LIST_FIRST(&pw->idle[s])) != NULL) {
				LIST_REMOVE(u, link);
				upstream_free(u);
			}
		}
		while (pw->spare != NULL) {
			struct proxy_req *pr = pw->spare;
			pw->spare = pr->u;
			sbuf_free(&pr->head);
			sbuf_free(&pr->replay);
			free(pr);
		}
		free(pw);
	}
	free(pxw->pws);
	free(pxw);
}

static struct pool_worker *
pool_worker_for(struct request *r, const struct pool *pool)
{
	struct proxy_worker *pxw = worker_handler_state(r->conn->w, &proxy_ops);

	if (pxw == NULL)
		return NULL;
	for (size_t i = 0; i < pxw->n; i++)
		if (pxw->pws[i]->pool == pool)
			return pxw->pws[i];
	struct pool_worker **v = realloc(pxw->pws, (pxw->n + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	pxw->pws = v;
	struct pool_worker *pw = calloc(1, sizeof(*pw));
	if (pw == NULL)
		return NULL;
	pw->pool = pool;
	pw->rng = (uint64_t)(uintptr_t)pw ^ (uint64_t)pool_now_ms();
	struct event_base *base = r->conn->w->base;
#define CT(ms) event_base_init_common_timeout(base, &(struct timeval){ (ms) / 1000, ((ms) % 1000) * 1000 })
	pw->tv_connect = CT(pool->connect_timeout);
	pw->tv_send = CT(pool->send_timeout);
	pw->tv_read = CT(pool->read_timeout);
	pw->tv_idle = CT(pool->keepalive_timeout);
	pw->tv_tunnel = CT(pool->tunnel_timeout);
#undef CT
	for (unsigned s = 0; s < POOL_MAX_SERVERS; s++)
		LIST_INIT(&pw->idle[s]);
	v[pxw->n++] = pw;
	pool_worker_register(pw);
	return pw;
}

/* ---- the request head for the backend ---- */

/* Whether a Connection field of the message names h (RFC 9110 7.6.1). */
static int
named_in_connection(const struct http_header *hs, unsigned n, const struct http_header *h)
{
	for (unsigned i = 0; i < n; i++) {
		const struct http_header *c = &hs[i];
		if (!http_token_eq(c->name, c->name_len, "connection"))
			continue;
		const char *p = c->value, *tok;
		size_t len;
		while (http_list_next(&p, c->value + c->value_len, &tok, &len))
			if (len == h->name_len && strncasecmp(tok, h->name, len) == 0)
				return 1;
	}
	return 0;
}

static int
is_hop_header(const struct http_header *h, const struct http_request *hr)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "te", "trailer", "upgrade", "transfer-encoding",
		"content-length", "host", "expect", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
		"x-client-cert-subject", "x-client-cert-fingerprint",
		NULL,
	};
	for (size_t i = 0; hop[i] != NULL; i++)
		if (http_token_eq(h->name, h->name_len, hop[i]))
			return 1;
	if (h->name_len >= 6 && strncasecmp(h->name, "proxy-", 6) == 0)
		return 1; /* Proxy-* is for the proxy, not the origin */
	/* And whatever the Connection header names. */
	return named_in_connection(hr->headers, hr->nheaders, h);
}

/*
 * Whether a header name is lc (lower case), or starts with it when prefix,
 * once '_' and '-' are taken as equal: CGI-style servers (WSGI, PHP, Rack)
 * read both X_Forwarded_For and X-Forwarded-For as HTTP_X_FORWARDED_FOR.
 */
static int
name_folds_to(const char *s, size_t len, const char *lc, int prefix)
{
	size_t i;

	for (i = 0; i < len && lc[i] != '\0'; i++) {
		int c = tolower((unsigned char)s[i]);
		if ((c == '_' ? '-' : c) != lc[i])
			return 0;
	}
	return lc[i] == '\0' && (prefix || i == len);
}

/*
 * Whether a header name with an underscore stands, for a CGI-style server,
 * for one that portico sets, replaces or strips: such a name is never passed
 * on, even with underscores_in_headers, or a client could forge what
 * portico vouches for (X_Client_Cert_Subject for a certificate).  Names
 * without a '-' (Host, Connection, TE, Upgrade, Forwarded...) are left out:
 * a name with '_' never folds to one.
 */
static int
folds_to_ours(const struct http_header *h)
{
	static const char *const names[] = {
		"content-length", "transfer-encoding", "keep-alive", "max-forwards", "x-real-ip",
		"x-request-id", NULL,
	};
	static const char *const prefixes[] = { "x-forwarded-", "x-client-cert-", "proxy-", NULL };

	for (size_t i = 0; names[i] != NULL; i++)
		if (name_folds_to(h->name, h->name_len, names[i], 0))
			return 1;
	for (size_t i = 0; prefixes[i] != NULL; i++)
		if (name_folds_to(h->name, h->name_len, prefixes[i], 1))
			return 1;
	return 0;
}

/* The length of the protocol name in an Upgrade element "name[/version]". */
static size_t
protocol_name_len(const char *tok, size_t len)
{
	const char *slash = memchr(tok, '/', len);

	return slash != NULL ? (size_t)(slash - tok) : len;
}

/*
 * Whether the route lets the protocol tok[0..len) of an Upgrade through:
 * an upgrade entry "name" allows the protocol at any version, one with
 * "/version" that version only, both compared without regard to case.
 * O(entries), at most UPGRADE_MAX, and only for requests with an Upgrade.
 */
static int
upgrade_allowed(const struct proxy_conf *pc, const char *tok, size_t len)
{
	size_t nlen = protocol_name_len(tok, len);

	for (unsigned i = 0; i < pc->nupgrade; i++) {
		const char *a = pc->upgrade[i];
		size_t alen = strlen(a);
		if ((alen == len && strncasecmp(a, tok, len) == 0) ||
		    (strchr(a, '/') == NULL && alen == nlen && strncasecmp(a, tok, nlen) == 0))
			return 1;
	}
	return 0;
}

/*
 * Appends to b (when not NULL) the protocols of the client's Upgrade lines
 * that the route allows, as one list, and returns how many there are: with
 * none, the request goes on as a plain one.
 */
static unsigned
upgrade_offer(const struct proxy_conf *pc, const struct http_request *hr, struct sbuf *b)
{
	unsigned n = 0;

	if (!(hr->flags & HTTP_F_UPGRADE))
		return 0; /* without Connection: upgrade, Upgrade is only hop-by-hop */
	for (unsigned i = 0; i < hr->nheaders; i++) {
		const struct http_header *h = &hr->headers[i];
		const char *p = h->value, *tok;
		size_t len;
		if (!http_token_eq(h->name, h->name_len, "upgrade"))
			continue;
		while (http_list_next(&p, h->value + h->value_len, &tok, &len)) {
			if (!upgrade_allowed(pc, tok, len))
				continue;
			if (b != NULL) {
				sbuf_str(b, n > 0 ? ", " : "Connection: upgrade\r\nUpgrade: ");
				sbuf_add(b, tok, len);
			}
			n++;
		}
	}
	if (b != NULL && n > 0)
		sbuf_str(b, "\r\n");
	return n;
}

/*
 * Whether a 101 switches to protocols we offered (RFC 9110 7.8: its
 * Upgrade names them): each must be allowed and be one the client asked for.
 */
static int
upgrade_answer_ok(const struct proxy_conf *pc, const struct http_request *hr,
    const struct http_response *rs)
{
	unsigned n = 0;

	for (unsigned i = 0; i < rs->nheaders; i++) {
		const struct http_header *h = &rs->headers[i];
		const char *p = h->value, *tok;
		size_t len;
		if (!http_token_eq(h->name, h->name_len, "upgrade"))
			continue;
		while (http_list_next(&p, h->value + h->value_len, &tok, &len)) {
			size_t nlen = protocol_name_len(tok, len);
			int asked = 0;
			if (!upgrade_allowed(pc, tok, len))
				return 0;
			for (unsigned j = 0; j < hr->nheaders && !asked; j++) {
				const struct http_header *c = &hr->headers[j];
				const char *q = c->value, *ct;
				size_t clen;
				if (!http_token_eq(c->name, c->name_len, "upgrade"))
					continue;
				while (!asked && http_list_next(&q, c->value + c->value_len, &ct, &clen))
					asked = protocol_name_len(ct, clen) == nlen &&
					    strncasecmp(ct, tok, nlen) == 0;
			}
			if (!asked)
				return 0;
			n++;
		}
	}
	return n > 0;
}

/* Whether a client's X-Request-Id may be passed on: 1 to REQUEST_ID_MAX
 * visible ASCII characters (it goes into the server's logs). */
static int
request_id_ok(const struct http_header *h)
{
	if (h->value_len == 0 || h->value_len > REQUEST_ID_MAX)
		return 0;
	for (size_t i = 0; i < h->value_len; i++)
		if ((unsigned char)h->value[i] <= 0x20 || (unsigned char)h->value[i] >= 0x7f)
			return 0;
	return 1;
}

/* The subject of a client certificate too long for X-Client-Cert-Subject:
 * said once a connection, and within the worker's budget for client
 * trouble, since a client can make it happen on every request. */
static void
note_long_subject(struct conn *c, ssize_t len)
{
	char peer[INET6_ADDRSTRLEN];

	if (c->cert_noted)
		return;
	c->cert_noted = 1;
	if (log_enabled(LOG_LVL_WARN) && worker_log_client_error(c->w))
		log_warnx("conn %d from %s: client certificate subject of %zd bytes is longer "
		    "than %d: X-Client-Cert-Subject not sent", c->fd, conn_peer(c, peer, sizeof(peer)),
		    len, CERT_SUBJECT_MAX);
}

/* Appends the path for the backend: the target as sent, or with the route prefix stripped. */
static void
add_target(struct sbuf *b, const struct request *r, const struct proxy_conf *pc)
{
	const struct http_request *hr = r->hr;

	if (hr->meth == HTTP_M_OPTIONS && (hr->flags & HTTP_F_NO_PATH) && hr->query == NULL) {
		sbuf_str(b, "*"); /* RFC 9112 3.2.4: OPTIONS http://h is OPTIONS * to the origin */
		return;
	}
	if (pc->strip == NULL) {
		sbuf_add(b, hr->path, hr->path_len);
	} else {
		/* Strip from the normalized path, then escape what must be. */
		const char *p = r->npath + pc->strip_len;
		size_t n = r->npath_len - pc->strip_len;
		static const char hex[] = "0123456789ABCDEF";
		if (n == 0 || p[0] != '/')
			sbuf_str(b, "/");
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c <= 0x20 || c >= 0x7f || c == '%' || c == '?' || c == '#') {
				char e[3] = { '%', hex[c >> 4], hex[c & 15] };
				sbuf_add(b, e, 3);
			} else {
				sbuf_add(b, p + i, 1);
			}
		}
	}
	if (hr->query != NULL) {
		sbuf_str(b, "?");
		sbuf_add(b, hr->query, hr->query_len);
	}
}

static long max_forwards(const struct http_request *hr);

static void
build_head(struct proxy_req *pr)
{
	struct request *r = pr->r;
	const struct http_request *hr = r->hr;
	const struct proxy_conf *pc = pr->pc;
	struct sbuf *b = &pr->head;
	char peer[INET6_ADDRSTRLEN];
	const struct http_header *xff = NULL, *rid = NULL;
	unsigned nrid = 0;
	int trusted = 0;
	long mf = max_forwards(hr);

	conn_peer(r->conn, peer, sizeof(peer));
	for (unsigned i = 0; i < pc->ntrusted && !trusted; i++)
		trusted = cidr_match(&pc->trusted[i], &r->conn->peer);
	sbuf_add(b, hr->method, hr->method_len);
	sbuf_str(b, " ");
	add_target(b, r, pc);
	sbuf_str(b, " HTTP/1.1\r\nHost: ");
	if (pc->host_backend || hr->host == NULL || hr->host_len == 0)
		sbuf_str(b, pc->pool->servers[pr->u != NULL ? pr->u->idx : 0].name);
	else
		sbuf_add(b, hr->host, hr->host_len);
	sbuf_str(b, "\r\n");
	for (unsigned i = 0; i < hr->nheaders; i++) {
		const struct http_header *h = &hr->headers[i];
		/* Names with '_' are dropped, as nginx does, unless
		 * underscores_in_headers; and never one a CGI server would
		 * read as ours. */
		if (memchr(h->name, '_', h->name_len) != NULL && (!pc->underscores || folds_to_ours(h)))
			continue;
		if (http_token_eq(h->name, h->name_len, "x-forwarded-for")) {
			xff = h;
			continue;
		}
		if (http_token_eq(h->name, h->name_len, "x-request-id")) {
			rid = h;
			nrid++;
			continue;
		}
		if (is_hop_header(h, hr))
			continue;
		/* Who the client is, said by anyone but a trusted proxy, is a forgery. */
		if (http_token_eq(h->name, h->name_len, "forwarded") && (pc->forwarded || !trusted))
			continue;
		if (!trusted && http_token_eq(h->name, h->name_len, "x-real-ip"))
			continue;
		if (mf > 0 && http_token_eq(h->name, h->name_len, "max-forwards"))
			continue; /* sent below, one less */
		sbuf_add(b, h->name, h->name_len);
		sbuf_str(b, ": ");
		sbuf_add(b, h->value, h->value_len);
		sbuf_str(b, "\r\n");
	}
	if (mf > 0)
		sbuf_printf(b, "Max-Forwards: %ld\r\n", mf - 1);
	/* X-Forwarded-For grows only behind proxies we trust; else a client could forge it. */
	sbuf_str(b, "X-Forwarded-For: ");
	for (unsigned i = 0; trusted && xff != NULL && i < hr->nheaders; i++) {
		/* Every X-Forwarded-For line, in order (RFC 9110 5.3: one list). */
		const struct http_header *h = &hr->headers[i];
		if (http_token_eq(h->name, h->name_len, "x-forwarded-for") && h->value_len > 0) {
			sbuf_add(b, h->value, h->value_len);
			sbuf_str(b, ", ");
		}
	}
	const char *proto = r->conn->ssl != NULL ? "https" : "http";
	/*
	 * Behind a trusted proxy (a TLS offloader, say) the scheme and host the
	 * client used are the ones that proxy passed on; from anyone else they
	 * are ours to state.
	 */
	const struct http_header *xfp = trusted ? http_find_header(hr, "x-forwarded-proto") : NULL;
	const struct http_header *xfh = trusted ? http_find_header(hr, "x-forwarded-host") : NULL;
	const char *xproto = proto;
	if (xfp != NULL && http_token_eq(xfp->value, xfp->value_len, "https"))
		xproto = "https";
	else if (xfp != NULL && http_token_eq(xfp->value, xfp->value_len, "http"))
		xproto = "http";
	sbuf_printf(b, "%s\r\nX-Forwarded-Proto: %s\r\n", peer, xproto);
	const char *fh = hr->host;
	size_t fhl = hr->host_len;
	if (xfh != NULL && xfh->value_len > 0) {
		fh = xfh->value;
		fhl = xfh->value_len;
	}
	if (fh != NULL && fhl > 0) {
		sbuf_str(b, "X-Forwarded-Host: ");
		sbuf_add(b, fh, fhl);
		sbuf_str(b, "\r\n");
	}
	if (pc->forwarded) {
		int v6 = strchr(peer, ':') != NULL;
		sbuf_str(b, "Forwarded: ");
		/* RFC 7239 4: each proxy appends its element, about the request
		 * it received (so proto and host are ours, not the X-Forwarded
		 * ones); a list from an untrusted peer is dropped, as
		 * X-Forwarded-For is. */
		for (unsigned i = 0; trusted && i < hr->nheaders; i++) {
			const struct http_header *h = &hr->headers[i];
			if (http_token_eq(h->name, h->name_len, "forwarded") && h->value_len > 0) {
				sbuf_add(b, h->value, h->value_len);
				sbuf_str(b, ", ");
			}
		}
		sbuf_printf(b, "for=%s%s%s;proto=%s", v6 ? "\"[" : "", peer, v6 ? "]\"" : "",
		    proto);
		if (hr->host != NULL && hr->host_len > 0) {
			sbuf_str(b, ";host=\"");
			sbuf_add(b, hr->host, hr->host_len);
			sbuf_str(b, "\"");
		}
		sbuf_str(b, "\r\n");
	}
	char subject[CERT_SUBJECT_MAX + 1], fp[72];
	ssize_t sl;
	if (r->conn->ssl != NULL &&
	    (sl = tls_client_cert(r->conn->ssl, subject, sizeof(subject), fp, sizeof(fp))) >= 0) {
		if ((size_t)sl < sizeof(subject))
			sbuf_printf(b, "X-Client-Cert-Subject: %s\r\n", subject);
		else
			note_long_subject(r->conn, sl);
		sbuf_printf(b, "X-Client-Cert-Fingerprint: %s\r\n", fp);
	}
	/* One id, and only from whom the route believes; else a fresh one. */
	int keep_rid = pc->request_id == RID_KEEP || (pc->request_id == RID_TRUSTED && trusted);
	sbuf_str(b, "X-Request-Id: ");
	if (keep_rid && nrid == 1 && request_id_ok(rid)) {
		sbuf_add(b, rid->value, rid->value_len);
	} else {
		struct { const void *p; struct timespec t; uint64_t n; } seed = { pr, r->start, pr->pw->rng++ };
		sbuf_printf(b, "%016llx", (unsigned long long)pool_hash(&seed, sizeof(seed)));
	}
	sbuf_str(b, "\r\n");
	if (pr->body_whole) {
		/* Read whole (request_buffer): its length is known, even if it came chunked. */
		sbuf_printf(b, "Content-Length: %zu\r\n", pr->replay.len);
	} else if (hr->flags & HTTP_F_CHUNKED) {
		sbuf_str(b, "Transfer-Encoding: chunked\r\n");
		pr->body_chunked = 1;
	} else if (hr->flags & HTTP_F_HAS_CL) {
		sbuf_printf(b, "Content-Length: %lld\r\n", (long long)hr->content_length);
	}
	/* A switch to a protocol the route allows (WebSocket) is passed on,
	 * hop by hop; a request offering none goes on as a plain one. */
	if (upgrade_offer(pc, hr, b) == 0 && pc->pool->keepalive == 0) {
		sbuf_str(b, "Connection: close\r\n");
	}
	sbuf_str(b, "\r\n");
}

/* ---- upstream connections ---- */

/*
 * Registers what u waits for in its state.  The read event stays in epoll
 * for the connection's life and only its (common) timeout changes, so a
 * kept-alive connection costs no epoll_ctl per request; the write event is
 * there only while connecting or while output is backed up.
 */
static void
u_arm(struct upstream *u)
{
	const struct pool_worker *pw = u->pw;
	const struct timeval *rtv = NULL;
	int want_read = 1, want_write = 0;
	const struct timeval *wtv = pw->tv_send;

	if (u->state == U_CONNECTING) {
		want_read = 0;
		want_write = 1;
		wtv = pw->tv_connect;
	} else if (u->state == U_HANDSHAKE) {
		want_read = !u->hs_write;
		want_write = u->hs_write;
		rtv = wtv = pw->tv_connect;
	} else if (u->state == U_IDLE) {
		rtv = pw->tv_idle;
	} else {
		rtv = u->pr != NULL && u->pr->rs == R_TUNNEL ? pw->tv_tunnel : pw->tv_read;
		want_write = u->osent < u->out.len;
		want_read = !(u->pr != NULL && u->pr->reading_paused);
	}
	if (want_read && (!u->rarmed || u->rtv != rtv)) {
		event_add(&u->ev, rtv);
		u->rarmed = 1;
		u->rtv = rtv;
	} else if (!want_read && u->rarmed) {
		event_del(&u->ev);
		u->rarmed = 0;
	}
	if (want_write && !u->warmed) {
		event_add(&u->wev, wtv);
		u->warmed = 1;
	} else if (!want_write && u->warmed) {
		event_del(&u->wev);
		u->warmed = 0;
	}
}

static struct upstream *
u_connect(struct proxy_req *pr, unsigned idx)
{
	const struct backend *b = &pr->pw->pool->servers[idx];
	struct upstream *u = calloc(1, sizeof(*u));
	int one = 1;

	if (u == NULL)
		return NULL;
	socklen_t alen;
	const struct sockaddr *sa = backend_addr(b, &alen);
	if (sa == NULL) {
		free(u);
		return NULL;
	}
	u->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		free(u);
		return NULL;
	}
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->base = pr->r->conn->w->base;
	u->pw = pr->pw;
	u->idx = idx;
	event_assign(&u->ev, u->base, u->fd, EV_READ | EV_PERSIST, u_on_event, u);
	event_assign(&u->wev, u->base, u->fd, EV_WRITE | EV_PERSIST, u_on_event, u);
	/* Refused at once (loopback does that) or in progress: either way the
	 * socket turns writable and u_on_event looks at the outcome. */
	(void)connect(u->fd, sa, alen);
	u->state = U_CONNECTING;
	return u;
}

/* Starts TLS on a connected socket (see pool_tls_new). */
static int
u_tls_start(struct upstream *u)
{
	if ((u->ssl = pool_tls_new(u->pw->pool, u->idx, u->fd)) == NULL)
		return -1;
	u->state = U_HANDSHAKE;
	return 0;
}

/* Puts u back into its worker's idle list, or closes it. */
static void
u_release(struct upstream *u, int reusable)
{
	struct pool_worker *pw = u->pw;
	const struct pool *p = pw->pool;

	u->pr = NULL;
	if (!reusable || pw->nidle[u->idx] >= p->keepalive || u->inlen > 0) {
		upstream_free(u);
		return;
	}
	u->state = U_IDLE;
	u->out.len = 0;
	u->osent = 0;
	LIST_INSERT_HEAD(&pw->idle[u->idx], u, link);
	pw->nidle[u->idx]++;
	u_arm(u);
}

/* ---- the exchange ---- */

#define SPARE_MAX 64 /* request states a worker keeps for reuse, per pool */

/* Returns pr to its worker's spares (its buffers kept), or frees it. */
static void
pr_free(struct proxy_req *pr)
{
	struct pool_worker *pw = pr->pw;

	if (pw->nspare < SPARE_MAX && pr->replay.cap <= REPLAY_MAX && pr->head.cap <= 16384) {
		pr->u = pw->spare; /* the spare list links through u */
		pw->spare = pr;
		pw->nspare++;
		return;
	}
	sbuf_free(&pr->head);
	sbuf_free(&pr->replay);
	free(pr);
}

/* A clean request state, recycled when one is spare. */
static struct proxy_req *
pr_new(struct pool_worker *pw)
{
	struct proxy_req *pr = pw->spare;

	if (pr == NULL)
		return calloc(1, sizeof(*pr));
	pw->spare = pr->u;
	pw->nspare--;
	struct sbuf head = pr->head, replay = pr->replay;
	/* Everything before the response head; http_response_reset does the rest. */
	memset(pr, 0, offsetof(struct proxy_req, resp));
	pr->head = head;
	pr->replay = replay;
	pr->head.len = pr->replay.len = 0;
	pr->head.failed = pr->replay.failed = 0;
	return pr;
}

static void
count_done(struct proxy_req *pr, int ok)
{
	if (pr->u == NULL)
		return;
	struct backend *b = &pr->pw->pool->servers[pr->u->idx];
	atomic_fetch_sub(&b->active, 1);
	pr->pw->active[pr->u->idx]--;
	if (ok)
		pool_server_ok(pr->pw, pr->u->idx, (uint64_t)(pool_now_ms() - pr->t0) * 1000);
}

/* The response is complete: hand the connection back and finish the client side. */
static void
finish(struct proxy_req *pr, int reusable)
{
	struct request *r = pr->r;
	struct upstream *u = pr->u;

	count_done(pr, 1);
	pr->u = NULL;
	r->hdata = NULL;
	u_release(u, reusable && pr->body_done);
	pr_free(pr);
	http_resp_end(r);
}

/* Gives up: an error answer if nothing was sent yet, else cut the client off. */
static void
fail(struct proxy_req *pr, int status, const char *why)
{
	struct request *r = pr->r;

	if (pr->u != NULL) {
		count_done(pr, 0);
		upstream_free(pr->u);
		pr->u = NULL;
	}
	if (worker_log_backend_error(r->conn->w))
		log_warnx("proxy [pool:%s] %.*s: %d: %s", pr->pw->pool->name, (int)r->hr->line_len,
		    r->hr->line, status, why);
	r->hdata = NULL;
	int started = pr->resp_started;
	pr_free(pr);
	if (started) {
		http_resp_abort(r, why);
		return;
	}
	if (status == 503)
		http_resp_error_hdr(r, 503, "Retry-After", "1");
	else
		http_resp_error(r, status);
}

static int idempotent(const struct http_request *hr);

/*
 * Whether the request may go out again: no response byte reached the
 * client, the body sent so far is still at hand, and either nothing was
 * sent at all or the method is idempotent (RFC 9110 9.2.2).
 */
static int
may_replay(const struct proxy_req *pr, int nothing_sent)
{
	if (pr->resp_started || pr->replay_lost)
		return 0; /* what was queued of the body is gone with the old connection */
	return nothing_sent || idempotent(pr->r->hr);
}

static int
idempotent(const struct http_request *hr)
{
	switch (hr->meth) {
	case HTTP_M_GET: case HTTP_M_HEAD: case HTTP_M_PUT: case HTTP_M_DELETE:
	case HTTP_M_OPTIONS: case HTTP_M_TRACE:
		return 1;
	default:
		return 0;
	}
}

/*
 * A backend failed before answering.  Another server gets the request if
 * retries remain and replaying is safe: nothing was sent (connect failed),
 * or the method is idempotent and no body byte went out.
 */
static void
backend_failed(struct proxy_req *pr, int status, const char *why, int nothing_sent)
{
	const struct pool *p = pr->pw->pool;
	unsigned idx = pr->u->idx;

	pool_server_failed(pr->pw, idx);
	if (worker_log_backend_error(pr->r->conn->w))
		log_warnx("proxy [pool:%s] server %s: %s", p->name, p->servers[idx].name, why);
	pr->last_status = status;
	pr->last_why = why;
	if (pr->attempts <= p->retries && may_replay(pr, nothing_sent)) {
		count_done(pr, 0);
		upstream_free(pr->u);
		pr->u = NULL;
		attempt(pr);
		return;
	}
	fail(pr, status, why);
}

/* An idle connection the backend has not closed: no EOF or data waiting. */
static int
idle_alive(struct upstream *u)
{
	char c;

	if (u->ssl != NULL) {
		/* Session tickets and the like are consumed; data or a close is not. */
		ERR_clear_error();
		int n = SSL_peek(u->ssl, &c, 1);
		return n <= 0 && SSL_get_error(u->ssl, n) == SSL_ERROR_WANT_READ;
	}
	ssize_t n = recv(u->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void
attempt(struct proxy_req *pr)
{
	struct pool_worker *pw = pr->pw;
	const struct pool *p = pw->pool;
	uint64_t key = 0;
	int idx;

	if (p->balance->needs_key) {
		if (p->hash_header == NULL) {
			const struct sockaddr_in6 *a = &pr->r->conn->peer;
			key = a->sin6_family == AF_INET ?
			    pool_hash(&((const struct sockaddr_in *)a)->sin_addr, 4) :
			    pool_hash(&a->sin6_addr, 16);
		} else {
			const struct http_header *h = http_find_header(pr->r->hr, p->hash_header);
			key = h != NULL ? pool_hash(h->value, h->value_len) : 0;
		}
	}
	idx = pool_select(pw, pr->tried, key);
	if (idx < 0) {
		if (pr->last_status != 0)
			fail(pr, pr->last_status, pr->last_why); /* every server tried failed */
		else
			fail(pr, 503, "no server available");
		return;
	}
	pr->tried |= 1ULL << idx;
	pr->attempts++;
	/* Whatever an earlier server began to answer is forgotten. */
	http_response_reset(&pr->resp);
	pr->rs = R_HEAD;
	struct upstream *u = LIST_FIRST(&pw->idle[idx]);
	while (u != NULL && !idempotent(pr->r->hr) && !idle_alive(u)) {
		/* A request we could not replay gets no connection the backend
		 * may already have closed. */
		LIST_REMOVE(u, link);
		pw->nidle[idx]--;
		upstream_free(u);
		u = LIST_FIRST(&pw->idle[idx]);
	}
	if (u != NULL && !pr->fresh_retry) {
		LIST_REMOVE(u, link);
		pw->nidle[idx]--;
		u->reused = 1;
		u->state = U_ACTIVE;
	} else if ((u = u_connect(pr, (unsigned)idx)) == NULL) {
		pr->u = NULL;
		pool_server_failed(pw, (unsigned)idx);
		fail(pr, 502, "cannot create a socket");
		return;
	}
	u->pr = pr;
	pr->u = u;
	pw->active[idx]++;
	atomic_fetch_add(&p->servers[idx].active, 1);
	/* Built per attempt: with host_header = backend the Host names the server. */
	pr->head.len = 0;
	build_head(pr);
	if (sbuf_failed(&pr->head)) {
		fail(pr, 500, "out of memory");
		return;
	}
	u->out.len = 0;
	u->osent = 0;
	sbuf_add(&u->out, pr->head.p, pr->head.len);
	if (pr->replay.len > 0)
		sbuf_add(&u->out, pr->replay.p, pr->replay.len);
	/* A kept-alive connection takes the request at once: no wait for writable. */
	if (u->state == U_ACTIVE && u_write(u) < 0)
		return;
	u_arm(u);
}

/* Writes what is queued for the backend.  Returns -1 if pr ended. */
static int
u_write(struct upstream *u)
{
	struct proxy_req *pr = u->pr;

	while (u->osent < u->out.len) {
		ssize_t n = tls_io_send(u->fd, u->ssl, u->out.p + u->osent, u->out.len - u->osent, 0);
		if (n > 0) {
			u->osent += (size_t)n;
			if (u->osent > pr->head.len)
				pr->body_written = 1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (u->reused && !pr->fresh_retry && u->inlen == 0 && may_replay(pr, u->osent == 0)) {
			/* A kept-alive connection the backend had closed: once more, fresh. */
			retry_fresh(pr);
			return -1;
		}
		backend_failed(pr, 502, n < 0 ? strerror(errno) : "send returned 0", 0);
		return -1;
	}
	u->out.len = 0;
	u->osent = 0;
	if (pr->client_eof)
		shutdown(u->fd, SHUT_WR);
	if (pr->client_paused) {
		pr->client_paused = 0;
		http_req_resume(pr->r);
	}
	return 0;
}

/* Copies response headers the client should see. */
static void
copy_response_headers(struct proxy_req *pr)
{
	static const char *const skip[] = {
		"connection", "keep-alive", "te", "trailer", "transfer-encoding", "content-length",
		"upgrade", "proxy-connection", "date", "server", NULL,
	};
	const struct http_response *rs = &pr->resp;

	for (unsigned i = 0; i < rs->nheaders; i++) {
		const struct http_header *h = &rs->headers[i];
		size_t k;
		for (k = 0; skip[k] != NULL; k++)
			if (http_token_eq(h->name, h->name_len, skip[k]))
				break;
		if (skip[k] != NULL || named_in_connection(rs->headers, rs->nheaders, h))
			continue;
		/* Checked by the response parser; the head fits its buffer. */
		http_resp_header_n(pr->r, h->name, h->name_len, h->value, h->value_len);
	}
}

/* The backend switched protocols: answer 101 and relay bytes both ways. */
static int
tunnel_begin(struct proxy_req *pr, size_t head_len)
{
	struct request *r = pr->r;
	const struct http_header *up = NULL;

	for (unsigned i = 0; i < pr->resp.nheaders; i++)
		if (http_token_eq(pr->resp.headers[i].name, pr->resp.headers[i].name_len, "upgrade"))
			up = &pr->resp.headers[i];
	http_resp_start(r, 101, NULL, -1);
	http_resp_header(r, "Connection", "upgrade");
	if (up != NULL) {
		char v[256];
		snprintf(v, sizeof(v), "%.*s", (int)up->value_len, up->value);
		http_resp_header(r, "Upgrade", v);
	}
	copy_response_headers(pr);
	memmove(pr->u->in, pr->u->in + head_len, pr->u->inlen - head_len);
	pr->u->inlen -= head_len;
	pr->resp_started = 1;
	pr->rs = R_TUNNEL;
	pr->body_done = 1;
	count_done(pr, 1);
	atomic_fetch_add(&pr->pw->pool->servers[pr->u->idx].active, 1); /* still busy */
	pr->pw->active[pr->u->idx]++;
	http_tunnel_start(r);
	if (r->hdata != pr)
		return -1;
	return 0;
}

/* The response head is in: start the client's response.  Returns -1 if pr ended. */
static int
response_head(struct proxy_req *pr, size_t head_len)
{
	struct http_response *rs = &pr->resp;
	struct request *r = pr->r;
	struct upstream *u = pr->u;
	int64_t clen = -1;

	if (rs->status == 101) {
		if (upgrade_offer(pr->pc, r->hr, NULL) == 0)
			return backend_failed(pr, 502, "101 Switching Protocols not asked for", 0), -1;
		if (!upgrade_answer_ok(pr->pc, r->hr, rs))
			return backend_failed(pr, 502, "101 Switching Protocols to a protocol not offered",
			    0), -1;
		return tunnel_begin(pr, head_len);
	}
	if (rs->status >= 100 && rs->status < 200) {
		/*
		 * Interim answers go on to an HTTP/1.1 client (RFC 9110 15.2), such
		 * as 103 Early Hints; 100 Continue is ours to give, from our own
		 * reading of the body, and a 1.0 client gets none.
		 */
		if (++pr->interim > INTERIM_MAX)
			return backend_failed(pr, 502, "too many interim responses", 0), -1;
		if (rs->status != 100 && http_resp_interim(r, rs->status, rs->reason, rs->reason_len)) {
			copy_response_headers(pr);
			http_resp_interim_end(r);
		}
		memmove(u->in, u->in + head_len, u->inlen - head_len);
		u->inlen -= head_len;
		http_response_reset(rs);
		return 0;
	}
	if (r->hr->meth == HTTP_M_HEAD || rs->status == 204 || rs->status == 304) {
		pr->rs = R_DONE;
		if (rs->flags & HTTP_F_HAS_CL)
			clen = rs->content_length;
	} else if (rs->flags & HTTP_F_CHUNKED) {
		pr->rs = R_CHUNKED;
		http_chunked_init(&pr->ch);
	} else if (rs->flags & HTTP_F_HAS_CL) {
		pr->rs = rs->content_length > 0 ? R_LENGTH : R_DONE;
		pr->resp_left = clen = rs->content_length;
	} else {
		pr->rs = R_CLOSE;
	}
	pr->framed = pr->rs != R_CLOSE;
	http_resp_start_reason(r, rs->status, rs->reason, rs->reason_len, NULL, clen);
	if (rs->status == 304 && (rs->flags & HTTP_F_HAS_CL)) {
		/* The size a 200 would have had (RFC 9110 8.6), as nginx passes it on. */
		char n[24];
		snprintf(n, sizeof(n), "%lld", (long long)rs->content_length);
		http_resp_header(r, "Content-Length", n);
	}
	copy_response_headers(pr);
	pr->resp_started = 1;
	memmove(u->in, u->in + head_len, u->inlen - head_len);
	u->inlen -= head_len;
	return 0;
}

/* Moves response bytes from the backend to the client.  Returns -1 once
 * pr has ended (finished, failed or moved to another server). */
static int
response_bytes(struct proxy_req *pr)
{
	struct upstream *u = pr->u;
	struct request *r = pr->r;
	struct worker *w = r->conn->w;

	while (!pr->reading_paused) {
		if (pr->rs == R_HEAD) {
			if (u->inlen == 0)
				return 0;
			ssize_t n = http_parse_response(&pr->resp, u->in, u->inlen, &w->limits);
			if (n == 0) {
				if (u->inlen < UPSTREAM_IN_SIZE)
					return 0;
				backend_failed(pr, 502, "response head too large", 0);
				return -1;
			}
			if (n < 0) {
				backend_failed(pr, 502, pr->resp.error, 0);
				return -1;
			}
			if (response_head(pr, (size_t)n) < 0)
				return -1;
			continue;
		}
		if (pr->rs == R_DONE) {
			/* Reusable only when the response framed itself and said keep-alive. */
			finish(pr, pr->framed && (pr->resp.flags & HTTP_F_KEEPALIVE));
			return -1;
		}
		if (u->inlen == 0)
			return 0;
		size_t used = 0;
		if (pr->rs == R_TUNNEL) {
			http_tunnel_write(r, u->in, u->inlen);
			used = u->inlen;
		} else if (pr->rs == R_LENGTH) {
			size_t n = (uint64_t)pr->resp_left < u->inlen ? (size_t)pr->resp_left : u->inlen;
			http_resp_body(r, u->in, n);
			pr->resp_left -= (int64_t)n;
			used = n;
			if (pr->resp_left == 0)
				pr->rs = R_DONE;
		} else if (pr->rs == R_CHUNKED) {
			size_t off, len;
			ssize_t n = http_chunked_parse(&pr->ch, u->in, u->inlen, &off, &len, 64 * 1024);
			if (n < 0) {
				fail(pr, 502, "bad chunked framing from backend");
				return -1;
			}
			if (len > 0)
				http_resp_body(r, u->in + off, len);
			used = (size_t)n;
			if (pr->ch.state == CHUNK_DONE)
				pr->rs = R_DONE;
		} else {
			http_resp_body(r, u->in, u->inlen);
			used = u->inlen;
		}
		memmove(u->in, u->in + used, u->inlen - used);
		u->inlen -= used;
		/* Client output backed up: stop reading the backend until it drains. */
		if (http_resp_pending(r) > HTTP_OUT_HIGH_WATER) {
			pr->reading_paused = 1;
			u_arm(u);
		}
	}
	return 0;
}

/* Retries on a fresh connection to the same server after a kept-alive one
 * turned out closed, keeping any queued body bytes. */
static void
retry_fresh(struct proxy_req *pr)
{
	struct upstream *u = pr->u;

	pr->fresh_retry = 1;
	pr->tried &= ~(1ULL << u->idx);
	pr->attempts--;
	count_done(pr, 0);
	upstream_free(u);
	pr->u = NULL;
	attempt(pr);
}

/* Reads from the backend.  Returns -1 once pr has ended or moved on. */
static int
u_read(struct upstream *u)
{
	struct proxy_req *pr = u->pr;

	if (u->in == NULL && (u->in = malloc(UPSTREAM_IN_SIZE)) == NULL) {
		fail(pr, 502, "out of memory");
		return -1;
	}
	ssize_t n = tls_io_recv(u->fd, u->ssl, u->in + u->inlen, UPSTREAM_IN_SIZE - u->inlen);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n > 0) {
		u->inlen += (size_t)n;
		if (response_bytes(pr) < 0)
			return -1;
		/* Decrypted bytes left inside OpenSSL will not wake the socket. */
		if (u->ssl != NULL && SSL_has_pending(u->ssl) && !pr->reading_paused)
			event_active(&u->ev, EV_READ, 0);
		return 0;
	}
	if (pr->rs == R_TUNNEL) {
		/* The backend is done: the client gets what is queued, then the close. */
		struct request *r = pr->r;
		count_done(pr, 0);
		upstream_free(u);
		pr->u = NULL;
		r->hdata = NULL;
		pr_free(pr);
		http_tunnel_close(r);
		return -1;
	}
	if (pr->rs == R_CLOSE) {
		/* The close ends a close-delimited body. */
		pr->rs = R_DONE;
		return response_bytes(pr);
	}
	if (pr->rs == R_HEAD && pr->resp.pos == 0 && u->inlen == 0 && u->reused &&
	    !pr->fresh_retry && may_replay(pr, 0)) {
		/* The kept-alive connection was closed under us: once more, fresh. */
		retry_fresh(pr);
		return -1;
	}
	if (pr->rs == R_HEAD)
		backend_failed(pr, 502, n == 0 ? "closed before answering" : strerror(errno), 0);
	else
		fail(pr, 502, "backend closed mid-response");
	return -1;
}

static void
u_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	struct proxy_req *pr = u->pr;

	(void)fd;
	if (u->state == U_IDLE) {
		/* An idle connection spoke or closed, or timed out: drop it.  Over
		 * TLS, records that are not data (tickets) are not speaking. */
		if (!(what & EV_TIMEOUT) && u->ssl != NULL && idle_alive(u))
			return;
		LIST_REMOVE(u, link);
		u->pw->nidle[u->idx]--;
		upstream_free(u);
		return;
	}
	if (what & EV_TIMEOUT) {
		if (u->state == U_CONNECTING || u->state == U_HANDSHAKE)
			backend_failed(pr, 504, u->state == U_CONNECTING ? "connect timed out" :
			    "TLS handshake timed out", 1);
		else if (pr->rs == R_HEAD)
			backend_failed(pr, 504, u->osent < u->out.len ? "send timed out" : "read timed out", 0);
		else
			fail(pr, 504, "read timed out mid-response");
		return;
	}
	if (u->state == U_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			backend_failed(pr, 502, strerror(err ? err : errno), 1);
			return;
		}
		struct sockaddr_storage ss;
		len = sizeof(ss);
		if (getpeername(u->fd, (struct sockaddr *)&ss, &len) < 0) {
			backend_failed(pr, 502, "connection refused", 1);
			return;
		}
		u->state = U_ACTIVE;
		if (u->pw->pool->servers[u->idx].tls && u_tls_start(u) < 0) {
			backend_failed(pr, 502, "cannot start TLS", 1);
			return;
		}
		what |= EV_WRITE;
	}
	if (u->state == U_HANDSHAKE) {
		ERR_clear_error();
		int rc = SSL_do_handshake(u->ssl);
		if (rc != 1) {
			int e = SSL_get_error(u->ssl, rc);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				u->hs_write = e == SSL_ERROR_WANT_WRITE;
				u_arm(u);
				return;
			}
			static _Thread_local char why[200];
			unsigned long err = ERR_peek_last_error();
			long vr = SSL_get_verify_result(u->ssl);
			if (vr != X509_V_OK)
				snprintf(why, sizeof(why), "TLS handshake failed: certificate: %s",
				    X509_verify_cert_error_string(vr));
			else
				snprintf(why, sizeof(why), "TLS handshake failed: %s",
				    err ? ERR_reason_error_string(err) : "connection closed");
			ERR_clear_error();
			backend_failed(pr, 502, why, 1);
			return;
		}
		u->state = U_ACTIVE;
		what |= EV_WRITE;
	}
	if ((what & EV_WRITE) && u_write(u) < 0)
		return;
	if ((what & EV_READ) && u_read(u) < 0)
		return; /* finished or moved on */
	u_arm(u);
}

/* ---- handler ops ---- */

/* Max-Forwards of a TRACE or OPTIONS (RFC 9110 7.6.2): its value, or -1 when
 * absent, not a number, or on another method (where it means nothing). */
static long
max_forwards(const struct http_request *hr)
{
	const struct http_header *h;
	long v = 0;

	if ((hr->meth != HTTP_M_TRACE && hr->meth != HTTP_M_OPTIONS) ||
	    (h = http_find_header(hr, "max-forwards")) == NULL || h->value_len == 0)
		return -1;
	for (size_t i = 0; i < h->value_len; i++) {
		if (h->value[i] < '0' || h->value[i] > '9')
			return -1;
		if (v < 1000000000)
			v = v * 10 + (h->value[i] - '0');
	}
	return v;
}

/* Max-Forwards: 0 makes us the final recipient: OPTIONS gets an empty 200,
 * TRACE its own request head back, less the fields that carry credentials. */
static void
answer_here(struct request *r)
{
	const struct http_request *hr = r->hr;
	struct sbuf b = { 0 };

	if (hr->meth == HTTP_M_OPTIONS) {
		http_resp_start(r, 200, NULL, 0);
		http_resp_end(r);
		return;
	}
	sbuf_add(&b, hr->line, hr->line_len);
	sbuf_str(&b, "\r\n");
	for (unsigned i = 0; i < hr->nheaders; i++) {
		const struct http_header *h = &hr->headers[i];
		if (http_token_eq(h->name, h->name_len, "cookie") ||
		    http_token_eq(h->name, h->name_len, "authorization") ||
		    http_token_eq(h->name, h->name_len, "proxy-authorization"))
			continue;
		sbuf_add(&b, h->name, h->name_len);
		sbuf_str(&b, ": ");
		sbuf_add(&b, h->value, h->value_len);
		sbuf_str(&b, "\r\n");
	}
	sbuf_str(&b, "\r\n");
	if (sbuf_failed(&b))
		http_resp_error(r, 500);
	else
		http_resp_simple(r, 200, "message/http", b.p, b.len);
	sbuf_free(&b);
}

static void
proxy_start(struct request *r)
{
	const struct proxy_conf *pc = r->route->hconf;

	if (max_forwards(r->hr) == 0) {
		answer_here(r);
		return;
	}
	struct pool_worker *pw = pool_worker_for(r, pc->pool);
	struct proxy_req *pr = pw != NULL ? pr_new(pw) : NULL;

	if (pr == NULL) {
		http_resp_error(r, 500);
		return;
	}
	pr->pw = pw;
	pr->r = r;
	pr->pc = pc;
	pr->t0 = pool_now_ms();
	http_response_reset(&pr->resp);
	pr->body_done = !(r->hr->flags & HTTP_F_CHUNKED) && r->hr->content_length <= 0;
	r->hdata = pr;
	if (!pr->body_done && pc->request_buffer > 0 && ((r->hr->flags & HTTP_F_CHUNKED) ||
	    (uint64_t)r->hr->content_length <= pc->request_buffer)) {
		/*
		 * Read the body before a server is picked (proxy_body): bad
		 * framing is refused before any backend sees the request, and
		 * the whole request can go to another server if one fails.
		 */
		pr->buffering = 1;
		return;
	}
	attempt(pr);
}

/* The most body bytes kept for a retry. */
static size_t
replay_limit(const struct proxy_conf *pc)
{
	return pc->request_buffer > REPLAY_MAX ? pc->request_buffer : REPLAY_MAX;
}

/*
 * Body bytes while the body is read before the request goes out (len 0:
 * the end).  A body that ends within request_buffer goes out whole, with
 * Content-Length; a chunked one that outgrows it goes out chunked from
 * here on, what was read so far as its first chunk.  Returns 0, or -1
 * once pr has ended.
 */
static int
buffer_body(struct proxy_req *pr, const char *data, size_t len)
{
	struct sbuf *b = &pr->replay;

	if (len > 0 && b->len + len <= pr->pc->request_buffer) {
		sbuf_add(b, data, len);
		if (sbuf_failed(b)) {
			fail(pr, 500, "out of memory");
			return -1;
		}
		return 0;
	}
	pr->buffering = 0;
	if (len == 0) {
		pr->body_whole = 1;
		pr->body_done = 1;
	} else {
		struct sbuf framed = { 0 };
		if (b->len > 0) {
			sbuf_printf(&framed, "%zx\r\n", b->len);
			sbuf_add(&framed, b->p, b->len);
			sbuf_str(&framed, "\r\n");
		}
		sbuf_printf(&framed, "%zx\r\n", len);
		sbuf_add(&framed, data, len);
		sbuf_str(&framed, "\r\n");
		sbuf_free(b);
		*b = framed;
		if (sbuf_failed(b)) {
			fail(pr, 500, "out of memory");
			return -1;
		}
	}
	attempt(pr); /* sends head and replay; pr may be gone after it */
	return 0;
}

/* Remembers the body bytes just queued (as framed for the backend) so a
 * retry can send them again; past REPLAY_MAX the copy is given up. */
static void
keep_for_replay(struct proxy_req *pr, const struct sbuf *out, size_t len)
{
	(void)len;
	if (pr->replay_lost || pr->rs == R_TUNNEL)
		return;
	size_t framed = out->len - pr->replay_mark;
	if (pr->replay.len + framed > replay_limit(pr->pc)) {
		pr->replay_lost = 1;
		sbuf_free(&pr->replay);
		return;
	}
	sbuf_add(&pr->replay, out->p + pr->replay_mark, framed);
}

static int
proxy_body(struct request *r, const char *data, size_t len)
{
	struct proxy_req *pr = r->hdata;

	if (pr != NULL && pr->buffering)
		return buffer_body(pr, data, len);
	if (pr == NULL || pr->u == NULL)
		return -1; /* already answered */
	struct sbuf *out = &pr->u->out;
	pr->replay_mark = out->len;
	if (pr->rs == R_TUNNEL) {
		if (len == 0) {
			pr->client_eof = 1;
			if (pr->u->osent == out->len)
				shutdown(pr->u->fd, SHUT_WR);
			return 0;
		}
		sbuf_add(out, data, len);
		/* Bytes either way keep a tunnel alive: restart its idle timer. */
		if (pr->u->rarmed)
			event_add(&pr->u->ev, pr->pw->tv_tunnel);
	} else if (len == 0) {
		if (pr->body_chunked)
			sbuf_str(out, "0\r\n\r\n");
		pr->body_done = 1;
	} else if (pr->body_chunked) {
		sbuf_printf(out, "%zx\r\n", len);
		sbuf_add(out, data, len);
		sbuf_str(out, "\r\n");
	} else {
		sbuf_add(out, data, len);
	}
	keep_for_replay(pr, out, len);
	if (sbuf_failed(out)) {
		fail(pr, 500, "out of memory");
		return -1;
	}
	if (pr->u->state == U_ACTIVE)
		u_arm(pr->u);
	if (out->len - pr->u->osent > HTTP_OUT_HIGH_WATER) {
		pr->client_paused = 1;
		return 1;
	}
	return 0;
}

static void
proxy_writable(struct request *r)
{
	struct proxy_req *pr = r->hdata;

	if (pr == NULL || !pr->reading_paused || pr->u == NULL)
		return;
	pr->reading_paused = 0;
	if (response_bytes(pr) == 0) {
		u_arm(pr->u);
		/* Records read ahead while paused will not wake the socket. */
		if (pr->u->ssl != NULL && SSL_has_pending(pr->u->ssl))
			event_active(&pr->u->ev, EV_READ, 0);
	}
}

static void
proxy_abort(struct request *r)
{
	struct proxy_req *pr = r->hdata;

	if (pr == NULL)
		return;
	if (pr->u != NULL) {
		count_done(pr, 0);
		upstream_free(pr->u);
	}
	r->hdata = NULL;
	pr_free(pr);
}

/* {"servers":[{"name":..., "state":"up|down|disabled", ...}]} for /status */
static void
proxy_section_status(const struct conf_section *sec, struct sbuf *out)
{
	const struct pool *p = sec->data;
	int64_t now = pool_now_ms();

	if (p == NULL) {
		sbuf_str(out, "null");
		return;
	}
	sbuf_printf(out, "{\"balance\":\"%s\",\"panic\":%s,\"servers\":[", p->balance->name,
	    pool_panic(p) ? "true" : "false");
	for (unsigned i = 0; i < p->nservers; i++) {
		const struct backend *b = &p->servers[i];
		struct backend_counters c;
		pool_counters(p, i, &c);
		uint64_t req = stats_get(&c.requests);
		const char *state = b->disabled ? "disabled" : atomic_load(&b->gen) == 0 ? "unresolved" :
		    atomic_load(&b->health_down) ? "down" :
		    atomic_load(&b->down_until) > now ? "failed" : "up";
		sbuf_str(out, i ? ",{\"name\":\"" : "{\"name\":\"");
		sbuf_json(out, b->name);
		sbuf_printf(out, "\",\"state\":\"%s\",\"backup\":%s,\"weight\":%u,"
		    "\"active\":%d,\"requests\":%llu,\"failures\":%llu,\"avg_latency_ms\":%.3f}",
		    state, b->backup ? "true" : "false", b->weight, atomic_load(&b->active),
		    (unsigned long long)req, (unsigned long long)stats_get(&c.failures),
		    req ? (double)stats_get(&c.latency_us_total) / 1000.0 / (double)req : 0.0);
	}
	sbuf_str(out, "]}");
}

/* The proxy's main-thread work: name lookups and health checks. */
struct proxy_main {
	void *resolver;
	void *checker;
};

static void *
proxy_main_start(struct event_base *base, const struct config *conf)
{
	struct proxy_main *pm = calloc(1, sizeof(*pm));

	if (pm == NULL)
		return NULL;
	pm->resolver = resolve_start(base, conf);
	pm->checker = health_start(base, conf);
	return pm;
}

static void
proxy_main_stop(void *state)
{
	struct proxy_main *pm = state;

	if (pm == NULL)
		return;
	health_stop(pm->checker);
	resolve_stop(pm->resolver);
	free(pm);
}

static const char *const proxy_keys[] = {
	"strip_prefix", "host_header", "forwarded", "trusted_proxies", "request_buffer", "request_id",
	"upgrade", NULL,
};

const struct handler_ops proxy_ops = {
	.name = "proxy",
	.key = "pool",
	.keys = proxy_keys,
	.flags = HANDLER_WANTS_BODY,
	.configure = proxy_configure,
	.free_conf = proxy_free_conf,
	.section = "pool",
	.configure_section = proxy_configure_section,
	.free_section = pool_free,
	.section_status = proxy_section_status,
	.main_start = proxy_main_start,
	.main_stop = proxy_main_stop,
	.start = proxy_start,
	.body = proxy_body,
	.writable = proxy_writable,
	.abort = proxy_abort,
	.worker_new = proxy_worker_new,
	.worker_free = proxy_worker_free,
};
