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
	if (conf_check_section(ctx, sec, ops->keys) > 0)
		return -1;
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

/* The keys of a block: those of its type. */
static const struct conf_key *
section_keys(const struct conf_section *sec)
{
	const struct mw *m = sec->data;

	return m != NULL ? m->ops->keys : NULL;
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
	.section_keys = section_keys,
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
