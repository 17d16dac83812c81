#include "common/mw_jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/exchange.h"
#include "common/jose.h"
#include "common/server.h"
#include "common/units.h"

static const struct conf_key jwt_keys[] = {
	MW_TYPE_KEY,
	{ "algorithm", NULL, 0, NULL },
	{ "secret", NULL, 0, NULL },
	{ "secret_file", NULL, 0, NULL },
	{ "public_key", NULL, 0, NULL },
	{ "jwks", NULL, 0, NULL },
	{ "cookie", NULL, 0, NULL },
	{ "leeway", "0s", 0, NULL },
	{ "issuer", NULL, 0, NULL },
	{ "audience", NULL, CONF_KEY_LIST, NULL },
	{ "require", "exp", CONF_KEY_LIST, NULL },
	{ "forward_claims", NULL, CONF_KEY_LIST, NULL },
	{ "realm", NULL, 0, NULL },
	{ NULL, NULL, 0, NULL },
};

#define ALG_NAMES "HS256, HS384, HS512, RS256, RS384, RS512, PS256, ES256, ES384, EdDSA"

/* The most claims forward_claims may name, and the longest claim name. */
#define FWD_MAX 16
#define CLAIM_NAME_MAX 64

struct fwd {
	char *claim;
	char *header;
	size_t hlen;
};

/* Workers with state of their own (struct jwt_worker): as many as
 * `workers` may say.  One that `workers = auto` numbers past it (more
 * CPUs than that) verifies every token in full, which is slower, not wrong. */
#define JWT_WORKERS 256
/* The tokens a worker remembers, and the longest it will. */
#define SEEN_SLOTS 16
#define SEEN_TOKEN_MAX 1024
#define SEEN_CLAIMS 32

/*
 * A token a worker verified lately, and its claims.  A client sends the
 * same token for as long as it lives, and the signature and the JSON are
 * most of what a request here costs (an ES256 signature far more than
 * the rest of the exchange), so the same bytes again are taken as
 * verified, as they were with these keys.  The claims are still checked
 * against the clock and the policy at every request: a remembered token
 * expires when its exp says.  Only tokens whose claims passed are kept,
 * and a reload makes a new, empty memory with the new keys.
 */
struct jwt_seen {
	size_t len;                    /* 0: empty */
	char tok[SEEN_TOKEN_MAX];
	/* A copy of the claims' table and payload (verify makes a struct
	 * jose_claims of them): a token of SEEN_TOKEN_MAX has a payload of
	 * 3/4 of it at most; one with more than SEEN_CLAIMS members and list
	 * strings is not kept. */
	size_t nclaims, buflen;
	struct jose_claim claims[SEEN_CLAIMS];
	char buf[SEEN_TOKEN_MAX / 4 * 3];
};

/* Touched by its worker only. */
struct jwt_worker {
	EVP_MAC_CTX *mac;              /* HS*: its copy of the keyed context */
	struct jose_payload payload;   /* where a token's claims are parsed (about 62 KiB) */
	struct jwt_seen seen[SEEN_SLOTS];
};

/* Why a request is refused: each has its status, challenge and body. */
enum deny { DENY_MISSING, DENY_REQUEST, DENY_TOKEN, DENY_N };

struct jwt_conf {
	struct jose_keys keys;
	struct jose_policy pol;        /* its strings are owned here */
	char *cookie;                  /* the cookie holding a token, or NULL */
	size_t cookie_len;
	struct fwd fwd[FWD_MAX];
	size_t nfwd;
	char *challenge[DENY_N];       /* WWW-Authenticate values */
	/* Made by each worker on its first request here; freed with the
	 * snapshot, which the main thread frees after every worker let go. */
	struct jwt_worker *w[JWT_WORKERS];
};

static const struct {
	int status;
	const char *error;             /* RFC 6750 3.1; NULL: none (no token at all) */
	const char *body;
} denials[DENY_N] = {
	[DENY_MISSING] = { 401, NULL, "{\"error\":\"unauthorized\"}\n" },
	[DENY_REQUEST] = { 400, "invalid_request", "{\"error\":\"invalid_request\"}\n" },
	[DENY_TOKEN] = { 401, "invalid_token", "{\"error\":\"invalid_token\"}\n" },
};

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
jwt_free(void *p)
{
	struct jwt_conf *jc = p;

	if (jc == NULL)
		return;
	for (size_t i = 0; i < JWT_WORKERS; i++) {
		if (jc->w[i] == NULL)
			continue;
		EVP_MAC_CTX_free(jc->w[i]->mac);
		explicit_bzero(jc->w[i], sizeof(*jc->w[i])); /* bearer tokens */
		free(jc->w[i]);
	}
	jose_keys_free(&jc->keys);
	free((char *)jc->pol.issuer);
	strv_free(jc->pol.audience, jc->pol.naudience);
	strv_free(jc->pol.require, jc->pol.nrequire);
	free(jc->cookie);
	for (size_t i = 0; i < jc->nfwd; i++) {
		free(jc->fwd[i].claim);
		free(jc->fwd[i].header);
	}
	for (int i = 0; i < DENY_N; i++)
		free(jc->challenge[i]);
	free(jc);
}

/* RFC 9110 5.6.2: tchar. */
static int
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/*
 * The whole of a file (at most JOSE_MAX_DOC bytes), NUL-terminated, in a
 * new buffer, its length in *len; NULL with the reason in why.  Keys are
 * read at every load, so a reload reads them again.
 */
static char *
read_all(const char *path, size_t *len, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t n = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, whylen, "cannot read \"%s\": %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > JOSE_MAX_DOC) {
		snprintf(why, whylen, "\"%s\" is not a regular file of at most %d bytes", path,
		    JOSE_MAX_DOC);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	while (n < (size_t)st.st_size) {
		ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
		if (got <= 0) {
			snprintf(why, whylen, "cannot read \"%s\": %s", path,
			    got < 0 ? strerror(errno) : "it got shorter");
			goto fail;
		}
		n += (size_t)got;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/* The key set from whichever of secret, secret_file, public_key and jwks
 * is given (exactly one, of the algorithm's kind). */
static int
configure_keys(struct conf_ctx *ctx, const struct conf_section *sec, struct jwt_conf *jc,
    const struct conf_kv *algkv)
{
	static const char *const src[] = { "secret", "secret_file", "public_key", "jwks" };
	const struct conf_kv *given = NULL, *kv;
	struct conf_kv def;
	char err[256];
	char *doc = NULL;
	size_t len = 0, size = 0;
	int alg = jc->keys.alg, rc;

	for (size_t i = 0; i < 4; i++) {
		if ((kv = conf_section_value(sec, jwt_keys, src[i], &def)) == NULL)
			continue;
		if (given != NULL) {
			conf_err(ctx, kv->line, ctx->section, kv->key, "cannot go with %s (line %d): "
			    "give one key", given->key, given->line);
			return -1;
		}
		given = kv;
	}
	if (given == NULL) {
		conf_err(ctx, sec->line, ctx->section, NULL, "no key: give %s",
		    jose_alg_hmac(alg) ? "secret or secret_file" : "public_key or jwks");
		return -1;
	}
	if (jose_alg_hmac(alg) != (strncmp(given->key, "secret", 6) == 0)) {
		conf_err(ctx, given->line, ctx->section, given->key, "algorithm %s (line %d) takes %s",
		    jose_alg_name(alg), algkv->line,
		    jose_alg_hmac(alg) ? "secret or secret_file" : "public_key or jwks");
		return -1;
	}
	if (strcmp(given->key, "secret") == 0) {
		rc = jose_keys_secret(&jc->keys, alg, given->value, strlen(given->value), err,
		    sizeof(err));
		goto done;
	}
	if ((doc = read_all(given->value, &size, err, sizeof(err))) == NULL) {
		conf_err(ctx, given->line, ctx->section, given->key, "%s", err);
		return -1;
	}
	len = size;
	if (strcmp(given->key, "secret_file") == 0) {
		/* What `echo secret > file` wrote: the newline is not the secret's. */
		if (len > 0 && doc[len - 1] == '\n')
			len--;
		if (len > 0 && doc[len - 1] == '\r')
			len--;
		rc = jose_keys_secret(&jc->keys, alg, doc, len, err, sizeof(err));
	} else if (strcmp(given->key, "public_key") == 0) {
		rc = jose_keys_pem(&jc->keys, alg, doc, len, err, sizeof(err));
	} else {
		rc = jose_keys_jwks(&jc->keys, alg, doc, len, err, sizeof(err));
	}
	OPENSSL_cleanse(doc, size); /* a secret, perhaps */
	free(doc);
done:
	if (rc < 0)
		conf_err(ctx, given->line, ctx->section, given->key, "%s%s%s",
		    strcmp(given->key, "secret") == 0 ? "" : given->value,
		    strcmp(given->key, "secret") == 0 ? "" : ": ", err);
	return rc;
}

/* The members of one line of a list key, after those in *v. */
static int
list_line(struct conf_ctx *ctx, const struct conf_kv *kv, char ***v, size_t *n)
{
	const char *p = kv->value, *tok;
	size_t len;

	while (conf_list_next(&p, &tok, &len)) {
		if (strcmp(kv->key, "require") == 0 && len == 4 && memcmp(tok, "none", 4) == 0)
			continue;
		if (len > CLAIM_NAME_MAX || *n == 64) {
			conf_err(ctx, kv->line, ctx->section, kv->key, "\"%.*s\": more than 64 values, "
			    "or one longer than %d bytes", (int)len, tok, CLAIM_NAME_MAX);
			return -1;
		}
		char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
		if (nv == NULL)
			return -1;
		*v = nv;
		if ((nv[*n] = strndup(tok, len)) == NULL)
			return -1;
		(*n)++;
	}
	return 0;
}

/* A list key's members, every line of it (or its default), into *v. */
static int
configure_list(struct conf_ctx *ctx, const struct conf_section *sec, const char *key, char ***v,
    size_t *n)
{
	const struct conf_kv *kv;
	struct conf_kv def;
	int given = 0;

	for (size_t i = 0; i < sec->nkv; i++)
		if (strcmp(sec->kv[i].key, key) == 0) {
			given = 1;
			if (list_line(ctx, &sec->kv[i], v, n) < 0)
				return -1;
		}
	if (!given && (kv = conf_section_value(sec, jwt_keys, key, &def)) != NULL)
		return list_line(ctx, kv, v, n);
	return 0;
}

/* forward_claims = claim:Header, ... */
static int
configure_forward(struct conf_ctx *ctx, const struct conf_section *sec, struct jwt_conf *jc)
{
	const char *p, *tok;
	size_t len;

	for (size_t i = 0; i < sec->nkv; i++) {
		const struct conf_kv *kv = &sec->kv[i];
		if (strcmp(kv->key, "forward_claims") != 0)
			continue;
		p = kv->value;
		while (conf_list_next(&p, &tok, &len)) {
			const char *colon = memchr(tok, ':', len);
			size_t clen = colon != NULL ? (size_t)(colon - tok) : 0;
			size_t hlen = colon != NULL ? len - clen - 1 : 0;
			int bad = clen == 0 || clen > CLAIM_NAME_MAX || hlen == 0 || hlen > 256;
			for (size_t j = 0; !bad && j < hlen; j++)
				bad = !is_tchar((unsigned char)colon[1 + j]);
			if (bad) {
				conf_err(ctx, kv->line, ctx->section, kv->key, "expected claim:Header-Name, "
				    "not \"%.*s\"", (int)len, tok);
				return -1;
			}
			if (!req_header_changeable(colon + 1, hlen)) {
				conf_err(ctx, kv->line, ctx->section, kv->key, "%.*s cannot be set: the "
				    "request was framed and routed by it", (int)hlen, colon + 1);
				return -1;
			}
			if (jc->nfwd == FWD_MAX) {
				conf_err(ctx, kv->line, ctx->section, kv->key, "more than %d claims",
				    FWD_MAX);
				return -1;
			}
			struct fwd *f = &jc->fwd[jc->nfwd++];
			f->hlen = hlen;
			if ((f->claim = strndup(tok, clen)) == NULL ||
			    (f->header = strndup(colon + 1, hlen)) == NULL)
				return -1;
		}
	}
	return 0;
}

/* The WWW-Authenticate values (RFC 6750 3), with the realm if given. */
static int
configure_challenges(struct conf_ctx *ctx, const struct conf_section *sec, struct jwt_conf *jc)
{
	struct conf_kv def;
	const struct conf_kv *kv = conf_section_value(sec, jwt_keys, "realm", &def);
	const char *realm = kv != NULL ? kv->value : NULL;
	char buf[512];

	for (const char *q = realm; q != NULL && *q != '\0'; q++)
		if (*q < 0x20 || *q > 0x7e || *q == '"' || *q == '\\' || q - realm > 200) {
			conf_err(ctx, kv->line, ctx->section, kv->key, "expected up to 200 printable "
			    "characters without \" or \\");
			return -1;
		}
	for (int i = 0; i < DENY_N; i++) {
		const char *e = denials[i].error;
		snprintf(buf, sizeof(buf), "Bearer%s%s%s%s%s%s", realm != NULL ? " realm=\"" : "",
		    realm != NULL ? realm : "", realm != NULL ? "\"" : "",
		    e != NULL ? (realm != NULL ? ", error=\"" : " error=\"") : "", e != NULL ? e : "",
		    e != NULL ? "\"" : "");
		if ((jc->challenge[i] = strdup(buf)) == NULL)
			return -1;
	}
	return 0;
}

static void *
jwt_configure(struct conf_ctx *ctx, const struct conf_section *sec)
{
	struct jwt_conf *jc = calloc(1, sizeof(*jc));
	const struct conf_kv *kv, *algkv;
	struct conf_kv def;
	int64_t ms;

	if (jc == NULL)
		return NULL;
	/* jansson seeds its hash function on first use; do it here, in one thread. */
	json_object_seed(0);
	if ((algkv = conf_section_value(sec, jwt_keys, "algorithm", &def)) == NULL) {
		conf_err(ctx, sec->line, ctx->section, "algorithm", "missing: give one of "
		    ALG_NAMES);
		goto fail;
	}
	if ((jc->keys.alg = jose_alg_parse(algkv->value)) < 0) {
		conf_err(ctx, algkv->line, ctx->section, algkv->key, "unknown algorithm \"%s\": give "
		    "one of " ALG_NAMES, algkv->value);
		goto fail;
	}
	if (configure_keys(ctx, sec, jc, algkv) < 0)
		goto fail;
	kv = conf_section_value(sec, jwt_keys, "leeway", &def);
	if (units_duration(kv->value, &ms) < 0 || ms > 86400000) {
		conf_err(ctx, kv->line, ctx->section, kv->key, "expected a duration of at most 1d, "
		    "such as 30s, not \"%s\"", kv->value);
		goto fail;
	}
	jc->pol.leeway = ms / 1000;
	if ((kv = conf_section_value(sec, jwt_keys, "issuer", &def)) != NULL &&
	    (jc->pol.issuer = strdup(kv->value)) == NULL)
		goto fail;
	if ((kv = conf_section_value(sec, jwt_keys, "cookie", &def)) != NULL) {
		for (const char *q = kv->value; *q != '\0'; q++)
			if (!is_tchar((unsigned char)*q)) {
				conf_err(ctx, kv->line, ctx->section, kv->key, "expected a cookie name "
				    "(letters, digits and !#$%%&'*+-.^_`|~), not \"%s\"", kv->value);
				goto fail;
			}
		if ((jc->cookie = strdup(kv->value)) == NULL)
			goto fail;
		jc->cookie_len = strlen(jc->cookie);
	}
	if (configure_list(ctx, sec, "audience", &jc->pol.audience, &jc->pol.naudience) < 0 ||
	    configure_list(ctx, sec, "require", &jc->pol.require, &jc->pol.nrequire) < 0 ||
	    configure_forward(ctx, sec, jc) < 0 || configure_challenges(ctx, sec, jc) < 0)
		goto fail;
	return jc;
fail:
	jwt_free(jc);
	return NULL;
}

/* ---- the request phase ---- */

static int
deny(struct request *r, const struct jwt_conf *jc, enum deny d, const char *why)
{
	size_t blen = strlen(denials[d].body);

	/* The reason goes to the access log only: the client learns the code. */
	http_log_field(r, "jwt", why, strlen(why));
	http_resp_start(r, denials[d].status, "application/json", (int64_t)blen);
	http_resp_header(r, "WWW-Authenticate", jc->challenge[d]);
	http_resp_body(r, denials[d].body, blen);
	http_resp_end(r);
	return MW_ANSWERED;
}

/* RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
 * A table, as a token is read a byte at a time on every request. */
static const unsigned char b64token_char[256] = {
	['A'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['a'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['0'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['+'] = 1, ['/'] = 1,
};

static int
b64token(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len && b64token_char[(unsigned char)p[i]])
		i++;
	if (i == 0)
		return 0;
	while (i < len && p[i] == '=')
		i++;
	return i == len;
}

/* The token of a Cookie header value: 1 found (*n counts the finds), 0 not. */
static void
cookie_scan(const struct jwt_conf *jc, const struct http_header *h, const char **tok, size_t *len,
    unsigned *n)
{
	const char *p = h->value, *end = h->value + h->value_len;

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p)), *stop = semi != NULL ? semi : end;
		while (p < stop && (*p == ' ' || *p == '\t'))
			p++;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		if (eq != NULL && (size_t)(eq - p) == jc->cookie_len &&
		    memcmp(p, jc->cookie, jc->cookie_len) == 0) {
			const char *v = eq + 1, *ve = stop;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (ve - v >= 2 && *v == '"' && ve[-1] == '"') { /* RFC 6265 4.1.1 */
				v++;
				ve--;
			}
			*tok = v;
			*len = (size_t)(ve - v);
			(*n)++;
		}
		p = stop + (semi != NULL);
	}
}

/*
 * Where the token is: Authorization: Bearer, else the cookie.  DENY_N
 * with *tok and *len, or the denial with *why.
 */
static enum deny
find_token(const struct request *r, const struct jwt_conf *jc, const char **tok, size_t *len,
    const char **why)
{
	const struct http_header *h, *auth = NULL;
	unsigned it = 0, nauth = 0, ncookie = 0;

	while (req_header_next(r, &it, &h)) {
		if (h->name_len == 13 && strncasecmp(h->name, "authorization", 13) == 0) {
			auth = h;
			nauth++;
		} else if (jc->cookie != NULL && h->name_len == 6 &&
		    strncasecmp(h->name, "cookie", 6) == 0) {
			cookie_scan(jc, h, tok, len, &ncookie);
		}
	}
	if (nauth > 1) {
		*why = "several Authorization headers";
		return DENY_REQUEST;
	}
	if (auth != NULL && auth->value_len >= 6 && strncasecmp(auth->value, "bearer", 6) == 0 &&
	    (auth->value_len == 6 || auth->value[6] == ' ')) {
		const char *p = auth->value + 6, *end = auth->value + auth->value_len;
		while (p < end && *p == ' ')
			p++;
		if (!b64token(p, (size_t)(end - p))) {
			*why = "malformed Authorization";
			return DENY_REQUEST;
		}
		*tok = p;
		*len = (size_t)(end - p);
	} else if (ncookie > 1) {
		*why = "token cookie given twice";
		return DENY_REQUEST;
	} else if (ncookie == 0) {
		*why = "no token";
		return DENY_MISSING;
	}
	if (*len > JOSE_MAX_TOKEN) {
		*why = "token too long";
		return DENY_REQUEST;
	}
	return DENY_N;
}

/* Whether a claim's text may go in a header: no control characters. */
static int
header_safe(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
			return 0;
	return 1;
}

static int
jwt_named(const struct jwt_conf *jc, const char *name)
{
	for (size_t i = 0; i < jc->nfwd; i++)
		if (strcmp(jc->fwd[i].claim, name) == 0)
			return 1;
	for (size_t i = 0; i < jc->pol.nrequire; i++)
		if (strcmp(jc->pol.require[i], name) == 0)
			return 1;
	return 0;
}

/*
 * The verified claims for later middleware: those this block names
 * first (forwarded, required), then the others in the token's order,
 * as many as the store holds.
 */
static void
keep_claims(struct request *r, const struct jwt_conf *jc, const struct jose_claims *claims)
{
	const struct jose_claim *v;
	const char *p;
	char name[REQ_CLAIM_BYTES + 1], buf[32];
	size_t len;

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; (v = jose_claims_next(claims, &i)) != NULL;) {
			/* The store takes C strings (a name has no NUL: see jose_claims.h);
			 * a name it cannot hold is skipped, and later ones still go. */
			if (v->nlen > REQ_CLAIM_BYTES)
				continue;
			memcpy(name, claims->buf + v->name, v->nlen);
			name[v->nlen] = '\0';
			if (jwt_named(jc, name) != (pass == 0) ||
			    !jose_claim_text(claims, v, buf, sizeof(buf), &p, &len))
				continue;
			if (http_req_claim_set(r, name, p, len) < 0)
				return;
		}
}

/* The calling worker's state, made on its first need; NULL past
 * JWT_WORKERS or out of memory. */
static struct jwt_worker *
worker_slot(const struct jwt_conf *jc, const struct request *r)
{
	int id = r->conn->w->id;

	if (id < 0 || id >= JWT_WORKERS)
		return NULL;
	/* The snapshot is shared and const, but slot id is this worker's
	 * alone; the object itself was allocated writable. */
	struct jwt_worker **slot = (struct jwt_worker **)&jc->w[id];
	if (*slot == NULL && (*slot = calloc(1, sizeof(**slot))) != NULL &&
	    jose_alg_hmac(jc->keys.alg) && ((*slot)->mac = jose_keys_mac(&jc->keys)) == NULL) {
		free(*slot);
		*slot = NULL;
	}
	return *slot;
}

/* Whether a and b, len bytes each, are the same, in a time that depends
 * on len only: word by word, as CRYPTO_memcmp does byte by byte. */
static int
same_bytes(const char *a, const char *b, size_t len)
{
	uint64_t diff = 0, x, y;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		diff |= x ^ y;
	}
	for (; i < len; i++)
		diff |= (uint64_t)(unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* Where a token would be remembered: NULL for one too short or too long. */
static struct jwt_seen *
seen_slot(struct jwt_worker *jw, const char *tok, size_t len)
{
	if (jw == NULL || len < 4 || len > SEEN_TOKEN_MAX)
		return NULL;
	/* The last characters are the signature's, as good as random. */
	uint32_t h = (uint32_t)(unsigned char)tok[len - 1] | (uint32_t)(unsigned char)tok[len - 2] << 8 |
	    (uint32_t)(unsigned char)tok[len - 3] << 16 | (uint32_t)(unsigned char)tok[len - 4] << 24;
	return &jw->seen[(h * 2654435761u) >> 28 & (SEEN_SLOTS - 1)];
}

/*
 * The claims of a token: those remembered for it, or else those
 * jose_verify found (parsed in p).  The comparison takes the same time
 * whichever byte differs, so a forger cannot learn a remembered
 * signature a byte at a time.
 */
static int
verify(const struct jwt_conf *jc, struct jwt_worker *jw, struct jwt_seen *s, const char *tok,
    size_t len, struct jose_payload *p, struct jose_claims *claims, const char **why)
{
	if (s != NULL && s->len == len && same_bytes(s->tok, tok, len)) {
		*claims = (struct jose_claims){ s->buf, s->buflen, s->claims, s->nclaims };
		return 0;
	}
	return jose_verify(&jc->keys, jw != NULL ? jw->mac : NULL, tok, len, p, claims, why);
}

/* Remembers a token whose claims passed, when they fit. */
static void
seen_keep(struct jwt_seen *s, const char *tok, size_t len, const struct jose_claims *claims)
{
	if (s == NULL || claims->v == s->claims || claims->n > SEEN_CLAIMS ||
	    claims->buflen > sizeof(s->buf))
		return;
	/* The offsets are into the payload, whose copy they index the same. */
	memcpy(s->claims, claims->v, claims->n * sizeof(claims->v[0]));
	memcpy(s->buf, claims->buf, claims->buflen);
	s->nclaims = claims->n;
	s->buflen = claims->buflen;
	memcpy(s->tok, tok, len);
	s->len = len;
}

/* Passes the forwarded claims on: 0, or the request was answered. */
static int
forward(struct request *r, const struct jwt_conf *jc, const struct jose_claims *claims)
{
	const struct jose_claim *v;
	const char *p;
	size_t plen;
	char buf[32];

	for (size_t i = 0; i < jc->nfwd; i++) {
		if ((v = jose_claims_get(claims, jc->fwd[i].claim)) == NULL ||
		    !jose_claim_text(claims, v, buf, sizeof(buf), &p, &plen))
			continue;
		if (!header_safe(p, plen)) {
			deny(r, jc, DENY_TOKEN, "forwarded claim not a header value");
			return -1;
		}
		if (req_header_set(r, jc->fwd[i].header, jc->fwd[i].hlen, p, plen) < 0) {
			http_log_field(r, "jwt", "forwarded claim too large", 25);
			http_resp_error(r, 500);
			return -1;
		}
	}
	return 0;
}

static int
jwt_request(struct request *r, const void *conf)
{
	const struct jwt_conf *jc = conf;
	const char *tok = NULL, *why;
	size_t len = 0;
	struct jose_claims claims;
	struct jose_payload *own = NULL;
	enum deny d;
	struct jwt_worker *jw;
	struct jwt_seen *s;
	int rc;

	/* Whoever the client is, only a verified token speaks through these. */
	for (size_t i = 0; i < jc->nfwd; i++)
		req_header_remove(r, jc->fwd[i].header, jc->fwd[i].hlen);
	if ((d = find_token(r, jc, &tok, &len, &why)) != DENY_N)
		return deny(r, jc, d, why);
	jw = worker_slot(jc, r);
	s = seen_slot(jw, tok, len);
	/* A worker without state of its own (see JWT_WORKERS) parses in a
	 * payload made for the request. */
	if (jw == NULL && (own = malloc(sizeof(*own))) == NULL) {
		http_resp_error(r, 500);
		return MW_ANSWERED;
	}
	if (verify(jc, jw, s, tok, len, jw != NULL ? &jw->payload : own, &claims, &why) < 0)
		rc = deny(r, jc, DENY_TOKEN, why);
	else if (jose_check_claims(&claims, &jc->pol, (int64_t)time(NULL), &why) < 0)
		rc = deny(r, jc, DENY_TOKEN, why);
	else if (forward(r, jc, &claims) < 0)
		rc = MW_ANSWERED;
	else {
		seen_keep(s, tok, len, &claims);
		keep_claims(r, jc, &claims);
		rc = MW_NEXT;
	}
	free(own);
	return rc;
}

const struct mw_ops jwt_mw_ops = {
	.type = "jwt",
	.keys = jwt_keys,
	.configure = jwt_configure,
	.free_conf = jwt_free,
	.request = jwt_request,
};
