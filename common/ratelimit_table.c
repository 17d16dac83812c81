/*
 * ratelimit_table: GCRA, the local table and the key helpers of
 * `type = ratelimit` (see ratelimit_table.h).
 */
#include "common/ratelimit_table.h"

#include <arpa/inet.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/units.h"

/* ---- GCRA ---- */

void
gcra_decide(const struct gcra *g, int64_t *tat, int64_t now, struct gcra_verdict *v)
{
	int64_t t = *tat > now ? *tat : now;
	int64_t wait = t - g->tolerance - now;

	if (wait > g->queue) {
		v->allow = 0;
		v->wait = wait - g->queue;
		v->reset = t - now;
		v->remaining = 0;
		return;
	}
	*tat = t + g->interval;
	v->allow = 1;
	v->wait = wait > 0 ? wait : 0;
	v->reset = *tat - now;
	v->remaining = gcra_remaining(g, v->reset);
}

int64_t
gcra_remaining(const struct gcra *g, int64_t reset)
{
	/* The next passes at once while its TAT less the tolerance is not
	 * past now: tolerance - reset leaves room for that many intervals. */
	return reset <= g->tolerance ? (g->tolerance - reset) / g->interval + 1 : 0;
}

/* SipHash-2-4 (Aumasson and Bernstein), 64-bit output. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

uint64_t
rl_siphash(const uint64_t k[2], const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL, v1 = k[1] ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k[0] ^ 0x6c7967656e657261ULL, v3 = k[1] ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, end = len - len % 8;

	for (i = 0; i < end; i += 8) {
		memcpy(&m, p + i, 8); /* little-endian hosts only, as everything here */
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* "a.b.c.d" or an IPv6 address, without brackets or port, into a[16]. */
int
rl_parse_ip(const char *s, size_t len, unsigned char a[16], int *v4)
{
	char buf[INET6_ADDRSTRLEN];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(a, 0, 16);
	if (inet_pton(AF_INET, buf, a + 12) == 1) {
		a[10] = a[11] = 0xff;
		*v4 = 1;
		return 0;
	}
	*v4 = 0;
	return inet_pton(AF_INET6, buf, a) == 1 ? 0 : -1;
}

/* "10.0.0.0/8", "::1", "fd00::/8" into c.  0 or -1. */
int
rl_parse_cidr(const char *s, size_t len, struct cidr *c)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	uint64_t bits;
	int v4;
	char num[8];

	if (rl_parse_ip(s, alen, c->a, &v4) < 0)
		return -1;
	c->bits = 128;
	if (slash == NULL)
		return 0;
	size_t nlen = len - alen - 1;
	if (nlen == 0 || nlen >= sizeof(num))
		return -1;
	memcpy(num, slash + 1, nlen);
	num[nlen] = '\0';
	if (units_count(num, v4 ? 32 : 128, &bits) < 0)
		return -1;
	c->bits = (unsigned)bits + (v4 ? 96 : 0);
	/* Host bits set are a typo more often than not: refuse them. */
	for (unsigned i = c->bits; i < 128; i++)
		if (c->a[i / 8] & (0x80 >> (i % 8)))
			return -1;
	return 0;
}

int
rl_cidr_match(const struct cidr *c, const unsigned char a[16])
{
	unsigned full = c->bits / 8, rest = c->bits % 8;

	if (memcmp(c->a, a, full) != 0)
		return 0;
	return rest == 0 || ((c->a[full] ^ a[full]) & (0xff00 >> rest) & 0xff) == 0;
}

/* ---- the local table ---- */

int
rl_table_init(struct rl_table *t, uint64_t max_keys)
{
	t->nsets = (size_t)((max_keys + RL_WAYS - 1) / RL_WAYS);
	if (getrandom(t->sipkey, sizeof(t->sipkey), 0) != (ssize_t)sizeof(t->sipkey))
		return -1;
	/* Untouched sets cost no memory until first used (calloc'd pages). */
	t->sets = calloc(t->nsets, sizeof(*t->sets));
	t->adding = calloc(t->nsets, 1);
	if (t->sets == NULL || t->adding == NULL) {
		rl_table_free(t);
		return -1;
	}
	return 0;
}

void
rl_table_free(struct rl_table *t)
{
	free(t->sets);
	free(t->adding);
	t->sets = NULL;
	t->adding = NULL;
}

void
rl_table_id(const struct rl_table *t, const void *key, size_t klen, uint64_t id[2])
{
	id[0] = rl_siphash(t->sipkey[0], key, klen);
	id[1] = rl_siphash(t->sipkey[1], key, klen) | 1; /* never {0, 0}: that is free */
}

/*
 * An entry's two words as one value, for the 16-byte compare-and-swap
 * (lock cmpxchg16b, through libatomic).  The key is the low word.
 */
typedef unsigned __int128 rl_pair;

#define CONNS_MASK ((uint64_t)0xffff)

static rl_pair
pair(uint64_t key, int64_t tat)
{
	return (rl_pair)(uint64_t)tat << 64 | key;
}

static uint64_t
pair_key(rl_pair p)
{
	return (uint64_t)p;
}

static int64_t
pair_tat(rl_pair p)
{
	return (int64_t)(uint64_t)(p >> 64);
}

/* Both words, each read atomically but not together: the swap that
 * follows finds out if they did not belong together. */
static rl_pair
entry_peek(const struct rl_entry *e)
{
	uint64_t key = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);

	return pair(key, __atomic_load_n(&e->tat, __ATOMIC_ACQUIRE));
}

/* want in e if e still holds *seen; else *seen is what it holds. */
static int
entry_swap(struct rl_entry *e, rl_pair *seen, rl_pair want)
{
	return __atomic_compare_exchange_n((rl_pair *)(void *)e, seen, want, 0, __ATOMIC_ACQ_REL,
	    __ATOMIC_ACQUIRE);
}

/* The key's tag: 48 bits of the second hash, never 0. */
static uint64_t
tag_of(const uint64_t id[2])
{
	return id[1] << 16 | (uint64_t)1 << 16;
}

/*
 * An entry a new key may take, with what it held in *seen: a free or
 * spent one first (full bucket, nothing in progress: dropping it loses
 * nothing), else the one nearest to full.  One with requests in progress
 * never: NULL when every entry has some.  Called with the set's adding
 * flag held.
 */
static struct rl_entry *
set_victim(struct rl_set *s, int64_t now, rl_pair *seen)
{
	struct rl_entry *best = NULL;

	for (int i = 0; i < RL_WAYS; i++) {
		rl_pair p = entry_peek(&s->e[i]);
		if ((pair_key(p) & CONNS_MASK) != 0)
			continue;
		if (pair_key(p) == 0 || pair_tat(p) <= now) {
			*seen = p;
			return &s->e[i];
		}
		if (best == NULL || pair_tat(p) < pair_tat(*seen)) {
			best = &s->e[i];
			*seen = p;
		}
	}
	return best;
}

static struct rl_entry *
set_find(struct rl_set *s, uint64_t tag)
{
	for (int i = 0; i < RL_WAYS; i++)
		if ((__atomic_load_n(&s->e[i].key, __ATOMIC_ACQUIRE) & ~CONNS_MASK) == tag)
			return &s->e[i];
	return NULL;
}

/*
 * The set's flag for adding a key: held for a scan of 8 entries and one
 * swap, so a worker that finds it taken spins, and yields only if the
 * holder seems descheduled.
 */
static void
adding_lock(unsigned char *flag)
{
	for (unsigned spins = 0; __atomic_exchange_n(flag, 1, __ATOMIC_ACQUIRE) != 0;)
		while (__atomic_load_n(flag, __ATOMIC_RELAXED) != 0)
			if (++spins % 64 == 0)
				sched_yield();
}

static void
adding_unlock(unsigned char *flag)
{
	__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
}

/*
 * The entry of the key tag in s, added if it has none, with what it holds
 * in *seen; NULL when the set has no entry it may take for it.
 */
static struct rl_entry *
set_entry(struct rl_set *s, unsigned char *adding, uint64_t tag, int64_t now, rl_pair *seen)
{
	struct rl_entry *e = set_find(s, tag);

	if (e != NULL) {
		*seen = entry_peek(e);
		return e;
	}
	adding_lock(adding);
	e = set_find(s, tag); /* added by another worker since */
	if (e != NULL)
		*seen = entry_peek(e);
	else {
		/* Only an adder takes an entry over, and adders take turns:
		 * the swap fails only when a charge or a release changed the
		 * victim's words, and then it is chosen again. */
		do
			e = set_victim(s, now, seen);
		while (e != NULL && !entry_swap(e, seen, pair(tag, 0)));
		if (e != NULL)
			*seen = pair(tag, 0);
	}
	adding_unlock(adding);
	return e;
}

int
rl_table_take(const struct rl_table *t, const uint64_t id[2], int64_t now, const struct gcra *g,
    uint64_t max_conns, struct gcra_verdict *v, struct rl_ref *ref)
{
	size_t si = id[0] % t->nsets;
	struct rl_set *s = &t->sets[si];
	uint64_t tag = tag_of(id);

	for (;;) {
		rl_pair seen;
		struct rl_entry *e = set_entry(s, &t->adding[si], tag, now, &seen);
		if (e == NULL)
			return TAKE_FULL;
		/* Decide on what the entry holds, and swap the outcome in only
		 * if it still holds that (a refusal swaps in the same words: it
		 * checks they belonged together). */
		while ((pair_key(seen) & ~CONNS_MASK) == tag) {
			uint64_t key = pair_key(seen);
			int64_t tat = pair_tat(seen);
			int rc = TAKE_PASS;
			if (max_conns > 0 && (key & CONNS_MASK) >= max_conns)
				rc = TAKE_CONNS;
			else if (g != NULL) {
				gcra_decide(g, &tat, now, v);
				if (!v->allow)
					rc = TAKE_REFUSED;
			}
			if (rc == TAKE_PASS && max_conns > 0)
				key++;
			if (entry_swap(e, &seen, pair(key, tat))) {
				if (rc == TAKE_PASS && max_conns > 0) {
					ref->e = e;
					ref->tag = tag;
				}
				return rc;
			}
		}
		/* Taken over by another key between the lookup and the swap. */
	}
}

/* A request counted by rl_table_take is over.  Its entry cannot have
 * changed hands: those with requests in progress are never taken over. */
void
rl_table_release(const struct rl_ref *ref)
{
	rl_pair seen = entry_peek(ref->e);

	while ((pair_key(seen) & ~CONNS_MASK) == ref->tag && (pair_key(seen) & CONNS_MASK) > 0)
		if (entry_swap(ref->e, &seen, pair(pair_key(seen) - 1, pair_tat(seen))))
			return;
}

int64_t
rl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * RL_NS + ts.tv_nsec;
}
