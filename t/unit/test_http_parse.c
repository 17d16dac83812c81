/*
 * Unit tests for common/http_parse.c: the request head parser and the
 * chunked decoder.
 *
 * Every request is parsed twice: once in one shot, and once byte by byte
 * into a fresh exactly-sized buffer per step (rebasing the request each
 * time), so ASan sees any read past len and every case also checks that
 * incremental feeding returns 0 until the head is complete and then gives
 * the same fields and status as the one-shot parse.
 */
#include "common/http_parse.h"
#include "t/unit/tap.h"

#include <stdint.h>
#include <stdlib.h>

static const struct http_limits lim = { 8192, 16384, 100 };
static struct http_request r, r2;
static char *cur;       /* buffer r points into; freed by the next parse */
static size_t cur_len;
static const char *tname;

#define CASE(n) (tname = (n))
#define S(f, want) is_slice(r.f, r.f##_len, want, "%s: " #f, tname)
#define FLAGS(want) is(r.flags & ~(HTTP_F_TE_CHUNKED_SEEN | HTTP_F_UPGRADE_HDR | \
	HTTP_F_TE_UNKNOWN), (want), "%s: flags", tname)

static char *
dup_exact(const char *s, size_t n)
{
	char *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		abort();
	memcpy(p, s, n);
	return p;
}

/* Slices agree if they have the same bytes at the same offset (or are the
 * same static string, like the "/" of "http://host"). */
static int
same_slice(const char *a, uint32_t al, const char *abuf, const char *b, uint32_t bl,
    const char *bbuf, size_t n)
{
	if (a == NULL || b == NULL)
		return a == b && al == bl;
	if (al != bl || memcmp(a, b, al) != 0)
		return 0;
	int ain = a >= abuf && a <= abuf + n, bin = b >= bbuf && b <= bbuf + n;
	if (ain != bin)
		return 0;
	return ain ? a - abuf == b - bbuf : a == b;
}

#define SAME(f) same_slice(x->f, x->f##_len, xb, y->f, y->f##_len, yb, n)

static int
same_request(const struct http_request *x, const char *xb,
    const struct http_request *y, const char *yb, size_t n)
{
	if (!SAME(line) || !SAME(method) || !SAME(target) || !SAME(path) ||
	    !SAME(query) || !SAME(host))
		return 0;
	if (x->meth != y->meth || x->version != y->version || x->flags != y->flags ||
	    x->content_length != y->content_length || x->head_len != y->head_len ||
	    x->nheaders != y->nheaders)
		return 0;
	for (unsigned i = 0; i < x->nheaders; i++)
		if (!SAME(headers[i].name) || !SAME(headers[i].value))
			return 0;
	return 1;
}

/*
 * Parses s[0..n) in one shot into r (kept for the caller to inspect), then
 * byte by byte into r2, and records whether both agree.
 */
static ssize_t
parse_n(const char *s, size_t n)
{
	ssize_t rc, rc2 = 0;
	char *ob = NULL, *nb;
	size_t i;

	free(cur);
	cur = dup_exact(s, n);
	cur_len = n;
	http_request_reset(&r);
	rc = http_parse_request(&r, cur, n, &lim);

	http_request_reset(&r2);
	for (i = 1; i <= n; i++) {
		nb = dup_exact(s, i);
		if (ob != NULL)
			http_request_rebase(&r2, ob, nb);
		free(ob);
		ob = nb;
		if ((rc2 = http_parse_request(&r2, nb, i, &lim)) != 0)
			break;
	}
	int same;
	if (rc2 != rc)
		same = 0;
	else if (rc > 0)
		same = i == (size_t)rc && same_request(&r, cur, &r2, ob, n);
	else if (rc < 0)
		same = r2.error != NULL && r.error != NULL && strcmp(r.error, r2.error) == 0;
	else
		same = 1;
	if (!ok(same, "%s: byte by byte gives the same result", tname))
		printf("#   one shot %zd, byte by byte %zd at %zu (%s)\n", rc, rc2, i,
		    r2.error ? r2.error : "-");
	free(ob);
	return rc;
}

static ssize_t
parse(const char *s)
{
	return parse_n(s, strlen(s));
}

/* A complete request: the head must be all of s. */
static void
good(const char *name, const char *s)
{
	CASE(name);
	is(parse(s), (ssize_t)strlen(s), "%s: head_len", tname);
	is(r.head_len, strlen(s), "%s: r->head_len", tname);
	ok(r.error == NULL, "%s: no error", tname);
}

static void
bad_n(const char *name, const char *s, size_t n, int status)
{
	CASE(name);
	is(parse_n(s, n), -status, "%s: status", tname);
	ok(r.error != NULL, "%s: error set (%s)", tname, r.error ? r.error : "NULL");
}

/* For literals holding a NUL. */
#define BAD_LIT(name, lit, status) bad_n((name), (lit), sizeof(lit) - 1, (status))

static void
bad(const char *name, const char *s, int status)
{
	bad_n(name, s, strlen(s), status);
}

static void
hdr(unsigned i, const char *name, const char *value)
{
	ok(i < r.nheaders, "%s: header %u present", tname, i);
	if (i >= r.nheaders)
		return;
	is_slice(r.headers[i].name, r.headers[i].name_len, name, "%s: header %u name", tname, i);
	is_slice(r.headers[i].value, r.headers[i].value_len, value, "%s: header %u value", tname, i);
}

static char *
repeat(const char *head, char ch, size_t n, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + n + tl + 1);

	if (s == NULL)
		abort();
	memcpy(s, head, hl);
	memset(s + hl, ch, n);
	memcpy(s + hl + n, tail, tl + 1);
	return s;
}

static void
test_basic(void)
{
	good("simple GET", "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n");
	S(line, "GET /index.html HTTP/1.1");
	S(method, "GET");
	is(r.meth, HTTP_M_GET, "%s: meth", tname);
	S(target, "/index.html");
	S(path, "/index.html");
	ok(r.query == NULL, "%s: no query", tname);
	S(host, "example.com");
	is(r.version, 11, "%s: version", tname);
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST);
	is(r.content_length, -1, "%s: content_length", tname);
	is(r.nheaders, 1, "%s: nheaders", tname);
	hdr(0, "Host", "example.com");

	static const struct { const char *m; enum http_method id; } methods[] = {
		{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD }, { "POST", HTTP_M_POST },
		{ "PUT", HTTP_M_PUT }, { "DELETE", HTTP_M_DELETE },
		{ "OPTIONS", HTTP_M_OPTIONS }, { "TRACE", HTTP_M_TRACE },
		{ "PATCH", HTTP_M_PATCH }, { "PURGE", HTTP_M_OTHER },
		{ "get", HTTP_M_OTHER }, { "M-SEARCH", HTTP_M_OTHER },
		{ "GETS", HTTP_M_OTHER },
	};
	static char buf[12][64], names[12][32];
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		snprintf(buf[i], sizeof(buf[i]), "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", methods[i].m);
		snprintf(names[i], sizeof(names[i]), "method %s", methods[i].m);
		good(names[i], buf[i]);
		S(method, methods[i].m);
		is(r.meth, methods[i].id, "%s: meth", tname);
		S(path, "/x");
	}

	good("HTTP/1.0 without headers", "GET / HTTP/1.0\r\n\r\n");
	is(r.version, 10, "%s: version", tname);
	FLAGS(0);
	ok(r.host == NULL, "%s: no host", tname);
	is(r.nheaders, 0, "%s: nheaders", tname);

	good("HTTP/1.2 is answered as 1.1", "GET / HTTP/1.2\r\nHost: h\r\n\r\n");
	is(r.version, 11, "%s: version", tname);
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST);
}

static void
test_targets(void)
{
	good("origin-form with query", "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n");
	S(target, "/a/b?x=1&y=2");
	S(path, "/a/b");
	S(query, "x=1&y=2");

	good("empty query", "GET /p? HTTP/1.1\r\nHost: h\r\n\r\n");
	S(path, "/p");
	S(query, "");

	/* RFC 9112 3.2: a request target has no fragment; HAProxy refuses one too. */
	bad("fragment", "GET /p#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("query and fragment", "GET /p?q=1#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("'?' inside the fragment", "GET /p#f?x HTTP/1.1\r\nHost: h\r\n\r\n", 400);

	good("absolute-form http", "GET http://example.com/x/y?z=1 HTTP/1.1\r\nHost: other\r\n\r\n");
	S(target, "http://example.com/x/y?z=1");
	S(host, "example.com");
	S(path, "/x/y");
	S(query, "z=1");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_ABSOLUTE);
	hdr(0, "Host", "other");

	good("absolute-form https with port", "GET https://example.com:8443/ HTTP/1.1\r\nHost: h\r\n\r\n");
	S(host, "example.com:8443");
	S(path, "/");
	ok(r.query == NULL, "%s: no query", tname);

	good("absolute-form without path", "GET http://example.com HTTP/1.1\r\nHost: h\r\n\r\n");
	S(host, "example.com");
	S(path, "/");
	ok(r.query == NULL, "%s: no query", tname);
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_ABSOLUTE | HTTP_F_NO_PATH);

	good("absolute-form with query only", "GET http://example.com?a=b HTTP/1.1\r\nHost: h\r\n\r\n");
	S(host, "example.com");
	S(path, "/");
	S(query, "a=b");

	bad("absolute-form query and fragment", "GET http://h.example?q#f?g HTTP/1.1\r\nHost: h\r\n\r\n", 400);

	good("absolute-form upper-case scheme", "GET HTTP://Example.COM/p HTTP/1.0\r\n\r\n");
	S(host, "Example.COM");
	S(path, "/p");
	FLAGS(HTTP_F_ABSOLUTE);

	good("absolute-form IPv6 literal", "GET http://[::1]:8080/p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
	S(host, "[::1]:8080");
	S(path, "/p");

	good("asterisk-form with OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
	is(r.meth, HTTP_M_OPTIONS, "%s: meth", tname);
	S(target, "*");
	S(path, "*");
	ok(r.query == NULL, "%s: no query", tname);
	S(host, "h");

	bad("asterisk-form with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("asterisk followed by more", "OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", 400);

	good("CONNECT authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
	is(r.meth, HTTP_M_CONNECT, "%s: meth", tname);
	S(target, "example.com:443");
	S(path, "example.com:443");
	S(host, "example.com:443");
	ok(r.query == NULL, "%s: no query", tname);

	bad("CONNECT without port", "CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("CONNECT with origin-form", "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("CONNECT with userinfo", "CONNECT u@h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400);

	bad("userinfo in absolute URI", "GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("user:pass in absolute URI", "GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("unknown scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("relative target", "GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("scheme without authority", "GET http:// HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("empty authority", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("bad authority character", "GET http://h<x>/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("control character in target", "GET /a\001b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("tab in target", "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("DEL in target", "GET /a\177b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

static void
test_request_line(void)
{
	bad("bad method character", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("method with control character", "GE\001T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("leading space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("double space after method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("double space before version", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("trailing space after version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);
	bad("missing version", "GET /\r\nHost: h\r\n\r\n", 400);
	bad("empty version", "GET / \r\nHost: h\r\n\r\n", 400);
	bad("method only", "GET\r\n\r\n", 400);
	bad("lower-case http", "GET / http/1.1\r\nHost: h\r\n\r\n", 400);
	bad("version with extra digit", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400);
	bad("version without minor", "GET / HTTP/1\r\nHost: h\r\n\r\n", 400);
	bad("HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
	bad("HTTP/0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505);
	bad("HTTP/3.0", "GET / HTTP/3.0\r\n\r\n", 505);
	bad("bare CR in request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	BAD_LIT("NUL in request line", "GET /a\0 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	bad("CR CR LF after request line", "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", 400);
}

static void
test_connection(void)
{
	good("HTTP/1.0 closes by default", "GET / HTTP/1.0\r\nHost: h\r\n\r\n");
	FLAGS(HTTP_F_HAS_HOST);

	good("HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_CONN_KA);

	good("HTTP/1.0 Keep-Alive in a list", "GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_CONN_KA);

	good("HTTP/1.0 keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
	FLAGS(HTTP_F_CONN_KA | HTTP_F_CONN_CLOSE);

	good("HTTP/1.1 persists", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_CONN_KA | HTTP_F_HAS_HOST);

	good("HTTP/1.1 Connection: close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
	FLAGS(HTTP_F_CONN_CLOSE | HTTP_F_HAS_HOST);

	good("HTTP/1.1 CLOSE in a list", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive , CLOSE\r\n\r\n");
	FLAGS(HTTP_F_CONN_CLOSE | HTTP_F_CONN_KA | HTTP_F_HAS_HOST);

	good("Upgrade with Connection: upgrade",
	    "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_UPGRADE);

	good("Upgrade header before Connection",
	    "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, upgrade\r\nHost: h\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_UPGRADE | HTTP_F_CONN_KA);

	good("Upgrade header alone", "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST);

	good("Connection: upgrade alone", "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST);

	good("Upgrade in HTTP/1.0 is ignored (RFC 9110 7.8)",
	    "GET /ws HTTP/1.0\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
	FLAGS(HTTP_F_HAS_HOST);
}

static void
test_line_endings(void)
{
	good("leading CRLFs ignored", "\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n");
	S(line, "GET /x HTTP/1.1");
	S(path, "/x");
	ok(r.line == cur + 4, "%s: line starts after the empty lines", tname);

	good("leading bare LFs ignored", "\n\n\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n");
	S(method, "GET");
	ok(r.line == cur + 3, "%s: line starts after the empty lines", tname);

	char *s = repeat("", '\n', 65, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	bad("more than 64 bytes of empty lines", s, 400);
	free(s);
	s = repeat("", '\n', 64, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	good("64 bytes of empty lines", s);
	free(s);

	good("bare LF line endings", "GET /lf HTTP/1.1\nHost: h\nX-A:  a \n\n");
	S(line, "GET /lf HTTP/1.1");
	S(host, "h");
	is(r.nheaders, 2, "%s: nheaders", tname);
	hdr(1, "X-A", "a");

	good("mixed line endings", "GET / HTTP/1.1\nHost: h\r\nX: y\n\r\n");
	is(r.nheaders, 2, "%s: nheaders", tname);
	hdr(1, "X", "y");
}

static void
test_incremental(void)
{
	const char *s = "POST /up?a=1 HTTP/1.1\r\nHost: h:81\r\nContent-Length: 3\r\n"
	    "Expect: 100-continue\r\nX-Empty:\r\n\r\n";
	size_t n = strlen(s);
	char *b = dup_exact(s, n);
	int zero = 1;
	ssize_t rc = 0;

	CASE("byte by byte into one buffer");
	http_request_reset(&r2);
	for (size_t i = 0; i <= n; i++) {
		rc = http_parse_request(&r2, b, i, &lim);
		if (i < n && rc != 0)
			zero = 0;
	}
	ok(zero, "%s: 0 until complete", tname);
	is(rc, (ssize_t)n, "%s: head_len", tname);
	is_slice(r2.path, r2.path_len, "/up", "%s: path", tname);
	is_slice(r2.query, r2.query_len, "a=1", "%s: query", tname);
	is_slice(r2.host, r2.host_len, "h:81", "%s: host", tname);
	is(r2.content_length, 3, "%s: content_length", tname);
	is(r2.flags & HTTP_F_EXPECT_100, HTTP_F_EXPECT_100, "%s: expect", tname);
	is(r2.nheaders, 4, "%s: nheaders", tname);
	free(b);

	/* Every two-piece split must match the one-shot parse. */
	CASE("every split point");
	parse(s);
	int all = 1;
	for (size_t k = 0; k < n; k++) {
		char *part = dup_exact(s, k), *whole = dup_exact(s, n);
		http_request_reset(&r2);
		ssize_t a = http_parse_request(&r2, part, k, &lim);
		http_request_rebase(&r2, part, whole);
		free(part);
		ssize_t z = http_parse_request(&r2, whole, n, &lim);
		if (a != 0 || z != (ssize_t)n || !same_request(&r, cur, &r2, whole, n)) {
			printf("# split %zu: %zd %zd\n", k, a, z);
			all = 0;
		}
		free(whole);
	}
	ok(all, "%s: identical", tname);

	/* An error found in a prefix is the error of the whole. */
	CASE("error at split");
	s = "GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\nMore: y\r\n\r\n";
	n = strlen(s);
	b = dup_exact(s, n);
	http_request_reset(&r2);
	is(http_parse_request(&r2, b, 26, &lim), 0, "%s: partial line", tname);
	is(http_parse_request(&r2, b, 40, &lim), -400, "%s: bad once the line is in", tname);
	is_str(r2.error, "whitespace before colon", "%s: error", tname);
	free(b);
}

static void
test_pipeline_rebase(void)
{
	const char *s = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
	    "POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 4\r\n\r\nbody"
	    "GET /three HTTP/1.0\r\n\r\n";
	size_t n = strlen(s), off;
	char *b = dup_exact(s, n);

	CASE("pipelined requests");
	http_request_reset(&r2);
	is(http_parse_request(&r2, b, n, &lim), 30, "%s: first head_len", tname);
	is_slice(r2.path, r2.path_len, "/one", "%s: first path", tname);
	off = r2.head_len;
	http_request_reset(&r2);
	is(http_parse_request(&r2, b + off, n - off, &lim), 50, "%s: second head_len", tname);
	is_slice(r2.method, r2.method_len, "POST", "%s: second method", tname);
	is_slice(r2.host, r2.host_len, "b", "%s: second host", tname);
	is(r2.content_length, 4, "%s: second content_length", tname);
	ok(memcmp(b + off + r2.head_len, "body", 4) == 0, "%s: body follows the head", tname);
	off += r2.head_len + 4;
	http_request_reset(&r2);
	is(http_parse_request(&r2, b + off, n - off, &lim), (ssize_t)(n - off), "%s: third head_len", tname);
	is_slice(r2.path, r2.path_len, "/three", "%s: third path", tname);
	is(r2.version, 10, "%s: third version", tname);
	free(b);

	CASE("rebase of a complete request");
	s = "GET http://x.example/p?q HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n";
	n = strlen(s);
	b = dup_exact(s, n);
	http_request_reset(&r2);
	is(http_parse_request(&r2, b, n, &lim), (ssize_t)n, "%s: parsed", tname);
	char *nb = dup_exact(b, n);
	http_request_rebase(&r2, b, nb);
	free(b);  /* ASan catches any slice left behind */
	is_slice(r2.line, r2.line_len, "GET http://x.example/p?q HTTP/1.1", "%s: line", tname);
	is_slice(r2.method, r2.method_len, "GET", "%s: method", tname);
	is_slice(r2.target, r2.target_len, "http://x.example/p?q", "%s: target", tname);
	is_slice(r2.path, r2.path_len, "/p", "%s: path", tname);
	is_slice(r2.query, r2.query_len, "q", "%s: query", tname);
	is_slice(r2.host, r2.host_len, "x.example", "%s: host", tname);
	ok(r2.host == nb + 11 && r2.headers[1].value == strstr(s, "X-A: ") - s + nb + 5, "%s: slices in the new buffer", tname);
	const struct http_header *h = http_find_header(&r2, "x-a");
	ok(h != NULL && h->value_len == 1 && h->value[0] == '1', "%s: header after rebase", tname);
	free(nb);

	CASE("rebase keeps the static path");
	s = "GET http://x.example HTTP/1.1\r\nHost: h\r\n\r\n";
	n = strlen(s);
	b = dup_exact(s, n);
	http_request_reset(&r2);
	is(http_parse_request(&r2, b, n, &lim), (ssize_t)n, "%s: parsed", tname);
	nb = dup_exact(b, n);
	http_request_rebase(&r2, b, nb);
	free(b);
	is_slice(r2.path, r2.path_len, "/", "%s: path", tname);
	is_slice(r2.host, r2.host_len, "x.example", "%s: host", tname);
	free(nb);

	CASE("rebase in the middle of a head");
	s = "GET /mid HTTP/1.1\r\nHost: h\r\nX-Long: abcdef\r\n\r\n";
	n = strlen(s);
	b = dup_exact(s, 30);
	http_request_reset(&r2);
	is(http_parse_request(&r2, b, 30, &lim), 0, "%s: partial", tname);
	nb = malloc(4096);
	memcpy(nb, s, n);
	http_request_rebase(&r2, b, nb);
	free(b);
	is(http_parse_request(&r2, nb, n, &lim), (ssize_t)n, "%s: complete in the new buffer", tname);
	is_slice(r2.path, r2.path_len, "/mid", "%s: path", tname);
	is_slice(r2.host, r2.host_len, "h", "%s: host", tname);
	ok(r2.nheaders == 2 && r2.headers[1].value == strstr(s, "abcdef") - s + nb, "%s: header in the new buffer", tname);
	free(nb);
}

static void
test_headers(void)
{
	good("OWS trimmed", "GET / HTTP/1.1\r\nHost: \t h \t\r\nX-V:   a  b\t \r\n\r\n");
	S(host, "h");
	hdr(0, "Host", "h");
	hdr(1, "X-V", "a  b");

	good("empty header values", "GET / HTTP/1.1\r\nHost: h\r\nX-E:\r\nX-F:   \r\n\r\n");
	is(r.nheaders, 3, "%s: nheaders", tname);
	hdr(1, "X-E", "");
	hdr(2, "X-F", "");

	good("obs-text and tab in value", "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\tok\r\n\r\n");
	hdr(1, "X", "caf\xc3\xa9\tok");

	/* RFC 9110 4.2.1: an http URI has a host; nginx answers 400 too. */
	bad("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400);

	good("http_find_header", "GET / HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\nContent-Type: text/plain\r\n\r\n");
	const struct http_header *h = http_find_header(&r, "content-type");
	ok(h == &r.headers[3], "%s: lower-case name", tname);
	ok(http_find_header(&r, "CONTENT-TYPE") == &r.headers[3], "%s: upper-case name", tname);
	ok(http_find_header(&r, "Content-Type") == &r.headers[3], "%s: mixed-case name", tname);
	ok(http_find_header(&r, "x-dup") == &r.headers[1], "%s: first of duplicates", tname);
	ok(http_find_header(&r, "content-typ") == NULL, "%s: prefix does not match", tname);
	ok(http_find_header(&r, "accept") == NULL, "%s: missing", tname);
	ok(http_token_eq("KeeP-Alive", 10, "keep-alive"), "%s: http_token_eq", tname);
	ok(!http_token_eq("keep", 4, "keep-alive"), "%s: http_token_eq prefix", tname);

	/* 99 X- headers and Host make 100, the limit. */
	char *s = malloc(2000), *p;
	p = s + sprintf(s, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < 99; i++)
		p += sprintf(p, "X-%d: %d\r\n", i, i);
	strcpy(p, "\r\n");
	good("100 headers", s);
	is(r.nheaders, 100, "%s: nheaders", tname);
	hdr(99, "X-98", "98");
	strcpy(p, "X-99: 99\r\n\r\n");
	bad("101 headers", s, 431);
	free(s);

	bad("obs-fold with space", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400);
	bad("obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400);
	BAD_LIT("NUL in header value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400);
	is_str(r.error, "NUL in header", "%s: error", tname);
	BAD_LIT("NUL in header name", "GET / HTTP/1.1\r\nHost: h\r\nX\0: ab\r\n\r\n", 400);
	bad("bare CR in header value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400);
	is_str(r.error, "bare CR in header", "%s: error", tname);
	bad("CR CR LF after a header", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", 400);
	bad("bare CR as a line", "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n", 400);
	bad("whitespace before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
	is_str(r.error, "whitespace before colon", "%s: error", tname);
	bad("empty header name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400);
	is_str(r.error, "empty header name", "%s: error", tname);
	bad("header without colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400);
	bad("bad character in header name", "GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", 400);
	bad("control character in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\001b\r\n\r\n", 400);
	bad("DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\177\r\n\r\n", 400);

	bad("missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400);
	bad("absolute-form without Host in HTTP/1.1", "GET http://h/ HTTP/1.1\r\n\r\n", 400);
	good("Host optional in HTTP/1.0", "GET / HTTP/1.0\r\nX: y\r\n\r\n");
	ok(r.host == NULL, "%s: no host", tname);
	bad("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
	bad("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
	bad("Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
	bad("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400);
	bad("Host port not digits", "GET / HTTP/1.1\r\nHost: x:abc\r\n\r\n", 400);
	bad("Host port of six digits", "GET / HTTP/1.1\r\nHost: x:808080\r\n\r\n", 400);
	bad("Host with two colons", "GET / HTTP/1.1\r\nHost: x:80:80\r\n\r\n", 400);
	bad("Host unclosed IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
	bad("Host empty brackets", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400);
	bad("Host bare IPv6", "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", 400);
	bad("Host brackets around a name", "GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", 400);
	bad("Host brackets around one colon", "GET / HTTP/1.1\r\nHost: [1:2]\r\n\r\n", 400);
	bad("Host IPv6 zone not %25", "GET / HTTP/1.1\r\nHost: [fe80::1%eth0]\r\n\r\n", 400);
	good("Host IPv6 with zone", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]:80\r\n\r\n");
	good("Host IPv4-mapped IPv6", "GET / HTTP/1.1\r\nHost: [::ffff:127.0.0.1]\r\n\r\n");
	good("Host IPvFuture", "GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n");
	bad("Host only a port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400);
	bad("Host bad percent escape", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400);
	bad("Host with brackets in a name", "GET / HTTP/1.1\r\nHost: a[b]\r\n\r\n", 400);
	bad("absolute-form port not digits", "GET http://x:abc/a HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	good("Host with empty port", "GET / HTTP/1.1\r\nHost: x:\r\n\r\n");
	good("Host IPv6 literal with port", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n");
	good("Host percent-encoded name", "GET / HTTP/1.1\r\nHost: caf%C3%A9.example\r\n\r\n");
	good("Host IPv4 and port", "GET / HTTP/1.1\r\nHost: 127.0.0.1:65535\r\n\r\n");

	good("Expect: 100-continue", "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-Continue\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_HAS_CL | HTTP_F_EXPECT_100);
	is(r.content_length, 10, "%s: content_length", tname);
	good("Expect: 100-continue ignored in HTTP/1.0", "PUT /f HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n");
	FLAGS(HTTP_F_HAS_CL);
	bad("other Expect", "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 417);
}

static void
test_limits(void)
{
	/* "GET /" + N + " HTTP/1.1" is N + 14 bytes. */
	char *s = repeat("GET /", 'a', 8192 - 14, " HTTP/1.1\r\nHost: h\r\n\r\n");
	good("request line at the limit", s);
	is(r.line_len, 8192, "%s: line_len", tname);
	free(s);
	s = repeat("GET /", 'a', 8192 - 13, " HTTP/1.1\r\nHost: h\r\n\r\n");
	bad("request line over the limit", s, 414);
	free(s);
	s = repeat("GET /", 'a', 8192 - 5 + 1, "");
	bad("incomplete request line over the limit", s, 414);
	free(s);
	s = repeat("GET /", 'a', 8192 - 5, "");
	CASE("incomplete request line at the limit");
	is(parse(s), 0, "%s: more needed", tname);
	free(s);
	s = repeat("GET /", 'a', 8192 - 14, " HTTP/1.1\r");
	CASE("incomplete request line at the limit with CR");
	is(parse(s), 0, "%s: more needed", tname);
	free(s);

	/* The counted section runs from the end of the request line to the end
	 * of the empty line: "\r\nHost: h\r\nX: " + V + "\r\n\r\n" is V + 18. */
	s = repeat("GET / HTTP/1.1\r\nHost: h\r\nX: ", 'v', 16384 - 18, "\r\n\r\n");
	good("header section at the limit", s);
	is(r.headers[1].value_len, 16384 - 18, "%s: value_len", tname);
	free(s);
	s = repeat("GET / HTTP/1.1\r\nHost: h\r\nX: ", 'v', 16384 - 17, "\r\n\r\n");
	bad("header section over the limit", s, 431);
	free(s);
	s = repeat("GET / HTTP/1.1\r\nHost: h\r\nX: ", 'v', 16384, "");
	bad("incomplete header section over the limit", s, 431);
	free(s);
	s = repeat("GET / HTTP/1.1\r\nHost: h\r\nX: ", 'v', 16384 - 18, "\r\n\r");
	CASE("incomplete header section under the limit");
	is(parse(s), 0, "%s: more needed", tname);
	free(s);

	CASE("max_headers below the default");
	struct http_limits small = { 8192, 16384, 2 };
	const char *t = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
	http_request_reset(&r2);
	is(http_parse_request(&r2, t, strlen(t), &small), -431, "%s: status", tname);
	ok(r2.error != NULL, "%s: error set", tname);
	t = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n";
	http_request_reset(&r2);
	is(http_parse_request(&r2, t, strlen(t), &small), (ssize_t)strlen(t), "%s: two fit", tname);
}

static void
test_framing(void)
{
	good("Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_HAS_CL);
	is(r.content_length, 5, "%s: content_length", tname);
	good("Content-Length zero", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
	is(r.content_length, 0, "%s: content_length", tname);
	good("Content-Length leading zeros", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n");
	is(r.content_length, 7, "%s: content_length", tname);
	good("Content-Length large", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000000\r\n\r\n");
	is(r.content_length, 1000000000000LL, "%s: content_length", tname);
	good("Content-Length identical list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n");
	is(r.content_length, 5, "%s: content_length", tname);
	good("Content-Length repeated header", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 05\r\n\r\n");
	is(r.content_length, 5, "%s: content_length", tname);
	bad("Content-Length differing list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", 400);
	bad("Content-Length differing headers", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
	bad("Content-Length non-digit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n", 400);
	bad("Content-Length hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", 400);
	bad("Content-Length negative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
	bad("Content-Length plus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400);
	bad("Content-Length empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400);
	bad("Content-Length trailing comma", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n", 400);
	bad("Content-Length overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
	is_str(r.error, "Content-Length too large", "%s: error", tname);

	good("Transfer-Encoding chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_HAS_TE | HTTP_F_CHUNKED);
	is(r.content_length, -1, "%s: content_length", tname);
	good("Transfer-Encoding Chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\n\r\n");
	FLAGS(HTTP_F_KEEPALIVE | HTTP_F_HAS_HOST | HTTP_F_HAS_TE | HTTP_F_CHUNKED);
	good("empty Expect expects nothing", "GET / HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n");
	bad("gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
	bad("gzip then chunked in two fields", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
	bad("chunked, gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
	bad("chunked then gzip in two fields", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
	bad("gzip without chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
	bad("chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
	bad("Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	bad("Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400);
	bad("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	bad("empty Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400);
	bad("Transfer-Encoding of commas", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , ,\r\n\r\n", 400);
}

/* Chunked decoding: whole (as few calls as possible) and one byte per call. */
struct dec {
	int rc;               /* 1 done, 0 more needed, -1 bad */
	size_t consumed;
	char *out;
	size_t out_len;
	int zero_return;      /* a call consumed nothing though bytes were left */
	struct http_chunked c;
};

static void
decode(const char *s, size_t n, size_t step, size_t max_trailer, struct dec *d)
{
	memset(d, 0, sizeof(*d));
	d->out = malloc(n + 1);
	http_chunked_init(&d->c);
	while (d->consumed < n && d->c.state != CHUNK_DONE) {
		size_t len = n - d->consumed < step ? n - d->consumed : step;
		char *b = dup_exact(s + d->consumed, len);
		size_t off, dl;
		ssize_t k = http_chunked_parse(&d->c, b, len, &off, &dl, max_trailer);
		if (k > 0 && dl > 0) {
			memcpy(d->out + d->out_len, b + off, dl);
			d->out_len += dl;
		}
		free(b);
		if (k < 0) {
			d->rc = -1;
			return;
		}
		if (k == 0) {
			d->zero_return = 1;
			break;
		}
		d->consumed += (size_t)k;
	}
	d->rc = d->c.state == CHUNK_DONE ? 1 : 0;
}

static struct dec dw;

/* Decodes s whole into dw and byte by byte, checking both agree. */
static int
chunk_n(const char *name, const char *s, size_t n, size_t max_trailer)
{
	struct dec db;

	CASE(name);
	free(dw.out);
	decode(s, n, n, max_trailer, &dw);
	decode(s, n, 1, max_trailer, &db);
	ok(!dw.zero_return && !db.zero_return && dw.rc == db.rc && dw.out_len == db.out_len &&
	    memcmp(dw.out, db.out, dw.out_len) == 0 && (dw.rc < 0 || (dw.consumed == db.consumed &&
	    dw.c.state == db.c.state && dw.c.total == db.c.total && dw.c.ext_bytes == db.c.ext_bytes &&
	    dw.c.trailers == db.c.trailers && dw.c.trailer_bytes == db.c.trailer_bytes)),
	    "%s: byte by byte gives the same result", tname);
	free(db.out);
	return dw.rc;
}

static int
chunk(const char *name, const char *s, size_t max_trailer)
{
	return chunk_n(name, s, strlen(s), max_trailer);
}

/* A body that decodes completely to payload, consuming all of s. */
static void
chunk_ok(const char *name, const char *s, const char *payload)
{
	is(chunk(name, s, 1024), 1, "%s: complete", tname);
	is_slice(dw.out, dw.out_len, payload, "%s: payload", tname);
	is(dw.consumed, strlen(s), "%s: consumed", tname);
	is(dw.c.total, strlen(payload), "%s: total", tname);
}

static void
chunk_bad(const char *name, const char *s)
{
	is(chunk(name, s, 1024), -1, "%s: bad", tname);
}

static void
test_chunked(void)
{
	chunk_ok("single chunk", "5\r\nhello\r\n0\r\n\r\n", "hello");
	chunk_ok("several chunks", "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", "hello world");
	chunk_ok("empty body", "0\r\n\r\n", "");
	chunk_ok("upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
	chunk_ok("lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
	chunk_ok("mixed-case hex", "1F\r\n0123456789012345678901234567890\r\n1f\r\n"
	    "0123456789012345678901234567890\r\n0\r\n\r\n",
	    "01234567890123456789012345678900123456789012345678901234567890");
	chunk_ok("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello");
	chunk_ok("chunk extension ignored", "5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
	chunk_ok("several extensions", "5;a=1;b=\"x y\"\r\nhello\r\n0\r\n\r\n", "hello");
	is(dw.c.ext_bytes, 12, "several extensions: ext_bytes counts ';a=1;b=\"x y\"'");
	chunk_ok("no extension", "5\r\nhello\r\n0\r\n\r\n", "hello");
	is(dw.c.ext_bytes, 0, "no extension: ext_bytes 0");
	chunk_ok("BWS before ';'", "5 ;a=1\r\nhello\r\n3\t \t;b\r\nabc\r\n0\r\n\r\n", "helloabc");
	chunk_ok("CRLF inside the payload", "2\r\n\r\n\r\n0\r\n\r\n", "\r\n");
	chunk_bad("whitespace without extension", "5 \r\nhello\r\n0\r\n\r\n");
	chunk_bad("digit after whitespace", "5 1\r\nhello\r\n0\r\n\r\n");
	chunk_bad("missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n");
	chunk_bad("CR without LF after data", "5\r\nhello\rX0\r\n\r\n");
	chunk_bad("bare LF after data", "5\r\nhello\n0\r\n\r\n");
	chunk_bad("bare LF after size", "5\nhello\r\n0\r\n\r\n");
	chunk_bad("bare LF after extension", "5;x\nhello\r\n0\r\n\r\n");
	chunk_bad("bare LF after last chunk", "0\n\r\n");
	chunk_bad("bare LF as the final line", "0\r\n\n");
	chunk_bad("CR CR LF after size", "5\r\r\nhello\r\n0\r\n\r\n");
	chunk_bad("16 hex digits", "1000000000000000\r\n");
	chunk_bad("16 digits with leading zeros", "0000000000000005\r\nhello\r\n0\r\n\r\n");
	is(chunk("15 hex digits", "fffffffffffffff\r\nabc", 1024), 0, "%s: more needed", tname);
	is(dw.c.remaining, 0xfffffffffffffffULL - 3, "%s: remaining", tname);
	is(dw.c.total, 3, "%s: total", tname);
	chunk_bad("non-hex size", "g\r\nhello\r\n0\r\n\r\n");
	chunk_bad("hex prefix", "0x5\r\nhello\r\n0\r\n\r\n");
	chunk_bad("size with trailing letter", "5z\r\nhello\r\n0\r\n\r\n");
	chunk_bad("empty size", "\r\nhello\r\n0\r\n\r\n");
	chunk_bad("extension without size", ";x\r\nhello\r\n0\r\n\r\n");
	chunk_bad("negative size", "-5\r\nhello\r\n0\r\n\r\n");
	chunk_bad("control character in extension", "5;a\001\r\nhello\r\n0\r\n\r\n");

	chunk_ok("trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-B: 2\r\n\r\n", "hello");
	is(dw.c.trailers, 2, "%s: trailers", tname);
	is(dw.c.trailer_bytes, 20, "%s: trailer_bytes", tname);
	is(chunk("trailer exactly at max_trailer", "0\r\nX: 1\r\n\r\n", 6), 1, "%s: complete", tname);
	is(dw.c.trailer_bytes, 6, "%s: trailer_bytes", tname);
	is(chunk("trailer over max_trailer", "0\r\nX: 12\r\n\r\n", 6), -1, "%s: bad", tname);
	is(chunk("no trailers with max_trailer 0", "1\r\na\r\n0\r\n\r\n", 0), 1, "%s: complete", tname);
	is(dw.c.trailer_bytes, 0, "%s: trailer_bytes", tname);
	chunk_bad("trailer folding with space", "0\r\nX: a\r\n b\r\n\r\n");
	chunk_bad("trailer folding with tab", "0\r\nX: a\r\n\tb\r\n\r\n");
	chunk_bad("trailer without name", "0\r\n: a\r\n\r\n");
	chunk_bad("trailer with space before colon", "0\r\nFoo : bar\r\n\r\n");
	chunk_bad("trailer name with a delimiter", "0\r\nF(o: bar\r\n\r\n");
	chunk_bad("trailer line without colon", "0\r\nFoo bar\r\n\r\n");
	chunk_bad("trailer name running into CRLF", "0\r\nFoo\r\n\r\n");
	chunk_bad("bare LF in trailer", "0\r\nX: a\n\r\n");
	chunk_bad("control character in trailer", "0\r\nX: a\002\r\n\r\n");

	const char *s = "4\r\nabcd\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	is(chunk("bytes after the body", s, 1024), 1, "%s: complete", tname);
	is(dw.consumed, 14, "%s: stops after the final CRLF", tname);
	is_slice(dw.out, dw.out_len, "abcd", "%s: payload", tname);
	size_t off = 7, dl = 7;
	is(http_chunked_parse(&dw.c, s + 14, strlen(s) - 14, &off, &dl, 1024), 0,
	    "%s: nothing consumed once done", tname);
	ok(off == 0 && dl == 0, "%s: no payload once done", tname);

	is(chunk("incomplete body", "a\r\n01234", 1024), 0, "%s: more needed", tname);
	is(dw.c.state, CHUNK_DATA, "%s: state", tname);
	is(dw.c.remaining, 5, "%s: remaining", tname);
	is(dw.c.total, 5, "%s: total", tname);

	CASE("one payload run per call");
	struct http_chunked c;
	size_t d_off, d_len;
	http_chunked_init(&c);
	s = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	is(http_chunked_parse(&c, s, strlen(s), &d_off, &d_len, 0), 6, "%s: first call", tname);
	ok(d_off == 3 && d_len == 3, "%s: first run", tname);
	is(http_chunked_parse(&c, s + 6, strlen(s) - 6, &d_off, &d_len, 0), 7, "%s: second call", tname);
	ok(d_off == 5 && d_len == 2, "%s: second run", tname);
	is(http_chunked_parse(&c, s + 13, strlen(s) - 13, &d_off, &d_len, 0), 7, "%s: last call", tname);
	ok(d_len == 0 && c.state == CHUNK_DONE && c.total == 5, "%s: done", tname);
	is(http_chunked_parse(&c, s, 0, &d_off, &d_len, 0), 0, "%s: empty input", tname);

	/* The first size line may hold 4096 bytes. */
	char *big = repeat("5;", 'x', 4094, "\r\nhello\r\n0\r\n\r\n");
	is(chunk("extension line at 4096", big, 1024), 1, "%s: complete", tname);
	free(big);
	big = repeat("5;", 'x', 4095, "\r\nhello\r\n0\r\n\r\n");
	is(chunk("extension line over 4096", big, 1024), -1, "%s: bad", tname);
	free(big);
	big = repeat("1\r\na\r\n5;", 'x', 5000, "\r\nhello\r\n0\r\n\r\n");
	is(chunk("long extension on a later chunk", big, 1024), -1, "%s: bad", tname);
	free(big);
}

/* ---- response heads from backends ---- */

static struct http_response rs;

/* Parses a whole response head, also byte by byte, and checks both agree. */
static ssize_t
resp(const char *name, const char *text)
{
	size_t n = strlen(text);
	char *buf = malloc(n + 1);

	tname = name;
	memcpy(buf, text, n + 1);
	http_response_reset(&rs);
	ssize_t whole = http_parse_response(&rs, buf, n, &lim);
	struct http_response one;
	http_response_reset(&one);
	ssize_t step = 0;
	for (size_t i = 1; i <= n && step == 0; i++)
		step = http_parse_response(&one, buf, i, &lim);
	ok(whole == step, "%s: whole and byte by byte agree", name);
	/* the head is parsed again from a copy kept alive while we look at it */
	free(cur);
	cur = buf;
	return whole;
}

static void
resp_bad(const char *name, const char *text, const char *why)
{
	is(resp(name, text), -1, "%s: refused", name);
	is_str(rs.error, why, "%s: reason", name);
}

static void
test_response(void)
{
	ssize_t n = resp("simple", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
	is(n, 46, "%s: head length", tname);
	is(rs.status, 200, "%s: status", tname);
	is(rs.version, 11, "%s: version", tname);
	is_slice(rs.reason, rs.reason_len, "OK", "%s: reason", tname);
	is(rs.content_length, 5, "%s: Content-Length", tname);
	ok((rs.flags & HTTP_F_KEEPALIVE) && !(rs.flags & HTTP_F_CHUNKED), "%s: keep-alive, not chunked", tname);
	is(rs.nheaders, 2, "%s: two fields", tname);

	resp("odd reason kept", "HTTP/1.1 299 Weird Thing\r\n\r\n");
	is_slice(rs.reason, rs.reason_len, "Weird Thing", "%s: reason as sent", tname);
	resp("empty reason", "HTTP/1.1 204\r\n\r\n");
	is(rs.reason_len, 0, "%s: no reason", tname);
	is(rs.status, 204, "%s: status", tname);

	resp("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	ok((rs.flags & HTTP_F_CHUNKED) && (rs.flags & HTTP_F_HAS_TE), "%s: chunked", tname);
	resp("chunked, any case", "HTTP/1.1 200 OK\r\nTransfer-Encoding: ChUnKeD\r\n\r\n");
	ok(rs.flags & HTTP_F_CHUNKED, "%s: chunked", tname);
	resp("close-delimited 1.0", "HTTP/1.0 200 OK\r\n\r\n");
	ok(!(rs.flags & (HTTP_F_KEEPALIVE | HTTP_F_CHUNKED | HTTP_F_HAS_CL)), "%s: no framing, no keep-alive", tname);
	resp("1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
	ok(rs.flags & HTTP_F_KEEPALIVE, "%s: keep-alive", tname);
	resp("1.1 close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
	ok(!(rs.flags & HTTP_F_KEEPALIVE), "%s: not kept alive", tname);
	resp("equal Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n");
	is(rs.content_length, 3, "%s: one length", tname);
	resp("obs-text in a value", "HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n");
	is(rs.nheaders, 2, "%s: accepted", tname);
	resp("bare LF lines", "HTTP/1.1 200 OK\nContent-Length: 0\n\n");
	is(rs.status, 200, "%s: accepted", tname);

	resp_bad("gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    "unsupported transfer coding");
	resp_bad("gzip alone", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer coding");
	resp_bad("chunked, gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    "unsupported transfer coding");
	resp_bad("chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "chunked applied twice");
	resp_bad("identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", "unsupported transfer coding");
	resp_bad("empty TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", "empty Transfer-Encoding");
	resp_bad("TE in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "Transfer-Encoding in an HTTP/1.0 response");
	resp_bad("CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "both Content-Length and Transfer-Encoding");
	resp_bad("differing CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	    "conflicting Content-Length values");
	resp_bad("HTTP/2 status line", "HTTP/2 200 OK\r\n\r\n", "malformed status line");
	resp_bad("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "malformed status line");
	resp_bad("status 600", "HTTP/1.1 600 OK\r\n\r\n", "malformed status line");
	resp_bad("control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", "control character in reason phrase");
	is(resp("obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n"), -1, "%s: refused", tname);
	is(resp("space before colon", "HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n"), -1, "%s: refused", tname);
}

int
main(void)
{
	test_basic();
	test_targets();
	test_request_line();
	test_connection();
	test_line_endings();
	test_incremental();
	test_pipeline_rebase();
	test_headers();
	test_limits();
	test_framing();
	test_chunked();
	test_response();
	free(cur);
	free(dw.out);
	return done_testing();
}
