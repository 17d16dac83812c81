/*
 * jose: JSON Web Tokens in the JWS compact form (RFC 7515, 7518, 7519),
 * verified with keys fixed by the configuration.
 *
 * The algorithm is the key set's, never the token's: a token whose "alg"
 * differs is refused before its signature is looked at, so "none", or an
 * HMAC token made with an RSA public key as its secret, never verifies.
 * Keys come from a secret (HS*), a PEM public key or a JWKS document
 * (RS*, PS256, ES*, EdDSA), read once when the configuration is loaded; a key
 * set is then read-only and shared by every worker.  Signatures are
 * checked with OpenSSL's EVP interfaces; JSON is read by jansson (JWKS,
 * headers) and by jose_claims (payloads) with duplicate names refused.
 * Nothing here knows HTTP.
 */
#ifndef PORTICO_JOSE_H
#define PORTICO_JOSE_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/jose_claims.h"

/* The longest token taken, in bytes; it bounds every JSON document read
 * from a token too. */
#define JOSE_MAX_TOKEN 8192
/* The most keys a JWKS document may give for the configured algorithm. */
#define JOSE_MAX_KEYS 64
/* The largest JWKS or PEM document read. */
#define JOSE_MAX_DOC (1024 * 1024)

enum jose_alg {
	JOSE_HS256, JOSE_HS384, JOSE_HS512,
	JOSE_RS256, JOSE_RS384, JOSE_RS512,
	JOSE_PS256,
	JOSE_ES256, JOSE_ES384,
	JOSE_EDDSA,                    /* RFC 8037: Ed25519 or Ed448, as the key is */
	JOSE_NALG
};

struct jose_key {
	char *kid;                     /* a JWKS key's "kid", or NULL */
	EVP_PKEY *pkey;                /* RS*, PS*, ES*, EdDSA */
	EVP_MAC_CTX *mac;              /* HS*: keyed once, never used itself: see jose_keys_mac */
};

/* The keys one configuration verifies with, all for one algorithm. */
#define JOSE_PLAIN_HEADERS 3

struct jose_keys {
	int alg;                       /* enum jose_alg */
	EVP_MD *md;                    /* NULL for EdDSA, which hashes as it signs */
	struct jose_key *v;
	size_t n;
	/* The headers most issuers write ({"alg":"HS256","typ":"JWT"}...),
	 * base64url-encoded: a token's header equal to one byte for byte is
	 * known good without being parsed. */
	char plain[JOSE_PLAIN_HEADERS][48];
};

/* What the claims of a token must satisfy. */
struct jose_policy {
	int64_t leeway;                /* seconds allowed past exp and before nbf */
	const char *issuer;            /* "iss" must be this; NULL: not checked */
	char **audience;               /* "aud" must hold one of these ... */
	size_t naudience;              /* ... and, when 0, must not be present */
	char **require;                /* claims that must be present (not null) */
	size_t nrequire;
};

/* The algorithm named name ("HS256"...), or -1 ("none" and unknown names). */
int jose_alg_parse(const char *name);
const char *jose_alg_name(int alg);
/* Whether alg is an HMAC one (HS*). */
int jose_alg_hmac(int alg);

/*
 * Key sets: ks zeroed first, then one of these, then jose_keys_free
 * (which is also what to call after a failure).  Each returns 0, or -1
 * with a reason for the configuration's error message in err.
 *   secret: an HMAC key of at least the hash's size (RFC 7518 3.2);
 *   pem:    one PEM public key ("BEGIN PUBLIC KEY"), RSA of 2048 bits or
 *           more for RS* and PS*, EC on P-256 / P-384 for ES256 / ES384,
 *           Ed25519 or Ed448 for EdDSA;
 *   jwks:   a JWKS document {"keys": [...]}: the keys of alg's kind (and
 *           "alg", "use" if they say) are taken, every other skipped (for
 *           EdDSA: kty OKP with crv Ed25519 or Ed448; an OKP key of
 *           another crv, such as X25519, is for key agreement);
 *           one taken that is malformed, two with one "kid", or none at
 *           all is an error.
 */
int jose_keys_secret(struct jose_keys *ks, int alg, const void *secret, size_t len, char *err,
    size_t errlen);
int jose_keys_pem(struct jose_keys *ks, int alg, const char *pem, size_t len, char *err,
    size_t errlen);
int jose_keys_jwks(struct jose_keys *ks, int alg, const char *json, size_t len, char *err,
    size_t errlen);
void jose_keys_free(struct jose_keys *ks);

/*
 * Verifies a token, header.payload.signature, len bytes (at most
 * JOSE_MAX_TOKEN): base64url without padding, the header's "alg" the key
 * set's, no "crit", the key chosen by the header's "kid" (a token without
 * one only where there is one key), then the signature, and only then the
 * payload, a JSON object (see jose_claims.h), parsed in pl.  mac is the
 * calling thread's own copy of the HMAC context (jose_keys_mac), reused
 * and left keyed; NULL: a copy is made for this call, which costs more
 * than the HMAC.  Returns 0 with *claims a view of pl (valid until pl is
 * used again), or -1 with *why a short static reason for the log.
 * Claims are not checked here: see jose_check_claims.
 */
int jose_verify(const struct jose_keys *ks, EVP_MAC_CTX *mac, const char *tok, size_t len,
    struct jose_payload *pl, struct jose_claims *claims, const char **why);
/* A copy of an HS* key set's keyed HMAC context, for one thread at a time
 * to pass to jose_verify again and again (the caller's: EVP_MAC_CTX_free);
 * NULL for other key sets or out of memory. */
EVP_MAC_CTX *jose_keys_mac(const struct jose_keys *ks);
/* Checks exp, nbf, iss, aud and the required claims against p at time now
 * (seconds since the epoch).  0, or -1 with *why set. */
int jose_check_claims(const struct jose_claims *claims, const struct jose_policy *p, int64_t now,
    const char **why);

/* Strict base64url (RFC 4648 5, no padding, unused bits zero): the decoded
 * length, or -1 for a bad character, a bad length or more than cap bytes. */
ssize_t jose_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
