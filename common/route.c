#include "common/route.h"

#include <string.h>
#include <strings.h>

#include "common/http_parse.h"

long
route_normalize_path(const char *path, size_t len, char *out)
{
	size_t o = 0, i = 0;

	if (len == 0 || path[0] != '/')
		return -1;
	while (i < len) {
		/* At a segment start: out[o-1] is '/' or o == 0. */
		char c = path[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len || (h = http_hexval((unsigned char)path[i + 1])) < 0 ||
			    (l = http_hexval((unsigned char)path[i + 2])) < 0)
				return -1;
			c = (char)(h * 16 + l);
			if (c == '\0')
				return -1;
			i += 3;
		} else {
			i++;
		}
		if (c == '/' && o > 0 && out[o - 1] == '/')
			continue; /* merge slashes */
		out[o++] = c;
		/* Resolve "/." and "/.." once the segment ends. */
		int at_end = i >= len;
		char next = 0;
		if (!at_end) {
			next = path[i];
			if (next == '%' && i + 2 < len && http_hexval((unsigned char)path[i + 1]) == 2 &&
			    (path[i + 2] == 'f' || path[i + 2] == 'F'))
				next = '/';
		}
		if (at_end || next == '/') {
			if (o >= 2 && out[o - 1] == '.' && out[o - 2] == '/') {
				o -= 1; /* "/." -> "/" */
			} else if (o >= 3 && out[o - 1] == '.' && out[o - 2] == '.' && out[o - 3] == '/') {
				if (o == 3)
					return -1; /* above the root */
				o -= 3;
				while (o > 0 && out[o - 1] != '/')
					o--;
			}
		}
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return (long)o;
}

/* Matches a lower-case pattern ("example.com" or "*.example.com") against a
 * host of any case, port already stripped.  2 exact, 1 wildcard, 0 no match. */
static int
host_matches(const char *pat, const char *h, size_t n)
{
	if (pat[0] == '*') {
		size_t pl = strlen(pat + 1); /* ".example.com" */
		return n > pl && strncasecmp(h + n - pl, pat + 1, pl) == 0 ? 1 : 0;
	}
	return strlen(pat) == n && strncasecmp(pat, h, n) == 0 ? 2 : 0;
}

const struct conf_route *
route_match(const struct config *conf, unsigned listen_idx, const char *host,
    size_t host_len, const char *path, size_t path_len)
{
	uint64_t bit = 1ULL << listen_idx;
	const struct conf_route *best = NULL;
	int best_class = -1;
	size_t hl = 0;

	if (host != NULL) {
		/* Strip ":port" (after "]" for IPv6 literals) and a trailing dot. */
		const char *end = host + host_len, *p = end;
		while (p > host && p[-1] >= '0' && p[-1] <= '9')
			p--;
		if (p > host && p[-1] == ':' && (host[0] != '[' || p[-2] == ']'))
			end = p - 1;
		hl = (size_t)(end - host);
		if (hl > 0 && host[hl - 1] == '.')
			hl--;
	}
	/*
	 * The best match: an exact host beats a wildcard beats no host, then
	 * the longer path prefix wins.  Routes are sorted that way already, so
	 * this usually ends at the first match; the class is per matching host
	 * because one route may list both kinds.
	 */
	for (size_t i = 0; i < conf->nroutes; i++) {
		const struct conf_route *r = &conf->routes[i];
		int cls = 0;
		if (!(r->listen_mask & bit))
			continue;
		if (r->nhosts > 0) {
			for (size_t j = 0; j < r->nhosts && host != NULL; j++) {
				int m = host_matches(r->hosts[j], host, hl);
				cls = m > cls ? m : cls;
			}
			if (cls == 0)
				continue;
		}
		if (path_len < r->path_len || memcmp(path, r->path, r->path_len) != 0)
			continue;
		/* "/api" matches "/api" and "/api/x", not "/apix". */
		if (r->path[r->path_len - 1] != '/' && path_len > r->path_len &&
		    path[r->path_len] != '/')
			continue;
		if (cls > best_class || (cls == best_class && r->path_len > best->path_len)) {
			best = r;
			best_class = cls;
		}
		if (best_class == 2)
			break; /* nothing later can beat an exact host with a longer prefix */
	}
	return best;
}
