/*
 * libFuzzer target for range_parse.
 *
 * Input: the first 8 bytes are the representation size (little-endian;
 * fewer bytes: zero-padded; the top bit cleared, as a file size is an
 * off_t and so below 2^63), the rest is a Range header value, copied into
 * an exactly-sized buffer so ASan sees any read past its length.
 *
 * On RANGE_OK there are 1..RANGE_MAX ranges, each first <= last < size,
 * sorted, neither overlapping nor adjacent (they would have been merged).
 * Otherwise n is 0, and an empty representation is never RANGE_OK.
 * Writing the ranges back as "bytes=a-b,..." and parsing that again must
 * give the same ranges.  Any disagreement traps.
 */
#include "origin/range.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void
check_ranges(const struct byte_range *r, unsigned n, uint64_t size)
{
	CHECK(n >= 1 && n <= RANGE_MAX);
	CHECK(size > 0);
	for (unsigned i = 0; i < n; i++) {
		CHECK(r[i].first <= r[i].last);
		CHECK(r[i].last < size);
		if (i > 0)
			CHECK(r[i - 1].last < r[i].first && r[i].first - r[i - 1].last > 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rsize = 0;
	size_t k = size < 8 ? size : 8;
	struct byte_range out[RANGE_MAX], again[RANGE_MAX];
	unsigned n = 999, m = 999;

	for (size_t i = 0; i < k; i++)
		rsize |= (uint64_t)data[i] << (8 * i);
	rsize &= INT64_MAX;
	size_t len = size - k;
	char *v = malloc(len != 0 ? len : 1);
	if (v == NULL)
		abort();
	memcpy(v, data + k, len);
	enum range_result rr = range_parse(v, len, rsize, out, &n);
	free(v);
	CHECK(rr == RANGE_NONE || rr == RANGE_UNSATISFIABLE || rr == RANGE_OK);
	if (rr != RANGE_OK) {
		CHECK(n == 0);
		return 0;
	}
	check_ranges(out, n, rsize);

	/* Round trip: the canonical form of the result parses to itself. */
	char buf[16 + RANGE_MAX * 42];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "bytes=");
	for (unsigned i = 0; i < n; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%llu-%llu", i ? "," : "",
		    (unsigned long long)out[i].first, (unsigned long long)out[i].last);
	CHECK(o < sizeof(buf));
	CHECK(range_parse(buf, o, rsize, again, &m) == RANGE_OK);
	CHECK(m == n && memcmp(again, out, n * sizeof(out[0])) == 0);
	return 0;
}
