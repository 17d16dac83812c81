/*
 * libFuzzer target for http_parse_request.
 *
 * Input: byte 0 picks the split point, byte 1 the limits, the rest is the
 * request.  The request is parsed in one shot, in two pieces (the first
 * piece in its own exactly-sized buffer, rebased onto the whole one), and,
 * when short, byte by byte; all must agree.  A complete head is then checked
 * for invariants, looked up with http_find_header and rebased.  Any
 * disagreement traps.
 */
#include "common/http_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static const struct http_limits limits[2] = {
	{ 8192, 16384, 100 },
	{ 48, 160, 4 },     /* small, so 414 and 431 are reachable */
};

static struct http_request one, two, three;

static char *
dup_exact(const uint8_t *s, size_t n)
{
	char *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		abort();
	memcpy(p, s, n);
	return p;
}

/* Same bytes at the same offset, or the same static string. */
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

static void
same_outcome(ssize_t a, const struct http_request *x, const char *xb,
    ssize_t b, const struct http_request *y, const char *yb, size_t n)
{
	CHECK(a == b);
	if (a > 0)
		CHECK(same_request(x, xb, y, yb, n));
	else if (a < 0)
		CHECK(x->error != NULL && y->error != NULL && strcmp(x->error, y->error) == 0);
}

static int
inside(const char *p, uint32_t len, const char *buf, size_t head)
{
	return p == NULL || (p >= buf && p + len <= buf + head);
}

static void
check_complete(const struct http_request *r, const char *buf, size_t n,
    const struct http_limits *lim)
{
	size_t head = r->head_len;

	CHECK(head > 0 && head <= n && r->error == NULL);
	CHECK(r->version == 10 || r->version == 11);
	CHECK(r->nheaders <= lim->max_headers);
	CHECK(r->line_len <= lim->max_request_line);
	CHECK(r->method_len > 0 && r->target_len > 0 && r->path_len > 0);
	CHECK(inside(r->line, r->line_len, buf, head));
	CHECK(inside(r->method, r->method_len, buf, head));
	CHECK(inside(r->target, r->target_len, buf, head));
	CHECK(inside(r->query, r->query_len, buf, head));
	CHECK(inside(r->host, r->host_len, buf, head));
	CHECK(inside(r->path, r->path_len, buf, head) ||
	    (r->path_len == 1 && r->path[0] == '/' && (r->flags & HTTP_F_ABSOLUTE)));
	CHECK(r->content_length >= -1);
	CHECK(((r->flags & HTTP_F_HAS_CL) != 0) == (r->content_length >= 0));
	if (r->flags & HTTP_F_CHUNKED)
		CHECK(!(r->flags & HTTP_F_HAS_CL) && r->version == 11);
	if (r->version == 11)
		CHECK(r->flags & HTTP_F_HAS_HOST);
	if (r->flags & HTTP_F_UPGRADE)
		CHECK(r->flags & HTTP_F_UPGRADE_HDR);
	/* The head ends with an empty line. */
	CHECK(buf[head - 1] == '\n');

	char name[64];
	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		CHECK(h->name_len > 0);
		CHECK(inside(h->name, h->name_len, buf, head));
		CHECK(inside(h->value, h->value_len, buf, head));
		if (h->value_len > 0)
			CHECK(h->value[0] != ' ' && h->value[0] != '\t' &&
			    h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
		if (h->name_len >= sizeof(name))
			continue;
		/* Look it up in upper case: the first header of that name wins. */
		for (uint32_t j = 0; j < h->name_len; j++) {
			char c = h->name[j];
			name[j] = c >= 'a' && c <= 'z' ? c - 32 : c;
		}
		name[h->name_len] = '\0';
		const struct http_header *f = http_find_header(r, name);
		CHECK(f != NULL && f <= h && f->name_len == h->name_len);
		for (uint32_t j = 0; j < f->name_len; j++) {
			char c = f->name[j];
			CHECK((c >= 'a' && c <= 'z' ? c - 32 : c) == name[j]);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const struct http_limits *lim = &limits[data[1] & 1];
	const uint8_t *in = data + 2;
	size_t n = size - 2, k = (size_t)data[0] * n / 255;

	char *whole = dup_exact(in, n);
	http_request_reset(&one);
	ssize_t a = http_parse_request(&one, whole, n, lim);
	CHECK(a <= (ssize_t)n);
	if (a < 0)
		CHECK(one.error != NULL && (a == -400 || a == -414 || a == -431 ||
		    a == -501 || a == -505 || a == -417));

	/* Two pieces: the prefix alone must not claim more than the whole. */
	char *part = dup_exact(in, k), *whole2 = dup_exact(in, n);
	http_request_reset(&two);
	ssize_t b = http_parse_request(&two, part, k, lim);
	if (b == 0) {
		http_request_rebase(&two, part, whole2);
		b = http_parse_request(&two, whole2, n, lim);
	} else {
		/* Decided on the prefix: the whole must say the same. */
		http_request_rebase(&two, part, whole2);
	}
	free(part);
	same_outcome(a, &one, whole, b, &two, whole2, n);

	/* Byte by byte, for short inputs. */
	if (n <= 160) {
		char *prev = NULL, *cur = NULL;
		ssize_t c = 0;
		http_request_reset(&three);
		for (size_t i = 1; i <= n; i++) {
			cur = dup_exact(in, i);
			if (prev != NULL)
				http_request_rebase(&three, prev, cur);
			free(prev);
			prev = cur;
			if ((c = http_parse_request(&three, cur, i, lim)) != 0)
				break;
		}
		/* A complete head is seen exactly when its last byte arrives. */
		same_outcome(a, &one, whole, c, &three, prev, c > 0 ? (size_t)c : n);
		free(prev);
	}

	if (a > 0) {
		check_complete(&one, whole, n, lim);
		/* Move the head and check nothing still points at the old copy. */
		char *moved = dup_exact(in, (size_t)a);
		http_request_rebase(&one, whole, moved);
		free(whole);
		whole = NULL;
		check_complete(&one, moved, (size_t)a, lim);
		same_outcome(a, &one, moved, b, &two, whole2, (size_t)a);
		free(moved);
	}
	free(whole);
	free(whole2);
	return 0;
}
