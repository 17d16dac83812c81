/*
 * http: protocol facts shared by every role: status texts, dates.
 */
#ifndef PORTICO_HTTP_H
#define PORTICO_HTTP_H

#include <stddef.h>
#include <time.h>

#define PORTICO_VERSION "0.1.0"

/* The reason phrase for status, or "Unknown". */
const char *http_status_text(int status);
/* Formats t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into buf (>= 30 bytes). */
void http_date(time_t t, char *buf, size_t len);

#endif
