/*
 * libFuzzer target for jose_verify and jose_check_claims: the input is a
 * token, tried against a fixed HS256 key set (the RFC 7515 A.1 key), a
 * fixed ES256 one (the A.3 key, from a JWKS) and a fixed EdDSA one (RFC
 * 8037 A.2's Ed25519 key, from a JWKS).
 *
 * A token the HS256 set accepts must carry the HMAC of its first two
 * parts, as computed here apart, and a JSON object; its claims are then
 * checked at a few times.  The HS256 verdict with a worker's own HMAC
 * context (jose_keys_mac), used again and again, is the one without.  Any base64url the decoder takes must encode
 * back to the same text (one encoding per value).  Any disagreement traps.
 */
#include "common/jose.h"

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
static unsigned char key[64];
static size_t keylen;

static void check_claims(const json_t *claims);

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
	json_t *claims = NULL;
	const char *why = NULL;

	if (jose_verify(ks, NULL, tok, size, &claims, &why) == 0) {
		CHECK(json_is_object(claims));
		check_claims(claims);
		json_decref(claims);
	} else {
		CHECK(why != NULL && claims == NULL);
	}
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
check_claims(const json_t *claims)
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
	json_t *claims = NULL;

	if (hs.n == 0)
		setup();
	int rc = jose_verify(&hs, NULL, tok, size, &claims, &why);
	const char *why2 = NULL;
	json_t *claims2 = NULL;
	CHECK(jose_verify(&hs, mac, tok, size, &claims2, &why2) == rc);
	CHECK(rc == 0 ? json_equal(claims, claims2) : strcmp(why, why2) == 0);
	json_decref(claims2);
	if (rc == 0) {
		const char *last = memrchr(tok, '.', size);
		unsigned char hm[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		char enc[128];
		CHECK(last != NULL && json_is_object(claims));
		HMAC(EVP_sha256(), key, (int)keylen, data, (size_t)(last - tok), hm, &n);
		b64e(hm, n, enc);
		CHECK(strlen(enc) == size - (size_t)(last + 1 - tok) &&
		    memcmp(enc, last + 1, strlen(enc)) == 0);
		check_claims(claims);
		json_decref(claims);
	} else {
		CHECK(why != NULL && claims == NULL);
	}
	try_keys(&es, tok, size);
	try_keys(&ed, tok, size);
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
