#include "common/return.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/sbuf.h"
#include "common/units.h"

/* A body read from return_file is held in memory; keep it reasonable. */
#define RETURN_FILE_MAX (8u << 20)

struct return_conf {
	int status;
	int vars;            /* the text or URL holds $variables, expanded per request */
	int markup;          /* return_type is HTML or XML: values are escaped */
	char *text;          /* the template, when vars */
	char *location;      /* for 301, 302, 303, 307, 308 */
	char *type;
	char *body;
	size_t body_len;
};

static int
is_redirect(int s)
{
	return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

static int
read_body_file(struct conf_ctx *ctx, const struct conf_kv *kv, struct return_conf *rc)
{
	FILE *fp = fopen(kv->value, "rb");
	struct stat st;

	if (fp == NULL || fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		conf_err(ctx, kv->line, ctx->section, "return_file", "cannot read %s: %s", kv->value,
		    fp == NULL ? strerror(errno) : "not a regular file");
		goto fail;
	}
	if ((uint64_t)st.st_size > RETURN_FILE_MAX) {
		conf_err(ctx, kv->line, ctx->section, "return_file", "%s is larger than 8m", kv->value);
		goto fail;
	}
	rc->body = malloc((size_t)st.st_size + 1);
	if (rc->body == NULL || fread(rc->body, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
		conf_err(ctx, kv->line, ctx->section, "return_file", "cannot read %s", kv->value);
		goto fail;
	}
	rc->body_len = (size_t)st.st_size;
	fclose(fp);
	return 0;
fail:
	if (fp != NULL)
		fclose(fp);
	return -1;
}

/* The variables a return may use, like nginx's of the same names. */
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
	if (h[0] == '[') {
		const char *rb = memchr(h, ']', n);
		n = rb != NULL ? (size_t)(rb - h) + 1 : n;
	} else {
		const char *colon = memchr(h, ':', n);
		n = colon != NULL ? (size_t)(colon - h) : n;
	}
	if (n > 0 && h[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++) {
		char c = h[i] >= 'A' && h[i] <= 'Z' ? (char)(h[i] + 32) : h[i];
		sbuf_add(out, &c, 1);
	}
}

/*
 * Whether a media type is markup a browser parses, where a value from the
 * request could open a <script>: HTML, XHTML and other XML (SVG included).
 * The type alone decides, its parameters ("; charset=utf-8") aside.
 */
static int
is_markup_type(const char *type)
{
	static const char *const types[] = { "text/html", "application/xhtml+xml", "text/xml",
		"application/xml", NULL };
	size_t n = strcspn(type, "; \t");

	for (int i = 0; types[i] != NULL; i++)
		if (n == strlen(types[i]) && strncasecmp(type, types[i], n) == 0)
			return 1;
	return n > 4 && strncasecmp(type + n - 4, "+xml", 4) == 0;
}

/* What expand escapes for HTML: nothing, the values of variables only (a
 * configured body is markup as written), or everything (a URL put in an
 * attribute). */
enum expand_escape { ESC_NONE, ESC_VALUES, ESC_ALL };

/* Appends tmpl with its variables replaced, escaped as esc says. */
static void
expand(struct sbuf *out, const char *tmpl, const struct request *r, enum expand_escape esc)
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
		if (esc == ESC_ALL || (esc == ESC_VALUES && l > 0))
			sbuf_html(out, v.p);
		else
			sbuf_add(out, v.p, v.len);
	}
	sbuf_free(&v);
}

static void
return_free(void *p)
{
	struct return_conf *rc = p;

	if (rc == NULL)
		return;
	free(rc->location);
	free(rc->text);
	free(rc->type);
	free(rc->body);
	free(rc);
}

static int
return_configure(struct conf_ctx *ctx, struct conf_route *rt, const struct conf_kv *kv)
{
	struct return_conf *rc = calloc(1, sizeof(*rc));
	const struct conf_kv *file = conf_route_kv(rt, "return_file");
	const struct conf_kv *type = conf_route_kv(rt, "return_type");
	char code[8];
	const char *rest;
	uint64_t st;

	if (rc == NULL)
		return -1;
	rt->hconf = rc;
	rest = kv->value + strcspn(kv->value, " \t");
	snprintf(code, sizeof(code), "%.*s", (int)(rest - kv->value), kv->value);
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (units_count(code, 999, &st) < 0 || st < 200 || st > 599) {
		conf_err(ctx, kv->line, ctx->section, "return",
		    "expected a status from 200 to 599, then an optional text or URL; not \"%s\"",
		    kv->value);
		return -1;
	}
	rc->status = (int)st;
	for (const char *p = strchr(rest, '$'); p != NULL; p = strchr(p, '$')) {
		int idx;
		size_t l = var_at(p, &idx);
		if (l == 0) {
			conf_err(ctx, kv->line, ctx->section, "return",
			    "unknown variable at \"%.20s\" (known: $scheme, $host, $request_uri, $uri, $args; "
			    "$$ for a literal $)", p);
			return -1;
		}
		rc->vars = 1;
		p += l;
	}
	if (rc->vars)
		rc->text = strdup(rest);
	if (is_redirect(rc->status)) {
		if (*rest == '\0' || file != NULL) {
			conf_err(ctx, kv->line, ctx->section, "return",
			    "a redirect needs a URL: return = %d https://example.com/", rc->status);
			return -1;
		}
		struct sbuf b = { 0 };
		rc->location = strdup(rest);
		rc->type = strdup("text/html");
		sbuf_str(&b, "<html><body><a href=\"");
		sbuf_html(&b, rest);
		sbuf_str(&b, "\">moved here</a></body></html>\n");
		if (sbuf_failed(&b) || rc->location == NULL || rc->type == NULL) {
			sbuf_free(&b);
			return -1;
		}
		rc->body = b.p;
		rc->body_len = b.len;
		return 0;
	}
	if (*rest != '\0' && file != NULL) {
		conf_err(ctx, file->line, ctx->section, "return_file",
		    "give either a text in return or return_file, not both");
		return -1;
	}
	if (file != NULL && read_body_file(ctx, file, rc) < 0)
		return -1;
	if (file == NULL) {
		rc->body = strdup(rest);
		rc->body_len = strlen(rest);
	}
	rc->type = strdup(type != NULL ? type->value : "text/plain; charset=utf-8");
	if (rc->type == NULL)
		return -1;
	rc->markup = is_markup_type(rc->type);
	return 0;
}

/* A return whose text or URL has variables, built for this request. */
static void
return_expanded(struct request *r, const struct return_conf *rc)
{
	struct sbuf loc = { 0 }, body = { 0 };

	if (rc->location != NULL) {
		expand(&loc, rc->text, r, ESC_NONE);
		sbuf_str(&body, "<html><body><a href=\"");
		expand(&body, rc->text, r, ESC_ALL);
		sbuf_str(&body, "\">moved here</a></body></html>\n");
	} else {
		expand(&body, rc->text, r, rc->markup ? ESC_VALUES : ESC_NONE);
	}
	if (sbuf_failed(&loc) || sbuf_failed(&body)) {
		http_resp_error(r, 500);
	} else {
		http_resp_start(r, rc->status, body.len > 0 ? rc->type : NULL, (int64_t)body.len);
		if (rc->location != NULL)
			http_resp_header(r, "Location", loc.p);
		http_resp_body(r, body.p, body.len);
		http_resp_end(r);
	}
	sbuf_free(&loc);
	sbuf_free(&body);
}

static void
return_start(struct request *r)
{
	const struct return_conf *rc = r->route->hconf;

	if (rc->vars) {
		return_expanded(r, rc);
		return;
	}
	http_resp_start(r, rc->status, rc->body_len > 0 ? rc->type : NULL, (int64_t)rc->body_len);
	if (rc->location != NULL)
		http_resp_header(r, "Location", rc->location);
	http_resp_body(r, rc->body, rc->body_len);
	http_resp_end(r);
}

static const char *const return_keys[] = { "return_file", "return_type", NULL };

const struct handler_ops return_ops = {
	.name = "return",
	.key = "return",
	.keys = return_keys,
	.configure = return_configure,
	.free_conf = return_free,
	.start = return_start,
};
