/*
 * libFuzzer target for jose_verify and jose_check_claims: the input is a
 * token, tried against a fixed HS256 key set (the RFC 7515 A.1 key), a
 * fixed ES256 one (the A.3 key, from a JWKS) and a fixed EdDSA one (RFC
 * 8037 A.2's Ed25519 key, from a JWKS).
 *
 * A token the HS256 set accepts must carry the HMAC of its first two
 * parts, as computed here apart, and a JSON object; its claims are then
 * checked at a few times.  The HS256 verdict with a worker's own HMAC
 * context (jose_keys_mac), used again and again, is the one without.
 * The input is also read as a payload by jose_claims_parse and by
 * jansson (with duplicates refused), which must agree on whether it is a
 * claims set and on its members (but for raw NULs: see same_as_jansson).  Any base64url the decoder takes must encode
 * back to the same text (one encoding per value).  Any disagreement traps.
 */
#include "common/jose.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static const char hs_key[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char es_jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static const char ed_jwks[] =
    "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";

static struct jose_keys hs, es, ed;
static EVP_MAC_CTX *mac;
static struct jose_payload pl, pl2;
static unsigned char key[64];
static size_t keylen;

static void check_claims(const struct jose_claims *claims);

static void
setup(void)
{
	char err[256];
	ssize_t n = jose_b64url_decode(hs_key, strlen(hs_key), key, sizeof(key));

	CHECK(n == 64);
	keylen = (size_t)n;
	CHECK(jose_keys_secret(&hs, JOSE_HS256, key, keylen, err, sizeof(err)) == 0);
	CHECK(jose_keys_jwks(&es, JOSE_ES256, es_jwks, strlen(es_jwks), err, sizeof(err)) == 0);
	CHECK(jose_keys_jwks(&ed, JOSE_EDDSA, ed_jwks, strlen(ed_jwks), err, sizeof(err)) == 0);
	CHECK((mac = jose_keys_mac(&hs)) != NULL);
}

/* A key set's verdict on a token: its claims checked when it passes. */
static void
try_keys(const struct jose_keys *ks, const char *tok, size_t size)
{
	struct jose_claims claims;
	const char *why = NULL;

	if (jose_verify(ks, NULL, tok, size, &pl, &claims, &why) == 0)
		check_claims(&claims);
	else
		CHECK(why != NULL);
}

/* jose_claims_parse and jansson on the same document: the same verdict,
 * the same members, the same strings and numbers. */
static void
same_as_jansson(const uint8_t *data, size_t size)
{
	struct jose_claims c;
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	int mine;
	size_t i = 0, members = 0;
	const struct jose_claim *v;

	if (size >= JOSE_CLAIMS_BUF) {
		json_decref(j);
		return;
	}
	mine = jose_claims_parse(&pl, (const char *)data, size, &c) == 0;
	/* A raw NUL is no JSON, and is refused; jansson drops one that
	 * follows a number or a literal ({"a":1\0}), so it is not asked. */
	if (memchr(data, '\0', size) != NULL) {
		CHECK(!mine);
		json_decref(j);
		return;
	}
	CHECK(mine == json_is_object(j));
	while (mine && (v = jose_claims_next(&c, &i)) != NULL) {
		json_t *jv = json_object_getn(j, c.buf + v->name, v->nlen);
		const char *p;
		size_t n;
		char buf[32], want[32];
		int t = jose_claim_text(&c, v, buf, sizeof(buf), &p, &n);
		members++;
		CHECK(jv != NULL);
		switch (json_typeof(jv)) {
		case JSON_STRING:
			CHECK(t && n == json_string_length(jv) && memcmp(p, json_string_value(jv), n) == 0);
			break;
		case JSON_INTEGER:
			snprintf(want, sizeof(want), "%" JSON_INTEGER_FORMAT, json_integer_value(jv));
			CHECK(t && v->type == JOSE_C_INTEGER && n == strlen(want) && memcmp(p, want, n) == 0);
			CHECK(v->num == json_number_value(jv));
			break;
		case JSON_REAL:
			CHECK(t && v->type == JOSE_C_REAL && v->num == json_real_value(jv));
			break;
		case JSON_ARRAY: {
			size_t k = 0, idx;
			json_t *e;
			CHECK(v->type == JOSE_C_LIST);
			json_array_foreach(jv, idx, e)
				if (json_is_string(e)) {
					k++;
					CHECK(k <= v->nlist && jose_claim_is(&c, v + k, json_string_value(e)));
				}
			CHECK(k == v->nlist);
			break;
		}
		case JSON_OBJECT:
			CHECK(v->type == JOSE_C_OBJECT && !t);
			break;
		case JSON_TRUE:
			CHECK(v->type == JOSE_C_TRUE && t);
			break;
		case JSON_FALSE:
			CHECK(v->type == JOSE_C_FALSE && t);
			break;
		case JSON_NULL:
			CHECK(v->type == JOSE_C_NULL && !t);
			break;
		}
	}
	CHECK(!mine || members == json_object_size(j));
	json_decref(j);
}

static void
b64e(const unsigned char *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
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

static void
check_claims(const struct jose_claims *claims)
{
	char *aud[] = { "api" }, *req[] = { "sub" };
	struct jose_policy p = { 30, "joe", aud, 1, req, 1 };
	const char *why;
	int64_t times[] = { 0, 1300819379, 1300819380, INT32_MAX, -1 };

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		why = NULL;
		if (jose_check_claims(claims, &p, times[i], &why) < 0)
			CHECK(why != NULL);
	}
	p.naudience = 0;
	p.nrequire = 0;
	p.issuer = NULL;
	jose_check_claims(claims, &p, 0, &why);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tok = (const char *)data, *why = NULL;

	if (hs.n == 0)
		setup();
	struct jose_claims claims, claims2;
	int rc = jose_verify(&hs, NULL, tok, size, &pl, &claims, &why);
	const char *why2 = NULL;
	CHECK(jose_verify(&hs, mac, tok, size, &pl2, &claims2, &why2) == rc);
	CHECK(rc == 0 ? claims.n == claims2.n && claims.buflen == claims2.buflen &&
	    memcmp(claims.buf, claims2.buf, claims.buflen) == 0 : strcmp(why, why2) == 0);
	if (rc == 0) {
		const char *last = memrchr(tok, '.', size);
		unsigned char hm[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		char enc[128];
		CHECK(last != NULL);
		HMAC(EVP_sha256(), key, (int)keylen, data, (size_t)(last - tok), hm, &n);
		b64e(hm, n, enc);
		CHECK(strlen(enc) == size - (size_t)(last + 1 - tok) &&
		    memcmp(enc, last + 1, strlen(enc)) == 0);
		check_claims(&claims);
	} else {
		CHECK(why != NULL);
	}
	try_keys(&es, tok, size);
	try_keys(&ed, tok, size);
	same_as_jansson(data, size);
	if (size <= 1024) {
		unsigned char out[768];
		char back[1025];
		ssize_t n = jose_b64url_decode(tok, size, out, sizeof(out));
		if (n >= 0) {
			b64e(out, (size_t)n, back);
			CHECK(strlen(back) == size && memcmp(back, tok, size) == 0);
		}
	}
	return 0;
}
