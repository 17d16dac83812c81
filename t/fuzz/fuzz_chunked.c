/*
 * libFuzzer target for http_chunked_parse.
 *
 * Input: byte 0 sets max_trailer, the rest is a chunked body.  It is
 * decoded with as few calls as possible and again one byte per call (each
 * byte in its own allocation, so ASan sees any read past len); payload,
 * bytes consumed and decoder state must agree.  Any disagreement traps.
 */
#include "common/http_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

struct run {
	int bad;
	size_t consumed;
	size_t out_len;
	char *out;
	struct http_chunked c;
};

static void
decode(const uint8_t *s, size_t n, size_t step, size_t max_trailer, struct run *d)
{
	memset(d, 0, sizeof(*d));
	d->out = malloc(n + 1);
	if (d->out == NULL)
		abort();
	http_chunked_init(&d->c);
	while (d->consumed < n && d->c.state != CHUNK_DONE) {
		size_t len = n - d->consumed < step ? n - d->consumed : step;
		char *b = malloc(len);
		size_t off = 99, dl = 99;
		if (b == NULL)
			abort();
		memcpy(b, s + d->consumed, len);
		ssize_t k = http_chunked_parse(&d->c, b, len, &off, &dl, max_trailer);
		if (k < 0) {
			free(b);
			d->bad = 1;
			return;
		}
		/* Bytes were left and the body is not done: something must be eaten. */
		CHECK(k > 0 && (size_t)k <= len);
		CHECK(off + dl <= (size_t)k);
		memcpy(d->out + d->out_len, b + off, dl);
		d->out_len += dl;
		d->consumed += (size_t)k;
		free(b);
		CHECK(d->out_len == d->c.total);
		CHECK(d->c.trailer_bytes <= max_trailer);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run w, b;

	if (size < 1)
		return 0;
	size_t max_trailer = (size_t)data[0] * 4;
	const uint8_t *in = data + 1;
	size_t n = size - 1;

	decode(in, n, n, max_trailer, &w);
	decode(in, n, 1, max_trailer, &b);
	CHECK(w.bad == b.bad);
	CHECK(w.out_len == b.out_len && memcmp(w.out, b.out, w.out_len) == 0);
	if (!w.bad) {
		CHECK(w.consumed == b.consumed);
		CHECK(w.c.state == b.c.state && w.c.remaining == b.c.remaining &&
		    w.c.total == b.c.total && w.c.trailers == b.c.trailers &&
		    w.c.trailer_bytes == b.c.trailer_bytes);
		/* Stopped early only because the body is done. */
		CHECK(w.consumed == n || w.c.state == CHUNK_DONE);
	}
	if (w.c.state == CHUNK_DONE) {
		size_t off, dl;
		CHECK(http_chunked_parse(&w.c, (const char *)in, n, &off, &dl, max_trailer) == 0);
		CHECK(dl == 0);
	}
	free(w.out);
	free(b.out);
	return 0;
}
