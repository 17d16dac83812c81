#include "common/coding.h"

#include <string.h>
#include <strings.h>

static const char *const names[CODING_COUNT] = { "identity", "gzip", "br", "zstd" };

const char *
coding_name(enum content_coding c)
{
	return c < CODING_COUNT ? names[c] : "identity";
}

int
coding_from_name(const char *name, size_t len)
{
	for (int c = 0; c < CODING_COUNT; c++)
		if (strlen(names[c]) == len && strncasecmp(names[c], name, len) == 0)
			return c;
	if (len == 6 && strncasecmp(name, "x-gzip", 6) == 0)
		return CODING_GZIP;
	return -1;
}

void
coding_accept_init(struct coding_accept *a)
{
	for (int c = 0; c < CODING_COUNT; c++)
		a->q[c] = CODING_Q_UNSET;
	a->star = CODING_Q_UNSET;
}

/* RFC 9110 5.6.2: tchar. */
static int
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int
is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * A qvalue (RFC 9110 12.4.2) in s[0..len), exactly: "0", "0.5", "1.000".
 * Thousandths, or -1.
 */
static int
qvalue(const char *s, size_t len)
{
	if (len == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	int q = (s[0] - '0') * 1000;
	if (len == 1)
		return q;
	if (s[1] != '.' || len > 5)
		return -1;
	int scale = 100;
	for (size_t i = 2; i < len; i++, scale /= 10) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		q += (s[i] - '0') * scale;
	}
	return q <= 1000 ? q : -1;
}

/*
 * One member, s[0..len) with the blanks around it gone: a coding, then
 * at most one weight, OWS ";" OWS "q=" qvalue.  The q, with the coding in
 * *tok and *tlen; -1 when it does not follow the grammar.
 */
static int
member(const char *s, size_t len, const char **tok, size_t *tlen)
{
	size_t i = 0;

	while (i < len && is_tchar((unsigned char)s[i]))
		i++;
	if (i == 0)
		return -1;
	*tok = s;
	*tlen = i;
	while (i < len && is_ows(s[i]))
		i++;
	if (i == len)
		return 1000;
	if (s[i++] != ';')
		return -1;
	while (i < len && is_ows(s[i]))
		i++;
	if (len - i < 2 || (s[i] != 'q' && s[i] != 'Q') || s[i + 1] != '=')
		return -1;
	return qvalue(s + i + 2, len - i - 2);
}

static void
set_q(int *slot, int q)
{
	if (*slot == CODING_Q_UNSET || q < *slot)
		*slot = q;
}

void
coding_accept_parse(struct coding_accept *a, const char *v, size_t len)
{
	size_t i = 0;

	while (i < len) {
		/* A member runs to the next comma: none can hold one. */
		const char *m = memchr(v + i, ',', len - i);
		size_t end = m != NULL ? (size_t)(m - v) : len, b = i, e = end;
		while (b < e && is_ows(v[b]))
			b++;
		while (e > b && is_ows(v[e - 1]))
			e--;
		i = end + 1;
		const char *tok;
		size_t tlen;
		int q;
		if (e == b || (q = member(v + b, e - b, &tok, &tlen)) < 0)
			continue; /* empty list elements are allowed (5.6.1); bad ones skipped */
		int c;
		if (tlen == 1 && tok[0] == '*')
			set_q(&a->star, q);
		else if ((c = coding_from_name(tok, tlen)) >= 0)
			set_q(&a->q[c], q);
	}
}

int
coding_q(const struct coding_accept *a, enum content_coding c)
{
	return a->q[c] != CODING_Q_UNSET ? a->q[c] : a->star;
}

enum content_coding
coding_choose(const struct coding_accept *a, const enum content_coding *pref, size_t npref)
{
	enum content_coding best = CODING_IDENTITY;
	int bestq = 0;

	for (size_t i = 0; i < npref; i++) {
		if (pref[i] <= CODING_IDENTITY || pref[i] >= CODING_COUNT)
			continue;
		int q = coding_q(a, pref[i]);
		if (q > bestq) {
			best = pref[i];
			bestq = q;
		}
	}
	/* Identity named with a higher q than any coding: the client would
	 * rather have it as it is.  Not named, it loses to any coding. */
	if (best != CODING_IDENTITY && a->q[CODING_IDENTITY] > bestq)
		return CODING_IDENTITY;
	return best;
}
