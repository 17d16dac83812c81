/*
 * accesslog: the access log line of an exchange.
 */
#ifndef PORTICO_ACCESSLOG_H
#define PORTICO_ACCESSLOG_H

#include <stdint.h>

struct request;
struct worker;

/* Queues r's line: usec is the time it took. */
void access_log_write(struct worker *w, const struct request *r, uint64_t usec);

#endif
