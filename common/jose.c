#include "common/jose.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	const char *md;                /* the digest; NULL: EdDSA's own */
	int kind;                      /* 'H' HMAC, 'R' RSA PKCS#1 v1.5, 'P' RSA-PSS, 'E' ECDSA,
	                                  'O' EdDSA (an OKP key) */
	const char *group;             /* ECDSA: the curve, as OpenSSL names it */
	const char *crv;               /* ... and as JWK does */
	size_t size;                   /* HMAC: the least key length; ECDSA: one coordinate */
} algs[JOSE_NALG] = {
	[JOSE_HS256] = { "HS256", "SHA256", 'H', NULL, NULL, 32 },
	[JOSE_HS384] = { "HS384", "SHA384", 'H', NULL, NULL, 48 },
	[JOSE_HS512] = { "HS512", "SHA512", 'H', NULL, NULL, 64 },
	[JOSE_RS256] = { "RS256", "SHA256", 'R', NULL, NULL, 0 },
	[JOSE_RS384] = { "RS384", "SHA384", 'R', NULL, NULL, 0 },
	[JOSE_RS512] = { "RS512", "SHA512", 'R', NULL, NULL, 0 },
	[JOSE_PS256] = { "PS256", "SHA256", 'P', NULL, NULL, 0 },
	[JOSE_ES256] = { "ES256", "SHA256", 'E', "prime256v1", "P-256", 32 },
	[JOSE_ES384] = { "ES384", "SHA384", 'E', "secp384r1", "P-384", 48 },
	[JOSE_EDDSA] = { "EdDSA", NULL, 'O', NULL, "Ed25519 or Ed448", 0 },
};

/* The curves of EdDSA (RFC 8037 2): the JWK "crv", OpenSSL's key type, and
 * the length of the public key "x". */
static const struct {
	const char *crv;
	const char *type;
	size_t xlen;
} okp_curves[] = {
	{ "Ed25519", "ED25519", 32 },
	{ "Ed448", "ED448", 57 },
};

#define OKP_NCURVES (sizeof(okp_curves) / sizeof(okp_curves[0]))

/* A token's payload, decoded, fits where jose_verify parses it. */
_Static_assert(JOSE_CLAIMS_BUF > JOSE_MAX_TOKEN / 4 * 3, "JOSE_CLAIMS_BUF too small");

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192 /* a signature fits jose_verify's buffer */

int
jose_alg_parse(const char *name)
{
	for (int i = 0; i < JOSE_NALG; i++)
		if (strcmp(algs[i].name, name) == 0)
			return i;
	return -1;
}

const char *
jose_alg_name(int alg)
{
	return alg >= 0 && alg < JOSE_NALG ? algs[alg].name : "?";
}

int
jose_alg_hmac(int alg)
{
	return alg >= 0 && alg < JOSE_NALG && algs[alg].kind == 'H';
}

static int __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return -1;
}

/* ---- base64url ---- */

/* One more than the value of each base64url character; 0 for any other byte. */
static const unsigned char b64u[256] = {
	['A'] = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
	24, 25, 26,
	['a'] = 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
	48, 49, 50, 51, 52,
	['0'] = 53, 54, 55, 56, 57, 58, 59, 60, 61, 62,
	['-'] = 63,
	['_'] = 64,
};

ssize_t
jose_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t tail = len % 4, n = len / 4 * 3 + (tail > 0 ? tail - 1 : 0), o = 0;
	uint32_t acc = 0;

	if (tail == 1 || n > cap)
		return -1;
	/* Four characters at a time, one test for the four: a token is
	 * decoded on every request. */
	for (size_t i = 0; i + 4 <= len; i += 4) {
		const unsigned char *q = (const unsigned char *)in + i;
		int a = b64u[q[0]], b = b64u[q[1]], c = b64u[q[2]], d = b64u[q[3]];
		if (a == 0 || b == 0 || c == 0 || d == 0)
			return -1;
		acc = (uint32_t)(a - 1) << 18 | (uint32_t)(b - 1) << 12 | (uint32_t)(c - 1) << 6 |
		    (uint32_t)(d - 1);
		out[o++] = (unsigned char)(acc >> 16);
		out[o++] = (unsigned char)(acc >> 8);
		out[o++] = (unsigned char)acc;
	}
	acc = 0;
	for (size_t i = len - tail; i < len; i++) {
		int v = b64u[(unsigned char)in[i]] - 1;
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
	}
	/* The bits past the last whole byte must be zero: one encoding per
	 * value, so a signature cannot be varied without being wrong. */
	if (tail == 2) {
		if (acc & 0xf)
			return -1;
		out[o++] = (unsigned char)(acc >> 4);
	} else if (tail == 3) {
		if (acc & 0x3)
			return -1;
		out[o++] = (unsigned char)(acc >> 10);
		out[o++] = (unsigned char)(acc >> 2);
	}
	return (ssize_t)o;
}

/* ---- key sets ---- */

void
jose_keys_free(struct jose_keys *ks)
{
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->v[i].kid);
		EVP_PKEY_free(ks->v[i].pkey);
		EVP_MAC_CTX_free(ks->v[i].mac);
	}
	free(ks->v);
	EVP_MD_free(ks->md);
	ks->v = NULL;
	ks->n = 0;
	ks->md = NULL;
}

static void
b64url_encode(const unsigned char *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
		    (i + 2 < len ? in[i + 2] : 0);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (i + 1 < len)
			out[o++] = a[v >> 6 & 63];
		if (i + 2 < len)
			out[o++] = a[v & 63];
	}
	out[o] = '\0';
}

/* Headers that need no parsing when a token's is one of them exactly: no
 * kid, no crit, the key set's alg (see struct jose_keys). */
static const char *const plain_headers[JOSE_PLAIN_HEADERS] = {
	"{\"alg\":\"%s\",\"typ\":\"JWT\"}",
	"{\"typ\":\"JWT\",\"alg\":\"%s\"}",
	"{\"alg\":\"%s\"}",
};

static int
keys_init(struct jose_keys *ks, int alg, char *err, size_t errlen)
{
	if (alg < 0 || alg >= JOSE_NALG)
		return errf(err, errlen, "unknown algorithm");
	ks->alg = alg;
	for (int i = 0; i < JOSE_PLAIN_HEADERS; i++) {
		char json[32];
		int n = snprintf(json, sizeof(json), plain_headers[i], algs[alg].name);
		b64url_encode((const unsigned char *)json, (size_t)n, ks->plain[i]);
	}
	if (algs[alg].md != NULL && ks->md == NULL &&
	    (ks->md = EVP_MD_fetch(NULL, algs[alg].md, NULL)) == NULL)
		return errf(err, errlen, "OpenSSL has no %s", algs[alg].md);
	return 0;
}

/* Adds a key (owning kid and pkey from here on, whatever happens). */
static int
keys_add(struct jose_keys *ks, char *kid, EVP_PKEY *pkey, char *err, size_t errlen)
{
	struct jose_key *v;

	if (ks->n == JOSE_MAX_KEYS) {
		free(kid);
		EVP_PKEY_free(pkey);
		return errf(err, errlen, "more than %d keys", JOSE_MAX_KEYS);
	}
	if ((v = realloc(ks->v, (ks->n + 1) * sizeof(*v))) == NULL) {
		free(kid);
		EVP_PKEY_free(pkey);
		return errf(err, errlen, "out of memory");
	}
	ks->v = v;
	ks->v[ks->n++] = (struct jose_key){ kid, pkey, NULL };
	return 0;
}

int
jose_keys_secret(struct jose_keys *ks, int alg, const void *secret, size_t len, char *err,
    size_t errlen)
{
	OSSL_PARAM params[2];
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx = NULL;

	if (keys_init(ks, alg, err, errlen) < 0)
		return -1;
	if (algs[alg].kind != 'H')
		return errf(err, errlen, "%s takes a public key, not a secret", algs[alg].name);
	if (len < algs[alg].size)
		return errf(err, errlen, "%s needs a secret of at least %zu bytes, not %zu",
		    algs[alg].name, algs[alg].size, len);
	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return errf(err, errlen, "OpenSSL has no HMAC");
	ctx = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)algs[alg].md, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx == NULL || !EVP_MAC_init(ctx, secret, len, params)) {
		EVP_MAC_CTX_free(ctx);
		return errf(err, errlen, "cannot key HMAC-%s", algs[alg].md);
	}
	if (keys_add(ks, NULL, NULL, err, errlen) < 0) {
		EVP_MAC_CTX_free(ctx);
		return -1;
	}
	ks->v[ks->n - 1].mac = ctx;
	return 0;
}

/* Whether pkey fits alg: RSA of RSA_MIN_BITS or more, EC on alg's curve,
 * Ed25519 or Ed448 for EdDSA. */
static int
key_fits(int alg, EVP_PKEY *pkey, char *err, size_t errlen)
{
	char group[64];

	if (algs[alg].kind == 'R' || algs[alg].kind == 'P') {
		if (!EVP_PKEY_is_a(pkey, "RSA"))
			return errf(err, errlen, "%s needs an RSA key", algs[alg].name);
		if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS || EVP_PKEY_get_bits(pkey) > RSA_MAX_BITS)
			return errf(err, errlen, "an RSA key of %d bits: from %d to %d are taken",
			    EVP_PKEY_get_bits(pkey), RSA_MIN_BITS, RSA_MAX_BITS);
		return 0;
	}
	if (algs[alg].kind == 'O') {
		for (size_t i = 0; i < OKP_NCURVES; i++)
			if (EVP_PKEY_is_a(pkey, okp_curves[i].type))
				return 0;
		return errf(err, errlen, "EdDSA needs an Ed25519 or Ed448 key");
	}
	if (!EVP_PKEY_is_a(pkey, "EC") ||
	    !EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) ||
	    strcmp(group, algs[alg].group) != 0)
		return errf(err, errlen, "%s needs an EC key on %s", algs[alg].name, algs[alg].crv);
	return 0;
}

int
jose_keys_pem(struct jose_keys *ks, int alg, const char *pem, size_t len, char *err,
    size_t errlen)
{
	BIO *b;
	EVP_PKEY *pkey;

	if (keys_init(ks, alg, err, errlen) < 0)
		return -1;
	if (algs[alg].kind == 'H')
		return errf(err, errlen, "%s takes a secret, not a public key", algs[alg].name);
	if (len > JOSE_MAX_DOC || (b = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return errf(err, errlen, "too large");
	pkey = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	if (pkey == NULL)
		return errf(err, errlen, "no PEM public key (-----BEGIN PUBLIC KEY-----)");
	if (key_fits(alg, pkey, err, errlen) < 0) {
		EVP_PKEY_free(pkey);
		return -1;
	}
	return keys_add(ks, NULL, pkey, err, errlen);
}

/* A base64url member of a JWK into a new buffer; its length in *n. */
static unsigned char *
jwk_bytes(const json_t *jwk, const char *name, size_t *n)
{
	const char *s = json_string_value(json_object_get(jwk, name));
	size_t len = s != NULL ? json_string_length(json_object_get(jwk, name)) : 0;
	unsigned char *out;
	ssize_t got;

	if (s == NULL || len == 0 || (out = malloc(len)) == NULL)
		return NULL;
	if ((got = jose_b64url_decode(s, len, out, len)) <= 0) {
		free(out);
		return NULL;
	}
	*n = (size_t)got;
	return out;
}

/* A public key from OpenSSL parameters, checked. */
static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL), *check = NULL;
	EVP_PKEY *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto fail;
	if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_public_check(check) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
fail:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *
jwk_rsa(const json_t *jwk)
{
	size_t nlen = 0, elen = 0;
	unsigned char *n = jwk_bytes(jwk, "n", &nlen), *e = jwk_bytes(jwk, "e", &elen);
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (n == NULL || e == NULL || bld == NULL || elen > 8)
		goto fail;
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL || (be = BN_bin2bn(e, (int)elen, NULL)) == NULL)
		goto fail;
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		goto fail;
	pkey = pkey_fromdata("RSA", bld);
fail:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pkey;
}

static EVP_PKEY *
jwk_ec(int alg, const json_t *jwk)
{
	size_t xlen = 0, ylen = 0, sz = algs[alg].size;
	unsigned char *x = jwk_bytes(jwk, "x", &xlen), *y = jwk_bytes(jwk, "y", &ylen);
	unsigned char pub[1 + 2 * 48];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (x == NULL || y == NULL || bld == NULL || xlen != sz || ylen != sz)
		goto fail;
	pub[0] = 0x04; /* uncompressed: x then y */
	memcpy(pub + 1, x, sz);
	memcpy(pub + 1 + sz, y, sz);
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, algs[alg].group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * sz))
		goto fail;
	pkey = pkey_fromdata("EC", bld);
fail:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

/* An OKP JWK (RFC 8037 2) on curve c of okp_curves: "x" of its length. */
static EVP_PKEY *
jwk_okp(size_t c, const json_t *jwk)
{
	size_t xlen = 0;
	unsigned char *x = jwk_bytes(jwk, "x", &xlen);
	EVP_PKEY *pkey = NULL;

	if (x != NULL && xlen == okp_curves[c].xlen)
		pkey = EVP_PKEY_new_raw_public_key_ex(NULL, okp_curves[c].type, NULL, x, xlen);
	free(x);
	return pkey;
}

/* The okp_curves index of an OKP JWK's "crv", or -1. */
static int
jwk_okp_curve(const json_t *jwk)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));

	for (size_t i = 0; crv != NULL && i < OKP_NCURVES; i++)
		if (strcmp(crv, okp_curves[i].crv) == 0)
			return (int)i;
	return -1;
}

/* Whether a JWK is one for alg: its kty (and crv), and its alg and use if given. */
static int
jwk_wanted(int alg, const json_t *jwk)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const json_t *a = json_object_get(jwk, "alg"), *use = json_object_get(jwk, "use");

	if (kty == NULL)
		return 0;
	if (a != NULL && (!json_is_string(a) || strcmp(json_string_value(a), algs[alg].name) != 0))
		return 0;
	if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
		return 0;
	if (algs[alg].kind == 'E')
		return strcmp(kty, "EC") == 0 &&
		    json_is_string(json_object_get(jwk, "crv")) &&
		    strcmp(json_string_value(json_object_get(jwk, "crv")), algs[alg].crv) == 0;
	/* OKP keys of other curves (X25519, X448) are for key agreement. */
	if (algs[alg].kind == 'O')
		return strcmp(kty, "OKP") == 0 && jwk_okp_curve(jwk) >= 0;
	return strcmp(kty, "RSA") == 0;
}

int
jose_keys_jwks(struct jose_keys *ks, int alg, const char *json, size_t len, char *err,
    size_t errlen)
{
	json_error_t je;
	json_t *doc, *keys, *jwk;
	size_t i;
	int rc = -1;

	if (keys_init(ks, alg, err, errlen) < 0)
		return -1;
	if (algs[alg].kind == 'H')
		return errf(err, errlen, "%s takes a secret, not a JWKS", algs[alg].name);
	if (len > JOSE_MAX_DOC)
		return errf(err, errlen, "larger than %d bytes", JOSE_MAX_DOC);
	if ((doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return errf(err, errlen, "not JSON: %s (line %d)", je.text, je.line);
	keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		errf(err, errlen, "no \"keys\" array");
		goto done;
	}
	json_array_foreach(keys, i, jwk) {
		if (!json_is_object(jwk) || !jwk_wanted(alg, jwk))
			continue;
		const json_t *kid = json_object_get(jwk, "kid");
		if (kid != NULL && !json_is_string(kid)) {
			errf(err, errlen, "key %zu: \"kid\" is not a string", i);
			goto done;
		}
		for (size_t j = 0; kid != NULL && j < ks->n; j++)
			if (ks->v[j].kid != NULL && strcmp(ks->v[j].kid, json_string_value(kid)) == 0) {
				errf(err, errlen, "key %zu: \"kid\" \"%.64s\" given twice", i, ks->v[j].kid);
				goto done;
			}
		int kind = algs[alg].kind, c = kind == 'O' ? jwk_okp_curve(jwk) : -1;
		EVP_PKEY *pkey = kind == 'E' ? jwk_ec(alg, jwk) :
		    kind == 'O' ? jwk_okp((size_t)c, jwk) : jwk_rsa(jwk);
		if (pkey == NULL) {
			errf(err, errlen, "key %zu: not a valid %s public key", i,
			    kind == 'E' ? algs[alg].crv : kind == 'O' ? okp_curves[c].crv : "RSA");
			goto done;
		}
		if (key_fits(alg, pkey, err, errlen) < 0) {
			EVP_PKEY_free(pkey);
			goto done;
		}
		char *k = NULL;
		if (kid != NULL && (k = strdup(json_string_value(kid))) == NULL) {
			EVP_PKEY_free(pkey);
			errf(err, errlen, "out of memory");
			goto done;
		}
		if (keys_add(ks, k, pkey, err, errlen) < 0)
			goto done;
	}
	if (ks->n == 0) {
		int kind = algs[alg].kind;
		errf(err, errlen, "no key for %s (kty %s%s, with alg %s and use sig when given)",
		    algs[alg].name, kind == 'E' ? "EC, crv " : kind == 'O' ? "OKP, crv " : "RSA",
		    kind == 'E' || kind == 'O' ? algs[alg].crv : "", algs[alg].name);
		goto done;
	}
	rc = 0;
done:
	json_decref(doc);
	return rc;
}

/* ---- verification ---- */

/* The key for a token whose header names kid (NULL: none), or NULL. */
static const struct jose_key *
key_pick(const struct jose_keys *ks, const char *kid)
{
	/* A key from a secret or a PEM file has no kid: it is the only one and
	 * verifies whatever the token calls it. */
	if (ks->n == 1 && (ks->v[0].kid == NULL || kid == NULL))
		return &ks->v[0];
	for (size_t i = 0; kid != NULL && i < ks->n; i++)
		if (ks->v[i].kid != NULL && strcmp(ks->v[i].kid, kid) == 0)
			return &ks->v[i];
	return NULL;
}

EVP_MAC_CTX *
jose_keys_mac(const struct jose_keys *ks)
{
	if (ks->n != 1 || ks->v[0].mac == NULL)
		return NULL;
	return EVP_MAC_CTX_dup(ks->v[0].mac);
}

/*
 * own, when given, is the caller's copy of k's keyed context: reset to the
 * key with EVP_MAC_init(NULL key), which reuses the key schedule.  Without
 * one each use works on a fresh copy of the shared context, and a copy in
 * OpenSSL 3 costs more than the HMAC of a token.
 */
static int
hmac_ok(const struct jose_key *k, EVP_MAC_CTX *own, const char *data, size_t len,
    const unsigned char *sig, size_t slen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t n = 0;
	EVP_MAC_CTX *c = own != NULL ? own : EVP_MAC_CTX_dup(k->mac);
	int ok = c != NULL && (own == NULL || EVP_MAC_init(c, NULL, 0, NULL)) &&
	    EVP_MAC_update(c, (const unsigned char *)data, len) &&
	    EVP_MAC_final(c, mac, &n, sizeof(mac)) && n == slen && CRYPTO_memcmp(mac, sig, n) == 0;

	if (own == NULL)
		EVP_MAC_CTX_free(c);
	return ok;
}

/* JOSE's r||s (RFC 7518 3.4), each exactly sz bytes, as the DER OpenSSL
 * verifies; its length, or -1. */
static int
ecdsa_der(const unsigned char *sig, size_t sz, unsigned char **der)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)sz, NULL), *s = BN_bin2bn(sig + sz, (int)sz, NULL);
	int n = -1;

	if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
	} else {
		*der = NULL;
		n = i2d_ECDSA_SIG(es, der);
	}
	ECDSA_SIG_free(es);
	return n;
}

static int
pkey_ok(const struct jose_keys *ks, const struct jose_key *k, const char *data, size_t len,
    const unsigned char *sig, size_t slen)
{
	int kind = algs[ks->alg].kind;
	unsigned char *der = NULL;
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	int ok = 0;

	if (kind == 'E') {
		int n;
		if (slen != 2 * algs[ks->alg].size || (n = ecdsa_der(sig, slen / 2, &der)) < 0)
			return 0;
		sig = der;
		slen = (size_t)n;
	} else if (slen != (size_t)EVP_PKEY_get_size(k->pkey)) {
		/* RSA: the modulus' length; EdDSA: 64 (Ed25519) or 114 (Ed448). */
		return 0;
	}
	/* EdDSA: no digest (ks->md is NULL), and one-shot EVP_DigestVerify
	 * only, as PureEdDSA hashes the whole message twice. */
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, &pctx, ks->md, NULL, k->pkey) != 1)
		goto done;
	/* PS256: MGF1 with the same hash and a salt as long as it (RFC 7518 3.5). */
	if (kind == 'P' && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, ks->md) <= 0))
		goto done;
	ok = EVP_DigestVerify(mctx, sig, slen, (const unsigned char *)data, len) == 1;
done:
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(der);
	return ok;
}

/* A base64url part into a JSON object (names unique), or NULL. */
static json_t *
part_json(const char *p, size_t len)
{
	unsigned char buf[JOSE_MAX_TOKEN];
	ssize_t n = jose_b64url_decode(p, len, buf, sizeof(buf));
	json_t *j;

	if (n <= 0)
		return NULL;
	j = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* The key for a token's header (len bytes at p), or NULL with *why. */
static const struct jose_key *
header_key(const struct jose_keys *ks, const char *p, size_t len, const char **why)
{
	const struct jose_key *k = NULL;
	const json_t *alg, *kid;
	json_t *hdr;

	for (int i = 0; i < JOSE_PLAIN_HEADERS; i++)
		if (strlen(ks->plain[i]) == len && memcmp(ks->plain[i], p, len) == 0) {
			if ((k = key_pick(ks, NULL)) == NULL)
				*why = "no key for kid";
			return k;
		}
	if ((hdr = part_json(p, len)) == NULL) {
		*why = "bad header";
		return NULL;
	}
	alg = json_object_get(hdr, "alg");
	kid = json_object_get(hdr, "kid");
	if (!json_is_string(alg) || strcmp(json_string_value(alg), algs[ks->alg].name) != 0)
		*why = "wrong alg";
	else if (json_object_get(hdr, "crit") != NULL)
		*why = "crit header";
	else if (kid != NULL && !json_is_string(kid))
		*why = "bad kid";
	else if ((k = key_pick(ks, json_string_value(kid))) == NULL)
		*why = "no key for kid";
	json_decref(hdr);
	return k;
}

int
jose_verify(const struct jose_keys *ks, EVP_MAC_CTX *mac, const char *tok, size_t len,
    struct jose_payload *pl, struct jose_claims *claims, const char **why)
{
	const char *d1, *d2;
	unsigned char sig[1024];
	ssize_t slen, plen;
	const struct jose_key *k;
	int ok;

	if (len > JOSE_MAX_TOKEN) {
		*why = "token too long";
		return -1;
	}
	if ((d1 = memchr(tok, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok))) == NULL ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL) {
		*why = "not three parts";
		return -1;
	}
	if ((k = header_key(ks, tok, (size_t)(d1 - tok), why)) == NULL)
		return -1;
	slen = jose_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), sig, sizeof(sig));
	if (slen <= 0) {
		*why = "bad signature encoding";
		return -1;
	}
	if (algs[ks->alg].kind == 'H')
		ok = hmac_ok(k, mac, tok, (size_t)(d2 - tok), sig, (size_t)slen);
	else
		ok = pkey_ok(ks, k, tok, (size_t)(d2 - tok), sig, (size_t)slen);
	if (!ok) {
		ERR_clear_error(); /* a failed check leaves errors the TLS code must not see */
		*why = "bad signature";
		return -1;
	}
	plen = jose_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), (unsigned char *)pl->buf,
	    sizeof(pl->buf) - 1);
	if (plen <= 0 || jose_claims_parse_in(pl, (size_t)plen, claims) < 0) {
		*why = "bad payload";
		return -1;
	}
	return 0;
}

/* A NumericDate claim: 1 and *t when present and a number, 0 when absent,
 * -1 when not a number. */
static int
numeric_date(const struct jose_claims *c, const char *name, double *t)
{
	const struct jose_claim *v = jose_claims_get(c, name);

	if (v == NULL)
		return 0;
	if (v->type != JOSE_C_INTEGER && v->type != JOSE_C_REAL)
		return -1;
	*t = v->num;
	return 1;
}

static int
audience_is(const struct jose_claims *c, const struct jose_claim *v, const struct jose_policy *p)
{
	for (size_t j = 0; j < p->naudience; j++)
		if (jose_claim_is(c, v, p->audience[j]))
			return 1;
	return 0;
}

/* "aud", a string or a list holding strings (others in it skipped): one of ours. */
static int
audience_ok(const struct jose_claims *c, const struct jose_claim *aud, const struct jose_policy *p)
{
	if (aud == NULL)
		return 0;
	if (aud->type == JOSE_C_STRING)
		return audience_is(c, aud, p);
	if (aud->type != JOSE_C_LIST)
		return 0;
	for (uint16_t i = 1; i <= aud->nlist; i++)
		if (audience_is(c, aud + i, p))
			return 1;
	return 0;
}

int
jose_check_claims(const struct jose_claims *claims, const struct jose_policy *p, int64_t now,
    const char **why)
{
	double t, n = (double)now, leeway = (double)p->leeway;
	const struct jose_claim *v;
	int has;

	for (size_t i = 0; i < p->nrequire; i++) {
		v = jose_claims_get(claims, p->require[i]);
		if (v == NULL || v->type == JOSE_C_NULL) {
			*why = "required claim missing";
			return -1;
		}
	}
	/* RFC 7519 4.1.4: valid only before exp; 4.1.5: from nbf on. */
	if ((has = numeric_date(claims, "exp", &t)) < 0 || (has && !(n < t + leeway))) {
		*why = has < 0 ? "bad exp" : "expired";
		return -1;
	}
	if ((has = numeric_date(claims, "nbf", &t)) < 0 || (has && !(n + leeway >= t))) {
		*why = has < 0 ? "bad nbf" : "not yet valid";
		return -1;
	}
	if (p->issuer != NULL) {
		v = jose_claims_get(claims, "iss");
		if (v == NULL || !jose_claim_is(claims, v, p->issuer)) {
			*why = "wrong issuer";
			return -1;
		}
	}
	/* RFC 7519 4.1.3: a token for audiences must be for one of ours; with
	 * none configured, a token with "aud" is for someone else. */
	v = jose_claims_get(claims, "aud");
	if ((p->naudience > 0 && !audience_ok(claims, v, p)) || (p->naudience == 0 && v != NULL)) {
		*why = "wrong audience";
		return -1;
	}
	return 0;
}
