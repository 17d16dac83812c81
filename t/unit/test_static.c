/*
 * Unit tests for the pure parts of the static file handler:
 * static_check_path (origin/static.c), range_parse (origin/range.c),
 * mime_lookup and mime_load (origin/mime.c) and http_parse_date
 * (common/http.c).
 *
 * Every input is copied into a buffer of exactly its length, so a build
 * with AddressSanitizer (make asan) sees any read past len.
 *
 * Cases marked "BUG:" fail against the current code; the comment at each
 * says the input, what we expect and what we get.
 */
#include "common/http.h"
#include "origin/mime.h"
#include "origin/range.h"
#include "origin/static.h"
#include "t/unit/tap.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/portico-test-static.XXXXXX";

/* A copy of s[0..n) in a buffer of exactly n bytes (1 if n is 0). */
static char *
exact(const char *s, size_t n)
{
	char *p = malloc(n != 0 ? n : 1);

	if (p == NULL) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	memcpy(p, s, n);
	return p;
}

/* ------------------------------------------------------------------ */
/* static_check_path */

static int
check2(const char *raw, size_t raw_len, const char *norm, size_t norm_len)
{
	char *r = exact(raw, raw_len), *n = exact(norm, norm_len);
	int st = static_check_path(r, raw_len, n, norm_len);

	free(r);
	free(n);
	return st;
}

/* raw and its normalized form norm should give want. */
static void
check(const char *raw, const char *norm, int want)
{
	is(check2(raw, strlen(raw), norm, strlen(norm)), want,
	    "static_check_path raw '%s' norm '%s' is %d", raw, norm, want);
}

static void
test_check_path(void)
{
	check("/index.html", "/index.html", 0);
	check("/", "/", 0);
	check("/a.b/c.d", "/a.b/c.d", 0);
	check("/a%20b", "/a b", 0);
	/* Encoded slashes and backslashes, any case of the hex digits. */
	check("/a%2fb", "/a/b", 400);
	check("/a%2Fb", "/a/b", 400);
	check("/..%2fsecret", "/secret", 400);
	check("/a%5cb", "/a\\b", 400);
	check("/a%5Cb", "/a\\b", 400);
	check("/%2F", "/", 400);
	/* A backslash as sent. */
	check("/..\\secret", "/..\\secret", 400);
	/* "%252f" is a literal "%2f" in a file name: not a slash. */
	check("/%252f", "/%2f", 0);
	/* UTF-8: valid passes; overlong, surrogate, too large, cut short, stray continuation do not. */
	check("/caf\xc3\xa9", "/caf\xc3\xa9", 0);
	check("/\xe2\x82\xac/\xf0\x9f\x98\x80", "/\xe2\x82\xac/\xf0\x9f\x98\x80", 0);
	check("/%c0%ae%c0%ae/secret", "/\xc0\xae\xc0\xae/secret", 400);
	check("/%e0%80%af", "/\xe0\x80\xaf", 400);
	check("/%ed%a0%80", "/\xed\xa0\x80", 400);
	check("/%f4%90%80%80", "/\xf4\x90\x80\x80", 400);
	check("/%e2%82", "/\xe2\x82", 400);
	check("/%80", "/\x80", 400);
	check("/%ff", "/\xff", 400);
	/* Dot files: 404, except /.well-known at the top. */
	check("/.env", "/.env", 404);
	check("/a/.git/config", "/a/.git/config", 404);
	check("/a/.htpasswd", "/a/.htpasswd", 404);
	check("/.well-known", "/.well-known", 0);
	check("/.well-known/", "/.well-known/", 0);
	check("/.well-known/acme-challenge/tok", "/.well-known/acme-challenge/tok", 0);
	check("/.well-knownx", "/.well-knownx", 404);
	check("/.well-known/.hidden", "/.well-known/.hidden", 404);
	check("/a/.well-known/x", "/a/.well-known/x", 404);
	check("/a./b", "/a./b", 0);

	/* The length limit: 4000 bytes of decoded path, 404 above (no such file). */
	char *p = malloc(4002);
	memset(p, 'a', 4001);
	p[0] = '/';
	is(check2(p, 4000, p, 4000), 0, "static_check_path: a 4000-byte path is fine");
	is(check2(p, 4001, p, 4001), 404, "static_check_path: a 4001-byte path is 404");
	free(p);
	/* Only raw_len bytes of raw count: a "%2f" just past it is not seen. */
	is(check2("/a%2f", 2, "/a", 2), 0, "static_check_path: raw is read only to raw_len");
}

/* ------------------------------------------------------------------ */
/* range_parse */

/*
 * Parses v against size; want is the result and, for RANGE_OK, ranges
 * "a-b,c-d" of what out must hold.
 */
static void
range(const char *v, uint64_t size, enum range_result want, const char *ranges)
{
	struct byte_range out[RANGE_MAX];
	char got[512] = "";
	unsigned n = 12345;
	size_t len = strlen(v);
	char *copy = exact(v, len);
	enum range_result rr = range_parse(copy, len, size, out, &n);
	size_t o = 0;

	free(copy);
	if (rr == RANGE_OK)
		for (unsigned i = 0; i < n && i < RANGE_MAX; i++)
			o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%llu-%llu", i ? "," : "",
			    (unsigned long long)out[i].first, (unsigned long long)out[i].last);
	int pass = rr == want && (want != RANGE_OK ? n == 0 : strcmp(got, ranges) == 0);
	if (!ok(pass, "range_parse '%s' size %llu is %s %s", v, (unsigned long long)size,
	    want == RANGE_OK ? "OK" : want == RANGE_NONE ? "NONE" : "UNSATISFIABLE",
	    ranges != NULL ? ranges : ""))
		printf("#   got result %d, n %u, ranges '%s'\n", (int)rr, n, got);
}

static void
test_range(void)
{
	char v[2048];
	size_t o;

	range("bytes=0-99", 1000, RANGE_OK, "0-99");
	range("bytes=500-", 1000, RANGE_OK, "500-999");
	range("bytes=-100", 1000, RANGE_OK, "900-999");
	range("bytes=999-999", 1000, RANGE_OK, "999-999");
	range("BYTES=0-0", 1000, RANGE_OK, "0-0");
	/* Larger than the file: clamped, or the whole file for a suffix. */
	range("bytes=-2000", 1000, RANGE_OK, "0-999");
	range("bytes=0-5000", 1000, RANGE_OK, "0-999");
	range("bytes=18446744073709551000-18446744073709551001", 1000, RANGE_UNSATISFIABLE, NULL);
	/* Unsatisfiable. */
	range("bytes=1000-", 1000, RANGE_UNSATISFIABLE, NULL);
	range("bytes=1000-2000", 1000, RANGE_UNSATISFIABLE, NULL);
	range("bytes=-0", 1000, RANGE_UNSATISFIABLE, NULL);
	range("bytes=0-", 0, RANGE_UNSATISFIABLE, NULL);
	range("bytes=-5", 0, RANGE_UNSATISFIABLE, NULL);
	range("bytes=2000-3000,5000-", 1000, RANGE_UNSATISFIABLE, NULL);
	/* One satisfiable range among unsatisfiable ones is enough. */
	range("bytes=5000-6000,0-9", 1000, RANGE_OK, "0-9");
	/* Syntax errors and other units: ignore the header. */
	range("bytes=5-3", 1000, RANGE_NONE, NULL);
	range("bytes=", 1000, RANGE_NONE, NULL);
	range("bytes=-", 1000, RANGE_NONE, NULL);
	range("bytes=abc", 1000, RANGE_NONE, NULL);
	range("bytes=1-2-3", 1000, RANGE_NONE, NULL);
	range("bytes=0-1;", 1000, RANGE_NONE, NULL);
	range("bytes=0x10-20", 1000, RANGE_NONE, NULL);
	range("bytes=+1-2", 1000, RANGE_NONE, NULL);
	range("bytes 0-1", 1000, RANGE_NONE, NULL);
	range("bytes", 1000, RANGE_NONE, NULL);
	range("items=0-1", 1000, RANGE_NONE, NULL);
	range("", 1000, RANGE_NONE, NULL);
	/* Numbers past 64 bits are valid syntax, and far past any end. */
	range("bytes=99999999999999999999-", 1000, RANGE_UNSATISFIABLE, NULL);
	range("bytes=-99999999999999999999", 1000, RANGE_OK, "0-999");
	range("bytes=0-99999999999999999999999", 1000, RANGE_OK, "0-999");
	range("bytes=10-99999999999999999999,99999999999999999999-", 1000, RANGE_OK, "10-999");
	range("bytes=99999999999999999999-99999999999999999998", 1000, RANGE_NONE, NULL);
	range("bytes=99999999999999999998-099999999999999999999", 1000, RANGE_UNSATISFIABLE, NULL);
	/* Whitespace around the elements. */
	range("bytes= 0-9 ,\t20-29 ", 1000, RANGE_OK, "0-9,20-29");
	range("bytes=0 -9", 1000, RANGE_NONE, NULL);
	/* RFC 9110 5.6.1.2: empty list elements are accepted and ignored. */
	range("bytes=0-1,,4-5", 1000, RANGE_OK, "0-1,4-5");
	range("bytes=0-1,", 1000, RANGE_OK, "0-1");
	/* Sorting and merging: overlapping, adjacent, contained, suffix meets prefix. */
	range("bytes=50-59,0-9", 1000, RANGE_OK, "0-9,50-59");
	range("bytes=0-10,5-20", 1000, RANGE_OK, "0-20");
	range("bytes=0-9,10-19", 1000, RANGE_OK, "0-19");
	range("bytes=0-9,11-19", 1000, RANGE_OK, "0-9,11-19");
	range("bytes=0-100,10-20", 1000, RANGE_OK, "0-100");
	range("bytes=0-499,-600", 1000, RANGE_OK, "0-999");
	range("bytes=900-,-50,0-0", 1000, RANGE_OK, "0-0,900-999");

	/* 16 disjoint ranges are served; 17 are not (200, whole file). */
	o = (size_t)snprintf(v, sizeof(v), "bytes=");
	char want[1024] = "";
	size_t wo = 0;
	for (int i = 0; i < 16; i++) {
		o += (size_t)snprintf(v + o, sizeof(v) - o, "%s%d-%d", i ? "," : "", i * 10, i * 10 + 1);
		wo += (size_t)snprintf(want + wo, sizeof(want) - wo, "%s%d-%d", i ? "," : "", i * 10,
		    i * 10 + 1);
	}
	range(v, 1000, RANGE_OK, want);
	snprintf(v + o, sizeof(v) - o, ",500-501");
	range(v, 1000, RANGE_NONE, NULL);
	/* 20 ranges that merge into one are one range. */
	o = (size_t)snprintf(v, sizeof(v), "bytes=");
	for (int i = 0; i < 20; i++)
		o += (size_t)snprintf(v + o, sizeof(v) - o, "%s%d-%d", i ? "," : "", i * 5, i * 5 + 4);
	range(v, 1000, RANGE_OK, "0-99");
	/* Hundreds of ranges: an abuse, ignored. */
	o = (size_t)snprintf(v, sizeof(v), "bytes=");
	for (int i = 0; i < 300; i++)
		o += (size_t)snprintf(v + o, sizeof(v) - o, "%s0-0", i ? "," : "");
	range(v, 1000, RANGE_NONE, NULL);
}

/* ------------------------------------------------------------------ */
/* mime */

static void
mime(const struct mime_table *t, const char *name, const char *want)
{
	size_t len = strlen(name);
	char *copy = exact(name, len);

	is_str(mime_lookup(t, copy, len), want, "mime_lookup%s '%s' is %s", t != NULL ? " (table)" : "",
	    name, want);
	free(copy);
}

/* Writes text to dir/name and returns the path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	return path;
}

/* Every entry of the built-in table in origin/mime.c is found (so it is sorted). */
static void
mime_builtin_sorted(void)
{
	FILE *fp = fopen("origin/mime.c", "r");
	char line[512], ext[64], type[256];
	int n = 0, bad = 0;

	if (fp == NULL) {
		printf("ok %d # skip origin/mime.c not found (run from the repository root)\n", ++tap_n);
		return;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, " { \"%63[^\"]\", \"%255[^\"]\" },", ext, type) != 2)
			continue;
		char name[80];
		snprintf(name, sizeof(name), "f.%s", ext);
		const char *got = mime_lookup(NULL, name, strlen(name));
		n++;
		if (strcmp(got, type) != 0) {
			bad++;
			printf("#   %s: got '%s', want '%s'\n", name, got, type);
		}
	}
	fclose(fp);
	ok(n > 50 && bad == 0, "mime_lookup finds all %d built-in types (the table is sorted)", n);
}

static void
test_mime(void)
{
	struct mime_table t = { 0 }, dup = { 0 }, bad = { 0 };
	char err[512] = "";

	mime(NULL, "index.html", "text/html; charset=utf-8");
	mime(NULL, "INDEX.HTML", "text/html; charset=utf-8");
	mime(NULL, "/a/b/Page.HtM", "text/html; charset=utf-8");
	mime(NULL, "style.css", "text/css; charset=utf-8");
	mime(NULL, "app.js", "text/javascript; charset=utf-8");
	mime(NULL, "logo.png", "image/png");
	mime(NULL, "x.tar.gz", "application/gzip");
	mime(NULL, "README", "application/octet-stream");
	mime(NULL, "/dir.d/README", "application/octet-stream");
	mime(NULL, "/.well-known/security", "application/octet-stream");
	mime(NULL, ".bashrc", "application/octet-stream");
	mime(NULL, "/a/.profile", "application/octet-stream");
	mime(NULL, "trailing.", "application/octet-stream");
	mime(NULL, "x.unknownext", "application/octet-stream");
	mime(NULL, "x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "application/octet-stream");
	mime(NULL, "", "application/octet-stream");
	/* Only len bytes count: "a.html" cut to "a.h" has no known extension. */
	is_str(mime_lookup(NULL, "a.html", 3), "application/octet-stream",
	    "mime_lookup reads only len bytes of the name");
	mime_builtin_sorted();

	const char *path = write_file("mime.types",
	    "# a comment line\n"
	    "\n"
	    "text/x-portico     ptc PTX   # trailing comment\n"
	    "application/x-css  css\n"
	    "text/x-own; charset=latin1 own\n"
	    "image/x-tab\ttab1\ttab2\r\n");
	is(mime_load(&t, path, err, sizeof(err)), 0, "mime_load of a good file is 0");
	if (err[0] != '\0')
		printf("#   err: %s\n", err);
	mime(&t, "a.ptc", "text/x-portico; charset=utf-8");
	mime(&t, "a.PTX", "text/x-portico; charset=utf-8");
	mime(&t, "a.css", "application/x-css");
	mime(&t, "a.tab2", "image/x-tab");
	mime(&t, "a.html", "text/html; charset=utf-8");
	mime(&t, "a.nope", "application/octet-stream");
	/* An empty table is the built-in one. */
	struct mime_table empty = { 0 };
	mime(&empty, "a.css", "text/css; charset=utf-8");
	mime_free(&t);
	is(t.n, 0, "mime_free empties the table");

	path = write_file("bad.types", "text/plain txt\nnotatype foo\n");
	is(mime_load(&bad, path, err, sizeof(err)), -1, "mime_load: a line without a media type is -1");
	ok(strstr(err, ":2:") != NULL && strstr(err, "notatype") != NULL,
	    "mime_load: the error names line 2 and the word");
	printf("#   err: %s\n", err);
	is(bad.n, 0, "mime_load: a failed load leaves the table empty");
	err[0] = '\0';
	snprintf(err, sizeof(err), "%s/missing.types", dir);
	char missing[512];
	snprintf(missing, sizeof(missing), "%s", err);
	is(mime_load(&bad, missing, err, sizeof(err)), -1, "mime_load of a missing file is -1");
	ok(strstr(err, "missing.types") != NULL, "mime_load: the error names the file");

	/*
	 * BUG: origin/mime.c says of duplicate extensions "the last one wins
	 * below", but mime_lookup takes whichever entry bsearch lands on.
	 * With "a/one dup", "a/two dup", "a/three dup" (three lines) we
	 * expect a/three and get a/two.
	 */
	path = write_file("dup.types", "a/one dup\na/two dup\na/three dup\n");
	is(mime_load(&dup, path, err, sizeof(err)), 0, "mime_load of duplicates is 0");
	mime(&dup, "x.dup", "a/three");
	mime_free(&dup);
}

/* ------------------------------------------------------------------ */
/* http_parse_date */

#define BAD LLONG_MIN /* http_parse_date must refuse it */

static void
date(const char *s, long long want)
{
	size_t len = strlen(s);
	char *copy = exact(s, len);
	time_t t = (time_t)-12345;
	int rc = http_parse_date(copy, len, &t);

	free(copy);
	if (want == BAD) {
		is(rc, -1, "http_parse_date '%s' is refused", s);
		return;
	}
	if (!ok(rc == 0 && (long long)t == want, "http_parse_date '%s' is %lld", s, want))
		printf("#   got rc %d, t %lld\n", rc, (long long)t);
}

/* The RFC 850 two-digit year rule against today's date. */
static void
date_rfc850_year(int ahead)
{
	time_t now = time(NULL);
	struct tm tm;
	char s[64];

	gmtime_r(&now, &tm);
	int year = tm.tm_year + 1900 + ahead;
	/*
	 * RFC 9110 section 5.6.7: a two-digit year that appears to be more
	 * than 50 years in the future is the most recent past year with those
	 * digits.  Jan 1st: so "ahead" years is never a fraction more.
	 */
	int want_year = ahead > 50 ? year - 100 : year;
	struct tm w = { .tm_year = want_year - 1900, .tm_mon = 0, .tm_mday = 1 };
	time_t wt = timegm(&w);
	long long want = (long long)wt;
	char day[16];
	gmtime_r(&wt, &w);
	strftime(day, sizeof(day), "%A", &w);
	snprintf(s, sizeof(s), "%s, 01-Jan-%02d 00:00:00 GMT", day, year % 100);
	size_t len = strlen(s);
	time_t t = 0;
	int rc = http_parse_date(s, len, &t);
	if (!ok(rc == 0 && (long long)t == want,
	    "http_parse_date RFC 850 year %02d (%d years ahead of now) is %d", year % 100, ahead, want_year))
		printf("#   got rc %d, t %lld (want %lld)\n", rc, (long long)t, want);
}

static void
test_date(void)
{
	date("Sun, 06 Nov 1994 08:49:37 GMT", 784111777);
	date("Sunday, 06-Nov-94 08:49:37 GMT", 784111777);
	date("Sun Nov  6 08:49:37 1994", 784111777);
	date("Wed Nov 16 08:49:37 1994", 784111777 + 10 * 86400);
	date("Thu, 01 Jan 1970 00:00:00 GMT", 0);
	date("Tue, 29 Feb 2000 12:00:00 GMT", 951825600);
	date("Wed, 31 Dec 1969 23:59:59 GMT", -1);
	date("Tue, 19 Jan 2038 03:14:08 GMT", 2147483648LL);
	date("Friday, 31-Dec-99 23:59:59 GMT", 946684799);
	date("Sat Jan  1 00:00:00 2000", 946684800);
	/* Not dates. */
	date("", BAD);
	date("yesterday", BAD);
	date("Sun, 06 Nov 1994 08:49:37 UTC", BAD);
	date("Sun, 06 Nov 1994 08:49:37", BAD);
	date("Sun, 6 Nov 1994 08:49:37 GMT", BAD);
	date("Sun, 06 Foo 1994 08:49:37 GMT", BAD);
	date("Sun, 06 nov 1994 08:49:37 GMT", BAD);
	date("Sun, 06 Nov 1994 24:00:00 GMT", BAD);
	date("Sun, 06 Nov 1994 08:60:37 GMT", BAD);
	date("Sun, 06 Nov 1994 08:49:61 GMT", BAD);
	date("Sun, 00 Nov 1994 08:49:37 GMT", BAD);
	date("Sun, 32 Nov 1994 08:49:37 GMT", BAD);
	date("Sun, 06 Nov 1994 08:49:37 GMT ", BAD);
	date("Sun, 06 Nov 94 08:49:37 GMT", BAD);
	date("Sun, 06 Nov 1994 8:49:37 GMT", BAD);
	date("Sunday, 06-Nov-1994 08:49:37 GMT", BAD);
	date("Sunday, 06 Nov 94 08:49:37 GMT", BAD);
	date("Sun Nov 6 08:49:37 1994", BAD);
	date("Sun Nov  6 08:49:37 94  ", BAD);
	date("Sun Nov  6 08:49:37 1994 GMT", BAD);
	date("1994-11-06T08:49:37Z", BAD);
	date("784111777", BAD);
	date_rfc850_year(20);
	date_rfc850_year(55);
	/*
	 * BUG: http_parse_date puts RFC 850 years below 70 in 20xx and the
	 * rest in 19xx, a fixed pivot.  RFC 9110 wants the year taken as
	 * 20xx unless that is more than 50 years ahead: in 2026,
	 * "Thursday, 01-Jan-71 00:00:00 GMT" is 2071, and we get 1971.
	 */
	date_rfc850_year(45);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	test_check_path();
	test_range();
	test_mime();
	test_date();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return done_testing();
}
