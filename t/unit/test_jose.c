/*
 * Unit tests for common/jose.c: the RFC 7515 appendix A vectors (HS256,
 * RS256, ES256; A.1 is also RFC 7519's example), RFC 7520 4.4 (HS256 with
 * a kid), then hostile tokens: alg none, an HS256 token keyed with the
 * RS256 configuration's public key PEM, wrong keys and signatures, bad
 * base64url, duplicate names, crit, oversized and truncated tokens, ECDSA
 * signatures of the wrong length or in DER; the claim checks at their
 * edges; JWKS documents that must be refused; and the per-exchange claim
 * store (pipeline.c); EdDSA (RFC 8037 A.4, then Ed25519 and Ed448 keys
 * against every other kind).  Keys for the tokens made here are generated here.
 */
#include "common/exchange.h"
#include "common/jose.h"
#include "common/pipeline.h"
#include "t/unit/tap.h"

#include <jansson.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 7515 A.1 (and RFC 7519 3.1): HS256. */
static const char a1_key[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char a1_tok[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/* RFC 7515 A.2: RS256. */
static const char a2_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\""
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0"
    "Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS"
    "5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH"
    "7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"}]}";
static const char a2_tok[] =
    "eyJhbGciOiJSUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2"
    "Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQ"
    "BMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6Ie"
    "YI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
/* RFC 7515 A.3: ES256. */
static const char a3_jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
static const char a3_tok[] =
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
/* RFC 8037 A.1 and A.2: an Ed25519 key (d private, x public); A.4: a JWS
 * by it over a text payload, "Example of Ed25519 signing". */
static const char r8037_d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
static const char r8037_jwks[] =
    "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
static const char r8037_tok[] =
    "eyJhbGciOiJFZERTQSJ9"
    ".RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
/* RFC 7520 4.4: HS256 with a kid; its payload is text, not JSON. */
static const char c44_key[] = "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg";
static const char c44_tok[] =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9"
    ".SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250"
    "byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hl"
    "cmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
    ".s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";

#define A1_EXP 1300819380

static char err[256];
/* Where jose_verify and jose_claims_parse parse, as a worker's. */
static struct jose_payload pl;

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

/* "b64(hdr).b64(payload)" into out. */
static void
signing_input(const char *hdr, const char *payload, char *out)
{
	b64e((const unsigned char *)hdr, strlen(hdr), out);
	strcat(out, ".");
	b64e((const unsigned char *)payload, strlen(payload), out + strlen(out));
}

static void
append_sig(char *tok, const unsigned char *sig, size_t len)
{
	strcat(tok, ".");
	b64e(sig, len, tok + strlen(tok));
}

/* An HMAC token (md "SHA256"...). */
static void
tok_hs(char *tok, const char *hdr, const char *payload, const void *key, size_t klen,
    const char *md)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	signing_input(hdr, payload, tok);
	HMAC(EVP_get_digestbyname(md), key, (int)klen, (unsigned char *)tok, strlen(tok), mac, &n);
	append_sig(tok, mac, n);
}

/* A signature by pkey: DER for ECDSA; *len. */
static void
sign(EVP_PKEY *pkey, const char *md, int pss, const char *data, unsigned char *sig, size_t *len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *p = NULL;

	EVP_DigestSignInit(m, &p, EVP_get_digestbyname(md), NULL, pkey);
	if (pss) {
		EVP_PKEY_CTX_set_rsa_padding(p, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(p, RSA_PSS_SALTLEN_DIGEST);
	}
	*len = 1024;
	EVP_DigestSign(m, sig, len, (const unsigned char *)data, strlen(data));
	EVP_MD_CTX_free(m);
}

/* A DER ECDSA signature as JOSE's r||s of sz bytes each. */
static size_t
der_to_raw(const unsigned char *der, size_t len, size_t sz, unsigned char *out)
{
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &der, (long)len);
	const BIGNUM *r, *s;

	ECDSA_SIG_get0(es, &r, &s);
	BN_bn2binpad(r, out, (int)sz);
	BN_bn2binpad(s, out + sz, (int)sz);
	ECDSA_SIG_free(es);
	return 2 * sz;
}

/* A token signed by pkey; raw: ECDSA as r||s (else as signed: DER). */
static void
tok_pk(char *tok, const char *hdr, const char *payload, EVP_PKEY *pkey, const char *md,
    int pss, size_t ec_size, int raw)
{
	unsigned char sig[1024], r[200];
	size_t len;

	signing_input(hdr, payload, tok);
	sign(pkey, md, pss, tok, sig, &len);
	if (ec_size > 0 && raw)
		append_sig(tok, r, der_to_raw(sig, len, ec_size, r));
	else
		append_sig(tok, sig, len);
}

static char *
pem_of(EVP_PKEY *pkey)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	PEM_write_bio_PUBKEY(b, pkey);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

/* jose_verify: the reason, or "ok". */
static const char *
verify_with(const struct jose_keys *ks, EVP_MAC_CTX *mac, const char *tok)
{
	struct jose_claims claims;
	const char *why;

	if (jose_verify(ks, mac, tok, strlen(tok), &pl, &claims, &why) < 0)
		return why;
	return "ok";
}

/*
 * The same, with no context of the caller's, and for HS* with one too, as
 * a worker keeps: used for tok, then for tok with its signature spoiled,
 * then for tok again, each verdict as without it.
 */
static const char *
verify(const struct jose_keys *ks, const char *tok)
{
	const char *why = verify_with(ks, NULL, tok);
	EVP_MAC_CTX *mac;
	char *bad;
	int same;

	if (!jose_alg_hmac(ks->alg) || ks->n != 1)
		return why;
	if ((mac = jose_keys_mac(ks)) == NULL || (bad = strdup(tok)) == NULL)
		return "out of memory";
	if (bad[0] != '\0' && bad[strlen(bad) - 1] != '.')
		bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'Q' : 'A';
	same = strcmp(verify_with(ks, mac, tok), why) == 0 &&
	    strcmp(verify_with(ks, mac, bad), verify_with(ks, NULL, bad)) == 0 &&
	    strcmp(verify_with(ks, mac, tok), why) == 0;
	free(bad);
	EVP_MAC_CTX_free(mac);
	return same ? why : "a worker's context disagrees";
}

static int
keys_secret_b64(struct jose_keys *ks, int alg, const char *k64)
{
	unsigned char k[128];
	ssize_t n = jose_b64url_decode(k64, strlen(k64), k, sizeof(k));

	return jose_keys_secret(ks, alg, k, (size_t)n, err, sizeof(err));
}

static void
test_b64url(void)
{
	unsigned char out[16];

	is(jose_b64url_decode("", 0, out, sizeof(out)), 0, "b64url: empty");
	is(jose_b64url_decode("YQ", 2, out, sizeof(out)), 1, "b64url: 'a' unpadded");
	ok(out[0] == 'a', "... decodes to 'a'");
	is(jose_b64url_decode("YWI", 3, out, sizeof(out)), 2, "b64url: 'ab'");
	is(jose_b64url_decode("YWJj", 4, out, sizeof(out)), 3, "b64url: 'abc'");
	is(jose_b64url_decode("YQ==", 4, out, sizeof(out)), -1, "b64url: padding refused");
	is(jose_b64url_decode("Y", 1, out, sizeof(out)), -1, "b64url: a length of 4n+1 refused");
	is(jose_b64url_decode("-_8", 3, out, sizeof(out)), 2, "b64url: - and _");
	is(jose_b64url_decode("+/8", 3, out, sizeof(out)), -1, "b64url: + and / (base64) refused");
	is(jose_b64url_decode("YR", 2, out, sizeof(out)), -1, "b64url: non-zero unused bits refused");
	is(jose_b64url_decode("YWK", 3, out, sizeof(out)), -1, "b64url: ... of a 3-char tail too");
	is(jose_b64url_decode("YW Jj", 5, out, sizeof(out)), -1, "b64url: blank refused");
	is(jose_b64url_decode("YWJjYWJj", 8, out, 5), -1, "b64url: more than cap refused");
}

static void
test_rfc(void)
{
	struct jose_keys ks = { 0 };
	struct jose_policy pol = { 0 };
	struct jose_claims claims;
	const struct jose_claim *v;
	const char *why = NULL;

	is(jose_alg_parse("none"), -1, "alg none is not an algorithm");
	is(jose_alg_parse("hs256"), -1, "algorithm names are case-sensitive");
	is(jose_alg_parse("ES384"), JOSE_ES384, "ES384 known");

	is(keys_secret_b64(&ks, JOSE_HS256, a1_key), 0, "A.1 key loads");
	is(jose_verify(&ks, NULL, a1_tok, strlen(a1_tok), &pl, &claims, &why), 0, "RFC 7515 A.1 HS256 verifies");
	v = jose_claims_get(&claims, "iss");
	ok(v != NULL && jose_claim_is(&claims, v, "joe"), "... iss is joe");
	v = jose_claims_get(&claims, "http://example.com/is_root");
	ok(v != NULL && v->type == JOSE_C_TRUE, "... is_root true");
	is(jose_check_claims(&claims, &pol, A1_EXP - 1, &why), 0, "... valid a second before exp");
	is(jose_check_claims(&claims, &pol, A1_EXP, &why), -1, "... expired at exp");
	is_str(why, "expired", "... reason expired");
	pol.leeway = 10;
	is(jose_check_claims(&claims, &pol, A1_EXP + 9, &why), 0, "... leeway 10: valid at exp + 9");
	is(jose_check_claims(&claims, &pol, A1_EXP + 10, &why), -1, "... leeway 10: expired at exp + 10");
	pol.leeway = 0;
	pol.issuer = "joe";
	is(jose_check_claims(&claims, &pol, A1_EXP - 1, &why), 0, "... issuer joe accepted");
	pol.issuer = "jane";
	is(jose_check_claims(&claims, &pol, A1_EXP - 1, &why), -1, "... issuer jane refused");
	is_str(why, "wrong issuer", "... reason");
	pol.issuer = NULL;
	jose_keys_free(&ks);

	is(keys_secret_b64(&ks, JOSE_HS384, a1_key), 0, "the A.1 key as HS384");
	is_str(verify(&ks, a1_tok), "wrong alg", "A.1 refused by an HS384 key set");
	jose_keys_free(&ks);

	is(jose_keys_jwks(&ks, JOSE_RS256, a2_jwks, strlen(a2_jwks), err, sizeof(err)), 0,
	    "A.2 JWK loads");
	is_str(verify(&ks, a2_tok), "ok", "RFC 7515 A.2 RS256 verifies");
	jose_keys_free(&ks);
	is(jose_keys_jwks(&ks, JOSE_PS256, a2_jwks, strlen(a2_jwks), err, sizeof(err)), 0,
	    "A.2 JWK as PS256");
	is_str(verify(&ks, a2_tok), "wrong alg", "A.2 refused by a PS256 key set");
	jose_keys_free(&ks);

	is(jose_keys_jwks(&ks, JOSE_ES256, a3_jwks, strlen(a3_jwks), err, sizeof(err)), 0,
	    "A.3 JWK loads");
	is_str(verify(&ks, a3_tok), "ok", "RFC 7515 A.3 ES256 verifies");
	char t[512];
	snprintf(t, sizeof(t), "%s", a3_tok);
	t[strlen(t) - 1] = t[strlen(t) - 1] == 'Q' ? 'g' : 'Q';
	is_str(verify(&ks, t), "bad signature", "A.3 with its last signature byte changed refused");
	jose_keys_free(&ks);
	is(jose_keys_jwks(&ks, JOSE_ES384, a3_jwks, strlen(a3_jwks), err, sizeof(err)), -1,
	    "a P-256 JWKS gives no key for ES384");
	is_str(err, "no key for ES384 (kty EC, crv P-384, with alg ES384 and use sig when given)",
	    "... and says so");
	jose_keys_free(&ks);

	is(keys_secret_b64(&ks, JOSE_HS256, c44_key), 0, "RFC 7520 4.4 key loads");
	is_str(verify(&ks, c44_tok), "bad payload",
	    "RFC 7520 4.4 HS256: signature verified, the text payload is no JWT claims set");
	jose_keys_free(&ks);
	is(keys_secret_b64(&ks, JOSE_HS256, a1_key), 0, "the A.1 key");
	is_str(verify(&ks, c44_tok), "bad signature", "RFC 7520 4.4 refused with another key");
	jose_keys_free(&ks);
}

static void
test_hostile_hs(void)
{
	static const char key[] = "0123456789abcdef0123456789abcdef";
	struct jose_keys ks = { 0 };
	char tok[JOSE_MAX_TOKEN + 64], *big;

	is(jose_keys_secret(&ks, JOSE_HS256, key, 31, err, sizeof(err)), -1, "a 31-byte HS256 secret refused");
	is_str(err, "HS256 needs a secret of at least 32 bytes, not 31", "... and says so");
	jose_keys_free(&ks);
	is(jose_keys_secret(&ks, JOSE_HS256, key, 32, err, sizeof(err)), 0, "HS256 secret");

	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	is_str(verify(&ks, tok), "ok", "an HS256 token made here verifies");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", "another key, 32 bytes long.......", 32, "SHA256");
	is_str(verify(&ks, tok), "bad signature", "wrong key refused");
	tok_hs(tok, "{\"alg\":\"HS512\"}", "{\"sub\":\"a\"}", key, 32, "SHA512");
	is_str(verify(&ks, tok), "wrong alg", "an HS512 token to an HS256 key set refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA384");
	is_str(verify(&ks, tok), "bad signature", "an HS384 MAC in an HS256 token refused");

	signing_input("{\"alg\":\"none\"}", "{\"sub\":\"a\"}", tok);
	strcat(tok, ".");
	is_str(verify(&ks, tok), "wrong alg", "alg none, no signature, refused");
	signing_input("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", tok);
	strcat(tok, ".");
	is_str(verify(&ks, tok), "bad signature encoding", "alg HS256, empty signature, refused");
	signing_input("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", tok);
	is_str(verify(&ks, tok), "not three parts", "two parts refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	strcat(tok, ".e30");
	is_str(verify(&ks, tok), "not three parts", "four parts refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	tok[strlen(tok) - 3] = '\0';
	is_str(verify(&ks, tok), "bad signature", "truncated signature refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	tok[strlen(tok) - 4] = tok[strlen(tok) - 4] == 'A' ? 'B' : 'A';
	is_str(verify(&ks, tok), "bad signature", "a changed signature refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	strcat(tok, "=");
	is_str(verify(&ks, tok), "bad signature encoding", "padded signature refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	char *dot = strchr(tok, '.');
	dot[1] = '+';
	is_str(verify(&ks, tok), "bad signature", "a '+' in the payload refused (the MAC covers it)");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	tok[0] = '/';
	is_str(verify(&ks, tok), "bad header", "a '/' in the header refused");

	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"sub\":\"b\"}", key, 32, "SHA256");
	is_str(verify(&ks, tok), "bad payload", "duplicate claim names refused (signed properly)");
	tok_hs(tok, "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	is_str(verify(&ks, tok), "bad header", "duplicate header names refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "[\"sub\"]", key, 32, "SHA256");
	is_str(verify(&ks, tok), "bad payload", "a payload that is not an object refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\\u0000b\"}", key, 32, "SHA256");
	is_str(verify(&ks, tok), "bad payload", "a NUL in a claim refused");
	tok_hs(tok, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	is_str(verify(&ks, tok), "crit header", "crit refused");
	tok_hs(tok, "{\"alg\":\"HS256\",\"kid\":7}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	is_str(verify(&ks, tok), "bad kid", "a kid that is not a string refused");
	tok_hs(tok, "{\"alg\":\"HS256\",\"kid\":\"whatever\"}", "{\"sub\":\"a\"}", key, 32, "SHA256");
	is_str(verify(&ks, tok), "ok", "a secret verifies whatever the kid");

	big = malloc(JOSE_MAX_TOKEN + 2);
	memset(big, 'A', JOSE_MAX_TOKEN + 1);
	big[JOSE_MAX_TOKEN + 1] = '\0';
	is_str(verify(&ks, big), "token too long", "a token of 8 KiB + 1 refused");
	free(big);
	/* A deep document within the limit: refused by jansson's depth limit
	 * or as a payload, never a crash. */
	char deep[4200];
	memset(deep, '[', 4100);
	deep[4100] = '\0';
	tok_hs(tok, "{\"alg\":\"HS256\"}", deep, key, 32, "SHA256");
	is_str(verify(&ks, tok), "bad payload", "a deep, unterminated payload refused");
	jose_keys_free(&ks);
}

static void
test_alg_swap(void)
{
	struct jose_keys ks = { 0 };
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec;
	char *pem = pem_of(rsa), tok[4096];

	is(jose_keys_pem(&ks, JOSE_RS256, pem, strlen(pem), err, sizeof(err)), 0, "RS256 PEM loads");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", pem, strlen(pem), "SHA256");
	is_str(verify(&ks, tok), "wrong alg",
	    "HS256 token keyed with the RS256 public key PEM refused");
	tok_hs(tok, "{\"alg\":\"RS256\"}", "{\"sub\":\"a\"}", pem, strlen(pem), "SHA256");
	is_str(verify(&ks, tok), "bad signature",
	    "... and with alg RS256 it is no RSA signature");
	tok_pk(tok, "{\"alg\":\"RS256\"}", "{\"sub\":\"a\"}", rsa, "SHA256", 0, 0, 0);
	is_str(verify(&ks, tok), "ok", "an RS256 token made here verifies");
	tok_pk(tok, "{\"alg\":\"RS256\"}", "{\"sub\":\"a\"}", rsa, "SHA256", 1, 0, 0);
	is_str(verify(&ks, tok), "bad signature", "a PSS signature in an RS256 token refused");
	jose_keys_free(&ks);

	is(jose_keys_secret(&ks, JOSE_RS256, pem, strlen(pem), err, sizeof(err)), -1,
	    "a secret for RS256 refused");
	is_str(err, "RS256 takes a public key, not a secret", "... and says so");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_HS256, pem, strlen(pem), err, sizeof(err)), -1,
	    "a PEM key for HS256 refused");
	jose_keys_free(&ks);

	is(jose_keys_pem(&ks, JOSE_PS256, pem, strlen(pem), err, sizeof(err)), 0, "PS256 PEM loads");
	tok_pk(tok, "{\"alg\":\"PS256\"}", "{\"sub\":\"a\"}", rsa, "SHA256", 1, 0, 0);
	is_str(verify(&ks, tok), "ok", "a PS256 token made here verifies");
	tok_pk(tok, "{\"alg\":\"PS256\"}", "{\"sub\":\"a\"}", rsa, "SHA256", 0, 0, 0);
	is_str(verify(&ks, tok), "bad signature", "a PKCS#1 v1.5 signature in a PS256 token refused");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_ES256, pem, strlen(pem), err, sizeof(err)), -1,
	    "an RSA PEM for ES256 refused");
	is_str(err, "ES256 needs an EC key on P-256", "... and says so");
	jose_keys_free(&ks);
	free(pem);
	EVP_PKEY_free(rsa);

	rsa = EVP_RSA_gen(1024);
	pem = pem_of(rsa);
	is(jose_keys_pem(&ks, JOSE_RS256, pem, strlen(pem), err, sizeof(err)), -1,
	    "a 1024-bit RSA key refused");
	is_str(err, "an RSA key of 1024 bits: from 2048 to 8192 are taken", "... and says so");
	jose_keys_free(&ks);
	free(pem);
	EVP_PKEY_free(rsa);

	ec = EVP_EC_gen("P-256");
	pem = pem_of(ec);
	is(jose_keys_pem(&ks, JOSE_ES256, pem, strlen(pem), err, sizeof(err)), 0, "ES256 PEM loads");
	tok_pk(tok, "{\"alg\":\"ES256\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "ok", "an ES256 token (r||s) made here verifies");
	tok_pk(tok, "{\"alg\":\"ES256\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 0);
	is_str(verify(&ks, tok), "bad signature", "the same signature in DER refused");
	tok_pk(tok, "{\"alg\":\"ES256\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	char *sig = strrchr(tok, '.') + 1;
	unsigned char raw[64];
	jose_b64url_decode(sig, strlen(sig), raw, sizeof(raw));
	b64e(raw, 63, sig);
	is_str(verify(&ks, tok), "bad signature", "a 63-byte ES256 signature refused");
	memset(raw, 0, sizeof(raw));
	b64e(raw, 64, sig);
	is_str(verify(&ks, tok), "bad signature", "r = s = 0 refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", pem, strlen(pem), "SHA256");
	is_str(verify(&ks, tok), "wrong alg", "HS256 keyed with the ES256 PEM refused");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_ES384, pem, strlen(pem), err, sizeof(err)), -1,
	    "a P-256 PEM for ES384 refused");
	jose_keys_free(&ks);
	free(pem);
	EVP_PKEY_free(ec);

	ec = EVP_EC_gen("P-384");
	pem = pem_of(ec);
	is(jose_keys_pem(&ks, JOSE_ES384, pem, strlen(pem), err, sizeof(err)), 0, "ES384 PEM loads");
	tok_pk(tok, "{\"alg\":\"ES384\"}", "{\"sub\":\"a\"}", ec, "SHA384", 0, 48, 1);
	is_str(verify(&ks, tok), "ok", "an ES384 token made here verifies");
	jose_keys_free(&ks);
	free(pem);
	EVP_PKEY_free(ec);
	is(jose_keys_pem(&ks, JOSE_ES256, "not a key", 9, err, sizeof(err)), -1, "garbage PEM refused");
	is_str(err, "no PEM public key (-----BEGIN PUBLIC KEY-----)", "... and says so");
	jose_keys_free(&ks);
}

static void
test_jwks(void)
{
	struct jose_keys ks = { 0 };
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	unsigned char x[32], y[32], pub[65];
	char jwks[2048], bx[64], by[64], tok[2048];
	size_t len = 0;

	EVP_PKEY_get_octet_string_param(ec, "pub", pub, sizeof(pub), &len);
	memcpy(x, pub + 1, 32);
	memcpy(y, pub + 33, 32);
	b64e(x, 32, bx);
	b64e(y, 32, by);
	snprintf(jwks, sizeof(jwks), "{\"keys\":["
	    "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\",\"x\":\"AA\",\"y\":\"AA\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"enc\",\"use\":\"enc\",\"x\":\"AA\",\"y\":\"AA\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"%s\",\"y\":\"%s\"},"
	    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"b\",\"alg\":\"ES256\",\"use\":\"sig\",\"x\":\"%s\",\"y\":\"%s\"}]}",
	    bx, by, bx, by);
	is(jose_keys_jwks(&ks, JOSE_ES256, jwks, strlen(jwks), err, sizeof(err)), 0,
	    "a JWKS with keys of other kinds: those skipped");
	is(ks.n, 2, "... two ES256 keys taken");
	tok_pk(tok, "{\"alg\":\"ES256\",\"kid\":\"b\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "ok", "kid b verifies");
	tok_pk(tok, "{\"alg\":\"ES256\",\"kid\":\"c\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "no key for kid", "a kid the JWKS does not have refused");
	tok_pk(tok, "{\"alg\":\"ES256\",\"kid\":\"enc\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "no key for kid", "the kid of a key for encryption refused");
	tok_pk(tok, "{\"alg\":\"ES256\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "no key for kid", "no kid, two keys: refused");
	jose_keys_free(&ks);

	static const struct {
		const char *doc, *err, *name;
	} bad[] = {
		{ "{\"keys\":[", "not JSON: ']' expected near end of file (line 1)", "not JSON" },
		{ "{\"kys\":[]}", "no \"keys\" array", "no keys" },
		{ "{\"keys\":[],\"keys\":[]}", "not JSON: duplicate object key near '\"keys\"' (line 1)", "duplicate names" },
		{ "{\"keys\":[]}", "no key for ES256 (kty EC, crv P-256, with alg ES256 and use sig when given)", "no key" },
		{ "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
		    "key 0: not a valid P-256 public key", "short coordinates" },
		{ "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
		    "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
		    "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
		    "key 0: not a valid P-256 public key", "a point not on the curve" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		is(jose_keys_jwks(&ks, JOSE_ES256, bad[i].doc, strlen(bad[i].doc), err, sizeof(err)), -1,
		    "JWKS refused: %s", bad[i].name);
		is_str(err, bad[i].err, "... %s", bad[i].err);
		jose_keys_free(&ks);
	}
	snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"%s\","
	    "\"y\":\"%s\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"%s\",\"y\":\"%s\"}]}",
	    bx, by, bx, by);
	is(jose_keys_jwks(&ks, JOSE_ES256, jwks, strlen(jwks), err, sizeof(err)), -1, "a kid twice refused");
	is_str(err, "key 1: \"kid\" \"a\" given twice", "... and says so");
	jose_keys_free(&ks);
	snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
	    bx, by);
	is(jose_keys_jwks(&ks, JOSE_ES256, jwks, strlen(jwks), err, sizeof(err)), 0, "one key, no kid");
	tok_pk(tok, "{\"alg\":\"ES256\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "ok", "... verifies a token without kid");
	tok_pk(tok, "{\"alg\":\"ES256\",\"kid\":\"x\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "ok", "... and one with a kid");
	jose_keys_free(&ks);
	is(jose_keys_jwks(&ks, JOSE_HS256, a3_jwks, strlen(a3_jwks), err, sizeof(err)), -1,
	    "a JWKS for HS256 refused");
	jose_keys_free(&ks);
	EVP_PKEY_free(ec);
}

/* A token signed with EdDSA by pkey (Ed25519 or Ed448); siglen, when not
 * 0, cuts or pads the signature to that many bytes. */
static void
tok_ed(char *tok, const char *hdr, const char *payload, EVP_PKEY *pkey, size_t siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned char sig[200] = { 0 };
	size_t len = sizeof(sig);

	signing_input(hdr, payload, tok);
	EVP_DigestSignInit(m, NULL, NULL, NULL, pkey);
	EVP_DigestSign(m, sig, &len, (const unsigned char *)tok, strlen(tok));
	EVP_MD_CTX_free(m);
	append_sig(tok, sig, siglen > 0 ? siglen : len);
}

/* A one-key JWKS of kty OKP, crv and x (base64url of xlen bytes of pkey's
 * public key, or of what x holds when pkey is NULL). */
static void
okp_jwks(char *out, size_t cap, const char *crv, EVP_PKEY *pkey, size_t xlen, const char *extra)
{
	unsigned char x[64] = { 0 };
	size_t n = sizeof(x);
	char bx[100];

	if (pkey != NULL)
		EVP_PKEY_get_raw_public_key(pkey, x, &n);
	b64e(x, xlen, bx);
	snprintf(out, cap, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"%s\",\"x\":\"%s\"%s}]}", crv, bx,
	    extra);
}

static void
test_eddsa_rfc(void)
{
	struct jose_keys ks = { 0 };
	unsigned char d[32];
	char tok[1024];
	EVP_PKEY *key;

	is(jose_alg_parse("EdDSA"), JOSE_EDDSA, "EdDSA known");
	is(jose_alg_parse("EDDSA"), -1, "... by that name only");
	is(jose_keys_jwks(&ks, JOSE_EDDSA, r8037_jwks, strlen(r8037_jwks), err, sizeof(err)), 0,
	    "RFC 8037 A.2 JWK loads");
	is_str(verify(&ks, r8037_tok), "bad payload",
	    "RFC 8037 A.4 EdDSA: signature verified, the text payload is no JWT claims set");
	snprintf(tok, sizeof(tok), "%s", r8037_tok);
	tok[strlen(tok) - 3] = tok[strlen(tok) - 3] == 'A' ? 'B' : 'A';
	is_str(verify(&ks, tok), "bad signature", "A.4 with a signature byte changed refused");
	snprintf(tok, sizeof(tok), "%s", r8037_tok);
	tok[strlen("eyJhbGciOiJFZERTQSJ9.") + 1] ^= 1;
	is_str(verify(&ks, tok), "bad signature", "A.4 with its payload changed refused");

	/* A.1's private key signs: Ed25519 is deterministic, so the same bytes. */
	jose_b64url_decode(r8037_d, strlen(r8037_d), d, sizeof(d));
	key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, sizeof(d));
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "Example of Ed25519 signing", key, 0);
	is_str(tok, r8037_tok, "A.1's key signs A.4's JWS byte for byte");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", key, 0);
	is_str(verify(&ks, tok), "ok", "a token signed with A.1's key verifies");
	tok_ed(tok, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", "{\"sub\":\"a\"}", key, 0);
	is_str(verify(&ks, tok), "ok", "... with typ JWT too");
	tok_ed(tok, "{\"alg\":\"Ed25519\"}", "{\"sub\":\"a\"}", key, 0);
	is_str(verify(&ks, tok), "wrong alg", "alg Ed25519 (not RFC 8037's name) refused");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", key, 63);
	is_str(verify(&ks, tok), "bad signature", "a 63-byte Ed25519 signature refused");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", key, 65);
	is_str(verify(&ks, tok), "bad signature", "a 65-byte Ed25519 signature (a zero added) refused");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", key, 0);
	char *sig = strrchr(tok, '.') + 1;
	unsigned char zero[64] = { 0 };
	b64e(zero, sizeof(zero), sig);
	is_str(verify(&ks, tok), "bad signature", "an all-zero signature refused");
	jose_keys_free(&ks);
	EVP_PKEY_free(key);
}

static void
test_eddsa_keys(void)
{
	struct jose_keys ks = { 0 };
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), *ec = EVP_EC_gen("P-256");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	char *pem = pem_of(ed), *pem448 = pem_of(ed448), *pemx = pem_of(x25519), *pemec = pem_of(ec);
	char *pemrsa = pem_of(rsa), tok[4096], jwks[1024];

	is(jose_keys_pem(&ks, JOSE_EDDSA, pem, strlen(pem), err, sizeof(err)), 0, "Ed25519 PEM loads");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", ed, 0);
	is_str(verify(&ks, tok), "ok", "an EdDSA token made here verifies");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", ed448, 0);
	is_str(verify(&ks, tok), "bad signature", "an Ed448 signature to an Ed25519 key refused");
	tok_hs(tok, "{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", pem, strlen(pem), "SHA256");
	is_str(verify(&ks, tok), "wrong alg", "HS256 keyed with the Ed25519 PEM refused");
	tok_hs(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", pem, strlen(pem), "SHA512");
	is_str(verify(&ks, tok), "bad signature", "... and with alg EdDSA it is no EdDSA signature");
	tok_pk(tok, "{\"alg\":\"ES256\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "wrong alg", "an ES256 token to an EdDSA key set refused");
	tok_pk(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", ec, "SHA256", 0, 32, 1);
	is_str(verify(&ks, tok), "bad signature", "an ES256 signature (64 bytes) named EdDSA refused");
	tok_pk(tok, "{\"alg\":\"RS256\"}", "{\"sub\":\"a\"}", rsa, "SHA256", 0, 0, 0);
	is_str(verify(&ks, tok), "wrong alg", "an RS256 token to an EdDSA key set refused");
	jose_keys_free(&ks);

	is(jose_keys_pem(&ks, JOSE_EDDSA, pem448, strlen(pem448), err, sizeof(err)), 0, "Ed448 PEM loads");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", ed448, 0);
	is_str(verify(&ks, tok), "ok", "an Ed448 token made here verifies");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", ed448, 113);
	is_str(verify(&ks, tok), "bad signature", "a 113-byte Ed448 signature refused");
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", ed, 0);
	is_str(verify(&ks, tok), "bad signature", "an Ed25519 signature to an Ed448 key refused");
	jose_keys_free(&ks);

	/* The key fixes the algorithm, both ways. */
	tok_ed(tok, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"a\"}", ed, 0);
	is(jose_keys_secret(&ks, JOSE_HS256, "0123456789abcdef0123456789abcdef", 32, err, sizeof(err)), 0,
	    "an HS256 key set");
	is_str(verify(&ks, tok), "wrong alg", "an EdDSA token to an HS256 key set refused");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_RS256, pemrsa, strlen(pemrsa), err, sizeof(err)), 0, "an RS256 key set");
	is_str(verify(&ks, tok), "wrong alg", "... to an RS256 one refused");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_ES256, pemec, strlen(pemec), err, sizeof(err)), 0, "an ES256 key set");
	is_str(verify(&ks, tok), "wrong alg", "... to an ES256 one refused");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_ES256, pem, strlen(pem), err, sizeof(err)), -1,
	    "an Ed25519 PEM for ES256 refused");
	is_str(err, "ES256 needs an EC key on P-256", "... and says so");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_RS256, pem, strlen(pem), err, sizeof(err)), -1,
	    "an Ed25519 PEM for RS256 refused");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_HS256, pem, strlen(pem), err, sizeof(err)), -1,
	    "an Ed25519 PEM for HS256 refused");
	jose_keys_free(&ks);
	is(jose_keys_secret(&ks, JOSE_EDDSA, pem, strlen(pem), err, sizeof(err)), -1,
	    "a secret for EdDSA refused");
	is_str(err, "EdDSA takes a public key, not a secret", "... and says so");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_EDDSA, pemec, strlen(pemec), err, sizeof(err)), -1,
	    "a P-256 PEM for EdDSA refused");
	is_str(err, "EdDSA needs an Ed25519 or Ed448 key", "... and says so");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_EDDSA, pemrsa, strlen(pemrsa), err, sizeof(err)), -1,
	    "an RSA PEM for EdDSA refused");
	jose_keys_free(&ks);
	is(jose_keys_pem(&ks, JOSE_EDDSA, pemx, strlen(pemx), err, sizeof(err)), -1,
	    "an X25519 PEM (key agreement) for EdDSA refused");
	jose_keys_free(&ks);

	okp_jwks(jwks, sizeof(jwks), "Ed448", ed448, 57, ",\"kid\":\"e448\",\"alg\":\"EdDSA\"");
	is(jose_keys_jwks(&ks, JOSE_EDDSA, jwks, strlen(jwks), err, sizeof(err)), 0, "an Ed448 JWK loads");
	tok_ed(tok, "{\"alg\":\"EdDSA\",\"kid\":\"e448\"}", "{\"sub\":\"a\"}", ed448, 0);
	is_str(verify(&ks, tok), "ok", "... and verifies its token");
	jose_keys_free(&ks);
	static const struct {
		const char *crv, *extra, *err, *name;
		int which;                     /* 0 Ed25519's x, 1 Ed448's */
		size_t xlen;
	} bad[] = {
		{ "Ed25519", "", "key 0: not a valid Ed25519 public key", "Ed25519 x of 31 bytes", 0, 31 },
		{ "Ed25519", "", "key 0: not a valid Ed25519 public key", "Ed25519 x of 33 bytes", 0, 33 },
		{ "Ed448", "", "key 0: not a valid Ed448 public key", "Ed448 x of 32 bytes", 0, 32 },
		{ "Ed999", "", "no key for EdDSA (kty OKP, crv Ed25519 or Ed448, with alg EdDSA and use sig "
		    "when given)", "an unknown crv", 0, 32 },
		{ "X25519", "", "no key for EdDSA (kty OKP, crv Ed25519 or Ed448, with alg EdDSA and use sig "
		    "when given)", "crv X25519 (key agreement)", 0, 32 },
		{ "Ed25519", ",\"alg\":\"ES256\"", "no key for EdDSA (kty OKP, crv Ed25519 or Ed448, with alg "
		    "EdDSA and use sig when given)", "an OKP key for alg ES256", 0, 32 },
		{ "Ed25519", ",\"use\":\"enc\"", "no key for EdDSA (kty OKP, crv Ed25519 or Ed448, with alg "
		    "EdDSA and use sig when given)", "an OKP key for use enc", 0, 32 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		okp_jwks(jwks, sizeof(jwks), bad[i].crv, bad[i].which ? ed448 : ed, bad[i].xlen, bad[i].extra);
		is(jose_keys_jwks(&ks, JOSE_EDDSA, jwks, strlen(jwks), err, sizeof(err)), -1,
		    "EdDSA JWKS refused: %s", bad[i].name);
		is_str(err, bad[i].err, "... %s", bad[i].err);
		jose_keys_free(&ks);
	}
	okp_jwks(jwks, sizeof(jwks), "Ed25519", ed, 32, "");
	is(jose_keys_jwks(&ks, JOSE_ES256, jwks, strlen(jwks), err, sizeof(err)), -1,
	    "an OKP JWKS gives no key for ES256");
	jose_keys_free(&ks);
	is(jose_keys_jwks(&ks, JOSE_RS256, jwks, strlen(jwks), err, sizeof(err)), -1,
	    "... nor for RS256");
	jose_keys_free(&ks);
	is(jose_keys_jwks(&ks, JOSE_EDDSA, a3_jwks, strlen(a3_jwks), err, sizeof(err)), -1,
	    "an EC JWKS gives no key for EdDSA");
	jose_keys_free(&ks);
	free(pem);
	free(pem448);
	free(pemx);
	free(pemec);
	free(pemrsa);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(ed448);
	EVP_PKEY_free(x25519);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
}

static int
claims_ok(const char *json, const struct jose_policy *p, int64_t now, const char **why)
{
	struct jose_claims c;

	if (jose_claims_parse(&pl, json, strlen(json), &c) < 0) {
		*why = "not parsed";
		return -2;
	}
	return jose_check_claims(&c, p, now, why);
}

static void
test_claims(void)
{
	char *aud[] = { "api", "web" }, *req[] = { "sub", "role" };
	struct jose_policy p = { 0 };
	const char *why = NULL;

	is(claims_ok("{\"nbf\":100}", &p, 99, &why), -1, "nbf 100 at 99 refused");
	is_str(why, "not yet valid", "... not yet valid");
	is(claims_ok("{\"nbf\":100}", &p, 100, &why), 0, "nbf 100 at 100 accepted");
	p.leeway = 5;
	is(claims_ok("{\"nbf\":100}", &p, 95, &why), 0, "nbf 100, leeway 5, at 95 accepted");
	is(claims_ok("{\"nbf\":100}", &p, 94, &why), -1, "... at 94 refused");
	is(claims_ok("{\"exp\":100.5}", &p, 105, &why), 0, "exp 100.5, leeway 5, at 105 accepted");
	is(claims_ok("{\"exp\":100.5}", &p, 106, &why), -1, "... at 106 refused");
	p.leeway = 0;
	is(claims_ok("{\"exp\":\"100\"}", &p, 1, &why), -1, "exp as a string refused");
	is_str(why, "bad exp", "... bad exp");
	is(claims_ok("{\"nbf\":null}", &p, 1, &why), -1, "nbf null refused");
	is(claims_ok("{\"aud\":\"api\"}", &p, 1, &why), -1, "aud without audience configured refused");
	is_str(why, "wrong audience", "... wrong audience");
	p.audience = aud;
	p.naudience = 2;
	is(claims_ok("{\"aud\":\"web\"}", &p, 1, &why), 0, "aud web accepted");
	is(claims_ok("{\"aud\":[\"x\",\"api\"]}", &p, 1, &why), 0, "aud list holding api accepted");
	is(claims_ok("{\"aud\":[\"x\",\"y\"]}", &p, 1, &why), -1, "aud list of others refused");
	is(claims_ok("{\"aud\":\"API\"}", &p, 1, &why), -1, "aud compared with case");
	is(claims_ok("{\"aud\":[]}", &p, 1, &why), -1, "empty aud list refused");
	is(claims_ok("{\"sub\":\"x\"}", &p, 1, &why), -1, "no aud refused when audience is set");
	is(claims_ok("{\"aud\":[[\"api\"]]}", &p, 1, &why), -1, "a nested list refused");
	p.naudience = 0;
	p.require = req;
	p.nrequire = 2;
	is(claims_ok("{\"sub\":\"x\",\"role\":\"admin\"}", &p, 1, &why), 0, "required claims present");
	is(claims_ok("{\"sub\":\"x\"}", &p, 1, &why), -1, "role missing refused");
	is_str(why, "required claim missing", "... required claim missing");
	is(claims_ok("{\"sub\":\"x\",\"role\":null}", &p, 1, &why), -1, "role null refused");
	is(claims_ok("{\"sub\":\"x\",\"role\":false}", &p, 1, &why), 0, "role false is present");
}

/* Whether jose_claims_parse and jansson (JSON_REJECT_DUPLICATES, an
 * object) agree on a document, and on each member's type and text. */
static int
same_as_jansson(const char *doc, size_t len)
{
	json_t *j = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
	struct jose_claims c;
	int mine = jose_claims_parse(&pl, doc, len, &c) == 0, theirs = json_is_object(j), same;
	const struct jose_claim *v;
	const char *p, *q;
	size_t n, m, i = 0, members = 0;
	char buf[32], qbuf[32];

	same = mine == theirs;
	while (same && mine && (v = jose_claims_next(&c, &i)) != NULL) {
		json_t *jv = json_object_getn(j, c.buf + v->name, v->nlen);
		int t = jose_claim_text(&c, v, buf, sizeof(buf), &p, &n);
		members++;
		switch (json_typeof(jv)) {
		case JSON_STRING:
			same = t && n == json_string_length(jv) && memcmp(p, json_string_value(jv), n) == 0;
			break;
		case JSON_INTEGER:
			m = (size_t)snprintf(qbuf, sizeof(qbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(jv));
			same = t && v->type == JOSE_C_INTEGER && n == m && memcmp(p, qbuf, n) == 0 &&
			    v->num == json_number_value(jv);
			break;
		case JSON_REAL:
			q = qbuf;
			m = (size_t)snprintf(qbuf, sizeof(qbuf), "%.17g", json_real_value(jv));
			same = t && v->type == JOSE_C_REAL && n == m && memcmp(p, q, n) == 0;
			break;
		case JSON_ARRAY: {
			size_t k = 0, idx;
			json_t *e;
			same = v->type == JOSE_C_LIST;
			json_array_foreach(jv, idx, e)
				if (same && json_is_string(e)) {
					k++;
					same = k <= v->nlist && jose_claim_is(&c, v + k, json_string_value(e));
				}
			same = same && k == v->nlist;
			break;
		}
		case JSON_OBJECT:
			same = v->type == JOSE_C_OBJECT;
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			same = t && strcmp(p, json_is_true(jv) ? "true" : "false") == 0;
			break;
		case JSON_NULL:
			same = v->type == JOSE_C_NULL && !t;
			break;
		}
	}
	same = same && (!mine || members == json_object_size(j));
	json_decref(j);
	return same;
}

static void
test_claims_parser(void)
{
	static const char *const docs[] = {
		"{}", " {\"a\":1} ", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "{a:1}", "{\"a\":01}",
		"{\"a\":-0}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+5}",
		"{\"a\":1E-5}", "{\"a\":-1.5e3}", "{\"a\":1.0}", "{\"a\":100000000000000000000000000000000}",
		"{\"a\":9223372036854775807}", "{\"a\":9223372036854775808}", "{\"a\":-9223372036854775808}",
		"{\"a\":-9223372036854775809}", "{\"a\":1e400}", "{\"a\":-1e400}", "{\"a\":1e-400}",
		"{\"a\":0.1}", "{\"a\":123456789.123456789}", "{\"a\":true}", "{\"a\":tru}", "{\"a\":truex}",
		"{\"a\":false,\"b\":null}", "{\"a\":nul}", "{\"a\":[]}", "{\"a\":[\"x\",1,[\"y\"],{\"z\":\"w\"},\"v\"]}",
		"{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":{\"b\":1,\"b\":2}}", "{\"a\":1,\"a\":1}",
		"{\"a\":{\"b\":1},\"b\":{\"b\":2}}", "{\"a\":[{\"b\":1},{\"b\":1}]}", "{\"a\":1,\"\\u0061\":2}",
		"{\"\":1}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\\ud83d\"}",
		"{\"a\":\"\\ude00\"}", "{\"a\":\"\\ud83dx\"}", "{\"a\":\"\\ud83d\\u0041\"}", "{\"a\":\"\\u00e9\\u20AC\"}",
		"{\"a\":\"\\uZZZZ\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
		"{\"a\":\"\t\"}", "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xc0\xaf\"}",
		"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf0\x9f\x98\x80\"}",
		"{\"a\":\"\xe0\x80\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":1}x", "{\"a\":1}{}", "[1]", "\"a\"", "1", "",
		" ", "{", "{\"a\"", "{\"a\":", "{\"a\":\"b", "{\"aud\":[\"api\",\"web\"],\"exp\":1.5,\"sub\":\"x\"}",
		"{\"a\":1}\n\r\t ", "{\"a\"\n:\n1\n}", "{\"a\":+1}", "{\"a\":Infinity}", "{\"a\":NaN}",
	};
	char deep[2 * 2050 + 16];

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		char name[200];
		size_t o = 0;
		for (const unsigned char *q = (const unsigned char *)docs[i]; *q != '\0' && o < 180; q++)
			o += (size_t)(*q >= 0x20 && *q < 0x7f ? sprintf(name + o, "%c", *q) :
			    sprintf(name + o, "\\x%02x", *q));
		name[o] = '\0';
		ok(same_as_jansson(docs[i], strlen(docs[i])), "claims parser as jansson: %s", name);
	}
	ok(same_as_jansson("{\"a\":\"x\0y\"}", 11), "claims parser as jansson: a raw NUL");
	/* jansson's limit: 2048 values deep, the claims set the first. */
	for (size_t d = 2046; d <= 2049; d++) {
		size_t n = 0;
		n += (size_t)sprintf(deep, "{\"a\":");
		for (size_t k = 2; k < d; k++)
			deep[n++] = '[';
		deep[n++] = '1';
		for (size_t k = 2; k < d; k++)
			deep[n++] = ']';
		deep[n++] = '}';
		struct jose_claims c;
		ok(same_as_jansson(deep, n), "claims parser as jansson: a value %zu deep", d);
		is(jose_claims_parse(&pl, deep, n, &c), d <= 2048 ? 0 : -1, "... %s", d <= 2048 ? "taken" :
		    "refused");
	}

	struct jose_claims c;
	const struct jose_claim *v;
	const char *p;
	size_t n;
	char buf[32];
	static const char doc[] = "{\"s\":\"a\\u00e9\",\"i\":-0,\"r\":1e3,\"t\":true,\"l\":[\"x\",2,\"y\"],"
	    "\"o\":{\"k\":\"v\"},\"z\":null}";
	is(jose_claims_parse(&pl, doc, strlen(doc), &c), 0, "claims: a document of every kind");
	is(c.n, 9, "... 7 members and 2 list strings");
	v = jose_claims_get(&c, "s");
	ok(jose_claim_text(&c, v, buf, sizeof(buf), &p, &n) && n == 3 && memcmp(p, "a\xc3\xa9", 3) == 0,
	    "... a string, unescaped");
	v = jose_claims_get(&c, "i");
	ok(jose_claim_text(&c, v, buf, sizeof(buf), &p, &n) && n == 1 && *p == '0', "... -0 as 0");
	v = jose_claims_get(&c, "r");
	ok(jose_claim_text(&c, v, buf, sizeof(buf), &p, &n) && n == 4 && memcmp(p, "1000", 4) == 0,
	    "... 1e3 as 1000");
	ok(jose_claims_get(&c, "l")->nlist == 2 && jose_claim_is(&c, jose_claims_get(&c, "l") + 2, "y"),
	    "... a list's strings");
	ok(!jose_claim_text(&c, jose_claims_get(&c, "o"), buf, sizeof(buf), &p, &n) &&
	    !jose_claim_text(&c, jose_claims_get(&c, "z"), buf, sizeof(buf), &p, &n), "... objects and null: no text");
	ok(jose_claims_get(&c, "k") == NULL && jose_claims_get(&c, "x") == NULL,
	    "... an inner object's members and list strings are no members");
	size_t it = 0, count = 0;
	while (jose_claims_next(&c, &it) != NULL)
		count++;
	is(count, 7, "... jose_claims_next visits the 7 members");
}

static void
test_store(void)
{
	struct request r;
	const char *v;
	size_t len;
	char big[REQ_CLAIM_BYTES];

	memset(&r, 0, sizeof(r));
	is(http_req_claim(&r, "sub", &v, &len), 0, "store: nothing set, nothing found");
	is(http_req_claim_set(&r, "sub", "alice", 5), 0, "store: sub set");
	is(http_req_claim_set(&r, "n", "42", 2), 0, "store: n set");
	is(http_req_claim(&r, "sub", &v, &len), 1, "store: sub found");
	is_slice(v, len, "alice", "... alice");
	is(http_req_claim(&r, "su", &v, &len), 0, "store: a prefix is not the name");
	is(http_req_claim_set(&r, "sub", "bob", 3), 0, "store: sub set again");
	is(http_req_claim(&r, "sub", &v, &len), 1, "store: sub found again");
	is_slice(v, len, "bob", "... the last value: bob");
	for (int i = 3; i < REQ_CLAIMS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		http_req_claim_set(&r, name, "v", 1);
	}
	is(http_req_claim_set(&r, "one_more", "v", 1), -1, "store: claim 17 refused");
	pipeline_end(&r);
	memset(&r, 0, sizeof(r));
	memset(big, 'x', sizeof(big));
	is(http_req_claim_set(&r, "k", big, REQ_CLAIM_BYTES - 1), 0, "store: 2 KiB in all taken");
	is(http_req_claim_set(&r, "", "", 0), 0, "store: an empty name and value still fit");
	is(http_req_claim_set(&r, "k", "v", 1), -1, "store: one byte more refused");
	is(http_req_claim(&r, "k", &v, &len), 1, "store: the big one found");
	is(len, REQ_CLAIM_BYTES - 1, "... whole");
	pipeline_end(&r);
	ok(r.mwx == NULL, "store: freed at the exchange's end");
}

int
main(void)
{
	test_b64url();
	test_rfc();
	test_hostile_hs();
	test_alg_swap();
	test_jwks();
	test_eddsa_rfc();
	test_eddsa_keys();
	test_claims();
	test_claims_parser();
	test_store();
	return done_testing();
}
