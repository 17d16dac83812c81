/*
 * health: active health checks for pools with `health_check = METHOD PATH
 * every DURATION [expect LO-HI]`.  They run in the main thread, off the
 * request path, each over an upstream connection (upstream.h) with its
 * answer's head read by http_parse_response; a server is marked down after
 * `fall` failed checks in a row and up again after `rise` good ones,
 * through an atomic every worker reads.
 */
#ifndef PORTICO_HEALTH_CHECK_H
#define PORTICO_HEALTH_CHECK_H

struct event_base;
struct config;

/* Starts the checks of every pool in conf on base.  Returns the checker's
 * state for health_stop, which may be NULL (out of memory: no checks). */
void *health_start(struct event_base *base, const struct config *conf);
void health_stop(void *state);

#endif
