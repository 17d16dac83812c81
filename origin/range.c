#include "origin/range.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
by_first(const void *a, const void *b)
{
	const struct byte_range *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Reads a decimal number; -1 if none.  One too large for 64 bits is
 * UINT64_MAX: still past any file's end, as it is in fact (RFC 9110 14.1.1
 * puts no bound on the digits). */
static int
number(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (*p < end && **p >= '0' && **p <= '9') {
		uint64_t d = (uint64_t)(**p - '0');
		*v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
		(*p)++;
	}
	return *p > s ? 0 : -1;
}

/* Compares two decimal digit strings by value (leading zeros ignored). */
static int
digits_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	while (al > 1 && *a == '0') {
		a++;
		al--;
	}
	while (bl > 1 && *b == '0') {
		b++;
		bl--;
	}
	if (al != bl)
		return al < bl ? -1 : 1;
	return memcmp(a, b, al);
}

enum range_result
range_parse(const char *v, size_t len, uint64_t size, struct byte_range *out, unsigned *n)
{
	/* Room for what a client may send before merging; more is an abuse. */
	struct byte_range tmp[RANGE_MAX * 4];
	const char *p = v, *end = v + len;
	unsigned k = 0, specs = 0;

	*n = 0;
	if (len < 6 || strncasecmp(v, "bytes=", 6) != 0)
		return RANGE_NONE;
	p += 6;
	for (;;) {
		uint64_t a, b;
		/* Empty list elements are allowed (RFC 9110 5.6.1.2). */
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p == end)
			break;
		specs++;
		if (p < end && *p == '-') {
			p++;
			if (number(&p, end, &b) < 0)
				return RANGE_NONE;
			if (b > 0 && size > 0) {
				a = b >= size ? 0 : size - b;
				b = size - 1;
				goto add;
			}
			/* "-0" or an empty file: syntactically fine, unsatisfiable */
		} else {
			const char *as = p;
			if (number(&p, end, &a) < 0 || p >= end || *p++ != '-')
				return RANGE_NONE;
			size_t al = (size_t)(p - 1 - as);
			if (p < end && *p >= '0' && *p <= '9') {
				const char *bs = p;
				if (number(&p, end, &b) < 0 || b < a)
					return RANGE_NONE;
				if (b == UINT64_MAX && a == UINT64_MAX &&
				    digits_cmp(bs, (size_t)(p - bs), as, al) < 0)
					return RANGE_NONE; /* last < first, both past 64 bits */
			} else {
				b = UINT64_MAX;
			}
			if (a < size) {
				if (b >= size)
					b = size - 1;
				goto add;
			}
		}
		goto next;
add:
		if (k == sizeof(tmp) / sizeof(tmp[0]))
			return RANGE_NONE;
		tmp[k].first = a;
		tmp[k].last = b;
		k++;
next:
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			break;
		if (*p++ != ',')
			return RANGE_NONE;
	}
	if (specs == 0)
		return RANGE_NONE;
	if (k == 0)
		return RANGE_UNSATISFIABLE;
	qsort(tmp, k, sizeof(tmp[0]), by_first);
	unsigned m = 0;
	for (unsigned i = 0; i < k; i++) {
		if (m > 0 && tmp[i].first <= out[m - 1].last + 1) {
			if (tmp[i].last > out[m - 1].last)
				out[m - 1].last = tmp[i].last;
			continue;
		}
		if (m == RANGE_MAX)
			return RANGE_NONE;
		out[m++] = tmp[i];
	}
	*n = m;
	return RANGE_OK;
}
