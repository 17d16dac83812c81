/*
 * prometheus: the server's counters in the Prometheus text exposition
 * format, version 0.0.4 (`metrics = prometheus`).
 */
#ifndef PORTICO_PROMETHEUS_H
#define PORTICO_PROMETHEUS_H

#include "common/handler.h"

extern const struct handler_ops prometheus_ops;

#endif
