/*
 * health: a liveness answer for load balancers (`health = on`): 200 with
 * {"status":"healthy",...}, or 503 "draining" once a graceful stop began,
 * so a balancer takes this instance out before it goes away.
 */
#ifndef PORTICO_HEALTH_H
#define PORTICO_HEALTH_H

#include "common/handler.h"

extern const struct handler_ops health_ops;

/* Answers 405 for methods other than GET and HEAD; returns 0 if it did. */
int origin_only_get(struct request *r);

#endif
