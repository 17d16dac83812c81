/*
 * h2_head: an HTTP/2 request head made HTTP/1.1 text for the one parser.
 * Every field became a line of that text, so a byte that would end a
 * line is refused here, whatever nghttp2 checked before.
 */
#include "common/h2_head.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http.h"

static int
line_safe(const uint8_t *p, size_t n)
{
	return memchr(p, '\r', n) == NULL && memchr(p, '\n', n) == NULL && memchr(p, '\0', n) == NULL;
}

/* A pseudo-header's value (or Host's), kept NUL-terminated: in the
 * head's own buffer while it fits, so a request allocates none. */
static int
keep(struct h2_head *hh, char **slot, const uint8_t *v, size_t vlen)
{
	if (*slot != NULL)
		return -1;
	if (vlen < sizeof(hh->inl) - hh->inl_used) {
		*slot = hh->inl + hh->inl_used;
		memcpy(*slot, v, vlen);
		(*slot)[vlen] = '\0';
		hh->inl_used += vlen + 1;
		return 0;
	}
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
		    &hh->path : is(name, nlen, ":authority") ? &hh->authority :
		    is(name, nlen, ":protocol") ? &hh->protocol : NULL;
		/* :scheme is the listener's to say. */
		return slot != NULL ? keep(hh, slot, value, vlen) : 0;
	}
	if (is(name, nlen, "host")) {
		if (hh->host != NULL) {
			hh->refuse = 400;
			return 0;
		}
		return keep(hh, &hh->host, value, vlen);
	}
	if (is(name, nlen, "cookie")) {
		if (hh->cookie.len > 0)
			sbuf_add(&hh->cookie, "; ", 2);
		sbuf_add(&hh->cookie, value, vlen);
		return sbuf_failed(&hh->cookie) ? -1 : 0;
	}
	if (is(name, nlen, "content-length"))
		hh->has_length = 1;
	/* An HTTP/2 client sends none (RFC 8441 4); one that does would pick
	 * the accept value: ours is made up, and the only one. */
	if (is(name, nlen, "sec-websocket-key"))
		return 0;
	sbuf_add(&hh->fields, name, nlen);
	sbuf_add(&hh->fields, ": ", 2);
	sbuf_add(&hh->fields, value, vlen);
	sbuf_add(&hh->fields, "\r\n", 2);
	return sbuf_failed(&hh->fields) ? -1 : 0;
}

/* Whether two authorities are one once normalized by the scheme (RFC 3986
 * 6.2.2.1, 6.2.3): the host in any case, an empty port or the scheme's
 * default as no port. */
static int
same_authority(const char *a, const char *b, int https)
{
	const char *dport = https ? "443" : "80";
	size_t al = http_host_len(a, strlen(a)), bl = http_host_len(b, strlen(b));
	const char *ap = a[al] == ':' ? a + al + 1 : a + al, *bp = b[bl] == ':' ? b + bl + 1 : b + bl;

	if (strcmp(ap, dport) == 0)
		ap = "";
	if (strcmp(bp, dport) == 0)
		bp = "";
	return al == bl && strncasecmp(a, b, al) == 0 && strcmp(ap, bp) == 0;
}

/* Appends n bytes at *p. */
static void
put(char **p, const char *s, size_t n)
{
	memcpy(*p, s, n);
	*p += n;
}

#define PUT_LIT(p, s) put((p), (s), sizeof(s) - 1)

char *
h2_head_text(struct h2_head *hh, int has_body, const char *ws_key, size_t *len)
{
	const char *host = hh->authority != NULL ? hh->authority : hh->host;
	int ext = hh->protocol != NULL;
	int ws = ext && ws_key != NULL && strcasecmp(hh->protocol, "websocket") == 0;
	int te = has_body && !hh->has_length && !ext;

	if (hh->refuse == 0 && hh->authority != NULL && hh->host != NULL &&
	    !same_authority(hh->authority, hh->host, hh->https))
		hh->refuse = 400;
	if (hh->refuse != 0 || hh->method == NULL)
		return NULL;
	if (ext && (strcmp(hh->method, "CONNECT") != 0 || hh->path == NULL)) {
		hh->refuse = 400; /* nghttp2 checks this first; never a text for it */
		return NULL;
	}
	/* CONNECT has no :path; its target is the authority. */
	const char *method = ext ? "GET" : hh->method;
	const char *target = hh->path != NULL ? hh->path : hh->authority != NULL ? hh->authority : "";
	/* Sized first, then written: one allocation. */
	size_t n = strlen(method) + 1 + strlen(target) + sizeof(" HTTP/1.1\r\n") - 1 +
	    (host != NULL ? sizeof("host: \r\n") - 1 + strlen(host) : 0) +
	    (ext ? sizeof("upgrade: \r\nconnection: upgrade\r\n") - 1 + strlen(hh->protocol) : 0) +
	    (ws ? sizeof("sec-websocket-key: \r\n") - 1 + strlen(ws_key) : 0) +
	    hh->fields.len +
	    (hh->cookie.len > 0 ? sizeof("cookie: \r\n") - 1 + hh->cookie.len : 0) +
	    (te ? sizeof("transfer-encoding: chunked\r\n") - 1 : 0) + 2;
	char *text = malloc(n), *p = text;
	if (text == NULL)
		return NULL;
	put(&p, method, strlen(method));
	PUT_LIT(&p, " ");
	put(&p, target, strlen(target));
	PUT_LIT(&p, " HTTP/1.1\r\n");
	if (host != NULL) {
		PUT_LIT(&p, "host: ");
		put(&p, host, strlen(host));
		PUT_LIT(&p, "\r\n");
	}
	if (ext) {
		PUT_LIT(&p, "upgrade: ");
		put(&p, hh->protocol, strlen(hh->protocol));
		PUT_LIT(&p, "\r\nconnection: upgrade\r\n");
	}
	if (ws) {
		PUT_LIT(&p, "sec-websocket-key: ");
		put(&p, ws_key, strlen(ws_key));
		PUT_LIT(&p, "\r\n");
	}
	if (hh->fields.len > 0)
		put(&p, hh->fields.p, hh->fields.len);
	if (hh->cookie.len > 0) {
		PUT_LIT(&p, "cookie: ");
		put(&p, hh->cookie.p, hh->cookie.len);
		PUT_LIT(&p, "\r\n");
	}
	if (te)
		PUT_LIT(&p, "transfer-encoding: chunked\r\n");
	PUT_LIT(&p, "\r\n");
	*len = n;
	return text;
}

void
h2_head_free(struct h2_head *hh)
{
	char **slots[] = { &hh->method, &hh->path, &hh->authority, &hh->host, &hh->protocol };

	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
		if ((uintptr_t)*slots[i] - (uintptr_t)hh->inl >= sizeof(hh->inl))
			free(*slots[i]); /* not in inl: strndup'd */
	sbuf_free(&hh->fields);
	sbuf_free(&hh->cookie);
	memset(hh, 0, sizeof(*hh));
}
