#include "common/mw_headers.h"

#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/sbuf.h"
#include "common/vars.h"

enum rule_op { REQ_SET, REQ_ADD, REQ_REMOVE, RESP_SET, RESP_ADD, RESP_REMOVE };

static const char *const rule_keys[] = { "request_set", "request_add", "request_remove",
	"response_set", "response_add", "response_remove", NULL };

struct rule {
	enum rule_op op;
	char *name;
	size_t nlen;
	char *value;                 /* NULL for a removal */
	int vars;                    /* value holds variables */
};

struct headers_conf {
	struct rule *v;
	size_t n;
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
	if (hc->n == 0 && !bad) {
		conf_err(ctx, sec->line, ctx->section, NULL,
		    "no rules: give request_set, request_add, request_remove, response_set, "
		    "response_add or response_remove");
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
	return MW_NEXT;
}

static void
headers_response(struct request *r, const void *conf)
{
	const struct headers_conf *hc = conf;
	struct sbuf tmp = { 0 };
	size_t len;

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
	.keys = rule_keys,
	.list_keys = rule_keys,
	.configure = headers_configure,
	.free_conf = headers_free,
	.request = headers_request,
	.response_head = headers_response,
};
