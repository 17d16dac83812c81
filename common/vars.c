#include "common/vars.h"

#include <string.h>

#include "common/exchange.h"
#include "common/http.h"
#include "common/sbuf.h"

/* The variables, like nginx's of the same names. */
static const char *const var_names[] = { "scheme", "host", "request_uri", "uri", "args", NULL };

/* Length of the variable name at s ("$name" or "${name}"), matched against
 * var_names; sets *idx.  "$$" is a literal '$' (idx -1).  0 when s does not
 * start a known variable. */
static size_t
var_at(const char *s, int *idx)
{
	int braced = s[1] == '{';

	if (s[1] == '$') {
		*idx = -1;
		return 2;
	}
	const char *n = s + 1 + braced;

	for (int i = 0; var_names[i] != NULL; i++) {
		size_t l = strlen(var_names[i]);
		if (strncmp(n, var_names[i], l) != 0)
			continue;
		if (braced ? n[l] != '}' : (n[l] == '_' || (n[l] >= 'a' && n[l] <= 'z')))
			continue;
		*idx = i;
		return 1 + (size_t)braced + l + (size_t)braced;
	}
	return 0;
}

/* The host a client asked for, port and trailing dot removed, lower case. */
static void
add_host(struct sbuf *out, const struct request *r)
{
	const char *h = r->hr->host;
	size_t n = r->hr->host_len;

	if (h == NULL || n == 0)
		return;
	n = http_host_len(h, n);
	if (n > 0 && h[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++) {
		char c = h[i] >= 'A' && h[i] <= 'Z' ? (char)(h[i] + 32) : h[i];
		sbuf_add(out, &c, 1);
	}
}

/* What expand escapes for HTML: nothing, the values of variables only (a
 * configured body is markup as written), or everything (a URL put in an
 * attribute). */

/* Appends tmpl with its variables replaced, escaped as esc says. */
void
vars_expand(struct sbuf *out, const char *tmpl, const struct request *r, enum vars_escape esc)
{
	struct sbuf v = { 0 };

	for (const char *p = tmpl; *p != '\0';) {
		int idx;
		size_t l = *p == '$' ? var_at(p, &idx) : 0;
		if (l == 0) {
			const char *q = strchr(p + 1, '$');
			size_t run = q != NULL ? (size_t)(q - p) : strlen(p);
			v.len = 0;
			sbuf_add(&v, p, run);
			p += run;
		} else {
			const struct http_request *hr = r->hr;
			v.len = 0;
			switch (idx) {
			case -1: sbuf_str(&v, "$"); break;
			case 0: sbuf_str(&v, r->conn->ssl != NULL ? "https" : "http"); break;
			case 1: add_host(&v, r); break;
			case 2:
				sbuf_add(&v, hr->path, hr->path_len);
				if (hr->query != NULL) {
					sbuf_str(&v, "?");
					sbuf_add(&v, hr->query, hr->query_len);
				}
				break;
			case 3: sbuf_urlpath(&v, r->npath); break;
			case 4: if (hr->query != NULL) sbuf_add(&v, hr->query, hr->query_len); break;
			}
			p += l;
		}
		if (v.len == 0)
			continue;
		if (esc == VARS_HTML_ALL || (esc == VARS_HTML_VALUES && l > 0))
			sbuf_html(out, v.p);
		else
			sbuf_add(out, v.p, v.len);
	}
	sbuf_free(&v);
}

int
vars_check(const char *tmpl, const char **bad)
{
	int idx, any = 0;

	for (const char *p = strchr(tmpl, '$'); p != NULL; p = strchr(p, '$')) {
		size_t l = var_at(p, &idx);
		if (l == 0) {
			*bad = p;
			return -1;
		}
		any = 1;
		p += l;
	}
	return any;
}
