/*
 * status: the server's counters as one JSON document (`status = json`).
 */
#ifndef PORTICO_STATUS_H
#define PORTICO_STATUS_H

#include "common/handler.h"

extern const struct handler_ops status_ops;

#endif
