/*
 * Unit tests for common/mw_ratelimit.c: GCRA (a burst, a rate per
 * minute, delay queueing, Retry-After's rounding), the rate and key
 * syntax, trusted proxy networks, and the key table's bound, eviction
 * and keys added by several threads at once.  The file is included to
 * reach its statics; its exported names are renamed so they do not
 * clash with the library's copy.
 */
#define ratelimit_mw_ops test_ratelimit_mw_ops
#include "common/mw_ratelimit.c"
#include "t/unit/tap.h"

#include <pthread.h>

#define MS 1000000LL

static struct gcra
limit(uint64_t rate, uint64_t per, uint64_t burst, uint64_t delay)
{
	struct gcra g;

	g.interval = (int64_t)per * RL_NS / (int64_t)rate;
	g.tolerance = (int64_t)burst * g.interval;
	g.queue = (int64_t)delay * g.interval;
	return g;
}

static void
test_burst(void)
{
	struct gcra g = limit(10, 1, 5, 0);
	struct gcra_verdict v;
	int64_t tat = 0, now = 1000 * RL_NS;
	int passed = 0;

	/* 20 requests at one instant: the first, then burst more. */
	for (int i = 0; i < 20; i++) {
		gcra_decide(&g, &tat, now, &v);
		if (v.allow) {
			is(v.remaining, 5 - i, "request %d: %d more would pass", i + 1, 5 - i);
			is(v.wait, 0, "request %d passes at once", i + 1);
			passed++;
		}
	}
	is(passed, 6, "rate 10/s burst 5: 6 of 20 immediate requests pass");
	is(v.wait, 100 * MS, "the next would pass one interval (100ms) later");
	is(ceil_sec(v.wait), 1, "Retry-After: 1");
	is(v.reset, 600 * MS, "the whole burst is back after 600ms");
	gcra_decide(&g, &tat, now + 99 * MS, &v);
	ok(!v.allow, "refused 99ms later");
	gcra_decide(&g, &tat, now + 100 * MS, &v);
	ok(v.allow, "passes 100ms later");
	is(v.remaining, 0, "... with nothing left");
	gcra_decide(&g, &tat, now + 10 * RL_NS, &v);
	ok(v.allow && v.remaining == 5, "10s later the whole burst is back");
}

static void
test_per_minute(void)
{
	struct gcra g = limit(600, 60, 0, 0);
	struct gcra_verdict v;
	int64_t tat = 0, now = 5 * RL_NS;

	is(g.interval, 100 * MS, "600/m is one request per 100ms");
	gcra_decide(&g, &tat, now, &v);
	ok(v.allow, "the first passes");
	gcra_decide(&g, &tat, now + 50 * MS, &v);
	ok(!v.allow && v.wait == 50 * MS, "50ms later: refused, 50ms to wait");
	g = limit(1, 60, 0, 0);
	tat = 0;
	gcra_decide(&g, &tat, now, &v);
	gcra_decide(&g, &tat, now, &v);
	ok(!v.allow, "1/m: the second is refused");
	is(ceil_sec(v.wait), 60, "Retry-After: 60");
	gcra_decide(&g, &tat, now + 500 * MS, &v);
	is(ceil_sec(v.wait), 60, "59.5s rounds up to 60");
	gcra_decide(&g, &tat, now + 60 * RL_NS - 1, &v);
	is(v.wait, 1, "1ns before: refused");
	is(ceil_sec(v.wait), 1, "1ns rounds up to Retry-After: 1");
	is(ceil_sec(0), 0, "0 stays 0");
}

static void
test_delay(void)
{
	struct gcra g = limit(10, 1, 1, 2);
	struct gcra_verdict v;
	int64_t tat = 0, now = RL_NS;
	int64_t waits[5];
	int allow[5];

	for (int i = 0; i < 5; i++) {
		gcra_decide(&g, &tat, now, &v);
		allow[i] = v.allow;
		waits[i] = v.wait;
	}
	ok(allow[0] && waits[0] == 0 && allow[1] && waits[1] == 0, "burst 1: two pass at once");
	ok(allow[2] && waits[2] == 100 * MS, "the third waits 100ms");
	ok(allow[3] && waits[3] == 200 * MS, "the fourth waits 200ms");
	ok(!allow[4], "delay 2: the fifth is refused");
	is(waits[4], 100 * MS, "... and one is queued again 100ms later");
}

static void
test_parse(void)
{
	static const char *const bad[] = { "10", "0/s", "10/h", "/s", "abc/s", "1000001/s", "10/s ",
		"-1/s", "10/sec", "", NULL };
	uint64_t n, per;

	ok(parse_rate("100/s", &n, &per) == 0 && n == 100 && per == 1, "100/s");
	ok(parse_rate("600/m", &n, &per) == 0 && n == 600 && per == 60, "600/m");
	for (int i = 0; bad[i] != NULL; i++)
		ok(parse_rate(bad[i], &n, &per) < 0, "rate \"%s\" refused", bad[i]);

	enum key_kind kind;
	char *name;
	const char *why;
	ok(parse_key("addr", &kind, &name, &why) == 0 && kind == KEY_ADDR, "key = addr");
	ok(parse_key("header:X-Api-Key", &kind, &name, &why) == 0 && kind == KEY_HEADER,
	    "key = header:X-Api-Key");
	is_str(name, "x-api-key", "the header name is kept in lower case");
	free(name);
	ok(parse_key("header:", &kind, &name, &why) < 0, "header: without a name refused");
	ok(parse_key("header:a b", &kind, &name, &why) < 0, "a header name with a space refused");
	ok(parse_key("claim:Sub", &kind, &name, &why) == 0 && kind == KEY_CLAIM, "key = claim:Sub");
	is_str(name, "Sub", "a claim name keeps its case");
	free(name);
	ok(parse_key("claim:", &kind, &name, &why) < 0, "claim: without a name refused");
	ok(parse_key("address", &kind, &name, &why) < 0, "an unknown key kind refused");
}

static void
test_cidr(void)
{
	struct cidr c;
	unsigned char a[16];
	int v4;

	ok(rl_parse_cidr("10.0.0.0/8", 10, &c) == 0 && c.bits == 104, "10.0.0.0/8");
	rl_parse_ip("10.200.3.4", 10, a, &v4);
	ok(rl_cidr_match(&c, a), "holds 10.200.3.4");
	rl_parse_ip("11.0.0.1", 8, a, &v4);
	ok(!rl_cidr_match(&c, a), "not 11.0.0.1");
	ok(rl_parse_cidr("10.0.0.1/8", 10, &c) < 0, "host bits set refused");
	ok(rl_parse_cidr("10.0.0.0/33", 11, &c) < 0, "/33 refused for IPv4");
	ok(rl_parse_cidr("127.0.0.1", 9, &c) == 0 && c.bits == 128, "a bare address is one host");
	rl_parse_ip("127.0.0.1", 9, a, &v4);
	ok(rl_cidr_match(&c, a), "holds itself");
	ok(rl_parse_cidr("fd00::/8", 8, &c) == 0, "fd00::/8");
	rl_parse_ip("fd12::1", 7, a, &v4);
	ok(rl_cidr_match(&c, a), "holds fd12::1");
	rl_parse_ip("fe80::1", 7, a, &v4);
	ok(!rl_cidr_match(&c, a), "not fe80::1");
	ok(rl_parse_cidr("10.0.0.0/12", 11, &c) == 0 && c.bits == 108, "a prefix not on a byte");
	rl_parse_ip("10.15.255.255", 13, a, &v4);
	ok(rl_cidr_match(&c, a), "10.0.0.0/12 holds 10.15.255.255");
	rl_parse_ip("10.16.0.0", 9, a, &v4);
	ok(!rl_cidr_match(&c, a), "... not 10.16.0.0");
	ok(rl_parse_cidr("nonsense", 8, &c) < 0, "nonsense refused");
}

static size_t
used(const struct rl_table *t, int64_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nsets; i++)
		for (int k = 0; k < RL_WAYS; k++) {
			const struct rl_entry *e = &t->sets[i].e[k];
			if (e->key != 0 && (e->tat > now || (e->key & 0xffff) > 0))
				n++;
		}
	return n;
}

static void
take(struct rl_table *t, int key, int64_t now, const struct gcra *g, uint64_t max_conns,
    struct rl_ref *ref, int *rc)
{
	uint64_t id[2];
	struct gcra_verdict v;

	rl_table_id(t, &key, sizeof(key), id);
	*rc = rl_table_take(t, id, now, g, max_conns, &v, ref);
}

static void
test_table(void)
{
	struct rl_table t;
	struct gcra g = limit(1, 60, 0, 0);
	struct rl_ref ref, held;
	int64_t now = 100 * RL_NS;
	int rc, kept = 1;

	ok(rl_table_init(&t, 100) == 0, "a table of 100 keys");
	is(t.nsets, 13, "... in 13 sets of 8 (104 entries, 16 bytes each)");
	take(&t, -1, now, NULL, 1, &held, &rc);
	ok(rc == TAKE_PASS, "key -1: one request in progress");
	for (int k = 0; k < 10000; k++)
		take(&t, k, now, &g, 0, &ref, &rc);
	is(used(&t, now), 104, "10000 limited keys: the table holds 104 of them, its bound");
	take(&t, -1, now, NULL, 1, &ref, &rc);
	is(rc, TAKE_CONNS, "the key with a request in progress was kept: its second is refused");
	rl_table_release(&held);
	take(&t, -1, now, NULL, 1, &ref, &rc);
	is(rc, TAKE_PASS, "released: it may have one again");
	rl_table_release(&ref);
	/* Keys are kept while their set has room: 4 keys for each set. */
	int keys[13 * 4], nkeys = 0, per[13] = { 0 };
	for (int k = 20000; nkeys < 13 * 4; k++) {
		uint64_t id[2];
		rl_table_id(&t, &k, sizeof(k), id);
		if (per[id[0] % t.nsets]++ < 4)
			keys[nkeys++] = k;
	}
	for (int i = 0; i < nkeys; i++)
		take(&t, keys[i], now + 120 * RL_NS, &g, 0, &ref, &rc);
	for (int i = 0; i < nkeys; i++) {
		take(&t, keys[i], now + 120 * RL_NS, &g, 0, &ref, &rc);
		kept &= rc == TAKE_REFUSED;
	}
	ok(kept, "52 keys, 4 per set, in a table whose others are spent: each remembered");
	is(used(&t, now + 120 * RL_NS), 52, "... and only they are in use");
	rl_table_free(&t);

	/* A set whose every entry has a request in progress takes no new key. */
	ok(rl_table_init(&t, 8) == 0, "a table of one set");
	struct rl_ref refs[RL_WAYS];
	int all = 1;
	for (int k = 0; k < RL_WAYS; k++) {
		take(&t, 1000 + k, now, NULL, 1, &refs[k], &rc);
		all &= rc == TAKE_PASS;
	}
	ok(all, "8 keys with a request in progress each");
	take(&t, 2000, now, &g, 1, &ref, &rc);
	is(rc, TAKE_FULL, "a ninth key: no entry may be taken over (TAKE_FULL)");
	rl_table_release(&refs[3]);
	take(&t, 2000, now, &g, 1, &ref, &rc);
	is(rc, TAKE_PASS, "one released: the ninth key takes its entry");
	take(&t, 1003, now, NULL, 1, &refs[3], &rc);
	is(rc, TAKE_FULL, "... and the key it replaced finds none");
	rl_table_free(&t);
}

/* Several threads charging the same keys at one instant: the table counts
 * exactly (charging a known key takes no lock). */
#define RACE_THREADS 4
#define RACE_TRIES 2000

struct race {
	struct rl_table *t;
	struct gcra g;
	int passed[3];
	int conns_ok;
};

static void *
race_run(void *arg)
{
	struct race *ra = arg;
	struct gcra_verdict v;
	struct rl_ref ref;

	for (int i = 0; i < RACE_TRIES; i++) {
		for (int key = 0; key < 3; key++) {
			uint64_t id[2];
			rl_table_id(ra->t, &key, sizeof(key), id);
			if (rl_table_take(ra->t, id, 50 * RL_NS, &ra->g, 0, &v, &ref) == TAKE_PASS)
				ra->passed[key]++;
		}
		/* max_conns 2 on a fourth key: never more than 2 held. */
		int key = 99;
		uint64_t id[2];
		rl_table_id(ra->t, &key, sizeof(key), id);
		if (rl_table_take(ra->t, id, 50 * RL_NS, NULL, 2, &v, &ref) == TAKE_PASS) {
			const struct rl_entry *e = ref.e;
			if ((__atomic_load_n(&e->key, __ATOMIC_ACQUIRE) & 0xffff) > 2)
				ra->conns_ok = 0;
			rl_table_release(&ref);
		}
	}
	return NULL;
}

static void
test_race(void)
{
	struct rl_table t;
	struct race ra[RACE_THREADS];
	pthread_t th[RACE_THREADS];
	int sum[3] = { 0 };

	ok(rl_table_init(&t, 64) == 0, "a table for the race");
	for (int i = 0; i < RACE_THREADS; i++) {
		memset(&ra[i], 0, sizeof(ra[i]));
		ra[i].t = &t;
		ra[i].g = limit(1, 60, 999, 0); /* 1000 at once, then one a minute */
		ra[i].conns_ok = 1;
		pthread_create(&th[i], NULL, race_run, &ra[i]);
	}
	int conns_ok = 1;
	for (int i = 0; i < RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
		for (int k = 0; k < 3; k++)
			sum[k] += ra[i].passed[k];
		conns_ok &= ra[i].conns_ok;
	}
	for (int k = 0; k < 3; k++)
		is(sum[k], 1000, "key %d: %d threads x %d requests at one instant, burst 999: exactly 1000 pass",
		    k, RACE_THREADS, RACE_TRIES);
	ok(conns_ok, "max_conns 2 under %d threads: never more than 2 counted", RACE_THREADS);
	struct rl_ref ref;
	int rc1, rc2;
	take(&t, 99, 50 * RL_NS, NULL, 1, &ref, &rc1);
	take(&t, 99, 50 * RL_NS, NULL, 1, &ref, &rc2);
	ok(rc1 == TAKE_PASS && rc2 == TAKE_CONNS, "... and every count released (max_conns 1: one passes, then none)");
	rl_table_free(&t);
}

/*
 * Threads adding the same new key at one instant, over and over: the key
 * must land in one entry, never two (two would each count part of its
 * requests in progress, and max_conns would let through twice as many).
 * Each round starts every thread on a barrier with a key nobody has yet;
 * each holds one request of it while the first thread looks at the set,
 * then all release, leaving spent entries for the next round's key.
 */
#define FRESH_THREADS 2
#define FRESH_ROUNDS 20000

struct fresh {
	struct rl_table *t;
	pthread_barrier_t *bar;
	int first;
	int split;                       /* rounds whose key was in two entries */
	int lost;                        /* requests not counted */
};

static void *
fresh_run(void *arg)
{
	struct fresh *fr = arg;
	struct gcra_verdict v;
	struct rl_ref ref;

	for (int round = 0; round < FRESH_ROUNDS; round++) {
		int key = 100000 + round, rc;
		uint64_t id[2];
		rl_table_id(fr->t, &key, sizeof(key), id);
		pthread_barrier_wait(fr->bar);
		rc = rl_table_take(fr->t, id, 50 * RL_NS, NULL, RL_CONNS_MAX, &v, &ref);
		pthread_barrier_wait(fr->bar);
		if (fr->first) {
			uint64_t tag = id[1] << 16 | (uint64_t)1 << 16, n = 0, conns = 0;
			for (int i = 0; i < RL_WAYS; i++) {
				uint64_t w = __atomic_load_n(&fr->t->sets[0].e[i].key, __ATOMIC_ACQUIRE);
				if ((w & ~(uint64_t)0xffff) == tag) {
					n++;
					conns += w & 0xffff;
				}
			}
			fr->split += n > 1;
			fr->lost += conns != FRESH_THREADS;
		}
		pthread_barrier_wait(fr->bar);
		if (rc == TAKE_PASS)
			rl_table_release(&ref);
	}
	return NULL;
}

static void
test_fresh_key_race(void)
{
	struct rl_table t;
	pthread_barrier_t bar;
	struct fresh fr[FRESH_THREADS];
	pthread_t th[FRESH_THREADS];

	ok(rl_table_init(&t, RL_WAYS) == 0, "a table of one set");
	pthread_barrier_init(&bar, NULL, FRESH_THREADS);
	for (int i = 0; i < FRESH_THREADS; i++) {
		fr[i] = (struct fresh){ &t, &bar, i == 0, 0, 0 };
		pthread_create(&th[i], NULL, fresh_run, &fr[i]);
	}
	for (int i = 0; i < FRESH_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	is(fr[0].split, 0, "%d threads adding the same new key at once, %d times: never in two entries",
	    FRESH_THREADS, FRESH_ROUNDS);
	is(fr[0].lost, 0, "... and its one entry counts every request in progress");
	rl_table_free(&t);
}

int
main(void)
{
	test_burst();
	test_per_minute();
	test_delay();
	test_parse();
	test_cidr();
	test_table();
	test_race();
	test_fresh_key_race();
	return done_testing();
}
