#include "common/return.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/sbuf.h"
#include "common/units.h"
#include "common/vars.h"

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
	const char *bad;
	int nv = vars_check(rest, &bad);
	if (nv < 0) {
		conf_err(ctx, kv->line, ctx->section, "return",
		    "unknown variable at \"%.20s\" (known: " VARS_KNOWN ")", bad);
		return -1;
	}
	rc->vars = nv;
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
		vars_expand(&loc, rc->text, r, VARS_RAW);
		sbuf_str(&body, "<html><body><a href=\"");
		vars_expand(&body, rc->text, r, VARS_HTML_ALL);
		sbuf_str(&body, "\">moved here</a></body></html>\n");
	} else {
		vars_expand(&body, rc->text, r, rc->markup ? VARS_HTML_VALUES : VARS_RAW);
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

/* Queues the body from where r->hdata says (an offset) while output
 * drains, and ends the response with its last byte: a return_file body
 * of megabytes is not copied whole into every client's output. */
static void
return_more(struct request *r)
{
	const struct return_conf *rc = r->route->hconf;
	size_t off = (size_t)(uintptr_t)r->hdata;

	while (off < rc->body_len && http_resp_pending(r) <= HTTP_OUT_HIGH_WATER) {
		size_t n = rc->body_len - off;
		if (n > HTTP_OUT_HIGH_WATER)
			n = HTTP_OUT_HIGH_WATER;
		http_resp_body(r, rc->body + off, n);
		off += n;
	}
	r->hdata = (void *)(uintptr_t)off;
	if (off == rc->body_len) {
		r->hdata = NULL;
		http_resp_end(r);
	}
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
	if ((r->flags & REQ_HEAD_ONLY) || rc->body_len == 0) {
		http_resp_end(r);
		return;
	}
	r->hdata = NULL;
	return_more(r);
}

static const char *const return_keys[] = { "return_file", "return_type", NULL };

const struct handler_ops return_ops = {
	.name = "return",
	.key = "return",
	.keys = return_keys,
	.configure = return_configure,
	.free_conf = return_free,
	.start = return_start,
	.writable = return_more,
};
