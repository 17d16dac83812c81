/*
 * jose_claims: a JWT claims set (RFC 7519 4) read without allocating.
 *
 * A payload is parsed once, strictly, as jansson would take it with
 * JSON_REJECT_DUPLICATES (RFC 8259: one object, no duplicate names at any
 * depth, valid UTF-8, no \u0000, integers that fit 64 bits, reals that
 * do not overflow, at most JOSE_CLAIMS_DEPTH levels), into a flat table
 * over the payload's own bytes, strings unescaped in place.  Only what a
 * claim check or a forwarded header reads is kept: the members of the
 * object, in the token's order, and the strings of a member that is a
 * list (as "aud" may be); anything deeper is checked and skipped.
 * One difference from jansson 2.14: a raw NUL byte is refused wherever
 * it is, where jansson skips one that follows a number or a literal.
 */
#ifndef PORTICO_JOSE_CLAIMS_H
#define PORTICO_JOSE_CLAIMS_H

#include <stddef.h>
#include <stdint.h>

/* The largest payload: a JOSE_MAX_TOKEN (8 KiB) token's middle part,
 * decoded, and a byte to end a number on. */
#define JOSE_CLAIMS_BUF (8192 / 4 * 3 + 1)
/* Entries enough for any payload that fits: each takes 3 bytes or more
 * ("",), so the table never refuses one jansson would take. */
#define JOSE_CLAIMS_MAX (JOSE_CLAIMS_BUF / 3 + 1)
/* Nesting, as jansson's JSON_PARSER_MAX_DEPTH. */
#define JOSE_CLAIMS_DEPTH 2048

enum jose_claim_type {
	JOSE_C_STRING, JOSE_C_INTEGER, JOSE_C_REAL, JOSE_C_TRUE, JOSE_C_FALSE, JOSE_C_NULL,
	JOSE_C_LIST, JOSE_C_OBJECT
};

/* One member of the object, or one string of a list member. */
struct jose_claim {
	uint16_t name, nlen;           /* the name, in buf; a list's strings have none */
	uint16_t val, vlen;            /* STRING: its text, unescaped; numbers: as written */
	uint8_t type;                  /* enum jose_claim_type */
	uint16_t nlist;                /* LIST: how many of its strings follow it */
	double num;                    /* INTEGER, REAL: the value */
};

/* A parsed claims set: a view of a table and its buffer, which its
 * owner keeps (struct jose_payload, or a copy such as a cache's). */
struct jose_claims {
	const char *buf;
	size_t buflen;                 /* the bytes of buf used, offsets included */
	const struct jose_claim *v;
	size_t n;                      /* entries, members and list strings */
};

/* Room to parse one payload in: about 62 KiB, so a thread keeps one. */
struct jose_payload {
	char buf[JOSE_CLAIMS_BUF];
	struct jose_claim v[JOSE_CLAIMS_MAX];
	uint16_t names[JOSE_CLAIMS_MAX][2]; /* the parser's: names of the open objects */
};

/*
 * Parses len bytes already in pl->buf (at most JOSE_CLAIMS_BUF - 1),
 * changing them (strings unescaped in place).  0 with *out a view of
 * pl, valid while pl is unchanged; -1 for anything that is not one
 * JSON object as above.
 */
int jose_claims_parse_in(struct jose_payload *pl, size_t len, struct jose_claims *out);
/* The same for len bytes at json, copied into pl first. */
int jose_claims_parse(struct jose_payload *pl, const char *json, size_t len,
    struct jose_claims *out);
/* The member named name (a C string), or NULL. */
const struct jose_claim *jose_claims_get(const struct jose_claims *c, const char *name);
/* The next member after *i (start at 0), skipping list strings; NULL at the end. */
const struct jose_claim *jose_claims_next(const struct jose_claims *c, size_t *i);
/* Whether claim v (STRING) is the C string s. */
int jose_claim_is(const struct jose_claims *c, const struct jose_claim *v, const char *s);
/*
 * A scalar as text, as jansson would print it (a string as it is, an
 * integer in decimal, a real as %.17g, true, false): 1 with *p and *len
 * (numbers formatted in buf, cap of 32 or more), 0 for null, lists and
 * objects.
 */
int jose_claim_text(const struct jose_claims *c, const struct jose_claim *v, char *buf,
    size_t cap, const char **p, size_t *len);

#endif
