/*
 * proxy: the handler that sends a route's requests to a [pool:NAME] of
 * backends (`pool = NAME`), over per-worker keep-alive connections,
 * streaming bodies both ways with back-pressure.
 */
#ifndef PORTICO_PROXY_H
#define PORTICO_PROXY_H

#include "common/handler.h"

extern const struct handler_ops proxy_ops;

#endif
