#include "common/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/exchange.h"
#include "common/mw_headers.h"

/* The modules a `type` may name. */
static const struct mw_ops *const modules[] = { &headers_mw_ops, NULL };

static const struct mw_ops *
module(const char *type)
{
	for (size_t i = 0; modules[i] != NULL; i++)
		if (strcmp(modules[i]->type, type) == 0)
			return modules[i];
	return NULL;
}

static int
section_configure(struct conf_ctx *ctx, struct conf_section *sec)
{
	const struct conf_kv *type = NULL;
	const struct mw_ops *ops;
	const char *known[64];
	size_t n = 0;

	for (size_t i = 0; i < sec->nkv; i++)
		if (strcmp(sec->kv[i].key, "type") == 0) {
			if (type != NULL) {
				conf_err(ctx, sec->kv[i].line, ctx->section, "type",
				    "given twice (first on line %d)", type->line);
				return -1;
			}
			type = &sec->kv[i];
		}
	if (type == NULL) {
		char types[256] = "";
		for (size_t i = 0; modules[i] != NULL; i++)
			snprintf(types + strlen(types), sizeof(types) - strlen(types), "%s%s",
			    i > 0 ? ", " : "", modules[i]->type);
		conf_err(ctx, sec->line, ctx->section, "type", "missing: give one of %s", types);
		return -1;
	}
	if ((ops = module(type->value)) == NULL) {
		conf_err(ctx, type->line, ctx->section, "type", "unknown middleware type \"%s\"",
		    type->value);
		return -1;
	}
	known[n++] = "type";
	for (size_t i = 0; ops->keys != NULL && ops->keys[i] != NULL && n < 63; i++)
		known[n++] = ops->keys[i];
	known[n] = NULL;
	if (conf_check_keys(ctx, sec, known) > 0)
		return -1;
	/* Keys that are not lists may be given once. */
	for (size_t i = 0; i < sec->nkv; i++) {
		int list = 0;
		for (size_t k = 0; ops->list_keys != NULL && ops->list_keys[k] != NULL; k++)
			list |= strcmp(ops->list_keys[k], sec->kv[i].key) == 0;
		for (size_t j = 0; !list && j < i; j++)
			if (strcmp(sec->kv[j].key, sec->kv[i].key) == 0) {
				conf_err(ctx, sec->kv[i].line, ctx->section, sec->kv[i].key,
				    "given twice (first on line %d)", sec->kv[j].line);
				return -1;
			}
	}
	struct mw *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -1;
	m->ops = ops;
	if ((m->conf = ops->configure(ctx, sec)) == NULL) {
		free(m);
		return -1;
	}
	sec->data = m;
	return 0;
}

static void
section_free(void *data)
{
	struct mw *m = data;

	if (m == NULL)
		return;
	if (m->ops->free_conf != NULL)
		m->ops->free_conf(m->conf);
	free(m);
}

const struct handler_ops pipeline_section_ops = {
	.name = "middleware",
	.section = "middleware",
	.configure_section = section_configure,
	.free_section = section_free,
};

int
pipeline_request(struct request *r)
{
	const struct conf_route *rt = r->route;

	for (size_t i = 0; i < rt->nmw; i++) {
		const struct mw *m = rt->mw[i]->data;
		r->mw_ran = (unsigned)i + 1;
		if (m->ops->request != NULL && m->ops->request(r, m->conf) == MW_ANSWERED)
			return MW_ANSWERED;
	}
	return MW_NEXT;
}

void
pipeline_response_head(struct request *r)
{
	const struct conf_route *rt = r->route;

	/* Only those the request went through: after one that answered, or on
	 * an error found before the chain ran, the rest never saw it. */
	for (size_t i = r->mw_ran; i-- > 0;) {
		const struct mw *m = rt->mw[i]->data;
		if (m->ops->response_head != NULL)
			m->ops->response_head(r, m->conf);
	}
}
