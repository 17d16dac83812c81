/*
 * coding: the content codings portico can make on the fly, and the
 * choice among them from a request's Accept-Encoding (RFC 9110 12.5.3).
 *
 *   struct coding_accept a;
 *   coding_accept_init(&a);
 *   coding_accept_parse(&a, value, len);     once per Accept-Encoding line
 *   c = coding_choose(&a, pref, npref);      CODING_IDENTITY: send it as it is
 *
 * Pure: no allocation, no I/O; fuzzed by t/fuzz/fuzz_accept_encoding.c.
 */
#ifndef PORTICO_CODING_H
#define PORTICO_CODING_H

#include <stddef.h>

enum content_coding { CODING_IDENTITY, CODING_GZIP, CODING_BR, CODING_ZSTD, CODING_COUNT };

/* No q given for a coding: not listed. */
#define CODING_Q_UNSET (-1)

/* What the client said, as q-values in thousandths (0 to 1000). */
struct coding_accept {
	int q[CODING_COUNT];         /* per coding (identity included) or CODING_Q_UNSET */
	int star;                    /* the q of "*", or CODING_Q_UNSET */
};

void coding_accept_init(struct coding_accept *a);
/*
 * Adds the members of one Accept-Encoding field value (len bytes, not
 * NUL-terminated) to a: "gzip", "br;q=0.8", "*;q=0", matched without
 * regard to case, "x-gzip" as gzip (RFC 9110 8.4.1.3).  A member that
 * does not follow the grammar (a coding that is not a token, a parameter
 * other than q, a q that is not a qvalue: "0" to "1" with at most three
 * decimals) is skipped, so it accepts nothing; codings portico cannot
 * make are skipped too.  A coding given twice keeps its lower q: a
 * refusal is never undone by a repeat.
 */
void coding_accept_parse(struct coding_accept *a, const char *v, size_t len);
/*
 * The coding to send, among pref[0..npref) (the configured order, most
 * preferred first): the one with the highest q above 0, its own or else
 * that of "*", ties going to the earlier in pref; CODING_IDENTITY when
 * none is acceptable, or when the client gave identity itself a higher
 * q than the best of them.  A client that refuses identity as well
 * (identity;q=0, *;q=0) still gets identity: portico never answers 406
 * for a coding.
 */
enum content_coding coding_choose(const struct coding_accept *a, const enum content_coding *pref,
    size_t npref);
/* The q (in thousandths) the client gives c: its own, else that of "*";
 * CODING_Q_UNSET (below 0) when neither was given. */
int coding_q(const struct coding_accept *a, enum content_coding c);
/* "gzip", "br", "zstd" or "identity". */
const char *coding_name(enum content_coding c);
/* The coding named by name (len bytes, any case; "x-gzip" is gzip), or -1. */
int coding_from_name(const char *name, size_t len);

#endif
