/*
 * resolve: looks up the pools' server names with libevent's evdns in the
 * main thread: once at start (without holding start-up up) and again every
 * `resolve` interval, so pools follow DNS-based service discovery.  A
 * failed lookup keeps the last good address.
 */
#ifndef PORTICO_RESOLVE_H
#define PORTICO_RESOLVE_H

struct event_base;
struct config;

/* Starts resolving every named server of conf's pools.  Returns the
 * resolver's state, or NULL when no server has a name. */
void *resolve_start(struct event_base *base, const struct config *conf);
void resolve_stop(void *state);

#endif
