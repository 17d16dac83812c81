/*
 * mw_jwt: `type = jwt`, bearer tokens (RFC 6750) that are JSON Web Tokens
 * (RFC 7519), checked before the request goes on.
 *
 *   [middleware:auth]
 *   type = jwt
 *   algorithm = ES256
 *   jwks = /etc/portico/issuer.jwks
 *   issuer = https://id.example.com
 *   audience = api
 *   require = exp, sub
 *   forward_claims = sub:X-User
 *
 * The token comes from `Authorization: Bearer` or, failing that, from a
 * cookie (`cookie = NAME`); jose.c verifies it with the configured key
 * and algorithm alone.  A request without a valid token is answered with
 * 401 (400 for a malformed request) and WWW-Authenticate; one with a
 * valid token goes on, with the claims named by forward_claims as
 * request headers (the client's own copies of them are always removed
 * first) and its claims kept for later middleware (http_req_claim).
 * Keys are read when the configuration is loaded, so a reload reads them
 * again.
 */
#ifndef PORTICO_MW_JWT_H
#define PORTICO_MW_JWT_H

#include "common/pipeline.h"

extern const struct mw_ops jwt_mw_ops;

#endif
