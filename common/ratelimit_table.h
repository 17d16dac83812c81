/*
 * ratelimit_table: what `type = ratelimit` (mw_ratelimit.c) counts with:
 * GCRA, the local table of buckets shared by the workers, and the keyed
 * hash and address networks its keys use.
 *
 * The table is set-associative, sets of RL_WAYS entries.  Charging a
 * key takes no lock: an entry is two words (the key's tag with its
 * requests in progress, and its TAT) that change together by one 16-byte
 * compare-and-swap, so a worker that found an entry charges it only if
 * it still belongs to the same key (an eviction between the lookup and
 * the swap makes the swap fail, and the lookup is done again).  An entry
 * with requests in progress is never taken over, so their release needs
 * no generation count.  Adding a key to a set is the one step that takes
 * a lock, the set's spin flag, held while the set is searched again and
 * an entry taken: two workers adding the same key at once would
 * otherwise take two entries (the second not seeing the first once that
 * one holds a request in progress), each counting part of its requests.
 */
#ifndef PORTICO_RATELIMIT_TABLE_H
#define PORTICO_RATELIMIT_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mw_ratelimit.h"

#define RL_WAYS 8
#define RL_NS 1000000000LL

/*
 * One entry of the table: a key's bucket, 16 bytes.  key holds the key's
 * 48-bit tag (the keyed hash's, never 0) over its requests in progress
 * (16 bits); key 0 is a free entry.
 */
struct rl_entry {
	_Alignas(16) uint64_t key;
	int64_t tat;                     /* monotonic ns; <= now: the bucket is full */
};

#define RL_CONNS_MAX 65535           /* requests in progress a key may count */

struct rl_set {
	struct rl_entry e[RL_WAYS];
};

struct rl_table {
	size_t nsets;
	struct rl_set *sets;
	unsigned char *adding;           /* per set: a key is being added */
	uint64_t sipkey[2][2];           /* random: nobody outside can aim at a set */
};

/* A held count of requests in progress, for its release. */
struct rl_ref {
	struct rl_entry *e;
	uint64_t tag;                    /* the key's, as in e->key */
};

struct cidr {
	unsigned char a[16];             /* IPv4 as ::ffff:a.b.c.d */
	unsigned bits;
};

/* TAKE_FULL: a new key found every entry of its set with requests in
 * progress, none it may take over. */
enum { TAKE_PASS, TAKE_REFUSED, TAKE_CONNS, TAKE_FULL };

/* SipHash-2-4 of data under key k. */
uint64_t rl_siphash(const uint64_t k[2], const void *data, size_t len);
/* An IPv4 or IPv6 address into a (IPv4 as ::ffff:a.b.c.d).  0 or -1. */
int rl_parse_ip(const char *s, size_t len, unsigned char a[16], int *v4);
/* ADDRESS or ADDRESS/BITS, host bits clear.  0 or -1. */
int rl_parse_cidr(const char *s, size_t len, struct cidr *c);
int rl_cidr_match(const struct cidr *c, const unsigned char a[16]);

/* A table for max_keys keys.  0 or -1. */
int rl_table_init(struct rl_table *t, uint64_t max_keys);
void rl_table_free(struct rl_table *t);
/* The keyed hash of a key: its identity in the table. */
void rl_table_id(const struct rl_table *t, const void *key, size_t klen, uint64_t id[2]);
/*
 * One request of key id at now: counts it in progress when max_conns is
 * set (ref then holds it), and decides its rate with g unless g is NULL.
 * TAKE_CONNS when max_conns are already in progress (nothing counted),
 * TAKE_REFUSED when the rate refuses it (nothing counted either),
 * TAKE_FULL when the key has no entry and none can be freed for it, else
 * TAKE_PASS with v telling how long it waits.
 */
int rl_table_take(const struct rl_table *t, const uint64_t id[2], int64_t now,
    const struct gcra *g, uint64_t max_conns, struct gcra_verdict *v, struct rl_ref *ref);
/* A request counted by rl_table_take is over. */
void rl_table_release(const struct rl_ref *ref);
/* Monotonic nanoseconds. */
int64_t rl_now_ns(void);

#endif
