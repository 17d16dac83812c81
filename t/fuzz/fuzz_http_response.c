/*
 * libFuzzer target for http_parse_response, the parser of backend response
 * heads.
 *
 * Input: byte 0 picks the split point, byte 1 the limits, the rest is the
 * response.  The head is parsed in one shot, in two pieces (the first piece
 * in its own exactly-sized buffer, moved onto the whole one), and, when
 * short, byte by byte; all must agree, since a backend's bytes arrive cut
 * anywhere.  A complete head is checked for invariants and parsed again
 * from a buffer holding only its own bytes.  Any disagreement traps.
 */
#include "common/http_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static const struct http_limits limits[2] = {
	{ 8192, 16384, 100 },
	{ 48, 160, 4 },     /* small, so the size limits are reachable */
};

static struct http_response one, two, three, four;

static char *
dup_exact(const uint8_t *s, size_t n)
{
	char *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		abort();
	memcpy(p, s, n);
	return p;
}

/*
 * The parser has no rebase of its own (the proxy's buffer never moves while
 * a head is parsed), so the test moves the slices itself: everything that
 * points into [oldbase, oldbase + n] moves to the same offset at newbase.
 */
static void
rebase(struct http_response *r, const char *oldbase, size_t n, const char *newbase)
{
#define MOVE(f) do { if ((f) != NULL && (f) >= oldbase && (f) <= oldbase + n) \
		(f) = newbase + ((f) - oldbase); } while (0)
	MOVE(r->reason);
	for (unsigned i = 0; i < r->nheaders; i++) {
		MOVE(r->headers[i].name);
		MOVE(r->headers[i].value);
	}
#undef MOVE
}

/* Same bytes at the same offset. */
static int
same_slice(const char *a, uint32_t al, const char *abuf, const char *b, uint32_t bl,
    const char *bbuf)
{
	if (a == NULL || b == NULL)
		return a == b && al == bl;
	return al == bl && a - abuf == b - bbuf && memcmp(a, b, al) == 0;
}

static int
same_response(const struct http_response *x, const char *xb,
    const struct http_response *y, const char *yb)
{
	if (x->version != y->version || x->status != y->status || x->flags != y->flags ||
	    x->content_length != y->content_length || x->head_len != y->head_len ||
	    x->nheaders != y->nheaders)
		return 0;
	if (!same_slice(x->reason, x->reason_len, xb, y->reason, y->reason_len, yb))
		return 0;
	for (unsigned i = 0; i < x->nheaders; i++)
		if (!same_slice(x->headers[i].name, x->headers[i].name_len, xb,
		    y->headers[i].name, y->headers[i].name_len, yb) ||
		    !same_slice(x->headers[i].value, x->headers[i].value_len, xb,
		    y->headers[i].value, y->headers[i].value_len, yb))
			return 0;
	return 1;
}

static void
same_outcome(ssize_t a, const struct http_response *x, const char *xb,
    ssize_t b, const struct http_response *y, const char *yb)
{
	CHECK(a == b);
	if (a > 0)
		CHECK(same_response(x, xb, y, yb));
	else if (a < 0)
		CHECK(x->error != NULL && y->error != NULL && strcmp(x->error, y->error) == 0);
}

static int
inside(const char *p, uint32_t len, const char *buf, size_t head)
{
	return p != NULL && p >= buf && p + len <= buf + head;
}

static int
has_ctl(const char *p, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 1;
	}
	return 0;
}

static void
check_complete(const struct http_response *r, const char *buf, size_t n,
    const struct http_limits *lim)
{
	size_t head = r->head_len;
	unsigned f = r->flags;

	CHECK(head > 0 && head <= n && r->error == NULL);
	CHECK(memcmp(buf, "HTTP/1.", 7) == 0);
	CHECK(r->version == (buf[7] == '1' ? 11 : 10) && (buf[7] == '0' || buf[7] == '1'));
	CHECK(r->status >= 100 && r->status <= 599);
	CHECK(r->status == (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0'));
	CHECK(inside(r->reason, r->reason_len, buf, head));
	CHECK(!has_ctl(r->reason, r->reason_len));
	CHECK(r->nheaders <= lim->max_headers);
	/* The head ends with an empty line. */
	CHECK(buf[head - 1] == '\n');
	CHECK(r->content_length >= -1);
	CHECK(((f & HTTP_F_HAS_CL) != 0) == (r->content_length >= 0));
	/* Both framings at once is refused, never passed on. */
	CHECK(!((f & HTTP_F_HAS_CL) && (f & HTTP_F_HAS_TE)));
	if (f & HTTP_F_CHUNKED)
		CHECK(f & HTTP_F_HAS_TE);
	if (f & HTTP_F_KEEPALIVE)
		CHECK(!(f & HTTP_F_CONN_CLOSE));
	if (r->version == 11)
		CHECK(((f & HTTP_F_KEEPALIVE) != 0) == !(f & HTTP_F_CONN_CLOSE));
	else
		CHECK(((f & HTTP_F_KEEPALIVE) != 0) == ((f & HTTP_F_CONN_KA) && !(f & HTTP_F_CONN_CLOSE)));
	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		CHECK(h->name_len > 0);
		CHECK(inside(h->name, h->name_len, buf, head));
		CHECK(inside(h->value, h->value_len, buf, head));
		CHECK(h->value > h->name + h->name_len);
		CHECK(h->name[h->name_len] == ':');
		CHECK(!has_ctl(h->name, h->name_len) && !has_ctl(h->value, h->value_len));
		CHECK(memchr(h->name, ' ', h->name_len) == NULL && memchr(h->name, ':', h->name_len) == NULL);
		if (h->value_len > 0)
			CHECK(h->value[0] != ' ' && h->value[0] != '\t' &&
			    h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
		/* Framing fields are where the flags say they are. */
		if (http_token_eq(h->name, h->name_len, "content-length"))
			CHECK(f & HTTP_F_HAS_CL);
		if (http_token_eq(h->name, h->name_len, "transfer-encoding"))
			CHECK(f & HTTP_F_HAS_TE);
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
	http_response_reset(&one);
	ssize_t a = http_parse_response(&one, whole, n, lim);
	CHECK(a <= (ssize_t)n);
	if (a < 0)
		CHECK(a == -1 && one.error != NULL);

	/* Two pieces: the prefix alone must not decide otherwise than the whole. */
	char *part = dup_exact(in, k), *whole2 = dup_exact(in, n);
	http_response_reset(&two);
	ssize_t b = http_parse_response(&two, part, k, lim);
	rebase(&two, part, k, whole2);
	if (b == 0)
		b = http_parse_response(&two, whole2, n, lim);
	free(part);
	same_outcome(a, &one, whole, b, &two, whole2);

	/* Byte by byte, for short inputs. */
	if (n <= 160) {
		char *prev = NULL, *cur = NULL;
		ssize_t c = 0;
		http_response_reset(&three);
		for (size_t i = 1; i <= n; i++) {
			cur = dup_exact(in, i);
			if (prev != NULL)
				rebase(&three, prev, i - 1, cur);
			free(prev);
			prev = cur;
			if ((c = http_parse_response(&three, cur, i, lim)) != 0)
				break;
		}
		/* A complete head is seen exactly when its last byte arrives. */
		if (prev != NULL)
			same_outcome(a, &one, whole, c, &three, prev);
		else
			CHECK(a == 0);
		free(prev);
	}

	if (a > 0) {
		check_complete(&one, whole, n, lim);
		/* The head's own bytes, and nothing after them, give the same head. */
		char *head = dup_exact(in, (size_t)a);
		http_response_reset(&four);
		ssize_t d = http_parse_response(&four, head, (size_t)a, lim);
		same_outcome(a, &one, whole, d, &four, head);
		free(head);
	}
	free(whole);
	free(whole2);
	return 0;
}
