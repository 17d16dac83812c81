/*
 * mw_ratelimit: `type = ratelimit` (see mw_ratelimit.h and
 * portico.ini(5)).
 *
 * A key (the client's address, a request header) names a bucket; a
 * bucket is GCRA's theoretical arrival time (TAT) plus a count of the
 * key's requests in progress.  Locally the buckets live in one table per
 * middleware block, shared by the workers (ratelimit_table.c).  With
 * `store = redis://...` the rate is decided by Redis (ratelimit_redis.c)
 * and only max_conns is counted here.
 */
#include "common/mw_ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/exchange.h"
#include "common/log.h"
#include "common/ratelimit_redis.h"
#include "common/ratelimit_table.h"
#include "common/server.h"
#include "common/units.h"

static const struct conf_key rl_keys[] = {
	MW_TYPE_KEY,
	{ "rate", NULL, 0, NULL },                       /* none: max_conns alone */
	{ "burst", "0", 0, "rate" },
	{ "delay", "0", 0, "rate" },
	{ "key", "addr", 0, NULL },
	{ "trusted_proxies", NULL, 0, NULL },
	{ "max_conns", "0", 0, NULL },
	{ "max_keys", "100000", 0, NULL },
	{ "store", "local", 0, NULL },
	{ "store_timeout", "50ms", 0, "store" },
	{ "on_store_error", "allow", 0, "store" },
	{ NULL, NULL, 0, NULL },
};

#define RL_MAX_RATE 1000000          /* per second or minute */
#define RL_MAX_BURST 1000000
#define RL_MAX_KEYS (16 * 1024 * 1024) /* 528 MB */
#define RL_MAX_PROXIES 64

enum key_kind { KEY_ADDR, KEY_HEADER, KEY_CLAIM };

/* The store's failures, logged once per incident, whichever worker sees them. */
struct rl_incident {
	_Atomic int down;
	_Atomic int64_t recovered;       /* ms (rl_redis_now) it last answered again */
};

struct rl_conf {
	char *name;
	int has_rate;
	struct gcra g;                   /* nanoseconds */
	uint64_t rate, per;              /* per: 1 or 60 seconds, for RateLimit-Policy */
	uint64_t burst, delay;
	enum key_kind kind;
	char *kname;                     /* header name (lower case) or claim */
	struct cidr *proxies;
	size_t nproxies;
	uint64_t max_conns;
	struct rl_table table;
	struct rl_redis store;           /* host NULL: local */
	char prefix[CONF_MAX_NAME + 16]; /* of the Redis keys: "portico:rl:NAME:" */
	int64_t store_timeout;           /* ms */
	int store_deny;
	struct rl_incident *inc;
};

/* What the request phase decided, kept for the response and the log. */
enum rl_outcome { RL_PASS, RL_DELAYED, RL_REFUSED, RL_CONNS, RL_FULL, RL_STORE_ALLOW, RL_STORE_DENY };

struct rl_state {
	struct request *r;
	const struct rl_conf *rc;
	struct event ev;                 /* a delay, or the store's timeout */
	unsigned armed : 1;
	unsigned held : 1;               /* ref counts a request in progress */
	unsigned verdict : 1;            /* v is known: RateLimit headers go out */
	enum rl_outcome outcome;
	struct rl_ref ref;
	struct gcra_verdict v;           /* nanoseconds */
	struct rl_redis_call *call;      /* a store question in flight */
};

/* Whole seconds, rounded up: what Retry-After and `t` say. */
static int64_t
ceil_sec(int64_t ns)
{
	return ns <= 0 ? 0 : (ns + RL_NS - 1) / RL_NS;
}

/* "100/s", "600/m": 0 with *n and *per (seconds) set, or -1. */
static int
parse_rate(const char *s, uint64_t *n, uint64_t *per)
{
	const char *slash = strchr(s, '/');
	char num[24];

	if (slash == NULL || (size_t)(slash - s) >= sizeof(num) || slash == s)
		return -1;
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = '\0';
	if (units_count(num, RL_MAX_RATE, n) < 0 || *n == 0)
		return -1;
	if (strcmp(slash + 1, "s") == 0)
		*per = 1;
	else if (strcmp(slash + 1, "m") == 0)
		*per = 60;
	else
		return -1;
	return 0;
}

/* ---- keys ---- */

static int
trusted(const struct rl_conf *rc, const unsigned char a[16])
{
	for (size_t i = 0; i < rc->nproxies; i++)
		if (rl_cidr_match(&rc->proxies[i], a))
			return 1;
	return 0;
}

/*
 * The client's address behind trusted proxies, as nginx's realip module
 * with real_ip_recursive: starting from the peer, while the address is
 * a trusted proxy, step one entry left in X-Forwarded-For (all its lines
 * read as one list, in order).  The first untrusted address is the
 * client; when every entry is trusted, the left-most; an entry that is
 * not an address stops the walk at the last trusted hop before it.
 */
#define XFF_LINES 16
static void
client_addr(const struct request *r, const struct rl_conf *rc, unsigned char a[16])
{
	const struct http_header *h, *lines[XFF_LINES];
	unsigned it = 0, n = 0;
	int v4;

	if (rc->nproxies == 0 || !trusted(rc, a))
		return;
	/* The right-most XFF_LINES lines: the walk starts on the right. */
	while (req_header_next(r, &it, &h))
		if (h->name_len == 15 && strncasecmp(h->name, "x-forwarded-for", 15) == 0)
			lines[n++ % XFF_LINES] = h;
	for (unsigned k = 0; k < n; k++) {
		if (k == XFF_LINES)
			return; /* more lines than kept: stop at the last trusted hop */
		const struct http_header *l = lines[(n - 1 - k) % XFF_LINES];
		const char *v = l->value;
		size_t end = l->value_len;
		while (end > 0) {
			size_t start = end;
			while (start > 0 && v[start - 1] != ',')
				start--;
			size_t s = start, e = end;
			while (s < e && (v[s] == ' ' || v[s] == '\t'))
				s++;
			while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
				e--;
			end = start > 0 ? start - 1 : 0;
			if (s == e)
				continue; /* "a, , b": empty members are no hop */
			unsigned char next[16];
			if (rl_parse_ip(v + s, e - s, next, &v4) < 0)
				return;
			memcpy(a, next, 16);
			if (!trusted(rc, a))
				return;
		}
	}
}

/*
 * The key of r: its bytes into *key and *klen (pointing into buf or the
 * request).  A request without the header (or claim) gets the empty
 * key: all of them share one bucket, so leaving the header out is no way
 * around the limit.
 */
static void
request_key(const struct request *r, const struct rl_conf *rc, unsigned char buf[16],
    const void **key, size_t *klen)
{
	const struct http_header *h;

	switch (rc->kind) {
	case KEY_ADDR: {
		const struct sockaddr_in6 *sin6 = &r->conn->peer;
		memset(buf, 0, 16);
		if (sin6->sin6_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)sin6;
			buf[10] = buf[11] = 0xff;
			memcpy(buf + 12, &sin->sin_addr, 4);
		} else if (sin6->sin6_family == AF_INET6)
			memcpy(buf, &sin6->sin6_addr, 16);
		client_addr(r, rc, buf);
		*key = buf;
		*klen = 16;
		return;
	}
	case KEY_HEADER:
		h = req_header(r, rc->kname);
		*key = h != NULL ? h->value : "";
		*klen = h != NULL ? h->value_len : 0;
		return;
	case KEY_CLAIM: {
		/* A claim a jwt block earlier in the route verified. */
		const char *v;
		if (http_req_claim(r, rc->kname, &v, klen) == 1) {
			*key = v;
			return;
		}
		break;
	}
	}
	*key = "";
	*klen = 0;
}

/* ---- configuration ---- */

/* "addr", "header:NAME", "claim:NAME".  0, or -1 with *why set. */
static int
parse_key(const char *v, enum key_kind *kind, char **name, const char **why)
{
	const char *n;

	*name = NULL;
	if (strcmp(v, "addr") == 0) {
		*kind = KEY_ADDR;
		return 0;
	}
	if (strncmp(v, "header:", 7) == 0) {
		*kind = KEY_HEADER;
		n = v + 7;
	} else if (strncmp(v, "claim:", 6) == 0) {
		*kind = KEY_CLAIM;
		n = v + 6;
	} else {
		*why = "expected addr, header:NAME or claim:NAME";
		return -1;
	}
	size_t len = strlen(n);
	if (len == 0 || len > 256) {
		*why = "the name is empty or longer than 256";
		return -1;
	}
	for (size_t i = 0; i < len && *kind == KEY_HEADER; i++) {
		unsigned char ch = (unsigned char)n[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("!#$%&'*+-.^_`|~", ch) != NULL)) {
			*why = "a header name is letters, digits and !#$%&'*+-.^_`|~";
			return -1;
		}
	}
	if ((*name = strdup(n)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	/* Header names are found in lower case; claim names keep theirs. */
	for (char *p = *name; *p != '\0' && *kind == KEY_HEADER; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

static void
rl_free_conf(void *p)
{
	struct rl_conf *rc = p;

	if (rc == NULL)
		return;
	free(rc->name);
	free(rc->kname);
	free(rc->proxies);
	rl_table_free(&rc->table);
	free(rc->inc);
	rl_redis_clear(&rc->store);
	free(rc);
}

static int
conf_count(struct conf_ctx *ctx, const struct conf_section *sec, const char *key, uint64_t max,
    uint64_t *out)
{
	struct conf_kv def;
	const struct conf_kv *kv = conf_section_value(sec, rl_keys, key, &def);

	if (units_count(kv->value, max, out) == 0)
		return 0;
	conf_err(ctx, kv->line, ctx->section, key, "expected a count from 0 to %" PRIu64 ", not \"%s\"",
	    max, kv->value);
	return -1;
}

static int
configure_proxies(struct conf_ctx *ctx, const struct conf_section *sec, struct rl_conf *rc)
{
	struct conf_kv def;
	const struct conf_kv *kv = conf_section_value(sec, rl_keys, "trusted_proxies", &def);
	const char *p, *tok;
	size_t len;

	if (kv == NULL)
		return 0;
	if (rc->kind != KEY_ADDR) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "only means something with key = addr");
		return -1;
	}
	if ((rc->proxies = calloc(RL_MAX_PROXIES, sizeof(*rc->proxies))) == NULL)
		return -1;
	for (p = kv->value; conf_list_next(&p, &tok, &len);) {
		if (rc->nproxies == RL_MAX_PROXIES) {
			conf_err(ctx, kv->line, ctx->section, kv->key, "more than %d networks",
			    RL_MAX_PROXIES);
			return -1;
		}
		if (rl_parse_cidr(tok, len, &rc->proxies[rc->nproxies]) < 0) {
			conf_err(ctx, kv->line, ctx->section, kv->key,
			    "expected an address or ADDRESS/BITS without host bits, not \"%.*s\"",
			    (int)len, tok);
			return -1;
		}
		rc->nproxies++;
	}
	return 0;
}

static int
configure_store(struct conf_ctx *ctx, const struct conf_section *sec, struct rl_conf *rc)
{
	struct conf_kv def;
	const struct conf_kv *kv = conf_section_value(sec, rl_keys, "store", &def);
	const char *why;

	if (strcmp(kv->value, "local") == 0)
		return 0;
	if (rl_redis_parse(kv->value, &rc->store, &why) < 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "%s: \"%s\"", why, kv->value);
		return -1;
	}
	if (!rc->has_rate) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "a store keeps rates: give rate (max_conns is counted by each process)");
		return -1;
	}
	kv = conf_section_value(sec, rl_keys, "store_timeout", &def);
	if (units_duration(kv->value, &rc->store_timeout) < 0 || rc->store_timeout <= 0 ||
	    rc->store_timeout > 10000) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "expected a duration from 1ms to 10s, not \"%s\"", kv->value);
		return -1;
	}
	rc->store.stall_ms = rc->store_timeout * 4 > 1000 ? rc->store_timeout * 4 : 1000;
	kv = conf_section_value(sec, rl_keys, "on_store_error", &def);
	if (strcmp(kv->value, "allow") != 0 && strcmp(kv->value, "deny") != 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "expected allow or deny, not \"%s\"",
		    kv->value);
		return -1;
	}
	rc->store_deny = strcmp(kv->value, "deny") == 0;
	snprintf(rc->prefix, sizeof(rc->prefix), "portico:rl:%s:", rc->name);
	return 0;
}

static int
configure_rate(struct conf_ctx *ctx, const struct conf_section *sec, struct rl_conf *rc)
{
	struct conf_kv def;
	const struct conf_kv *kv = conf_section_value(sec, rl_keys, "rate", &def);

	if (kv == NULL)
		return 0;
	if (parse_rate(kv->value, &rc->rate, &rc->per) < 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "expected N/s or N/m with N from 1 to %d, not \"%s\"", RL_MAX_RATE, kv->value);
		return -1;
	}
	if (conf_count(ctx, sec, "burst", RL_MAX_BURST, &rc->burst) < 0 ||
	    conf_count(ctx, sec, "delay", RL_MAX_BURST, &rc->delay) < 0)
		return -1;
	rc->has_rate = 1;
	/* Integer nanoseconds: 600/m is 100000000 exactly; 7/m loses under a
	 * nanosecond per request. */
	rc->g.interval = (int64_t)rc->per * RL_NS / (int64_t)rc->rate;
	rc->g.tolerance = (int64_t)rc->burst * rc->g.interval;
	rc->g.queue = (int64_t)rc->delay * rc->g.interval;
	return 0;
}

static void *
rl_configure(struct conf_ctx *ctx, const struct conf_section *sec)
{
	struct rl_conf *rc = calloc(1, sizeof(*rc));
	struct conf_kv def;
	const struct conf_kv *kv;
	const char *why;
	uint64_t max_keys;

	if (rc == NULL || (rc->name = strdup(sec->name)) == NULL ||
	    (rc->inc = calloc(1, sizeof(*rc->inc))) == NULL)
		goto fail;
	kv = conf_section_value(sec, rl_keys, "key", &def);
	if (parse_key(kv->value, &rc->kind, &rc->kname, &why) < 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "%s: \"%s\"", why, kv->value);
		goto fail;
	}
	if (configure_rate(ctx, sec, rc) < 0 || configure_proxies(ctx, sec, rc) < 0 ||
	    conf_count(ctx, sec, "max_conns", RL_CONNS_MAX, &rc->max_conns) < 0 ||
	    conf_count(ctx, sec, "max_keys", RL_MAX_KEYS, &max_keys) < 0 ||
	    configure_store(ctx, sec, rc) < 0)
		goto fail;
	if (!rc->has_rate && rc->max_conns == 0) {
		conf_err(ctx, sec->line, ctx->section, "rate", "give rate, max_conns or both");
		goto fail;
	}
	if (max_keys == 0) {
		kv = conf_section_value(sec, rl_keys, "max_keys", &def);
		conf_err(ctx, kv->line, ctx->section, kv->key, "must be at least 1");
		goto fail;
	}
	if (rl_table_init(&rc->table, max_keys) < 0)
		goto fail;
	return rc;
fail:
	rl_free_conf(rc);
	return NULL;
}

/* ---- the request ---- */

static const char *const outcome_names[] = {
	[RL_PASS] = "pass",
	[RL_DELAYED] = "delayed",
	[RL_REFUSED] = "refused",
	[RL_CONNS] = "max_conns",
	[RL_FULL] = "table_full",
	[RL_STORE_ALLOW] = "store_error_allowed",
	[RL_STORE_DENY] = "store_error_denied",
};

static void
arm(struct rl_state *st, int64_t ns)
{
	struct timeval tv = { (time_t)(ns / RL_NS), (suseconds_t)(ns % RL_NS / 1000) };

	evtimer_add(&st->ev, &tv);
	st->armed = 1;
}

/* Over the rate: 429 with the seconds until one would pass. */
static int
refuse(struct rl_state *st)
{
	char secs[24];

	st->outcome = RL_REFUSED;
	snprintf(secs, sizeof(secs), "%" PRId64, ceil_sec(st->v.wait));
	http_resp_error_hdr(st->r, 429, "Retry-After", secs); /* st may be gone */
	return MW_ANSWERED;
}

/* Accepted: on now, or after its wait. */
static int
pass(struct rl_state *st)
{
	if (st->v.wait <= 0) {
		st->outcome = RL_PASS;
		return MW_NEXT;
	}
	st->outcome = RL_DELAYED;
	arm(st, st->v.wait);
	return MW_PAUSE;
}

/*
 * The store could not answer: logged once per incident, then the
 * request passes or gets 503, as on_store_error says.  An incident is
 * the first failure that began after the store last answered: one
 * worker's connection still waiting to reconnect after another's came
 * back is the end of the last one, not a new one.
 */
static int
store_failed(struct rl_state *st, const char *why, int64_t since)
{
	const struct rl_conf *rc = st->rc;

	if (since >= atomic_load(&rc->inc->recovered) && atomic_exchange(&rc->inc->down, 1) == 0)
		log_warnx("ratelimit %s: store %s failed (%s): requests are %s until it answers",
		    rc->name, rc->store.url, why, rc->store_deny ? "refused (503)" : "let through");
	st->verdict = 0;
	if (!rc->store_deny) {
		st->outcome = RL_STORE_ALLOW;
		return MW_NEXT;
	}
	st->outcome = RL_STORE_DENY;
	http_resp_error_hdr(st->r, 503, "Retry-After", "1"); /* st may be gone */
	return MW_ANSWERED;
}

static void
resume_if(struct rl_state *st, int rc)
{
	if (rc == MW_NEXT)
		pipeline_resume(st->r);
}

static void
on_store(void *arg, int ok, const char *why, int64_t since, int allow, int64_t wait_us,
    int64_t reset_us)
{
	struct rl_state *st = arg;
	const struct rl_conf *rc = st->rc;

	st->call = NULL;
	if (st->armed)
		event_del(&st->ev);
	st->armed = 0;
	if (!ok) {
		resume_if(st, store_failed(st, why, since));
		return;
	}
	if (atomic_load_explicit(&rc->inc->down, memory_order_relaxed) &&
	    atomic_exchange(&rc->inc->down, 0) == 1) {
		atomic_store(&rc->inc->recovered, rl_redis_now());
		log_info("ratelimit %s: store %s answers again", rc->name, rc->store.url);
	}
	st->v.allow = allow;
	st->v.wait = wait_us * 1000;
	st->v.reset = reset_us * 1000;
	st->v.remaining = allow ? gcra_remaining(&rc->g, st->v.reset) : 0;
	st->verdict = 1;
	if (!allow)
		refuse(st);
	else
		resume_if(st, pass(st));
}

/* A delay is over, or the store did not answer within store_timeout. */
static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rl_state *st = arg;

	(void)fd;
	(void)what;
	st->armed = 0;
	if (st->call != NULL) {
		rl_redis_cancel(st->call);
		st->call = NULL;
		resume_if(st, store_failed(st, "no answer within store_timeout", rl_redis_now()));
		return;
	}
	pipeline_resume(st->r);
}

static int
ask_store(struct rl_state *st, const void *key, size_t klen)
{
	const struct rl_conf *rc = st->rc;
	/* The store counts in microseconds, its clock's unit. */
	struct gcra gu = { rc->g.interval / 1000, rc->g.tolerance / 1000, rc->g.queue / 1000 };
	const char *why;
	int64_t since;

	if (gu.interval == 0)
		gu.interval = 1;
	st->call = rl_redis_check(&rc->store, st->r->conn->w, rc->prefix, key, klen, &gu, on_store,
	    st, &why, &since);
	if (st->call == NULL)
		return store_failed(st, why, since);
	arm(st, rc->store_timeout * 1000000);
	return MW_PAUSE;
}

static int
rl_request(struct request *r, const void *conf)
{
	const struct rl_conf *rc = conf;
	struct rl_state *st = calloc(1, sizeof(*st));
	unsigned char buf[16];
	const void *key;
	size_t klen;
	int take = TAKE_PASS;

	if (st == NULL || mw_state_set(r, st) < 0) {
		free(st);
		http_resp_error(r, 500);
		return MW_ANSWERED;
	}
	st->r = r;
	st->rc = rc;
	evtimer_assign(&st->ev, r->conn->w->base, on_timer, st);
	request_key(r, rc, buf, &key, &klen);
	if (rc->store.host == NULL || rc->max_conns > 0) {
		uint64_t id[2];
		rl_table_id(&rc->table, key, klen, id);
		take = rl_table_take(&rc->table, id, rl_now_ns(),
		    rc->store.host == NULL && rc->has_rate ? &rc->g : NULL, rc->max_conns, &st->v,
		    &st->ref);
		st->held = take == TAKE_PASS && rc->max_conns > 0;
	}
	if (take == TAKE_CONNS) {
		st->outcome = RL_CONNS;
		http_resp_error(r, 429);
		return MW_ANSWERED;
	}
	if (take == TAKE_FULL) {
		/* As nginx's limit_conn when its zone is full: a new key finds
		 * every entry of its set with requests in progress. */
		st->outcome = RL_FULL;
		if (worker_log_client_error(r->conn->w))
			log_warnx("ratelimit %s: no room for a new key (max_keys %llu): 503",
			    rc->name, (unsigned long long)(rc->table.nsets * RL_WAYS));
		http_resp_error_hdr(r, 503, "Retry-After", "1");
		return MW_ANSWERED;
	}
	if (!rc->has_rate) {
		st->outcome = RL_PASS;
		return MW_NEXT;
	}
	if (rc->store.host != NULL)
		return ask_store(st, key, klen);
	st->verdict = 1;
	return take == TAKE_REFUSED ? refuse(st) : pass(st);
}

/* RFC 8941 sf-string: the block's name, '"' and '\' escaped. */
static size_t
sf_string(char *out, size_t cap, const char *s)
{
	size_t n = 0;

	out[n++] = '"';
	for (; *s != '\0' && n + 4 < cap; s++) {
		if (*s == '"' || *s == '\\')
			out[n++] = '\\';
		out[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '_';
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

/*
 * draft-ietf-httpapi-ratelimit-headers: the policy (q requests per w
 * seconds) and where this key stands (r requests would pass at once; t
 * seconds until the whole burst is back), on every response of the
 * route whose rate was decided, the 429 included.
 */
static void
rl_response_head(struct request *r, const void *conf)
{
	const struct rl_conf *rc = conf;
	const struct rl_state *st = mw_state(r);
	char name[2 * CONF_MAX_NAME + 8], v[sizeof(name) + 64];
	int n;

	if (st == NULL || !st->verdict)
		return;
	sf_string(name, sizeof(name), rc->name);
	n = snprintf(v, sizeof(v), "%s;q=%" PRIu64 ";w=%" PRIu64, name, rc->rate, rc->per);
	http_resp_header_set(r, "RateLimit-Policy", 16, v, (size_t)n);
	n = snprintf(v, sizeof(v), "%s;r=%" PRId64 ";t=%" PRId64, name, st->v.remaining,
	    ceil_sec(st->v.reset));
	http_resp_header_set(r, "RateLimit", 9, v, (size_t)n);
}

static void
rl_log(struct request *r, const void *conf)
{
	const struct rl_conf *rc = conf;
	const struct rl_state *st = mw_state(r);
	const char *o;

	if (st == NULL)
		return;
	o = outcome_names[st->outcome];
	http_log_field(r, rc->name, o, strlen(o));
}

static void
rl_free_state(void *p)
{
	struct rl_state *st = p;

	/* The exchange ended while it waited (the client left, shutdown). */
	if (st->armed)
		event_del(&st->ev);
	if (st->call != NULL)
		rl_redis_cancel(st->call);
	if (st->held)
		rl_table_release(&st->ref);
	free(st);
}

const struct mw_ops ratelimit_mw_ops = {
	.type = "ratelimit",
	.keys = rl_keys,
	.configure = rl_configure,
	.free_conf = rl_free_conf,
	.request = rl_request,
	.response_head = rl_response_head,
	.log = rl_log,
	.free_state = rl_free_state,
};
