/*
 * conditional: the conditional requests of RFC 9110 section 13 against a
 * representation's entity-tag and Last-Modified date.
 */
#include "origin/conditional.h"

#include <string.h>

#include "common/exchange.h"
#include "common/http.h"

/*
 * If-Match / If-None-Match: every field line of that name, together one list
 * (RFC 9110 5.3): "*" alone, or entity-tags separated by commas.  Returns 1
 * when one matches etag (weak: a W/ prefix on either side is ignored, RFC 9110
 * 8.8.3.2), 0 when none does, -1 when there is no such field or the list is
 * not valid (then the condition is ignored, as if absent).
 */
static int
etag_list_matches(const struct request *r, const char *name, const char *etag, int weak)
{
	size_t el = strlen(etag);
	int seen = 0, match = 0, star = 0, tags = 0;
	const struct http_header *h;
	unsigned it = 0;

	while (req_header_next(r, &it, &h)) {
		if (!http_token_eq(h->name, h->name_len, name))
			continue;
		seen = 1;
		const char *p = h->value, *end = p + h->value_len;
		for (;;) {
			while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			if (p == end)
				break;
			if (*p == '*') {
				star++;
				p++;
			} else {
				int is_weak = end - p > 2 && p[0] == 'W' && p[1] == '/';
				const char *s = p += is_weak ? 2 : 0;
				if (p == end || *p++ != '"')
					return -1;
				while (p < end && *p != '"') {
					unsigned char c = (unsigned char)*p++;
					if (c < 0x21 || c == 0x7f)
						return -1;
				}
				if (p++ == end)
					return -1; /* no closing quote */
				tags++;
				if ((size_t)(p - s) == el && memcmp(s, etag, el) == 0 && (weak || !is_weak))
					match = 1;
			}
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			if (p < end && *p != ',')
				return -1; /* two members without a comma between */
		}
	}
	if (!seen || (star > 0 && (star > 1 || tags > 0)))
		return -1;
	return star || match;
}

/* A date condition: one valid HTTP-date in one field line, else ignored
 * (RFC 9110 13.1.3: more than one member, or not a date). */
static int
header_date(const struct request *r, const char *name, time_t *t)
{
	const struct http_header *h = NULL, *x;
	unsigned it = 0;

	while (req_header_next(r, &it, &x))
		if (http_token_eq(x->name, x->name_len, name)) {
			if (h != NULL)
				return 0;
			h = x;
		}
	return h != NULL && http_parse_date(h->value, h->value_len, t) == 0;
}

/*
 * RFC 9110 section 13.2.2: the preconditions in their order.  Returns 0 to
 * go on, or the status (304, 412) to answer with.
 */
int
cond_preconditions(const struct request *r, const char *etag, time_t lm)
{
	time_t t;
	int m;

	if ((m = etag_list_matches(r, "if-match", etag, 0)) >= 0) {
		if (m == 0)
			return 412;
	} else if (header_date(r, "if-unmodified-since", &t) && lm > t) {
		return 412;
	}
	if ((m = etag_list_matches(r, "if-none-match", etag, 1)) >= 0) {
		if (m == 1)
			return 304; /* GET and HEAD only reach here */
	} else if (header_date(r, "if-modified-since", &t) && lm <= t) {
		return 304;
	}
	return 0;
}

/* If-Range: a strong validator equal to ours, or our exact Last-Modified date. */
int
cond_if_range(const struct request *r, const char *etag, time_t lm)
{
	const struct http_header *h = req_header(r, "if-range");
	time_t t;

	if (h == NULL)
		return 1;
	if (h->value_len > 0 && h->value[0] == '"')
		return h->value_len == strlen(etag) && memcmp(h->value, etag, h->value_len) == 0;
	return http_parse_date(h->value, h->value_len, &t) == 0 && t == lm;
}
