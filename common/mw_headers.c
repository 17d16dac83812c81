#include "common/mw_headers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/sbuf.h"
#include "common/units.h"
#include "common/vars.h"

enum rule_op { REQ_SET, REQ_ADD, REQ_REMOVE, RESP_SET, RESP_ADD, RESP_REMOVE };

static const char *const rule_keys[] = { "request_set", "request_add", "request_remove",
	"response_set", "response_add", "response_remove", NULL };
static const char *const all_keys[] = { "request_set", "request_add", "request_remove",
	"response_set", "response_add", "response_remove", "cors_origins", "cors_methods",
	"cors_headers", "cors_max_age", "cors_credentials", NULL };
static const char *const list_keys[] = { "request_set", "request_add", "request_remove",
	"response_set", "response_add", "response_remove", "cors_origins", NULL };

#define CORS_MAX_ORIGINS 64

struct rule {
	enum rule_op op;
	char *name;
	size_t nlen;
	char *value;                 /* NULL for a removal */
	int vars;                    /* value holds variables */
};

/* The CORS preset: who may read the route's responses from a browser. */
struct cors {
	char **origins;              /* "scheme://host[:port]", lower case */
	size_t norigins;
	int any;                     /* cors_origins = * */
	char *methods;               /* Access-Control-Allow-Methods */
	char *headers;               /* Access-Control-Allow-Headers, or NULL */
	int64_t max_age;             /* seconds, or -1 */
	int credentials;
};

struct headers_conf {
	struct rule *v;
	size_t n;
	struct cors *cors;           /* NULL without cors_origins */
};

/* RFC 9110 5.6.2: tchar. */
static int
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static void
headers_free(void *p)
{
	struct headers_conf *hc = p;

	if (hc == NULL)
		return;
	for (size_t i = 0; i < hc->n; i++) {
		free(hc->v[i].name);
		free(hc->v[i].value);
	}
	free(hc->v);
	if (hc->cors != NULL) {
		for (size_t i = 0; i < hc->cors->norigins; i++)
			free(hc->cors->origins[i]);
		free(hc->cors->origins);
		free(hc->cors->methods);
		free(hc->cors->headers);
		free(hc->cors);
	}
	free(hc);
}

/* One rule line: "Name: value" (set, add) or "Name" (remove).  0 or -1. */
static int
parse_rule(struct conf_ctx *ctx, const struct conf_kv *kv, enum rule_op op, struct rule *ru)
{
	const char *v = kv->value, *colon = strchr(v, ':');
	int removal = op == REQ_REMOVE || op == RESP_REMOVE;
	size_t nlen = removal ? strlen(v) : colon != NULL ? (size_t)(colon - v) : 0;

	if (!removal && colon == NULL) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "expected \"Name: value\", not \"%s\"", v);
		return -1;
	}
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar((unsigned char)v[i]))
			nlen = 0;
	if (nlen == 0 || nlen > 256) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "expected a header name (letters, digits and !#$%%&'*+-.^_`|~, up to 256) in \"%s\"",
		    v);
		return -1;
	}
	int request = op == REQ_SET || op == REQ_ADD || op == REQ_REMOVE;
	if (request && !req_header_changeable(v, nlen)) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "%.*s cannot be changed: the request was framed and routed by it", (int)nlen, v);
		return -1;
	}
	if (!request && !http_resp_header_changeable(v, nlen)) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "%.*s cannot be changed: portico frames the response with it", (int)nlen, v);
		return -1;
	}
	ru->op = op;
	ru->nlen = nlen;
	if ((ru->name = strndup(v, nlen)) == NULL)
		return -1;
	if (removal)
		return 0;
	const char *val = colon + 1, *bad;
	while (*val == ' ' || *val == '\t')
		val++;
	if ((ru->vars = vars_check(val, &bad)) < 0) {
		conf_err(ctx, kv->line, ctx->section, kv->key,
		    "unknown variable at \"%.20s\" (known: " VARS_KNOWN ")", bad);
		return -1;
	}
	return (ru->value = strdup(val)) == NULL ? -1 : 0;
}

/* An origin as browsers send it: scheme "://" host [":" port], nothing more. */
static int
origin_ok(const char *o)
{
	const char *h = strstr(o, "://");

	if (h == NULL || h == o || strncmp(o, "http", 4) != 0)
		return 0;
	h += 3;
	if (*h == '\0')
		return 0;
	for (const char *p = h; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-.:[]", *p) != NULL))
			return 0;
	return 1;
}

/* A list value ("A, B C") as one "A, B, C" string; NULL if a member is not a token. */
static char *
token_list(const char *v)
{
	struct sbuf b = { 0 };
	char *copy = strdup(v), *save = NULL, *tok;

	for (tok = copy != NULL ? strtok_r(copy, ", \t", &save) : NULL; tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		for (const char *p = tok; *p != '\0'; p++)
			if (!is_tchar((unsigned char)*p)) {
				free(copy);
				sbuf_free(&b);
				return NULL;
			}
		sbuf_printf(&b, "%s%s", b.len > 0 ? ", " : "", tok);
	}
	free(copy);
	if (b.len == 0 || sbuf_failed(&b)) {
		sbuf_free(&b);
		return NULL;
	}
	return b.p;
}

static int
cors_configure(struct conf_ctx *ctx, const struct conf_section *sec, struct headers_conf *hc)
{
	struct cors *c = calloc(1, sizeof(*c));
	const struct conf_kv *cred = NULL, *star = NULL;
	int bad = 0;

	if (c == NULL)
		return -1;
	hc->cors = c;
	c->max_age = -1;
	for (size_t i = 0; i < sec->nkv; i++) {
		const struct conf_kv *kv = &sec->kv[i];
		if (strcmp(kv->key, "cors_origins") == 0) {
			char *copy = strdup(kv->value), *save = NULL, *tok;
			for (tok = copy != NULL ? strtok_r(copy, ", \t", &save) : NULL; tok != NULL;
			    tok = strtok_r(NULL, ", \t", &save)) {
				if (strcmp(tok, "*") == 0) {
					c->any = 1;
					star = kv;
					continue;
				}
				if (!origin_ok(tok)) {
					conf_err(ctx, kv->line, ctx->section, kv->key, "expected * or origins "
					    "such as https://example.com, not \"%s\"", tok);
					bad = 1;
					continue;
				}
				if (c->norigins == CORS_MAX_ORIGINS) {
					conf_err(ctx, kv->line, ctx->section, kv->key, "more than %d origins, "
					    "counting every line (\"%s\" is one too many)", CORS_MAX_ORIGINS, tok);
					bad = 1;
					break;
				}
				char **v = realloc(c->origins, (c->norigins + 1) * sizeof(*v));
				if (v == NULL)
					continue;
				c->origins = v;
				for (char *p = tok; *p != '\0'; p++)
					*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
				c->origins[c->norigins++] = strdup(tok);
			}
			free(copy);
		} else if (strcmp(kv->key, "cors_methods") == 0 || strcmp(kv->key, "cors_headers") == 0) {
			char *l = token_list(kv->value);
			if (l == NULL) {
				conf_err(ctx, kv->line, ctx->section, kv->key,
				    "expected a list of %s, not \"%s\"",
				    kv->key[5] == 'm' ? "methods" : "header names", kv->value);
				bad = 1;
			} else if (kv->key[5] == 'm') {
				c->methods = l;
			} else {
				c->headers = l;
			}
		} else if (strcmp(kv->key, "cors_max_age") == 0) {
			if (units_duration(kv->value, &c->max_age) < 0) {
				conf_err(ctx, kv->line, ctx->section, kv->key,
				    "expected a duration such as 10m, not \"%s\"", kv->value);
				bad = 1;
			}
			c->max_age /= 1000;
		} else if (strcmp(kv->key, "cors_credentials") == 0) {
			cred = kv;
			if (units_bool(kv->value, &c->credentials) < 0) {
				conf_err(ctx, kv->line, ctx->section, kv->key, "expected on or off, not \"%s\"",
				    kv->value);
				bad = 1;
			}
		}
	}
	/* Fetch refuses "*" with credentials; echoing any origin instead would
	 * let every site read the user's responses. */
	if (c->any && c->credentials) {
		conf_err(ctx, cred->line, ctx->section, "cors_credentials",
		    "cannot go with cors_origins = * (line %d): list the origins", star->line);
		bad = 1;
	}
	if (c->methods == NULL && (c->methods = strdup("GET, HEAD, POST")) == NULL)
		bad = 1;
	return bad ? -1 : 0;
}

static int
origin_allowed(const struct cors *c, const struct http_header *o)
{
	if (o == NULL || o->value_len == 0)
		return 0;
	if (c->any)
		return 1;
	for (size_t i = 0; i < c->norigins; i++)
		if (strlen(c->origins[i]) == o->value_len &&
		    strncasecmp(c->origins[i], o->value, o->value_len) == 0)
			return 1;
	return 0;
}

/* Who may read the response: the origin itself, or any when so configured
 * and without credentials. */
static void
cors_allow_origin(struct request *r, const struct cors *c, const struct http_header *o)
{
	if (c->any && !c->credentials)
		http_resp_header_set(r, "Access-Control-Allow-Origin", 27, "*", 1);
	else
		http_resp_header_set(r, "Access-Control-Allow-Origin", 27, o->value, o->value_len);
	if (c->credentials)
		http_resp_header_set(r, "Access-Control-Allow-Credentials", 32, "true", 4);
}

/*
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered here: 204 with what the route allows, or 403 for an origin it
 * does not.  Nothing goes on to the handler.
 */
static int
cors_request(struct request *r, const struct cors *c)
{
	const struct http_header *o = req_header(r, "origin");

	if (r->hr->meth != HTTP_M_OPTIONS || o == NULL ||
	    req_header(r, "access-control-request-method") == NULL)
		return MW_NEXT;
	if (!origin_allowed(c, o)) {
		http_resp_error(r, 403);
		return MW_ANSWERED;
	}
	http_resp_start(r, 204, NULL, 0);
	http_resp_header(r, "Access-Control-Allow-Methods", c->methods);
	if (c->headers != NULL)
		http_resp_header(r, "Access-Control-Allow-Headers", c->headers);
	if (c->max_age >= 0) {
		char n[24];
		snprintf(n, sizeof(n), "%lld", (long long)c->max_age);
		http_resp_header(r, "Access-Control-Max-Age", n);
	}
	http_resp_end(r); /* the response phase adds the origin */
	return MW_ANSWERED;
}

/* Every response of the route: the CORS headers are the preset's alone. */
static void
cors_response(struct request *r, const struct cors *c)
{
	const struct http_header *o = req_header(r, "origin");

	http_resp_header_remove(r, "Access-Control-Allow-Origin", 27);
	http_resp_header_remove(r, "Access-Control-Allow-Credentials", 32);
	if (!c->any || c->credentials)
		http_resp_header_n(r, "Vary", 4, "Origin", 6);
	if (origin_allowed(c, o))
		cors_allow_origin(r, c, o);
}

static void *
headers_configure(struct conf_ctx *ctx, const struct conf_section *sec)
{
	struct headers_conf *hc = calloc(1, sizeof(*hc));
	int bad = 0;

	if (hc == NULL || (hc->v = calloc(sec->nkv, sizeof(*hc->v))) == NULL) {
		free(hc);
		return NULL;
	}
	for (size_t i = 0; i < sec->nkv; i++) {
		const struct conf_kv *kv = &sec->kv[i];
		for (int op = REQ_SET; op <= RESP_REMOVE; op++) {
			if (strcmp(kv->key, rule_keys[op]) != 0)
				continue;
			if (parse_rule(ctx, kv, (enum rule_op)op, &hc->v[hc->n]) < 0) {
				free(hc->v[hc->n].name);
				hc->v[hc->n] = (struct rule){ 0 };
				bad = 1;
			} else {
				hc->n++;
			}
		}
	}
	int cors_keys = 0;
	const struct conf_kv *origins = NULL;
	for (size_t i = 0; i < sec->nkv; i++) {
		cors_keys |= strncmp(sec->kv[i].key, "cors_", 5) == 0;
		if (strcmp(sec->kv[i].key, "cors_origins") == 0)
			origins = &sec->kv[i];
	}
	if (cors_keys && origins == NULL) {
		conf_err(ctx, sec->line, ctx->section, "cors_origins",
		    "missing: the other cors_ keys need it");
		bad = 1;
	} else if (origins != NULL && cors_configure(ctx, sec, hc) < 0) {
		bad = 1;
	}
	if (hc->n == 0 && origins == NULL && !bad) {
		conf_err(ctx, sec->line, ctx->section, NULL,
		    "no rules: give request_set, request_add, request_remove, response_set, "
		    "response_add, response_remove or cors_origins");
		bad = 1;
	}
	if (bad) {
		headers_free(hc);
		return NULL;
	}
	return hc;
}

/* The rule's value for this request, in tmp when it has variables. */
static const char *
rule_value(const struct rule *ru, const struct request *r, struct sbuf *tmp, size_t *len)
{
	if (!ru->vars) {
		*len = strlen(ru->value);
		return ru->value;
	}
	tmp->len = 0;
	vars_expand(tmp, ru->value, r, VARS_RAW);
	if (sbuf_failed(tmp) || tmp->p == NULL) {
		*len = 0;
		return "";
	}
	*len = tmp->len;
	return tmp->p;
}

static int
headers_request(struct request *r, const void *conf)
{
	const struct headers_conf *hc = conf;
	struct sbuf tmp = { 0 };
	size_t len;

	for (size_t i = 0; i < hc->n; i++) {
		const struct rule *ru = &hc->v[i];
		switch (ru->op) {
		case REQ_REMOVE:
			req_header_remove(r, ru->name, ru->nlen);
			break;
		case REQ_SET:
		case REQ_ADD: {
			const char *v = rule_value(ru, r, &tmp, &len);
			if (ru->op == REQ_SET)
				req_header_set(r, ru->name, ru->nlen, v, len);
			else
				req_header_add(r, ru->name, ru->nlen, v, len);
			break;
		}
		default:
			break;
		}
	}
	sbuf_free(&tmp);
	return hc->cors != NULL ? cors_request(r, hc->cors) : MW_NEXT;
}

static void
headers_response(struct request *r, const void *conf)
{
	const struct headers_conf *hc = conf;
	struct sbuf tmp = { 0 };
	size_t len;

	if (hc->cors != NULL)
		cors_response(r, hc->cors);
	for (size_t i = 0; i < hc->n; i++) {
		const struct rule *ru = &hc->v[i];
		switch (ru->op) {
		case RESP_REMOVE:
			http_resp_header_remove(r, ru->name, ru->nlen);
			break;
		case RESP_SET:
		case RESP_ADD: {
			const char *v = rule_value(ru, r, &tmp, &len);
			if (ru->op == RESP_SET)
				http_resp_header_set(r, ru->name, ru->nlen, v, len);
			else
				http_resp_header_n(r, ru->name, ru->nlen, v, len);
			break;
		}
		default:
			break;
		}
	}
	sbuf_free(&tmp);
}

const struct mw_ops headers_mw_ops = {
	.type = "headers",
	.keys = all_keys,
	.list_keys = list_keys,
	.configure = headers_configure,
	.free_conf = headers_free,
	.request = headers_request,
	.response_head = headers_response,
};
