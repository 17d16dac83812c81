/*
 * libFuzzer target for the Accept-Encoding parser (common/coding.c).
 *
 * Input: the first byte picks the configured order (a permutation of
 * zstd, br and gzip, and how many of them), the rest is the field value,
 * copied into an exactly-sized buffer so ASan sees any read past it.
 *
 * Every q kept is unset or 0..1000; the coding chosen is identity or one
 * of the configured ones with a q above 0 (its own or that of "*"), and
 * none configured has a higher one; parsing the value cut at any comma in
 * two calls gives the same as one call (a member never spans a comma).
 * Any disagreement traps.
 */
#include "common/coding.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static const enum content_coding orders[6][3] = {
	{ CODING_ZSTD, CODING_BR, CODING_GZIP }, { CODING_ZSTD, CODING_GZIP, CODING_BR },
	{ CODING_BR, CODING_ZSTD, CODING_GZIP }, { CODING_BR, CODING_GZIP, CODING_ZSTD },
	{ CODING_GZIP, CODING_ZSTD, CODING_BR }, { CODING_GZIP, CODING_BR, CODING_ZSTD },
};

static int
q_of(const struct coding_accept *a, enum content_coding c)
{
	return a->q[c] != CODING_Q_UNSET ? a->q[c] : a->star;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const enum content_coding *pref = orders[data[0] % 6];
	size_t npref = 1 + (data[0] / 6) % 3, len = size - 1;
	char *v = malloc(len > 0 ? len : 1);
	if (v == NULL)
		return 0;
	memcpy(v, data + 1, len);

	struct coding_accept a, b;
	coding_accept_init(&a);
	coding_accept_parse(&a, v, len);
	for (int c = 0; c < CODING_COUNT; c++)
		CHECK(a.q[c] == CODING_Q_UNSET || (a.q[c] >= 0 && a.q[c] <= 1000));
	CHECK(a.star == CODING_Q_UNSET || (a.star >= 0 && a.star <= 1000));

	enum content_coding got = coding_choose(&a, pref, npref);
	if (got != CODING_IDENTITY) {
		size_t i;
		for (i = 0; i < npref && pref[i] != got; i++)
			;
		CHECK(i < npref);
		CHECK(q_of(&a, got) > 0);
		for (size_t j = 0; j < npref; j++)
			CHECK(q_of(&a, pref[j]) <= q_of(&a, got));
		CHECK(a.q[CODING_IDENTITY] <= q_of(&a, got));
	} else {
		int any = 0;
		for (size_t j = 0; j < npref; j++)
			any |= q_of(&a, pref[j]) > 0;
		CHECK(!any || a.q[CODING_IDENTITY] > 0);
	}

	const char *comma = memchr(v, ',', len);
	if (comma != NULL) {
		size_t cut = (size_t)(comma - v);
		coding_accept_init(&b);
		coding_accept_parse(&b, v, cut);
		coding_accept_parse(&b, v + cut + 1, len - cut - 1);
		CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	}
	free(v);
	return 0;
}
