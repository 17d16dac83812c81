/*
 * libFuzzer target for the incremental UTF-8 validator (common/ws.c).
 *
 * Input: the first byte picks a split point, the rest is the text.  The
 * verdict fed whole, fed in two pieces at the split and fed a byte at a
 * time must agree with each other and with a plain reference decoder
 * written from RFC 3629 (shortest form, no surrogates, at most U+10FFFF).
 * Any disagreement traps.
 */
#include "common/ws.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static int
reference(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t len;
		uint8_t b = p[i];
		if (b < 0x80) {
			i++;
			continue;
		}
		if ((b & 0xE0) == 0xC0) {
			len = 2;
			cp = b & 0x1F;
		} else if ((b & 0xF0) == 0xE0) {
			len = 3;
			cp = b & 0x0F;
		} else if ((b & 0xF8) == 0xF0) {
			len = 4;
			cp = b & 0x07;
		} else {
			return -1;
		}
		if (i + len > n)
			return -1;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return -1;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
			return -1;
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		i += len;
	}
	return 0;
}

static int
whole(const uint8_t *p, size_t n)
{
	struct ws_utf8 u;

	ws_utf8_init(&u);
	return ws_utf8_feed(&u, p, n) == 0 && ws_utf8_done(&u) == 0 ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_utf8 u;

	if (size < 1)
		return 0;
	size_t split = data[0];
	data++;
	size--;
	if (split > size)
		split = size;
	int ref = reference(data, size);
	CHECK(whole(data, size) == ref);
	ws_utf8_init(&u);
	int two = ws_utf8_feed(&u, data, split) == 0 && ws_utf8_feed(&u, data + split, size - split) == 0 &&
	    ws_utf8_done(&u) == 0 ? 0 : -1;
	CHECK(two == ref);
	ws_utf8_init(&u);
	int bad = 0;
	for (size_t i = 0; i < size && !bad; i++)
		bad = ws_utf8_feed(&u, data + i, 1) < 0;
	CHECK((bad || ws_utf8_done(&u) < 0 ? -1 : 0) == ref);
	return 0;
}
