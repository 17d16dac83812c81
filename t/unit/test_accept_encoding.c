/*
 * Unit tests for common/coding.c: Accept-Encoding q-values, "*",
 * identity, malformed members, ties, blanks and case, and the choice
 * among the configured codings.
 */
#include "common/coding.h"
#include "t/unit/tap.h"

static const enum content_coding ZBG[] = { CODING_ZSTD, CODING_BR, CODING_GZIP };
static const enum content_coding GBZ[] = { CODING_GZIP, CODING_BR, CODING_ZSTD };
static const enum content_coding G[] = { CODING_GZIP };

/* The coding chosen for the field lines (NULL-terminated) with pref. */
static const char *
pick(const enum content_coding *pref, size_t n, const char *const *lines)
{
	struct coding_accept a;

	coding_accept_init(&a);
	for (; *lines != NULL; lines++)
		coding_accept_parse(&a, *lines, strlen(*lines));
	return coding_name(coding_choose(&a, pref, n));
}

#define PICK(pref, ...) pick(pref, sizeof(pref) / sizeof(pref[0]), (const char *const[]){ __VA_ARGS__, NULL })

static void
test_basic(void)
{
	is_str(PICK(ZBG, "gzip"), "gzip", "one coding");
	is_str(PICK(ZBG, "gzip, deflate, br, zstd"), "zstd", "a browser's list: the configured order decides");
	is_str(PICK(GBZ, "gzip, deflate, br, zstd"), "gzip", "another configured order, another choice");
	is_str(PICK(ZBG, "gzip, br"), "br", "zstd not offered: the next preferred");
	is_str(PICK(ZBG, "deflate, compress"), "identity", "only codings portico cannot make");
	is_str(PICK(ZBG, ""), "identity", "an empty value: no coding wanted (RFC 9110 12.5.3)");
	is_str(PICK(G, "br, zstd"), "identity", "none of the configured ones");
	is_str(PICK(ZBG, "x-gzip"), "gzip", "x-gzip is gzip");
}

static void
test_q(void)
{
	is_str(PICK(ZBG, "gzip;q=1.0, br;q=0.5"), "gzip", "higher q wins over the configured order");
	is_str(PICK(ZBG, "zstd;q=0.1, gzip;q=0.2"), "gzip", "small q-values compared");
	is_str(PICK(ZBG, "zstd;q=0, br;q=0, gzip"), "gzip", "q=0 refuses");
	is_str(PICK(ZBG, "zstd;q=0.000, gzip;q=0.001"), "gzip", "q=0.000 refuses, q=0.001 does not");
	is_str(PICK(ZBG, "gzip;q=0"), "identity", "the only coding refused");
	is_str(PICK(ZBG, "gzip;q=0.5, br;q=0.5, zstd;q=0.5"), "zstd", "ties: the configured order");
	is_str(PICK(GBZ, "zstd;q=0.5, br;q=0.5, gzip;q=0.5"), "gzip", "ties: the configured order (other)");
	is_str(PICK(ZBG, "gzip;q=1, gzip;q=0"), "identity", "a coding given twice keeps the lower q");
	is_str(PICK(ZBG, "gzip;q=0", "gzip"), "identity", "... across field lines too");
	is_str(PICK(ZBG, "br;q=0.3", "gzip;q=0.4"), "gzip", "several field lines make one list");
	is_str(PICK(ZBG, "gzip;q=1.000"), "gzip", "q=1.000");
}

static void
test_star_identity(void)
{
	is_str(PICK(ZBG, "*"), "zstd", "* accepts every coding: the first configured");
	is_str(PICK(ZBG, "*;q=0.5, zstd;q=0"), "br", "* with zstd refused by name");
	is_str(PICK(ZBG, "gzip;q=0.2, *;q=0.5"), "zstd", "* gives the unnamed a higher q than gzip");
	is_str(PICK(ZBG, "*;q=0"), "identity", "*;q=0: nothing (and identity still sent)");
	is_str(PICK(ZBG, "*;q=0, gzip"), "gzip", "*;q=0 with gzip named");
	is_str(PICK(ZBG, "identity"), "identity", "identity only");
	is_str(PICK(ZBG, "identity;q=0"), "identity", "identity;q=0 alone: nothing else offered");
	is_str(PICK(ZBG, "identity;q=0, gzip"), "gzip", "identity refused, gzip accepted");
	is_str(PICK(ZBG, "gzip;q=0.5, identity"), "identity", "identity named with a higher q than gzip");
	is_str(PICK(ZBG, "gzip;q=0.5, identity;q=0.5"), "gzip", "identity tied: the coding");
	is_str(PICK(ZBG, "gzip;q=0.1"), "gzip", "identity not named loses to any accepted coding");
}

static void
test_syntax(void)
{
	is_str(PICK(ZBG, "GZIP"), "gzip", "codings without regard to case");
	is_str(PICK(ZBG, "Br;Q=0.9, ZSTD;q=0.8"), "br", "Q= and mixed case");
	is_str(PICK(ZBG, "  gzip ,\tbr ; q=0.5 "), "gzip", "blanks around members and the semicolon");
	is_str(PICK(ZBG, ",,gzip,,"), "gzip", "empty list elements");
	is_str(PICK(ZBG, "gzip;q=1.0001"), "identity", "q with four decimals: skipped");
	is_str(PICK(ZBG, "gzip;q=1.5"), "identity", "q above 1: skipped");
	is_str(PICK(ZBG, "gzip;q=2"), "identity", "q=2: skipped");
	is_str(PICK(ZBG, "gzip;q=-1"), "identity", "negative q: skipped");
	is_str(PICK(ZBG, "gzip;q=.5"), "identity", "q=.5: skipped");
	is_str(PICK(ZBG, "gzip;q=0.5x"), "identity", "junk after q: skipped");
	is_str(PICK(ZBG, "gzip;q = 0.5"), "identity", "blanks around = are not allowed");
	is_str(PICK(ZBG, "gzip;q="), "identity", "empty q: skipped");
	is_str(PICK(ZBG, "gzip;level=1"), "identity", "a parameter other than q: skipped");
	is_str(PICK(ZBG, "gzip;"), "identity", "a bare semicolon: skipped");
	is_str(PICK(ZBG, "gzip;q=0.5;q=0.7"), "identity", "two weights: skipped");
	is_str(PICK(ZBG, "gz ip, br"), "br", "a member with a blank inside: skipped, the rest kept");
	is_str(PICK(ZBG, "\"gzip\", zstd;q=0"), "identity", "a quoted coding: skipped");
	is_str(PICK(ZBG, "gzipx, brr, zstdd"), "identity", "near names are other codings");
	is_str(PICK(ZBG, "gzip\x01, br"), "br", "a control byte spoils its member only");
	is_str(PICK(ZBG, ";q=1, gzip"), "gzip", "a weight without a coding: skipped");
}

static void
test_names(void)
{
	is(coding_from_name("GZip", 4), CODING_GZIP, "coding_from_name: any case");
	is(coding_from_name("identity", 8), CODING_IDENTITY, "coding_from_name: identity");
	is(coding_from_name("deflate", 7), -1, "coding_from_name: unknown");
	is(coding_from_name("gzip", 3), -1, "coding_from_name: a prefix is not the name");
	is_str(coding_name(CODING_ZSTD), "zstd", "coding_name");
	struct coding_accept a;
	coding_accept_init(&a);
	coding_accept_parse(&a, "br;q=0.25, *;q=0.75", 19);
	is(a.q[CODING_BR], 250, "q in thousandths");
	is(a.star, 750, "* kept apart");
	is(a.q[CODING_GZIP], CODING_Q_UNSET, "unnamed codings stay unset");
	coding_accept_parse(&a, "gzip;q=0.5", 4);
	is(a.q[CODING_GZIP], 1000, "only len bytes are read");
}

int
main(void)
{
	test_basic();
	test_q();
	test_star_identity();
	test_syntax();
	test_names();
	return done_testing();
}
