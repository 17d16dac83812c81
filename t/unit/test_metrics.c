/*
 * Unit tests for common/metrics.c: label escaping, bucket bounds in
 * seconds, the metrics_buckets parser, histogram lines, and cells kept
 * by kind, name and buckets.
 */
#include "common/metrics.h"
#include "common/sbuf.h"
#include "common/stats.h"
#include "t/unit/tap.h"

#include <stdint.h>
#include <stdlib.h>

static void
label_is(const char *in, const char *want)
{
	struct sbuf b = { 0 };

	metrics_label(&b, in);
	is_str(b.p != NULL ? b.p : "", want, "label value escaped as '%s'", want);
	sbuf_free(&b);
}

static void
seconds_is(int64_t ms, const char *want)
{
	char buf[32];

	is_str(metrics_seconds(ms, buf, sizeof(buf)), want, "%lld ms is %s s", (long long)ms, want);
}

static void
test_parse(void)
{
	int64_t le[CONF_MAX_BUCKETS];

	is(metrics_parse_buckets("5ms 25ms 100ms 500ms 1s 5s", le, CONF_MAX_BUCKETS), 6, "six bounds");
	is(le[0], 5, "... the first 5 ms");
	is(le[5], 5000, "... the last 5 s");
	is(metrics_parse_buckets("  1ms,\t2ms  ", le, CONF_MAX_BUCKETS), 2, "commas and tabs separate too");
	is(metrics_parse_buckets("", le, CONF_MAX_BUCKETS), -1, "empty: refused");
	is(metrics_parse_buckets("1s 5ms", le, CONF_MAX_BUCKETS), -1, "not increasing: refused");
	is(metrics_parse_buckets("5ms 5ms", le, CONF_MAX_BUCKETS), -1, "twice the same: refused");
	is(metrics_parse_buckets("0ms 1s", le, CONF_MAX_BUCKETS), -1, "zero: refused");
	is(metrics_parse_buckets("5 parsecs", le, CONF_MAX_BUCKETS), -1, "a unit that is none: refused");
	is(metrics_parse_buckets("1ms 2ms 3ms", le, 2), -1, "more than max: refused");
}

static void
test_histogram(void)
{
	struct sbuf b = { 0 };
	int64_t le[2] = { 5, 1000 };
	uint64_t counts[3] = { 2, 0, 1 };

	metrics_histogram(&b, "x_seconds", "route=\"a\"", 2, le, counts, 2500001);
	is_str(b.p, "x_seconds_bucket{route=\"a\",le=\"0.005\"} 2\n"
	    "x_seconds_bucket{route=\"a\",le=\"1\"} 2\n"
	    "x_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"
	    "x_seconds_sum{route=\"a\"} 2.500001\n"
	    "x_seconds_count{route=\"a\"} 3\n", "histogram: cumulative buckets, sum in seconds, count");
	sbuf_free(&b);
	metrics_family(&b, "y_total", "counter", "Things.");
	is_str(b.p, "# HELP y_total Things.\n# TYPE y_total counter\n", "HELP and TYPE lines");
	sbuf_free(&b);
}

static void
test_cells(void)
{
	struct metrics_worker mw = { 0 };
	int64_t a[2] = { 5, 10 }, b[2] = { 5, 20 };

	struct metrics_cell *c1 = metrics_cell_find(&mw, MK_ROUTE, "site", 2, a, 1);
	ok(c1 != NULL, "a route's cell is made");
	ok(metrics_cell_find(&mw, MK_ROUTE, "site", 2, a, 0) == c1, "... and found again by name");
	ok(metrics_cell_find(&mw, MK_ROUTE, "site", 2, b, 0) == NULL,
	    "other buckets: not the same cell (find only)");
	struct metrics_cell *c2 = metrics_cell_find(&mw, MK_ROUTE, "site", 2, b, 1);
	ok(c2 != NULL && c2 != c1, "... a cell of its own when made");
	ok(metrics_cell_find(&mw, MK_LISTEN, "site", 0, NULL, 0) == NULL,
	    "a listener of the same name is another cell");
	ok(metrics_cell_find(&mw, MK_ROUTE, "nosuch", 2, a, 0) == NULL, "an unknown name: none");
	metrics_worker_free(&mw);
	ok(atomic_load(&mw.head) == NULL, "freed: the list is empty");
}

int
main(void)
{
	label_is("site", "site");
	label_is("a\"b", "a\\\"b");
	label_is("back\\slash", "back\\\\slash");
	label_is("two\nlines", "two\\nlines");
	label_is("\\\"\n", "\\\\\\\"\\n");
	label_is("", "");
	seconds_is(5, "0.005");
	seconds_is(25, "0.025");
	seconds_is(100, "0.1");
	seconds_is(1000, "1");
	seconds_is(2500, "2.5");
	seconds_is(60000, "60");
	test_parse();
	test_histogram();
	test_cells();
	return done_testing();
}
