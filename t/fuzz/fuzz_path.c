/*
 * libFuzzer target for route_normalize_path.
 *
 * Input: a request path.  It is copied into an exactly-sized buffer (so
 * ASan sees any read past len) and normalized into one of len + 1 bytes.
 * A path accepted must start with "/", be no longer than the input, be
 * NUL-terminated at the length returned, and hold no "//", "/./" or "/../"
 * and not end in "/." or "/..".  A result without '%' is already
 * normal, so normalizing it again must give it back unchanged.  Any
 * disagreement traps.
 */
#include "common/route.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static int
ends_with(const char *s, size_t n, const char *suffix)
{
	size_t l = strlen(suffix);

	return n >= l && memcmp(s + n - l, suffix, l) == 0;
}

static void
check_normal(const char *out, long n, size_t in_len)
{
	CHECK(n >= 1 && (size_t)n <= in_len);
	CHECK(out[0] == '/');
	CHECK(out[n] == '\0');
	CHECK(memmem(out, (size_t)n, "//", 2) == NULL);
	CHECK(memmem(out, (size_t)n, "/./", 3) == NULL);
	CHECK(memmem(out, (size_t)n, "/../", 4) == NULL);
	CHECK(!ends_with(out, (size_t)n, "/."));
	CHECK(!ends_with(out, (size_t)n, "/.."));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size != 0 ? size : 1);
	char *out = malloc(size + 1);
	long n;

	if (in == NULL || out == NULL)
		abort();
	memcpy(in, data, size);
	n = route_normalize_path(in, size, out);
	CHECK(n >= -1);
	if (n >= 0) {
		check_normal(out, n, size);
		if (memchr(out, '%', (size_t)n) == NULL) {
			char *again = malloc((size_t)n + 1);
			if (again == NULL)
				abort();
			long m = route_normalize_path(out, (size_t)n, again);
			CHECK(m == n && memcmp(again, out, (size_t)n + 1) == 0);
			free(again);
		}
	}
	free(in);
	free(out);
	return 0;
}
