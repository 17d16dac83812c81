/*
 * http: protocol facts shared by every role: status texts, dates.
 */
#ifndef PORTICO_HTTP_H
#define PORTICO_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PORTICO_VERSION "0.1.0"

/* The reason phrase for status, or "Unknown". */
const char *http_status_text(int status);
/* Formats t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into buf (>= 30 bytes). */
void http_date(time_t t, char *buf, size_t len);

/*
 * Parses an HTTP date in any of the three forms RFC 9110 section 5.6.7
 * requires recipients to accept (IMF-fixdate, RFC 850, asctime).  Returns 0
 * and stores the time, or -1 if s[0..len) is not such a date.
 */
int http_parse_date(const char *s, size_t len, time_t *out);

/* The host part of an authority h[0..n) ("example.com:8080",
 * "[::1]:443"): its length, brackets kept; the port, if any, follows
 * its ':'. */
size_t http_host_len(const char *h, size_t n);

/* v in decimal, written to end at end (20 bytes before it are enough);
 * returns where it starts.  A status or a length on every response:
 * cheaper than snprintf. */
static inline char *
http_dec(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

#endif
