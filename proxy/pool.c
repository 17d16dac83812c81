#include "proxy/pool.h"

#include <errno.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/stats.h"
#include "common/units.h"

uint64_t
pool_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	/* FNV's low bits are weak; finish with a 64-bit mix (splitmix). */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static uint64_t
next_rand(struct pool_worker *pw)
{
	/* xorshift64*: per worker, no locks, good enough to spread load */
	uint64_t x = pw->rng != 0 ? pw->rng : 0x9e3779b97f4a7c15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	pw->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Smooth weighted round-robin (as nginx does): weights 5:1:1 give
 * a a b a c a a, not a a a a a b c. */
static int
rr_select(struct pool_worker *pw, const struct pool *p, uint64_t allowed, uint64_t key)
{
	int64_t total = 0;
	int best = -1;

	(void)key;
	for (unsigned i = 0; i < p->nservers; i++) {
		if (!(allowed & (1ULL << i)))
			continue;
		pw->cw[i] += p->servers[i].weight;
		total += p->servers[i].weight;
		if (best < 0 || pw->cw[i] > pw->cw[best])
			best = (int)i;
	}
	if (best >= 0)
		pw->cw[best] -= total;
	return best;
}

/* Fewest requests in flight per unit of weight; ties go round-robin. */
static int
lc_select(struct pool_worker *pw, const struct pool *p, uint64_t allowed, uint64_t key)
{
	uint64_t ties = 0;
	int best = -1;

	for (unsigned i = 0; i < p->nservers; i++) {
		if (!(allowed & (1ULL << i)))
			continue;
		uint64_t ai = (uint64_t)atomic_load(&p->servers[i].active);
		if (best >= 0) {
			uint64_t ab = (uint64_t)atomic_load(&p->servers[best].active);
			uint64_t l = ai * p->servers[best].weight, r = ab * p->servers[i].weight;
			if (l > r)
				continue;
			if (l < r)
				ties = 0;
		}
		best = (int)i;
		ties |= 1ULL << i;
	}
	return best < 0 ? -1 : rr_select(pw, p, ties, key);
}

/* Weighted random choice among allowed. */
static int
weighted_random(struct pool_worker *pw, const struct pool *p, uint64_t allowed)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < p->nservers; i++)
		if (allowed & (1ULL << i))
			total += p->servers[i].weight;
	if (total == 0)
		return -1;
	uint64_t x = next_rand(pw) % total;
	for (unsigned i = 0; i < p->nservers; i++) {
		if (!(allowed & (1ULL << i)))
			continue;
		if (x < p->servers[i].weight)
			return (int)i;
		x -= p->servers[i].weight;
	}
	return -1;
}

/* Power of two choices: two random servers, the less busy one wins. */
static int
random_select(struct pool_worker *pw, const struct pool *p, uint64_t allowed, uint64_t key)
{
	int a = weighted_random(pw, p, allowed), b;

	(void)key;
	if (a < 0)
		return -1;
	b = weighted_random(pw, p, allowed & ~(1ULL << a));
	if (b < 0)
		return a;
	return atomic_load(&p->servers[b].active) < atomic_load(&p->servers[a].active) ? b : a;
}

/*
 * Rendezvous (highest random weight) hashing: each server scores the key
 * and the highest score wins, so removing a server moves only the keys it
 * had.  Weighted as -w / ln(u).  O(servers), and servers are few.
 */
static int
hash_select(struct pool_worker *pw, const struct pool *p, uint64_t allowed, uint64_t key)
{
	double best_score = -1;
	int best = -1;

	(void)pw;
	for (unsigned i = 0; i < p->nservers; i++) {
		if (!(allowed & (1ULL << i)))
			continue;
		uint64_t mix[2] = { key, pool_hash(p->servers[i].name, strlen(p->servers[i].name)) };
		uint64_t h = pool_hash(mix, sizeof(mix));
		double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0; /* (0,1) */
		double score = -(double)p->servers[i].weight / log(u);
		if (score > best_score) {
			best_score = score;
			best = (int)i;
		}
	}
	return best;
}

static const struct balance_ops balance_round_robin = { "round_robin", rr_select, 0 };
static const struct balance_ops balance_least_conn = { "least_conn", lc_select, 0 };
static const struct balance_ops balance_random = { "random", random_select, 0 };
static const struct balance_ops balance_ip_hash = { "ip_hash", hash_select, 1 };
static const struct balance_ops balance_hash = { "hash", hash_select, 1 };

static const struct balance_ops *const balancers[] = {
	&balance_round_robin, &balance_least_conn, &balance_random, &balance_ip_hash, &balance_hash, NULL,
};

/* What one look over a pool's servers finds, for one request. */
struct scan {
	uint64_t primary, backup;             /* in service, untried, under max_conns */
	uint64_t any_primary, any_backup;     /* the same with passive marks ignored */
	unsigned nprimary, nprimary_in;       /* primaries not disabled; of them in service */
	unsigned nbackup_in;                  /* backups in service */
};

/*
 * A passive mark ran out: the first thread to see it clears it and says
 * so.  Nothing else would: the mark is only a time.
 */
static void
back_in_service(const struct pool *p, struct backend *b, int64_t until)
{
	if (atomic_compare_exchange_strong(&b->down_until, &until, 0))
		log_info("[pool:%s] server %s back in service", p->name, b->name);
}

/* O(servers) per request, as before: servers are few. */
static void
scan(const struct pool *p, int64_t now, uint64_t tried, struct scan *sc)
{
	memset(sc, 0, sizeof(*sc));
	for (unsigned i = 0; i < p->nservers; i++) {
		struct backend *b = &p->servers[i];
		uint64_t bit = 1ULL << i;
		if (b->disabled)
			continue;
		sc->nprimary += !b->backup;
		int64_t until = atomic_load(&b->down_until);
		if (until != 0 && until <= now) {
			back_in_service(p, b, until);
			until = 0;
		}
		if (atomic_load(&b->gen) == 0 || atomic_load(&b->health_down))
			continue;
		int up = until <= now;
		if (up) {
			sc->nprimary_in += !b->backup;
			sc->nbackup_in += b->backup;
		}
		if ((tried & bit) || (b->max_conns > 0 && (unsigned)atomic_load(&b->active) >= b->max_conns))
			continue;
		if (b->backup) {
			sc->any_backup |= bit;
			sc->backup |= up ? bit : 0;
		} else {
			sc->any_primary |= bit;
			sc->primary |= up ? bit : 0;
		}
	}
}

/*
 * Panic (as Envoy has it): when the share of primaries in service falls
 * under panic_threshold, passive health is more likely wrong about the
 * servers (a few slow answers with max_fails = 1) than all of them are
 * broken, and 503 for everyone is the worst answer; so balance over every
 * server active checks have not marked down.  Backups in service come
 * first: they are what the operator asked for when primaries fail.
 */
static int
panicking(const struct pool *p, const struct scan *sc)
{
	return p->panic_threshold > 0 && sc->nprimary > 0 && sc->nbackup_in == 0 &&
	    (uint64_t)sc->nprimary_in * 100 < (uint64_t)p->panic_threshold * sc->nprimary;
}

/* One line per change for the pool, whichever worker sees it first. */
static void
note_panic(const struct pool *p, int panic, const struct scan *sc)
{
	int was = !panic;

	if (atomic_load_explicit(&p->shared->panic, memory_order_relaxed) == panic ||
	    !atomic_compare_exchange_strong(&p->shared->panic, &was, panic))
		return;
	if (panic)
		log_warnx("[pool:%s] panic: %u of %u servers in service, under panic_threshold %u%%; "
		    "passive health is ignored until more come back", p->name, sc->nprimary_in,
		    sc->nprimary, p->panic_threshold);
	else
		log_info("[pool:%s] panic over: %u of %u servers in service%s", p->name,
		    sc->nprimary_in, sc->nprimary, sc->nbackup_in > 0 ? ", and a backup" : "");
}

unsigned
pool_in_service(const struct pool *p)
{
	int64_t now = clock_ms();
	unsigned n = 0;

	for (unsigned i = 0; i < p->nservers; i++) {
		const struct backend *b = &p->servers[i];
		n += !b->disabled && strcmp(backend_health(b, now), "up") == 0;
	}
	return n;
}

int
pool_panic(const struct pool *p)
{
	struct scan sc;

	scan(p, clock_ms(), 0, &sc);
	int panic = panicking(p, &sc);
	note_panic(p, panic, &sc);
	return panic;
}

int
pool_select(struct pool_worker *pw, uint64_t tried, uint64_t key)
{
	const struct pool *p = pw->pool;
	struct scan sc;

	scan(p, clock_ms(), tried, &sc);
	int panic = panicking(p, &sc);
	note_panic(p, panic, &sc);
	if (panic) {
		if (sc.any_primary != 0)
			return p->balance->select(pw, p, sc.any_primary, key);
		if (sc.any_backup != 0)
			return p->balance->select(pw, p, sc.any_backup, key);
		return -1;
	}
	/* Backups serve only while no primary can. */
	if (sc.primary != 0)
		return p->balance->select(pw, p, sc.primary, key);
	if (sc.backup != 0)
		return p->balance->select(pw, p, sc.backup, key);
	return -1;
}

void
pool_server_failed(struct pool_worker *pw, unsigned i)
{
	const struct pool *p = pw->pool;
	struct backend *b = &p->servers[i];
	int64_t now = clock_ms();

	stats_add(&pw->cnt[i].failures, 1);
	if (p->max_fails == 0)
		return;
	/* Failures count within one fail_timeout window (nginx's max_fails). */
	if (now - atomic_load(&b->fail_window) > p->fail_timeout) {
		atomic_store(&b->fail_window, now);
		atomic_store(&b->fails, 0);
	}
	unsigned n = atomic_fetch_add(&b->fails, 1) + 1;
	if (n < p->max_fails)
		return;
	atomic_store(&b->fails, 0);
	/*
	 * Marked down (or, failing again while down, in panic, kept down).  Of
	 * workers racing here one wins the exchange; only a change from in
	 * service is logged.  These lines need no budget: a server goes down
	 * at most once per fail_timeout.
	 */
	int64_t was = atomic_load(&b->down_until);
	if (!atomic_compare_exchange_strong(&b->down_until, &was, now + p->fail_timeout) || was > now)
		return;
	char dur[32];
	units_format_duration(p->fail_timeout, dur, sizeof(dur));
	log_warnx("[pool:%s] server %s marked down for %s after %u failure%s", p->name, b->name, dur,
	    n, n == 1 ? "" : "s");
}

void
pool_server_ok(struct pool_worker *pw, unsigned i, uint64_t latency_us)
{
	struct backend *b = &pw->pool->servers[i];

	stats_add(&pw->cnt[i].requests, 1);
	stats_add(&pw->cnt[i].latency_us_total, latency_us);
	unsigned k = 0;
	while (k < pw->pool->nbuckets && latency_us > (uint64_t)pw->pool->le_ms[k] * 1000)
		k++;
	stats_add(&pw->cnt[i].hist[k], 1);
	/* Read before writing: a store on every response would pull the shared
	 * line into this core's cache for nothing. */
	if (atomic_load_explicit(&b->fails, memory_order_relaxed) != 0)
		atomic_store(&b->fails, 0);
}

void
pool_worker_register(struct pool_worker *pw)
{
	struct pool_shared *sh = pw->pool->shared;
	struct pool_worker *head = atomic_load_explicit(&sh->workers, memory_order_relaxed);

	/* Release: a reader that finds pw sees it whole, next included. */
	do
		pw->next = head;
	while (!atomic_compare_exchange_weak_explicit(&sh->workers, &head, pw, memory_order_release,
	    memory_order_relaxed));
}

static int
parse_server(struct conf_ctx *ctx, const struct conf_kv *kv, struct backend *b)
{
	char *copy = strdup(kv->value), *save = NULL;
	char *tok = strtok_r(copy, " \t", &save);
	const char *why = NULL;
	uint64_t v;
	int rc = 0;

	b->weight = 1;
	b->name = strdup(tok);
	if (pool_parse_address(tok, b, &why) < 0) {
		conf_err(ctx, kv->line, ctx->section, "server", "%s, not \"%s\"", why, tok);
		rc = -1;
	}
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strncmp(tok, "weight=", 7) == 0 && units_count(tok + 7, 1000, &v) == 0 && v > 0)
			b->weight = (unsigned)v;
		else if (strncmp(tok, "max_conns=", 10) == 0 && units_count(tok + 10, 1000000, &v) == 0)
			b->max_conns = (unsigned)v;
		else if (strcmp(tok, "backup") == 0)
			b->backup = 1;
		else if (strcmp(tok, "down") == 0)
			b->disabled = BACKEND_DISABLED;
		else if (strcmp(tok, "drain") == 0)
			b->disabled = BACKEND_DRAIN;
		else if (strcmp(tok, "tls") == 0)
			b->tls = 1;
		else {
			conf_err(ctx, kv->line, ctx->section, "server",
			    "unknown parameter \"%s\" (weight=N, max_conns=N, backup, down, drain, tls)",
			    tok);
			rc = -1;
		}
	}
	if (rc == 0 && b->tls && strncmp(b->name, "unix:", 5) == 0) {
		conf_err(ctx, kv->line, ctx->section, "server",
		    "tls: not to a Unix socket (it has no host name to verify)");
		rc = -1;
	}
	free(copy);
	return rc;
}

/*
 * "GET /healthz every 2s [expect 200-399 | expect 204]".  Split into words
 * rather than scanned into fixed buffers: a path is as long as the line
 * allows, and the check's request is built to fit it (proxy/health.c).
 */
static int
parse_health(struct conf_ctx *ctx, const struct conf_kv *kv, struct pool *p)
{
	char *copy = strdup(kv->value), *save = NULL, *w[7] = { 0 };
	int n = 0, nr = 0, rc = -1;
	char junk;

	if (copy == NULL)
		return -1;
	for (char *t = strtok_r(copy, " \t", &save); t != NULL && n < 7; t = strtok_r(NULL, " \t", &save))
		w[n++] = t;
	if (n == 6)
		nr = sscanf(w[5], "%d-%d%c", &p->hc_lo, &p->hc_hi, &junk);
	if (nr == 1) /* a single status: "expect 204", digits only */
		p->hc_hi = strspn(w[5], "0123456789") == strlen(w[5]) ? p->hc_lo : -1;
	if ((n != 4 && n != 6) || strcmp(w[2], "every") != 0 || w[1][0] != '/' ||
	    units_duration(w[3], &p->hc_interval) < 0 || p->hc_interval < 100 ||
	    (n == 6 && (strcmp(w[4], "expect") != 0 || (nr != 1 && nr != 2) ||
	    p->hc_lo < 100 || p->hc_hi > 599 || p->hc_lo > p->hc_hi))) {
		conf_err(ctx, kv->line, ctx->section, "health_check",
		    "expected \"METHOD /path every DURATION [expect 200-399]\", not \"%s\"", kv->value);
		goto out;
	}
	for (const char *c = w[0]; *c != '\0'; c++)
		if (*c < 'A' || *c > 'Z' || c - w[0] >= 15) {
			conf_err(ctx, kv->line, ctx->section, "health_check",
			    "bad method \"%s\"", w[0]);
			goto out;
		}
	/* The path goes on the request line as written: no byte that would end
	 * it or the line early. */
	for (const unsigned char *c = (const unsigned char *)w[1]; *c != '\0'; c++)
		if (*c <= ' ' || *c == 0x7f) {
			conf_err(ctx, kv->line, ctx->section, "health_check", "control byte in the path");
			goto out;
		}
	if (n == 4) {
		p->hc_lo = 200;
		p->hc_hi = 399;
	}
	p->hc_method = strdup(w[0]);
	p->hc_path = strdup(w[1]);
	rc = p->hc_method != NULL && p->hc_path != NULL ? 0 : -1;
out:
	free(copy);
	return rc;
}

static const struct conf_key pool_key_table[] = {
	{ "server", NULL, CONF_KEY_LIST, NULL },
	{ "balance", "round_robin", 0, NULL },
	{ "keepalive", "32", 0, NULL },
	{ "keepalive_timeout", "60s", 0, NULL },
	{ "connect_timeout", "5s", 0, NULL },
	{ "send_timeout", "30s", 0, NULL },
	{ "read_timeout", "30s", 0, NULL },
	{ "tls_ca", NULL, 0, NULL },                  /* none: the system's store */
	{ "tls_cert", NULL, 0, NULL },                /* none: no client certificate */
	{ "tls_key", NULL, 0, NULL },
	{ "tls_verify", "on", 0, NULL },
	{ "resolve", "30s", 0, NULL },
	{ "tunnel_timeout", "1h", 0, NULL },
	{ "retries", "1", 0, NULL },
	{ "max_fails", "1", 0, NULL },
	{ "fail_timeout", "10s", 0, NULL },
	{ "panic_threshold", "50%", 0, NULL },
	{ "health_check", NULL, 0, NULL },            /* none: no active checks */
	{ "rise", "2", 0, "health_check" },
	{ "fall", "3", 0, "health_check" },
	{ "metrics_buckets", NULL, 0, NULL },         /* none: METRICS_DEFAULT_BUCKETS */
	{ NULL, NULL, 0, NULL },
};

const struct conf_key *
pool_keys(const struct conf_section *sec)
{
	(void)sec;
	return pool_key_table;
}

static int
kv_duration(struct conf_ctx *ctx, const struct conf_kv *kv, int64_t *out)
{
	if (units_duration(kv->value, out) == 0 && *out > 0)
		return 0;
	conf_err(ctx, kv->line, ctx->section, kv->key, "expected a duration such as 5s, not \"%s\"",
	    kv->value);
	return -1;
}

static int
kv_count_from(struct conf_ctx *ctx, const struct conf_kv *kv, uint64_t min, uint64_t max,
    unsigned *out)
{
	uint64_t v;

	if (units_count(kv->value, max, &v) == 0 && v >= min) {
		*out = (unsigned)v;
		return 0;
	}
	conf_err(ctx, kv->line, ctx->section, kv->key, "expected a number from %llu to %llu, not \"%s\"",
	    (unsigned long long)min, (unsigned long long)max, kv->value);
	return -1;
}

static int
kv_count(struct conf_ctx *ctx, const struct conf_kv *kv, uint64_t max, unsigned *out)
{
	return kv_count_from(ctx, kv, 0, max, out);
}

/* "50%": a whole percentage from 0% to 100%, the sign required so that
 * the unit is never in doubt. */
static int
kv_percent(struct conf_ctx *ctx, const struct conf_kv *kv, unsigned *out)
{
	size_t len = strlen(kv->value);
	char num[8];
	uint64_t v;

	if (len >= 2 && len - 1 < sizeof(num) && kv->value[len - 1] == '%') {
		memcpy(num, kv->value, len - 1);
		num[len - 1] = '\0';
		if (units_count(num, 100, &v) == 0) {
			*out = (unsigned)v;
			return 0;
		}
	}
	conf_err(ctx, kv->line, ctx->section, kv->key,
	    "expected a percentage from 0%% to 100%% such as 50%%, not \"%s\"", kv->value);
	return -1;
}

/* rise and fall: a run of zero checks means nothing */
static int
kv_count_min1(struct conf_ctx *ctx, const struct conf_kv *kv, uint64_t max, unsigned *out)
{
	return kv_count_from(ctx, kv, 1, max, out);
}

/* The line a key of sec was given on, else the section's. */
static int
key_line(const struct conf_section *sec, const char *key)
{
	for (size_t i = 0; i < sec->nkv; i++)
		if (strcmp(sec->kv[i].key, key) == 0)
			return sec->kv[i].line;
	return sec->line;
}

/*
 * A session a server gave (a TLS 1.3 ticket, after the handshake; a 1.2
 * session at its end) goes to the slot of its worker's state for that
 * server, replacing the one before: the next connection resumes it, a
 * short handshake without the certificate, as nginx's
 * proxy_ssl_session_reuse.  Only the worker that owns the slot runs this.
 */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION **slot = SSL_get_app_data(ssl);

	if (slot == NULL)
		return 0; /* not kept: OpenSSL frees it */
	if (*slot != NULL)
		SSL_SESSION_free(*slot);
	*slot = sess;
	return 1; /* ours now */
}

/* The client context for servers marked tls: TLS 1.2+, the certificate and
 * its name checked against tls_ca (or the system store) unless tls_verify = off. */
static int
pool_tls_setup(struct conf_ctx *ctx, const struct conf_section *sec, struct pool *p)
{
	int any = 0;

	for (unsigned i = 0; i < p->nservers; i++)
		any |= p->servers[i].tls;
	if (!any)
		return 0;
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (c == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(c, 1); /* as on listeners: one recv per read, not two */
	/* Sessions are kept by the workers (on_new_session), not OpenSSL's
	 * cache, which would lock.  A session of this context only: a reload
	 * (tls_ca, tls_verify changed) makes new states with none. */
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(c, on_new_session);
	/* A client certificate, for servers that ask for one (mutual TLS). */
	if (p->tls_cert != NULL && p->tls_key != NULL &&
	    (SSL_CTX_use_certificate_chain_file(c, p->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, p->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c) != 1)) {
		char why[160];
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		conf_err(ctx, key_line(sec, "tls_cert"), ctx->section, "tls_cert",
		    "%s or %s: %s", p->tls_cert, p->tls_key, why);
		ERR_clear_error();
		SSL_CTX_free(c);
		return -1;
	}
	if (p->tls_verify) {
		int ok;
		if (p->tls_ca != NULL) {
			FILE *fp = fopen(p->tls_ca, "r");
			if (fp == NULL) {
				conf_err(ctx, key_line(sec, "tls_ca"), ctx->section, "tls_ca", "cannot read %s: %s",
				    p->tls_ca, strerror(errno));
				SSL_CTX_free(c);
				return -1;
			}
			fclose(fp);
			ok = SSL_CTX_load_verify_locations(c, p->tls_ca, NULL);
		} else {
			ok = SSL_CTX_set_default_verify_paths(c);
		}
		if (ok != 1) {
			char why[160];
			ERR_error_string_n(ERR_get_error(), why, sizeof(why));
			conf_err(ctx, key_line(sec, "tls_ca"), ctx->section, "tls_ca", "%s", why);
			ERR_clear_error();
			SSL_CTX_free(c);
			return -1;
		}
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	}
	p->tls_ctx = c;
	return 0;
}

/* balance = POLICY, or hash HEADER. */
static int
parse_balance(struct conf_ctx *ctx, const struct conf_kv *kv, struct pool *p)
{
	char name[32], arg[64] = "";
	int n = sscanf(kv->value, "%31s %63s", name, arg);

	p->balance = NULL;
	for (size_t j = 0; balancers[j] != NULL; j++)
		if (strcmp(balancers[j]->name, name) == 0)
			p->balance = balancers[j];
	if (p->balance == NULL || (p->balance == &balance_hash) != (n == 2)) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "expected round_robin, least_conn, "
		    "random, ip_hash or hash HEADER, not \"%s\"", kv->value);
		p->balance = &balance_round_robin;
		return -1;
	}
	if (n == 2)
		p->hash_header = strdup(arg);
	return 0;
}

int
pool_configure(struct conf_ctx *ctx, struct conf_section *sec)
{
	struct pool *p = calloc(1, sizeof(*p));
	struct conf_kv def;
	int rc = 0;

	if (p == NULL)
		return -1;
	sec->data = p;
	if ((p->shared = calloc(1, sizeof(*p->shared))) == NULL)
		return -1;
	p->name = strdup(sec->name);
	if (conf_check_section(ctx, sec, pool_key_table) > 0)
		rc = -1;
	for (size_t i = 0; i < sec->nkv; i++) {
		const struct conf_kv *kv = &sec->kv[i];
		if (strcmp(kv->key, "server") != 0)
			continue;
		if (p->nservers == POOL_MAX_SERVERS) {
			conf_err(ctx, kv->line, ctx->section, kv->key, "at most %d servers", POOL_MAX_SERVERS);
			rc = -1;
			continue;
		}
		struct backend *nb = realloc(p->servers, (p->nservers + 1) * sizeof(*nb));
		if (nb == NULL)
			return -1;
		p->servers = nb;
		memset(&nb[p->nservers], 0, sizeof(*nb));
		if (parse_server(ctx, kv, &nb[p->nservers]) < 0)
			rc = -1;
		p->nservers++;
	}
	/* Every other key once, as given or its default. */
#define V(key) conf_section_value(sec, pool_key_table, (key), &def)
	rc |= parse_balance(ctx, V("balance"), p);
	rc |= kv_count(ctx, V("keepalive"), 10000, &p->keepalive);
	rc |= kv_duration(ctx, V("keepalive_timeout"), &p->keepalive_timeout);
	rc |= kv_duration(ctx, V("connect_timeout"), &p->connect_timeout);
	rc |= kv_duration(ctx, V("send_timeout"), &p->send_timeout);
	rc |= kv_duration(ctx, V("read_timeout"), &p->read_timeout);
	rc |= kv_duration(ctx, V("tunnel_timeout"), &p->tunnel_timeout);
	rc |= kv_duration(ctx, V("resolve"), &p->resolve);
	if (V("tls_ca") != NULL)
		p->tls_ca = strdup(V("tls_ca")->value);
	if (V("tls_cert") != NULL)
		p->tls_cert = strdup(V("tls_cert")->value);
	if (V("tls_key") != NULL)
		p->tls_key = strdup(V("tls_key")->value);
	if ((p->tls_cert == NULL) != (p->tls_key == NULL)) {
		const char *given = p->tls_cert != NULL ? "tls_cert" : "tls_key";
		conf_err(ctx, key_line(sec, given), ctx->section, given,
		    "give tls_cert and tls_key together (the client certificate and its key)");
		rc = -1;
	}
	if (units_bool(V("tls_verify")->value, &p->tls_verify) < 0) {
		conf_err(ctx, V("tls_verify")->line, ctx->section, "tls_verify", "expected on or off");
		rc = -1;
	}
	rc |= kv_count(ctx, V("retries"), POOL_MAX_SERVERS, &p->retries);
	rc |= kv_count(ctx, V("max_fails"), 1000, &p->max_fails);
	rc |= kv_duration(ctx, V("fail_timeout"), &p->fail_timeout);
	rc |= kv_percent(ctx, V("panic_threshold"), &p->panic_threshold);
	if (V("health_check") != NULL)
		rc |= parse_health(ctx, V("health_check"), p);
	rc |= kv_count_min1(ctx, V("rise"), 100, &p->rise);
	rc |= kv_count_min1(ctx, V("fall"), 100, &p->fall);
	const char *bk = V("metrics_buckets") != NULL ? V("metrics_buckets")->value :
	    METRICS_DEFAULT_BUCKETS;
	int nb = metrics_parse_buckets(bk, p->le_ms, CONF_MAX_BUCKETS);
	if (nb < 0) {
		conf_err(ctx, V("metrics_buckets")->line, ctx->section, "metrics_buckets",
		    "expected up to %d increasing durations", CONF_MAX_BUCKETS);
		rc = -1;
	}
	p->nbuckets = nb > 0 ? (unsigned)nb : 0;
#undef V
	if (p->nservers == 0) {
		conf_err(ctx, sec->line, ctx->section, NULL, "no server: give server = HOST:PORT");
		rc = -1;
	}
	if (rc == 0 && pool_tls_setup(ctx, sec, p) < 0)
		rc = -1;
	return rc ? -1 : 0;
}

static int
str_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
pool_same_server(const struct pool *a, unsigned i, const struct pool *b, unsigned j)
{
	const struct backend *x = &a->servers[i], *y = &b->servers[j];

	if (strcmp(x->name, y->name) != 0 || x->tls != y->tls)
		return 0;
	return !x->tls || (a->tls_verify == b->tls_verify && str_same(a->tls_ca, b->tls_ca) &&
	    str_same(a->tls_cert, b->tls_cert) && str_same(a->tls_key, b->tls_key));
}

void
pool_carry(struct pool *p, const struct pool *old)
{
	/* O(servers^2) once per reload; servers are few. */
	for (unsigned j = 0; j < p->nservers; j++) {
		struct backend *b = &p->servers[j];
		for (unsigned i = 0; i < old->nservers; i++) {
			const struct backend *o = &old->servers[i];
			if (!pool_same_server(old, i, p, j))
				continue;
			struct sockaddr_storage ss;
			socklen_t len;
			if (b->host != NULL && (len = backend_addr(o, &ss)) > 0)
				backend_set_addr(b, (struct sockaddr *)&ss, len);
			atomic_store(&b->down_until, atomic_load(&o->down_until));
			atomic_store(&b->fails, atomic_load(&o->fails));
			atomic_store(&b->fail_window, atomic_load(&o->fail_window));
			/* Without checks now, nothing would bring it back up. */
			if (p->hc_path != NULL && old->hc_path != NULL) {
				atomic_store(&b->health_down, atomic_load(&o->health_down));
				atomic_store(&b->hc_ok, atomic_load(&o->hc_ok));
				atomic_store(&b->hc_fail, atomic_load(&o->hc_fail));
			}
			atomic_store(&b->hc_passed, atomic_load(&o->hc_passed));
			atomic_store(&b->hc_failed, atomic_load(&o->hc_failed));
			break;
		}
	}
	atomic_store(&p->shared->panic, atomic_load(&old->shared->panic));
}

void
pool_free(void *arg)
{
	struct pool *p = arg;

	if (p == NULL)
		return;
	/* The workers have let go of it: their states for it are done with. */
	for (struct pool_worker *pw = p->shared != NULL ? atomic_load(&p->shared->workers) : NULL, *next;
	    pw != NULL; pw = next) {
		next = pw->next;
		free(pw);
	}
	for (unsigned i = 0; i < p->nservers; i++) {
		free(p->servers[i].name);
		free(p->servers[i].host);
		free(p->servers[i].port);
	}
	free(p->servers);
	free(p->shared);
	free(p->name);
	free(p->hash_header);
	free(p->hc_method);
	free(p->hc_path);
	free(p->tls_ca);
	free(p->tls_cert);
	free(p->tls_key);
	SSL_CTX_free(p->tls_ctx);
	free(p);
}

SSL *
pool_tls_new(const struct pool *p, unsigned idx, int fd, struct pool_worker *pw)
{
	const struct backend *b = &p->servers[idx];
	SSL *ssl = SSL_new(p->tls_ctx);

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	if (pw != NULL && pw->pool == p) {
		SSL_SESSION **slot = (SSL_SESSION **)&pw->tls_session[idx];
		if (*slot != NULL) {
			SSL_set_session(ssl, *slot);
			/* A TLS 1.3 ticket is for one connection (RFC 8446 C.4):
			 * the next waits for the ticket this one brings. */
			if (SSL_SESSION_get_protocol_version(*slot) == TLS1_3_VERSION) {
				SSL_SESSION_free(*slot);
				*slot = NULL;
			}
		}
		SSL_set_app_data(ssl, slot);
	}
	if (b->host != NULL) {
		SSL_set_tlsext_host_name(ssl, b->host);
		if (p->tls_verify)
			SSL_set1_host(ssl, b->host);
	} else if (p->tls_verify) {
		char ip[64];
		snprintf(ip, sizeof(ip), "%s", b->name[0] == '[' ? b->name + 1 : b->name);
		char *end = b->name[0] == '[' ? strchr(ip, ']') : strrchr(ip, ':');
		if (end != NULL)
			*end = '\0';
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip);
	}
	return ssl;
}

void
pool_tls_detach(SSL *ssl)
{
	SSL_set_app_data(ssl, NULL);
}

void
pool_tls_sessions_free(struct pool_worker *pw)
{
	for (unsigned i = 0; i < POOL_MAX_SERVERS; i++) {
		SSL_SESSION_free(pw->tls_session[i]);
		pw->tls_session[i] = NULL;
	}
}
