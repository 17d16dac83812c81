#include "common/mw_basic.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/exchange.h"
#include "common/log.h"
#include "common/server.h"
#include "common/units.h"

static const struct conf_key basic_keys[] = {
	MW_TYPE_KEY,
	{ "htpasswd", NULL, 0, NULL },
	{ "realm", "portico", 0, NULL },
	{ "cache_ttl", "5m", 0, NULL },
	{ NULL, NULL, 0, NULL },
};

#define REALM_MAX 200
/* Workers with a cache of their own: as many as `workers` may say.  One
 * that `workers = auto` numbers past it (more CPUs than that) checks every
 * request. */
#define BASIC_WORKERS 256
#define CACHE_SLOTS 64
#define MAC_LEN 32

/*
 * The cache of one worker: credentials it checked lately and found good,
 * as HMAC-SHA256 of "user:password" under the snapshot's random key, never
 * the password itself.  A hit costs the HMAC and a scan of CACHE_SLOTS
 * macs instead of a bcrypt check (tens of milliseconds of the worker's
 * thread); only successes are kept, so a wrong or unknown password always
 * pays the full price.  A reload makes a new snapshot, so a new, empty
 * cache with a new key: a password changed in the file works (and the old
 * one stops) at once.
 */
struct cache_entry {
	unsigned char mac[MAC_LEN];
	int64_t expires;                 /* monotonic ms; 0: empty */
	const struct htpasswd_user *u;
};

/* Touched by its worker only. */
struct basic_worker {
	struct cache_entry c[CACHE_SLOTS];
	struct crypt_data cd;            /* crypt_rn's scratch, 32 KiB */
};

struct basic_conf {
	char *name;                      /* the block's, for the log */
	struct htpasswd users;
	char *challenge;                 /* the WWW-Authenticate value */
	int64_t ttl_ms;                  /* 0: no cache */
	unsigned char key[MAC_LEN];
	/* Made by each worker on its first request here; freed with the
	 * snapshot, which the main thread frees after every worker let go. */
	struct basic_worker *w[BASIC_WORKERS];
};

static void
basic_free(void *p)
{
	struct basic_conf *bc = p;

	if (bc == NULL)
		return;
	for (size_t i = 0; i < BASIC_WORKERS; i++)
		if (bc->w[i] != NULL) {
			explicit_bzero(bc->w[i], sizeof(*bc->w[i]));
			free(bc->w[i]);
		}
	htpasswd_free(&bc->users);
	free(bc->challenge);
	free(bc->name);
	explicit_bzero(bc->key, sizeof(bc->key));
	free(bc);
}

/* What htpasswd_load reports, as errors of the htpasswd key. */
struct load_report {
	struct conf_ctx *ctx;
	const struct conf_kv *kv;
};

static void
load_err(void *arg, int line, const char *msg)
{
	struct load_report *lr = arg;

	if (line > 0)
		conf_err(lr->ctx, lr->kv->line, lr->ctx->section, lr->kv->key, "%s:%d: %s",
		    lr->kv->value, line, msg);
	else
		conf_err(lr->ctx, lr->kv->line, lr->ctx->section, lr->kv->key, "%s: %s",
		    lr->kv->value, msg);
}

/*
 * The realm goes between double quotes in the challenge: a quote, a
 * backslash or a control byte would need escaping that browsers do not
 * all undo, so they are refused.  Bytes above 127 (UTF-8) are taken.
 */
static int
realm_configure(struct conf_ctx *ctx, const struct conf_kv *kv, struct basic_conf *bc)
{
	const char *v = kv->value;
	size_t len = strlen(v);

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == '"' || v[i] == '\\') {
			conf_err(ctx, kv->line, ctx->section, kv->key, "may not hold a double quote, "
			    "a backslash or a control character");
			return -1;
		}
	if (len > REALM_MAX) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "longer than %d bytes", REALM_MAX);
		return -1;
	}
	size_t n = len + 48;
	if ((bc->challenge = malloc(n)) == NULL)
		return -1;
	snprintf(bc->challenge, n, "Basic realm=\"%s\", charset=\"UTF-8\"", v);
	return 0;
}

static void *
basic_configure(struct conf_ctx *ctx, const struct conf_section *sec)
{
	struct basic_conf *bc = calloc(1, sizeof(*bc));
	const struct conf_kv *kv;
	struct conf_kv def;
	int bad = 0;

	if (bc == NULL || (bc->name = strdup(sec->name)) == NULL) {
		free(bc);
		return NULL;
	}
	if ((kv = conf_section_value(sec, basic_keys, "htpasswd", &def)) == NULL) {
		conf_err(ctx, sec->line, ctx->section, "htpasswd",
		    "missing: give the file of users and their password hashes");
		bad = 1;
	} else {
		struct load_report lr = { ctx, kv };
		struct htpasswd_report rep = { load_err, &lr };
		bad |= htpasswd_load(kv->value, &bc->users, &rep) < 0;
	}
	kv = conf_section_value(sec, basic_keys, "realm", &def);
	bad |= realm_configure(ctx, kv, bc) < 0;
	kv = conf_section_value(sec, basic_keys, "cache_ttl", &def);
	if (strcmp(kv->value, "off") != 0 && units_duration(kv->value, &bc->ttl_ms) < 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "expected a duration such as 5m, or off, not \"%s\"", kv->value);
		bad = 1;
	}
	if (!bad && RAND_bytes(bc->key, sizeof(bc->key)) != 1) {
		conf_err(ctx, sec->line, ctx->section, NULL, "no random bytes for the cache key");
		bad = 1;
	}
	if (bad) {
		basic_free(bc);
		return NULL;
	}
	return bc;
}

/* ---- the Authorization header ---- */

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Canonical padded base64 of in[0, len) into out (cap bytes): length a
 * multiple of 4, '=' only as the last one or two, the bits the padding
 * leaves unused zero.  The length decoded, or -1.
 */
static long
b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t n = 0;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap + 2)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || in[i + 3] == '=')) {
				v[k] = 0;
				pad++;
			} else if ((v[k] = b64_value(c)) < 0) {
				return -1;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		    (uint32_t)v[3];
		if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
			return -1;
		if (n + 3 - (size_t)pad > cap)
			return -1;
		out[n++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)w;
	}
	return (long)n;
}

int
basic_credentials(const char *v, size_t len, char *out, size_t cap, size_t *ulen)
{
	size_t i = 5;

	if (cap == 0 || len < 6 || strncasecmp(v, "Basic", 5) != 0 || v[5] != ' ')
		return -1;
	while (i < len && v[i] == ' ')
		i++;
	long n = b64_decode(v + i, len - i, (unsigned char *)out, cap - 1);
	if (n < 0)
		return -1;
	const char *colon = memchr(out, ':', (size_t)n);
	for (long k = 0; k < n; k++)
		if ((unsigned char)out[k] < 0x20 || out[k] == 0x7f) /* RFC 7617 2.1: no CTLs */
			colon = NULL;
	if (colon == NULL) {
		explicit_bzero(out, (size_t)n);
		return -1;
	}
	out[n] = '\0';
	*ulen = (size_t)(colon - out);
	return (int)n;
}

/* ---- the request phase ---- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The one Authorization header, or NULL when there is none or several. */
static const struct http_header *
authorization(const struct request *r)
{
	const struct http_header *h, *found = NULL;
	unsigned it = 0;

	while (req_header_next(r, &it, &h))
		if (h->name_len == 13 && strncasecmp(h->name, "authorization", 13) == 0) {
			if (found != NULL)
				return NULL;
			found = h;
		}
	return found;
}

static int
challenge(struct request *r, const struct basic_conf *bc)
{
	http_resp_error_hdr(r, 401, "WWW-Authenticate", bc->challenge);
	return MW_ANSWERED;
}

/* The calling worker's slot, made on its first need; NULL past
 * BASIC_WORKERS or out of memory. */
static struct basic_worker *
worker_slot(const struct basic_conf *bc, const struct request *r)
{
	int id = r->conn->w->id;

	if (id < 0 || id >= BASIC_WORKERS)
		return NULL;
	/* The snapshot is shared and const, but slot id is this worker's
	 * alone; the object itself was allocated writable. */
	struct basic_worker **slot = (struct basic_worker **)&bc->w[id];
	if (*slot == NULL)
		*slot = calloc(1, sizeof(**slot));
	return *slot;
}

static const struct htpasswd_user *
cache_find(struct basic_worker *bw, const unsigned char *mac, int64_t now)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		if (bw->c[i].expires > now && CRYPTO_memcmp(bw->c[i].mac, mac, MAC_LEN) == 0)
			return bw->c[i].u;
	return NULL;
}

/* Into the empty or expired entry, else the one closest to expiring. */
static void
cache_add(struct basic_worker *bw, const unsigned char *mac, const struct htpasswd_user *u,
    int64_t expires)
{
	struct cache_entry *e = &bw->c[0];

	for (size_t i = 1; i < CACHE_SLOTS; i++)
		if (bw->c[i].expires < e->expires)
			e = &bw->c[i];
	memcpy(e->mac, mac, MAC_LEN);
	e->expires = expires;
	e->u = u;
}

/*
 * Escapes a name the client sent for the error log: printable ASCII but
 * '"' and '\' as is, the rest as \xHH, at most 64 bytes of it.
 */
static void
log_name(char *out, size_t cap, const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len && i < 64 && n + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
	}
	out[n] = '\0';
}

static void
log_refused(const struct request *r, const struct basic_conf *bc, const char *user,
    size_t ulen, int known)
{
	char peer[INET6_ADDRSTRLEN], name[64 * 4 + 1];

	if (!log_enabled(LOG_LVL_INFO) || !worker_log_client_error(r->conn->w))
		return;
	log_name(name, sizeof(name), user, ulen);
	log_info("conn %d from %s: middleware %s (basic): %s user \"%s\"", r->conn->fd,
	    conn_peer(r->conn, peer, sizeof(peer)), bc->name,
	    known ? "wrong password for" : "unknown", name);
}

/*
 * Checks cred[0, n) ("user:password", NUL-terminated, colon at ulen):
 * 1 with *out set to the user, 0 when refused, -1 out of memory.  An
 * unknown user costs as much as a known one: the password is checked
 * against the file's first hash and the answer thrown away, so timing
 * does not tell which names exist.
 */
static int
check(const struct basic_conf *bc, struct basic_worker *bw, const char *cred, size_t n,
    size_t ulen, const struct htpasswd_user **out)
{
	unsigned char mac[MAC_LEN];
	int64_t now = 0;

	if (bc->ttl_ms > 0 && bw != NULL) {
		HMAC(EVP_sha256(), bc->key, MAC_LEN, (const unsigned char *)cred, n, mac, NULL);
		now = now_ms();
		if ((*out = cache_find(bw, mac, now)) != NULL)
			return 1;
	}
	struct crypt_data *cd = bw != NULL ? &bw->cd : calloc(1, sizeof(*cd));
	if (cd == NULL)
		return -1;
	const struct htpasswd_user *u = htpasswd_find(&bc->users, cred, ulen);
	int match = htpasswd_verify(u != NULL ? u->hash : bc->users.dummy, cred + ulen + 1, cd);
	if (bw == NULL)
		free(cd);
	if (u == NULL || !match)
		return 0;
	/* cache_ttl from now, after the check: a check slower than the
	 * ttl (bcrypt at a high cost) must not store an expired entry. */
	if (bc->ttl_ms > 0 && bw != NULL)
		cache_add(bw, mac, u, now_ms() + bc->ttl_ms);
	*out = u;
	return 1;
}

static int
basic_request(struct request *r, const void *conf)
{
	const struct basic_conf *bc = conf;
	const struct http_header *h = authorization(r);
	const struct htpasswd_user *u = NULL;
	char cred[BASIC_MAX_CREDENTIALS + 1];
	size_t ulen;
	int n;

	/* No credentials (a browser's first try) or not Basic ones: the challenge. */
	if (h == NULL || (n = basic_credentials(h->value, h->value_len, cred, sizeof(cred),
	    &ulen)) < 0)
		return challenge(r, bc);
	int rc = check(bc, worker_slot(bc, r), cred, (size_t)n, ulen, &u);
	if (rc == 0)
		log_refused(r, bc, cred, ulen, htpasswd_find(&bc->users, cred, ulen) != NULL);
	explicit_bzero(cred, sizeof(cred));
	if (rc < 0) {
		http_resp_error(r, 500);
		return MW_ANSWERED;
	}
	if (rc == 0)
		return challenge(r, bc);
	http_log_field(r, "user", u->name, strlen(u->name));
	return MW_NEXT;
}

const struct mw_ops basic_mw_ops = {
	.type = "basic",
	.keys = basic_keys,
	.configure = basic_configure,
	.free_conf = basic_free,
	.request = basic_request,
};
