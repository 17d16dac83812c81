/*
 * Unit tests for common/units.c: durations, sizes, counts, booleans and
 * their formatting.
 */
#include "common/units.h"
#include "t/unit/tap.h"

#include <stdint.h>

static void
duration_ok(const char *s, int64_t want)
{
	int64_t ms = -7;

	is(units_duration(s, &ms), 0, "duration '%s' accepted", s);
	is(ms, want, "duration '%s' is %lld ms", s, (long long)want);
}

static void
duration_bad(const char *s)
{
	int64_t ms = -7;

	is(units_duration(s, &ms), -1, "duration '%s' rejected", s);
	is(ms, -7, "duration '%s' leaves the output alone", s);
}

static void
size_ok(const char *s, uint64_t want)
{
	uint64_t b = 7;

	is(units_size(s, &b), 0, "size '%s' accepted", s);
	ok(b == want, "size '%s' is %llu", s, (unsigned long long)want);
}

static void
size_bad(const char *s)
{
	uint64_t b = 7;

	is(units_size(s, &b), -1, "size '%s' rejected", s);
	ok(b == 7, "size '%s' leaves the output alone", s);
}

static void
count_is(const char *s, uint64_t max, int rc, uint64_t want)
{
	uint64_t v = 7;

	is(units_count(s, max, &v), rc, "count '%s' max %llu: rc", s, (unsigned long long)max);
	ok(v == want, "count '%s' max %llu: value %llu", s, (unsigned long long)max,
	    (unsigned long long)v);
}

static void
bool_is(const char *s, int rc, int want)
{
	int v = 7;

	is(units_bool(s, &v), rc, "bool '%s': rc", s);
	is(v, want, "bool '%s': value", s);
}

static void
format_duration(int64_t ms, const char *want)
{
	char buf[32];
	int64_t back = -1;

	units_format_duration(ms, buf, sizeof(buf));
	is_str(buf, want, "format duration %lld", (long long)ms);
	ok(units_duration(buf, &back) == 0 && back == ms, "duration %lld round-trips", (long long)ms);
}

static void
format_size(uint64_t bytes, const char *want)
{
	char buf[32];
	uint64_t back = 1;

	units_format_size(bytes, buf, sizeof(buf));
	is_str(buf, want, "format size %llu", (unsigned long long)bytes);
	ok(units_size(buf, &back) == 0 && back == bytes, "size %llu round-trips",
	    (unsigned long long)bytes);
}

int
main(void)
{
	const int64_t year = 366LL * 24 * 3600 * 1000;

	duration_ok("500ms", 500);
	duration_ok("2s", 2000);
	duration_ok("1m", 60000);
	duration_ok("1h", 3600000);
	duration_ok("1d", 86400000);
	duration_ok("1m30s", 90000);
	duration_ok("1h1m1s1ms", 3661001);
	duration_ok("5", 5000);
	duration_ok("0", 0);
	duration_ok("0ms", 0);
	duration_ok("366d", year);
	duration_ok("8784h", year);
	duration_bad("");
	duration_bad("-5s");
	duration_bad("5x");
	duration_bad("ms");
	duration_bad("s");
	duration_bad("1.5s");
	duration_bad("5 s");
	duration_bad(" 5s");
	duration_bad("5S");
	duration_bad("1m30");
	duration_bad("367d");
	duration_bad("8785h");
	duration_bad("366d1ms");
	duration_bad("99999999999999999999s");
	is(units_duration(NULL, &(int64_t){ 0 }), -1, "duration NULL rejected");

	size_ok("16k", 16384);
	size_ok("16K", 16384);
	size_ok("1m", 1048576);
	size_ok("1M", 1048576);
	size_ok("1g", 1073741824);
	size_ok("1kb", 1024);
	size_ok("2KB", 2048);
	size_ok("3mB", 3145728);
	size_ok("1000", 1000);
	size_ok("0", 0);
	size_ok("1024g", 1ULL << 40);
	size_bad("");
	size_bad("k");
	size_bad("1t");
	size_bad("1x");
	size_bad("1b");
	size_bad("1kbb");
	size_bad("1.5k");
	size_bad("-1");
	size_bad("16 k");
	size_bad("1025g");
	size_bad("1099511627777");
	size_bad("99999999999999999999");
	is(units_size(NULL, &(uint64_t){ 0 }), -1, "size NULL rejected");

	count_is("0", 10, 0, 0);
	count_is("10", 10, 0, 10);
	count_is("11", 10, -1, 7);
	count_is("7", 5, -1, 7);
	count_is("0", 0, 0, 0);
	count_is("1", 0, -1, 7);
	count_is("18446744073709551615", UINT64_MAX, 0, UINT64_MAX);
	count_is("18446744073709551616", UINT64_MAX, -1, 7);
	count_is("", 10, -1, 7);
	count_is("-1", 10, -1, 7);
	count_is("3k", 10000, -1, 7);
	count_is("+3", 10, -1, 7);

	bool_is("on", 0, 1);
	bool_is("YES", 0, 1);
	bool_is("True", 0, 1);
	bool_is("1", 0, 1);
	bool_is("off", 0, 0);
	bool_is("No", 0, 0);
	bool_is("FALSE", 0, 0);
	bool_is("0", 0, 0);
	bool_is("", -1, 7);
	bool_is("maybe", -1, 7);
	bool_is("onn", -1, 7);
	bool_is("2", -1, 7);

	format_duration(0, "0s");
	format_duration(500, "500ms");
	format_duration(1500, "1500ms");
	format_duration(2000, "2s");
	format_duration(90000, "90s");
	format_duration(60000, "1m");
	format_duration(3600000, "1h");
	format_duration(5400000, "90m");
	format_duration(86400000, "1d");
	format_duration(year, "366d");

	format_size(0, "0");
	format_size(1000, "1000");
	format_size(1536, "1536");
	format_size(16384, "16k");
	format_size(1048576, "1m");
	format_size(3ULL << 30, "3g");
	format_size(1ULL << 40, "1024g");

	char small[4];
	units_format_size(123456, small, sizeof(small));
	is_str(small, "123", "format size truncates to the buffer");

	return done_testing();
}
