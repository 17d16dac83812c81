/*
 * h2_head: an HTTP/2 request head made HTTP/1.1 text for the one parser.
 * Every field became a line of that text, so a byte that would end a
 * line is refused here, whatever nghttp2 checked before.
 */
#include "common/h2_head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
line_safe(const uint8_t *p, size_t n)
{
	return memchr(p, '\r', n) == NULL && memchr(p, '\n', n) == NULL && memchr(p, '\0', n) == NULL;
}

static int
keep(char **slot, const uint8_t *v, size_t vlen)
{
	if (*slot != NULL)
		return -1;
	*slot = strndup((const char *)v, vlen);
	return *slot == NULL ? -1 : 0;
}

static int
is(const uint8_t *name, size_t nlen, const char *lit)
{
	return nlen == strlen(lit) && memcmp(name, lit, nlen) == 0;
}

int
h2_head_field(struct h2_head *hh, const uint8_t *name, size_t nlen, const uint8_t *value,
    size_t vlen, uint64_t max_bytes, uint64_t max_fields)
{
	/* A colon only opens a pseudo-header's name. */
	if (nlen == 0 || !line_safe(name, nlen) || !line_safe(value, vlen) ||
	    memchr(name + 1, ':', nlen - 1) != NULL)
		return -1;
	hh->bytes += nlen + vlen + 32;
	if (hh->refuse != 0)
		return 0;
	if (hh->bytes > max_bytes || ++hh->nfields > max_fields) {
		hh->refuse = 431;
		return 0;
	}
	if (name[0] == ':') {
		char **slot = is(name, nlen, ":method") ? &hh->method : is(name, nlen, ":path") ?
		    &hh->path : is(name, nlen, ":authority") ? &hh->authority : NULL;
		/* :scheme is the listener's to say; :protocol is not offered. */
		return slot != NULL ? keep(slot, value, vlen) : 0;
	}
	if (is(name, nlen, "host")) {
		if (hh->host != NULL) {
			hh->refuse = 400;
			return 0;
		}
		return keep(&hh->host, value, vlen);
	}
	if (is(name, nlen, "cookie")) {
		if (hh->cookie.len > 0)
			sbuf_add(&hh->cookie, "; ", 2);
		sbuf_add(&hh->cookie, value, vlen);
		return sbuf_failed(&hh->cookie) ? -1 : 0;
	}
	if (is(name, nlen, "content-length"))
		hh->has_length = 1;
	sbuf_add(&hh->fields, name, nlen);
	sbuf_add(&hh->fields, ": ", 2);
	sbuf_add(&hh->fields, value, vlen);
	sbuf_add(&hh->fields, "\r\n", 2);
	return sbuf_failed(&hh->fields) ? -1 : 0;
}

char *
h2_head_text(struct h2_head *hh, int has_body, size_t *len)
{
	const char *host = hh->authority != NULL ? hh->authority : hh->host;
	struct sbuf b = { 0 };

	if (hh->refuse == 0 && hh->authority != NULL && hh->host != NULL &&
	    strcasecmp(hh->authority, hh->host) != 0)
		hh->refuse = 400;
	if (hh->refuse != 0 || hh->method == NULL)
		return NULL;
	sbuf_str(&b, hh->method);
	sbuf_add(&b, " ", 1);
	/* CONNECT has no :path; its target is the authority. */
	sbuf_str(&b, hh->path != NULL ? hh->path : hh->authority != NULL ? hh->authority : "");
	sbuf_str(&b, " HTTP/1.1\r\n");
	if (host != NULL) {
		sbuf_str(&b, "host: ");
		sbuf_str(&b, host);
		sbuf_str(&b, "\r\n");
	}
	sbuf_add(&b, hh->fields.p, hh->fields.len);
	if (hh->cookie.len > 0) {
		sbuf_str(&b, "cookie: ");
		sbuf_add(&b, hh->cookie.p, hh->cookie.len);
		sbuf_str(&b, "\r\n");
	}
	if (has_body && !hh->has_length)
		sbuf_str(&b, "transfer-encoding: chunked\r\n");
	sbuf_str(&b, "\r\n");
	if (sbuf_failed(&b)) {
		sbuf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

void
h2_head_free(struct h2_head *hh)
{
	free(hh->method);
	free(hh->path);
	free(hh->authority);
	free(hh->host);
	sbuf_free(&hh->fields);
	sbuf_free(&hh->cookie);
	memset(hh, 0, sizeof(*hh));
}
