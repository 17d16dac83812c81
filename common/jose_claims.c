#include "common/jose_claims.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The parser: recursive descent over the payload, one pass.  Each
 * function takes the cursor at its first byte and returns 0 with the
 * cursor past what it read, or -1.  Strings are unescaped in place (an
 * escape is never shorter than what it stands for), so every offset
 * stays inside the payload and fits 16 bits.
 */
struct jp {
	struct jose_payload *pl;
	char *p, *end;
	size_t n;                      /* entries in pl->v */
	size_t nnames;                 /* names in pl->names, of every open object */
};

/* How a value is kept: a member's value, a string of a member's list, or not at all. */
enum keep { KEEP_MEMBER, KEEP_LISTED, KEEP_NONE };

static void
ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
hex4(const char *s, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		    c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		*v = *v << 4 | (unsigned)d;
	}
	return 0;
}

/* The length of the UTF-8 sequence at s (at most avail bytes): 2 to 4,
 * or 0 when it is not one (overlong, a surrogate, past U+10FFFF). */
static size_t
utf8_len(const unsigned char *s, size_t avail)
{
	unsigned c = s[0], cp;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static char *
put_utf8(char *w, unsigned cp)
{
	if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | cp >> 6);
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | cp >> 12);
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | cp >> 18);
		*w++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	return w;
}

/* A \u escape (at the cursor, past the backslash and u) into w: a
 * surrogate pair whole, never a lone half, never U+0000. */
static int
unicode_escape(struct jp *j, char **w)
{
	unsigned cp, lo;

	if (j->end - j->p < 4 || hex4(j->p, &cp) < 0)
		return -1;
	j->p += 4;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return -1;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) < 0 ||
		    lo < 0xdc00 || lo > 0xdfff)
			return -1;
		j->p += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp == 0)
		return -1;
	*w = put_utf8(*w, cp);
	return 0;
}

/* A string at the cursor ('"'), unescaped where it stood: *off and *len. */
static int
string(struct jp *j, uint16_t *off, uint16_t *len)
{
	char *w = ++j->p, *start = w;

	for (;;) {
		if (j->p >= j->end)
			return -1;
		unsigned char c = (unsigned char)*j->p;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			size_t n = utf8_len((unsigned char *)j->p, (size_t)(j->end - j->p));
			if (n == 0)
				return -1;
			memmove(w, j->p, n);
			w += n;
			j->p += n;
			continue;
		}
		j->p++;
		if (c != '\\') {
			*w++ = (char)c;
			continue;
		}
		if (j->p >= j->end)
			return -1;
		switch (*j->p++) {
		case '"': *w++ = '"'; break;
		case '\\': *w++ = '\\'; break;
		case '/': *w++ = '/'; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u':
			if (unicode_escape(j, &w) < 0)
				return -1;
			break;
		default:
			return -1;
		}
	}
	j->p++;
	*off = (uint16_t)(start - j->pl->buf);
	*len = (uint16_t)(w - start);
	return 0;
}

static int
digits(struct jp *j)
{
	const char *s = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > s ? 0 : -1;
}

/* A number (RFC 8259 6) into v: an integer must fit 64 bits, a real not
 * overflow, as jansson takes them. */
static int
number(struct jp *j, struct jose_claim *v)
{
	char *start = j->p, save, *end;
	int real = 0;

	if (*j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (digits(j) < 0)
		return -1;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		real = 1;
		if (digits(j) < 0)
			return -1;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		real = 1;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (digits(j) < 0)
			return -1;
	}
	/* strtod wants a NUL: borrow the next byte (the buffer has one to
	 * spare).  portico never calls setlocale, so strtod reads a '.'. */
	save = *j->p;
	*j->p = '\0';
	errno = 0;
	if (real) {
		v->num = strtod(start, &end);
		if (isinf(v->num))
			errno = ERANGE;
		else
			errno = 0;
	} else {
		v->num = (double)strtoll(start, &end, 10);
	}
	*j->p = save;
	if (errno != 0 || end != j->p)
		return -1;
	v->type = real ? JOSE_C_REAL : JOSE_C_INTEGER;
	v->val = (uint16_t)(start - j->pl->buf);
	v->vlen = (uint16_t)(j->p - start);
	return 0;
}

static int
literal(struct jp *j, const char *word, size_t len)
{
	if ((size_t)(j->end - j->p) < len || memcmp(j->p, word, len) != 0)
		return -1;
	j->p += len;
	return 0;
}

static int value(struct jp *j, int depth, enum keep keep, struct jose_claim *v);

/* A new entry, or NULL when the table is full (it never is: see JOSE_CLAIMS_MAX). */
static struct jose_claim *
entry(struct jp *j)
{
	if (j->n == JOSE_CLAIMS_MAX)
		return NULL;
	memset(&j->pl->v[j->n], 0, sizeof(j->pl->v[0]));
	return &j->pl->v[j->n++];
}

static int
list(struct jp *j, int depth, enum keep keep, struct jose_claim *v)
{
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		/* A member's list keeps its strings, as entries after it. */
		if (keep == KEEP_MEMBER && j->p < j->end && *j->p == '"') {
			struct jose_claim *s = entry(j);
			if (s == NULL || value(j, depth + 1, KEEP_LISTED, s) < 0)
				return -1;
			v->nlist++;
		} else if (value(j, depth + 1, KEEP_NONE, NULL) < 0) {
			return -1;
		}
		ws(j);
		if (j->p >= j->end)
			return -1;
		if (*j->p++ == ']')
			return 0;
		if (j->p[-1] != ',')
			return -1;
		ws(j);
	}
}

/* An object; top: the claims set, whose members are kept. */
static int
object(struct jp *j, int depth, int top)
{
	size_t base = j->nnames;
	uint16_t off, len;

	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		if (j->p >= j->end || *j->p != '"' || string(j, &off, &len) < 0)
			return -1;
		for (size_t i = base; i < j->nnames; i++)
			if (j->pl->names[i][1] == len &&
			    memcmp(j->pl->buf + j->pl->names[i][0], j->pl->buf + off, len) == 0)
				return -1;
		if (j->nnames == JOSE_CLAIMS_MAX)
			return -1;
		j->pl->names[j->nnames][0] = off;
		j->pl->names[j->nnames++][1] = len;
		ws(j);
		if (j->p >= j->end || *j->p++ != ':')
			return -1;
		ws(j);
		struct jose_claim *v = NULL;
		if (top && (v = entry(j)) == NULL)
			return -1;
		if (v != NULL) {
			v->name = off;
			v->nlen = len;
		}
		if (value(j, depth + 1, top ? KEEP_MEMBER : KEEP_NONE, v) < 0)
			return -1;
		ws(j);
		if (j->p >= j->end)
			return -1;
		if (*j->p++ == '}')
			break;
		if (j->p[-1] != ',')
			return -1;
		ws(j);
	}
	j->nnames = base;
	return 0;
}

/* Any value; v, when kept, gets its type and text. */
static int
value(struct jp *j, int depth, enum keep keep, struct jose_claim *v)
{
	struct jose_claim scratch;
	uint16_t off, len;

	if (depth > JOSE_CLAIMS_DEPTH || j->p >= j->end)
		return -1;
	if (v == NULL)
		v = &scratch;
	switch (*j->p) {
	case '"':
		if (string(j, &off, &len) < 0)
			return -1;
		v->type = JOSE_C_STRING;
		v->val = off;
		v->vlen = len;
		return 0;
	case '{':
		v->type = JOSE_C_OBJECT;
		return object(j, depth, 0);
	case '[':
		v->type = JOSE_C_LIST;
		return list(j, depth, keep, v);
	case 't':
		v->type = JOSE_C_TRUE;
		return literal(j, "true", 4);
	case 'f':
		v->type = JOSE_C_FALSE;
		return literal(j, "false", 5);
	case 'n':
		v->type = JOSE_C_NULL;
		return literal(j, "null", 4);
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return number(j, v);
		return -1;
	}
}

int
jose_claims_parse_in(struct jose_payload *pl, size_t len, struct jose_claims *out)
{
	struct jp j = { pl, pl->buf, pl->buf + len, 0, 0 };

	if (len >= JOSE_CLAIMS_BUF)
		return -1;
	ws(&j);
	if (j.p >= j.end || *j.p != '{' || object(&j, 1, 1) < 0)
		return -1;
	ws(&j);
	if (j.p != j.end)
		return -1;
	*out = (struct jose_claims){ pl->buf, len, pl->v, j.n };
	return 0;
}

int
jose_claims_parse(struct jose_payload *pl, const char *json, size_t len, struct jose_claims *out)
{
	if (len >= JOSE_CLAIMS_BUF)
		return -1;
	memcpy(pl->buf, json, len);
	return jose_claims_parse_in(pl, len, out);
}

const struct jose_claim *
jose_claims_next(const struct jose_claims *c, size_t *i)
{
	const struct jose_claim *v;

	if (*i >= c->n)
		return NULL;
	v = &c->v[*i];
	*i += 1 + (v->type == JOSE_C_LIST ? v->nlist : 0);
	return v;
}

const struct jose_claim *
jose_claims_get(const struct jose_claims *c, const char *name)
{
	size_t i = 0, len = strlen(name);
	const struct jose_claim *v;

	/* O(members), but a token has a handful and a lookup is a memcmp. */
	while ((v = jose_claims_next(c, &i)) != NULL)
		if (v->nlen == len && memcmp(c->buf + v->name, name, len) == 0)
			return v;
	return NULL;
}

int
jose_claim_is(const struct jose_claims *c, const struct jose_claim *v, const char *s)
{
	return v->type == JOSE_C_STRING && strlen(s) == v->vlen && memcmp(c->buf + v->val, s, v->vlen) == 0;
}

int
jose_claim_text(const struct jose_claims *c, const struct jose_claim *v, char *buf, size_t cap,
    const char **p, size_t *len)
{
	int n;

	switch (v->type) {
	case JOSE_C_STRING:
		*p = c->buf + v->val;
		*len = v->vlen;
		return 1;
	case JOSE_C_INTEGER:
		/* As written: JSON has one way to write an integer, but for -0. */
		if (v->vlen == 2 && memcmp(c->buf + v->val, "-0", 2) == 0) {
			*p = "0";
			*len = 1;
		} else {
			*p = c->buf + v->val;
			*len = v->vlen;
		}
		return 1;
	case JOSE_C_REAL:
		n = snprintf(buf, cap, "%.17g", v->num);
		break;
	case JOSE_C_TRUE:
		n = snprintf(buf, cap, "true");
		break;
	case JOSE_C_FALSE:
		n = snprintf(buf, cap, "false");
		break;
	default:
		return 0;
	}
	*p = buf;
	*len = (size_t)n;
	return 1;
}
