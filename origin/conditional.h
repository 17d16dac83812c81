/*
 * conditional: If-Match, If-None-Match, If-Modified-Since,
 * If-Unmodified-Since and If-Range (RFC 9110 section 13), for handlers
 * that know an entity-tag and a Last-Modified date.
 */
#ifndef PORTICO_CONDITIONAL_H
#define PORTICO_CONDITIONAL_H

#include <time.h>

struct request;

/* The preconditions in their order (RFC 9110 13.2.2): 0 to go on, or the
 * status (304, 412) to answer with.  For GET and HEAD. */
int cond_preconditions(const struct request *r, const char *etag, time_t lm);
/* Whether a Range applies: no If-Range, or one naming our strong etag or
 * our exact Last-Modified date. */
int cond_if_range(const struct request *r, const char *etag, time_t lm);

#endif
