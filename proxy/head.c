/*
 * head: the request head a proxied request goes to its server with: the
 * target, the client's fields less hop-by-hop and forged ones, and what
 * portico vouches for (X-Forwarded-*, Forwarded, X-Request-Id, the client
 * certificate), plus the configuration those rules read.
 */
#include "proxy/head.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/http.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/server.h"
#include "common/tls.h"
#include "common/units.h"
#include "proxy/pool.h"
#include "proxy/upstream.h"

int
head_parse_cidr(const char *s, struct cidr *c)
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
int
head_configure_upgrade(struct conf_ctx *ctx, struct proxy_conf *pc, const struct conf_route *rt,
    const struct conf_kv *k)
{
	const char *p = k->value, *tok;
	size_t len;

	if (strcmp(k->value, "off") == 0)
		return conf_route_alone(ctx, rt, k);
	while (conf_list_next(&p, &tok, &len)) {
		const char *slash = memchr(tok, '/', len);
		size_t nlen = slash != NULL ? (size_t)(slash - tok) : len;
		if ((len == 3 && memcmp(tok, "off", 3) == 0) || !is_token(tok, nlen) ||
		    (slash != NULL && !is_token(slash + 1, len - nlen - 1))) {
			conf_err(ctx, k->line, ctx->section, "upgrade",
			    "expected off or protocol names such as websocket, not \"%.*s\"", (int)len, tok);
			return -1;
		}
		if ((nlen == 3 && strncasecmp(tok, "h2c", 3) == 0) ||
		    (nlen == 2 && strncasecmp(tok, "h2", 2) == 0)) {
			conf_err(ctx, k->line, ctx->section, "upgrade", "\"%.*s\" is never passed on: "
			    "upgrading to HTTP/2 is deprecated (RFC 9113 3.1)", (int)len, tok);
			return -1;
		}
		if (pc->nupgrade == UPGRADE_MAX || len >= UPGRADE_LEN) {
			conf_err(ctx, k->line, ctx->section, "upgrade", "expected up to %d protocol names "
			    "of up to %d bytes", UPGRADE_MAX, UPGRADE_LEN - 1);
			return -1;
		}
		for (size_t i = 0; i < len; i++)
			pc->upgrade[pc->nupgrade][i] = (char)tolower((unsigned char)tok[i]);
		pc->upgrade[pc->nupgrade][len] = '\0';
		pc->nupgrade++;
	}
	return 0;
}

/* Whether a Connection field of the message names h (RFC 9110 7.6.1). */
int
head_named_in_connection(const struct http_header *hs, unsigned n, const struct http_header *h)
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
	return head_named_in_connection(hr->headers, hr->nheaders, h);
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
unsigned
head_upgrade_offer(const struct proxy_conf *pc, const struct http_request *hr, struct sbuf *b)
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
int
head_upgrade_answer_ok(const struct proxy_conf *pc, const struct http_request *hr,
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

void
head_build(struct proxy_req *pr)
{
	struct request *r = pr->r;
	const struct http_request *hr = r->hr;
	const struct proxy_conf *pc = pr->pc;
	struct sbuf *b = &pr->head;
	char peer[INET6_ADDRSTRLEN];
	const struct http_header *xff = NULL, *rid = NULL;
	unsigned nrid = 0;
	int trusted = 0;
	long mf = head_max_forwards(hr);

	conn_peer(r->conn, peer, sizeof(peer));
	for (unsigned i = 0; i < pc->ntrusted && !trusted; i++)
		trusted = cidr_match(&pc->trusted[i], &r->conn->peer);
	sbuf_add(b, hr->method, hr->method_len);
	sbuf_str(b, " ");
	add_target(b, r, pc);
	sbuf_str(b, " HTTP/1.1\r\nHost: ");
	if (pc->host_backend || hr->host == NULL || hr->host_len == 0)
		sbuf_str(b, backend_host(&pc->pool->servers[pr->u != NULL ? pr->u->idx : 0]));
	else
		sbuf_add(b, hr->host, hr->host_len);
	sbuf_str(b, "\r\n");
	/* The headers as the route's middleware left them. */
	const struct http_header *h;
	for (unsigned it = 0; req_header_next(r, &it, &h);) {
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
	for (unsigned it = 0; trusted && xff != NULL && req_header_next(r, &it, &h);) {
		/* Every X-Forwarded-For line, in order (RFC 9110 5.3: one list). */
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
	const struct http_header *xfp = trusted ? req_header(r, "x-forwarded-proto") : NULL;
	const struct http_header *xfh = trusted ? req_header(r, "x-forwarded-host") : NULL;
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
		int family = r->conn->peer.sin6_family, v6 = family == AF_INET6;
		sbuf_str(b, "Forwarded: ");
		/* RFC 7239 4: each proxy appends its element, about the request
		 * it received (so proto and host are ours, not the X-Forwarded
		 * ones); a list from an untrusted peer is dropped, as
		 * X-Forwarded-For is. */
		for (unsigned it = 0; trusted && req_header_next(r, &it, &h);) {
			if (http_token_eq(h->name, h->name_len, "forwarded") && h->value_len > 0) {
				sbuf_add(b, h->value, h->value_len);
				sbuf_str(b, ", ");
			}
		}
		/* A Unix-socket client has no address: "unknown" (RFC 7239 6). */
		sbuf_printf(b, "for=%s%s%s;proto=%s", v6 ? "\"[" : "",
		    family == AF_INET || v6 ? peer : "unknown", v6 ? "]\"" : "", proto);
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
	if (keep_rid && nrid == 1 && request_id_ok(rid)) {
		memcpy(r->log.id, rid->value, rid->value_len);
		r->log.id[rid->value_len] = '\0';
	} else if (r->log.id[0] == '\0') { /* a retry sends the same id */
		struct { const void *p; struct timespec t; uint64_t n; } seed = { pr, r->start, pr->pw->rng++ };
		snprintf(r->log.id, sizeof(r->log.id), "%016llx",
		    (unsigned long long)pool_hash(&seed, sizeof(seed)));
	}
	sbuf_printf(b, "X-Request-Id: %s\r\n", r->log.id);
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
	if (head_upgrade_offer(pc, hr, b) == 0 && pc->pool->keepalive == 0) {
		sbuf_str(b, "Connection: close\r\n");
	}
	sbuf_str(b, "\r\n");
}

/* Max-Forwards of a TRACE or OPTIONS (RFC 9110 7.6.2): its value, or -1 when
 * absent, not a number, or on another method (where it means nothing). */
long
head_max_forwards(const struct http_request *hr)
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
