/*
 * sbuf: a growable byte string for building bodies (listings, JSON).
 * An allocation failure sticks: later appends do nothing and sbuf_failed
 * says so, so callers check once at the end.
 */
#ifndef PORTICO_SBUF_H
#define PORTICO_SBUF_H

#include <stddef.h>

struct sbuf {
	char *p;
	size_t len, cap;
	size_t max;      /* growth limit; 0 means 64 MiB */
	int failed;
};

void sbuf_add(struct sbuf *b, const void *data, size_t len);
void sbuf_str(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with &, <, >, " and ' as HTML character references. */
void sbuf_html(struct sbuf *b, const char *s);
/* Appends s as the inside of a JSON string. */
void sbuf_json(struct sbuf *b, const char *s);
/* Appends s percent-encoded for a URL path ('/' kept; '&' and quotes encoded, so the
 * result is safe inside an HTML attribute too). */
void sbuf_urlpath(struct sbuf *b, const char *s);
int sbuf_failed(const struct sbuf *b);
void sbuf_free(struct sbuf *b);

#endif
