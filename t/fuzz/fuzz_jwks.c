/*
 * libFuzzer target for jose_keys_jwks: the input is a JWKS document, read
 * for ES256, ES384, RS256, PS256 and EdDSA in turn.  A document taken gives
 * between 1 and JOSE_MAX_KEYS keys, each with a public key, no two with
 * one kid; one refused says why.  Any disagreement traps.
 */
#include "common/jose.h"

#include <stdint.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int algs[] = { JOSE_ES256, JOSE_ES384, JOSE_RS256, JOSE_PS256, JOSE_EDDSA };
	char err[256];

	for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
		struct jose_keys ks = { 0 };
		err[0] = '\0';
		if (jose_keys_jwks(&ks, algs[a], (const char *)data, size, err, sizeof(err)) == 0) {
			CHECK(ks.n >= 1 && ks.n <= JOSE_MAX_KEYS);
			for (size_t i = 0; i < ks.n; i++) {
				CHECK(ks.v[i].pkey != NULL && ks.v[i].mac == NULL);
				for (size_t j = 0; j < i && ks.v[i].kid != NULL; j++)
					CHECK(ks.v[j].kid == NULL || strcmp(ks.v[i].kid, ks.v[j].kid) != 0);
			}
		} else {
			CHECK(err[0] != '\0');
		}
		jose_keys_free(&ks);
	}
	return 0;
}
