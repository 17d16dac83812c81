/*
 * libFuzzer target for the static handler's path check: a request path is
 * normalized by route_normalize_path, as the connection does, and then
 * judged by static_check_path, as static_start does.
 *
 * Whatever static_check_path lets through (returns 0) is looked up under
 * the root, so it must hold: no "/." segment start except a leading
 * "/.well-known" (alone or followed by "/"), no backslash, no NUL, valid
 * UTF-8 without overlong forms or surrogates, at most 4000 bytes, and a
 * raw path without "%2f" or "%5c" in any case.  The only answers are 0,
 * 400, 404 and 414.  Any disagreement traps.
 */
#include "common/route.h"
#include "origin/static.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

/* An independent strict UTF-8 check (RFC 3629 table 2). */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		unsigned char lo = 0x80, hi = 0xbf;
		size_t len;
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c == 0xe0) { len = 3; lo = 0xa0; }
		else if (c == 0xed) { len = 3; hi = 0x9f; }
		else if (c >= 0xe1 && c <= 0xef)
			len = 3;
		else if (c == 0xf0) { len = 4; lo = 0x90; }
		else if (c == 0xf4) { len = 4; hi = 0x8f; }
		else if (c >= 0xf1 && c <= 0xf3)
			len = 4;
		else
			return 0;
		if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += len;
	}
	return 1;
}

static int
has_encoded_separator(const char *raw, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		if (raw[i] != '%')
			continue;
		char a = raw[i + 1], b = (char)(raw[i + 2] | 0x20);
		if ((a == '2' && b == 'f') || (a == '5' && b == 'c'))
			return 1;
	}
	return 0;
}

static void
check_allowed(const char *raw, size_t raw_len, const char *norm, size_t n)
{
	CHECK(n >= 1 && n <= 4000);
	CHECK(norm[0] == '/');
	CHECK(memchr(norm, '\\', n) == NULL);
	CHECK(memchr(norm, '\0', n) == NULL);
	CHECK(utf8_valid((const unsigned char *)norm, n));
	CHECK(!has_encoded_separator(raw, raw_len));
	for (size_t i = 0; i + 1 < n; i++) {
		if (norm[i] != '/' || norm[i + 1] != '.')
			continue;
		/* The one dot segment allowed: "/.well-known" at the very start. */
		CHECK(i == 0 && n >= 12 && memcmp(norm, "/.well-known", 12) == 0 &&
		    (n == 12 || norm[12] == '/'));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *raw = malloc(size != 0 ? size : 1);
	char *norm = malloc(size + 1);

	if (raw == NULL || norm == NULL)
		abort();
	memcpy(raw, data, size);
	long n = route_normalize_path(raw, size, norm);
	if (n >= 0) {
		/* An exactly-sized copy, so ASan sees a read past norm_len. */
		char *nc = malloc((size_t)n != 0 ? (size_t)n : 1);
		if (nc == NULL)
			abort();
		memcpy(nc, norm, (size_t)n);
		int st = static_check_path(raw, size, nc, (size_t)n);
		CHECK(st == 0 || st == 400 || st == 404 || st == 414);
		if (st == 0)
			check_allowed(raw, size, nc, (size_t)n);
		/* A normalized path with no escapes checks the same as itself raw. */
		if (memchr(norm, '%', (size_t)n) == NULL && !has_encoded_separator(raw, size))
			CHECK(static_check_path(nc, (size_t)n, nc, (size_t)n) == st);
		free(nc);
	}
	free(raw);
	free(norm);
	return 0;
}
