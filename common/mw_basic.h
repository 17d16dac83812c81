/*
 * mw_basic: `type = basic`, HTTP Basic authentication (RFC 7617) against
 * an htpasswd file of bcrypt or SHA-crypt hashes (htpasswd.h).
 *
 *   [middleware:staff]
 *   type = basic
 *   htpasswd = /etc/portico/staff.htpasswd
 *   realm = Staff only
 *
 * A request without good credentials is answered 401 with the challenge;
 * one with them goes on, its user in the access log ("user" field).  The
 * file is read when the configuration is loaded, so a reload reads it
 * again.
 */
#ifndef PORTICO_MW_BASIC_H
#define PORTICO_MW_BASIC_H

#include <stddef.h>

#include "common/htpasswd.h"
#include "common/pipeline.h"

/* The longest "user:password" taken: crypt takes passwords below 512 bytes. */
#define BASIC_MAX_CREDENTIALS (HTPASSWD_MAX_USER + 1 + 511)

extern const struct mw_ops basic_mw_ops;

/*
 * Decodes an Authorization value v[0, len): "Basic" in any case, one or
 * more spaces, then canonical padded base64 of "user:password".  On
 * success writes user:password NUL-terminated to out (cap bytes, at least
 * BASIC_MAX_CREDENTIALS + 1 to take all that may be taken), the colon
 * (the first one: RFC 7617 user ids hold none) at out[*ulen], and returns
 * its length.  -1 when v is not that, the credentials hold no colon or a
 * NUL or control byte, or do not fit.
 */
int basic_credentials(const char *v, size_t len, char *out, size_t cap, size_t *ulen);

#endif
