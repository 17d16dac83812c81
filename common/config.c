#include "common/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/handler.h"
#include "common/tls.h"
#include "common/units.h"

enum key_type { K_STR, K_LIST, K_DURATION, K_SIZE, K_COUNT, K_BOOL, K_WORKERS, K_LOGLEVEL, K_LOGFMT };

/* One settable key of [global] or [listen:NAME]; defaults live only here. */
struct key_def {
	const char *name;
	enum key_type type;
	size_t off;
	const char *def;             /* NULL: no default (optional or required) */
	uint64_t min, max;           /* for counts and sizes */
};

#define G(f) offsetof(struct conf_global, f)
static const struct key_def global_keys[] = {
	{ "workers", K_WORKERS, G(workers), "auto", 1, 256 },
	{ "max_connections", K_COUNT, G(max_connections), "10000", 1, 1000000 },
	{ "user", K_STR, G(user), NULL, 0, 0 },
	{ "group", K_STR, G(group), NULL, 0, 0 },
	{ "error_log", K_STR, G(error_log), "stderr", 0, 0 },
	{ "log_level", K_LOGLEVEL, G(log_level), "info", 0, 0 },
	{ "access_log", K_STR, G(access_log), "off", 0, 0 },
	{ "access_log_format", K_LOGFMT, G(access_log_format), "combined", 0, 0 },
	{ "shutdown_timeout", K_DURATION, G(shutdown_timeout), "10s", 0, 0 },
	{ "header_timeout", K_DURATION, G(header_timeout), "10s", 1, 0 },
	{ "body_timeout", K_DURATION, G(body_timeout), "30s", 1, 0 },
	{ "keepalive_timeout", K_DURATION, G(keepalive_timeout), "60s", 0, 0 },
	{ "send_timeout", K_DURATION, G(send_timeout), "30s", 1, 0 },
	{ "linger_timeout", K_DURATION, G(linger_timeout), "2s", 0, 0 },
	{ "linger_time", K_DURATION, G(linger_time), "30s", 0, 0 },
	{ "keepalive_requests", K_COUNT, G(keepalive_requests), "1000", 1, 1000000000 },
	{ "max_request_line", K_SIZE, G(max_request_line), "8k", 64, 1 << 20 },
	{ "max_header_size", K_SIZE, G(max_header_size), "16k", 256, 1 << 20 },
	{ "max_headers", K_COUNT, G(max_headers), "100", 1, 256 },
	{ "max_body_size", K_SIZE, G(max_body_size), "1m", 0, 1ULL << 40 },
	{ "server_tokens", K_BOOL, G(server_tokens), "on", 0, 0 },
	{ "underscores_in_headers", K_BOOL, G(underscores_in_headers), "off", 0, 0 },
	{ "tls_ticket_rotate", K_DURATION, G(tls_ticket_rotate), "12h", 1, 0 },
	{ "tls_handshake_timeout", K_DURATION, G(tls_handshake_timeout), "0s", 0, 0 },
	{ "tls_ticket_key", K_STR, G(tls_ticket_key), NULL, 0, 0 },
	{ "pid_file", K_STR, G(pid_file), NULL, 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0 },
};
#undef G

#define L(f) offsetof(struct conf_listen, f)
static const struct key_def listen_keys[] = {
	{ "address", K_STR, L(address), NULL, 0, 0 },
	{ "backlog", K_COUNT, L(backlog), "511", 1, 65535 },
	{ "tls_cert", K_LIST, L(tls_cert), NULL, 0, 0 },
	{ "tls_key", K_LIST, L(tls_key), NULL, 0, 0 },
	{ "tls_min_version", K_STR, L(tls_min_version), "TLSv1.2", 0, 0 },
	{ "tls_ciphers", K_STR, L(tls_ciphers), "ECDHE+AESGCM:ECDHE+CHACHA20", 0, 0 },
	{ "tls_ciphersuites", K_STR, L(tls_ciphersuites), NULL, 0, 0 },
	{ "hsts", K_STR, L(hsts), NULL, 0, 0 },
	{ "tls_client_ca", K_STR, L(tls_client_ca), NULL, 0, 0 },
	{ "tls_verify_client", K_STR, L(tls_verify_client), "off", 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0 },
};
#undef L

static const char *const route_core_keys[] = { "listen", "host", "path", "middleware", NULL };
static const char *const section_kinds[] = { "global", "listen", "route", NULL };
#define KIND_HANDLER 3 /* a section kind some handler owns */

/* Where a key was set, so later checks can point at the line. */
struct conf_seen {
	char section[256];
	char key[64];
	int line;
};

struct loader {
	struct conf_ctx *ctx;
	struct config *conf;
	const struct handler_ops *const *handlers;
	FILE *fp;
	int lineno;
	char *line;                  /* CONF_MAX_LINE bytes and a NUL */
	char cur_section[256];
	int cur_kind;                /* index in section_kinds, KIND_HANDLER, or -1 when bad */
	void *cur_obj;               /* the listen or route being filled */
	struct conf_seen *seen;      /* keys given for global and listens, until the end of the file */
	size_t nseen;
};

/* Appends msg, which ctx then owns, as an error about line. */
static void
push_error(struct conf_ctx *ctx, int line, char *msg)
{
	char **e = realloc(ctx->errors, (ctx->nerrors + 1) * sizeof(*e));
	int *l;

	if (e == NULL) {
		free(msg);
		return;
	}
	ctx->errors = e;
	if ((l = realloc(ctx->lines, (ctx->nerrors + 1) * sizeof(*l))) == NULL) {
		free(msg);
		return;
	}
	ctx->lines = l;
	e[ctx->nerrors] = msg;
	l[ctx->nerrors] = line;
	ctx->nerrors++;
}

struct error_at {
	int line;
	size_t seq;
	char *msg;
};

static int
error_order(const void *a, const void *b)
{
	const struct error_at *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Puts the errors from index `from` on in the order of their lines, which is
 * not the order they are found in: a listener's address, a pool or a route
 * is checked once the whole file is read.  The sort is stable, so errors of
 * one line keep the order they were found in.  Left as they are if memory
 * is short.
 */
static void
sort_errors(struct conf_ctx *ctx, size_t from)
{
	size_t n = ctx->nerrors - from;
	struct error_at *v;

	if (n < 2 || (v = calloc(n, sizeof(*v))) == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct error_at){ ctx->lines[from + i], i, ctx->errors[from + i] };
	qsort(v, n, sizeof(*v), error_order);
	for (size_t i = 0; i < n; i++) {
		ctx->lines[from + i] = v[i].line;
		ctx->errors[from + i] = v[i].msg;
	}
	free(v);
}

static char *
conf_vmsg(const struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, va_list ap)
{
	char *msg, *full;
	int n;

	if (vasprintf(&msg, fmt, ap) < 0)
		return NULL;
	if (section != NULL && key != NULL)
		n = asprintf(&full, "%s:%d: [%s] %s: %s", ctx->file, line, section, key, msg);
	else if (section != NULL)
		n = asprintf(&full, "%s:%d: [%s] %s", ctx->file, line, section, msg);
	else if (key != NULL)
		n = asprintf(&full, "%s:%d: %s: %s", ctx->file, line, key, msg);
	else
		n = asprintf(&full, "%s:%d: %s", ctx->file, line, msg);
	free(msg);
	return n < 0 ? NULL : full;
}

void
conf_err(struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *full = conf_vmsg(ctx, line, section, key, fmt, ap);
	va_end(ap);
	if (full != NULL)
		push_error(ctx, line, full);
}

void
conf_warn(struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *full = conf_vmsg(ctx, line, section, key, fmt, ap);
	va_end(ap);
	if (full == NULL)
		return;
	char **w = realloc(ctx->warnings, (ctx->nwarnings + 1) * sizeof(*w));
	if (w == NULL) {
		free(full);
		return;
	}
	ctx->warnings = w;
	w[ctx->nwarnings++] = full;
}

void
conf_ctx_free(struct conf_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nerrors; i++)
		free(ctx->errors[i]);
	free(ctx->errors);
	free(ctx->lines);
	ctx->errors = NULL;
	ctx->lines = NULL;
	ctx->nerrors = 0;
	for (size_t i = 0; i < ctx->nwarnings; i++)
		free(ctx->warnings[i]);
	free(ctx->warnings);
	ctx->warnings = NULL;
	ctx->nwarnings = 0;
}

unsigned
conf_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[65];

	if (la > 64 || lb > 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned sub = prev + (a[i - 1] != b[j - 1]);
			unsigned del = row[j] + 1, ins = row[j - 1] + 1;
			row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
			prev = cur;
		}
	}
	return row[lb];
}

/* Appends ` (did you mean "x"?)` when a candidate is close enough. */
static void
suggest(const char *word, const char *const *cands, char *out, size_t len)
{
	const char *best = NULL;
	unsigned bd = 3;

	out[0] = '\0';
	for (size_t i = 0; cands[i] != NULL; i++) {
		unsigned d = conf_distance(word, cands[i]);
		if (d < bd || (d == bd && best == NULL && d <= strlen(cands[i]) / 3)) {
			bd = d;
			best = cands[i];
		}
	}
	if (best != NULL && bd <= 2)
		snprintf(out, len, " (did you mean \"%s\"?)", best);
}

int
conf_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon;
	uint64_t port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	if (units_count(colon + 1, 65535, &port) < 0)
		return -1;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (s[0] == '[' && strchr(host, ':') == NULL)
		return -1; /* brackets hold an IPv6 address, nothing else */
	if (host[0] == '\0' || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	} else if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		if (strcmp(host, "localhost") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	} else if (s[0] == '[') {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
	} else {
		return -1;
	}
	return 0;
}

/* Stores value into the field def describes.  0, or -1 with *why set. */
static int
set_value(const struct key_def *def, void *obj, const char *value, const char **why)
{
	char *field = (char *)obj + def->off;
	uint64_t u;
	int64_t ms;
	int b;

	switch (def->type) {
	case K_STR: {
		char *copy = strdup(value);
		if (copy == NULL)
			return *why = "out of memory", -1;
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	case K_LIST: {
		struct conf_strlist *l = (struct conf_strlist *)field;
		char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
		if (v == NULL || (v[l->n] = strdup(value)) == NULL) {
			if (v != NULL)
				l->v = v;
			return *why = "out of memory", -1;
		}
		l->v = v;
		l->n++;
		return 0;
	}
	case K_DURATION:
		if (units_duration(value, &ms) < 0)
			return *why = "expected a duration such as 500ms, 10s, 5m", -1;
		if (def->min > 0 && ms < (int64_t)def->min)
			return *why = "must be greater than zero", -1;
		*(int64_t *)field = ms;
		return 0;
	case K_SIZE:
		if (units_size(value, &u) < 0)
			return *why = "expected a size such as 512, 16k, 1m", -1;
		if (u < def->min || u > def->max)
			return *why = "size out of range", -1;
		*(uint64_t *)field = u;
		return 0;
	case K_COUNT:
		if (units_count(value, def->max, &u) < 0 || u < def->min)
			return *why = "expected a whole number in range", -1;
		*(uint64_t *)field = u;
		return 0;
	case K_BOOL:
		if (units_bool(value, &b) < 0)
			return *why = "expected on or off", -1;
		*(int *)field = b;
		return 0;
	case K_WORKERS:
		if (strcmp(value, "auto") == 0) {
			*(int *)field = 0;
			return 0;
		}
		if (units_count(value, def->max, &u) < 0 || u < def->min)
			return *why = "expected auto or a number from 1 to 256", -1;
		*(int *)field = (int)u;
		return 0;
	case K_LOGLEVEL: {
		enum log_level l;
		if (log_level_parse(value, &l) < 0)
			return *why = "expected error, warn, info or debug", -1;
		*(enum log_level *)field = l;
		return 0;
	}
	case K_LOGFMT:
		if (strcmp(value, "combined") == 0)
			*(int *)field = ACCESS_LOG_COMBINED;
		else if (strcmp(value, "json") == 0)
			*(int *)field = ACCESS_LOG_JSON;
		else if (strcmp(value, "main") == 0)
			*(int *)field = ACCESS_LOG_MAIN;
		else
			return *why = "expected combined, main or json", -1;
		return 0;
	}
	return *why = "bad key type", -1;
}

static void
apply_defaults(const struct key_def *defs, void *obj)
{
	const char *why;

	for (const struct key_def *d = defs; d->name != NULL; d++)
		if (d->def != NULL && set_value(d, obj, d->def, &why) < 0)
			abort(); /* a default that does not parse is a bug in the table */
}

static const struct key_def *
find_key(const struct key_def *defs, const char *name)
{
	for (const struct key_def *d = defs; d->name != NULL; d++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static int
note_seen(struct loader *ld, const char *key)
{
	for (size_t i = 0; i < ld->nseen; i++) {
		if (strcmp(ld->seen[i].section, ld->cur_section) == 0 &&
		    strcmp(ld->seen[i].key, key) == 0)
			return ld->seen[i].line;
	}
	struct conf_seen *s = realloc(ld->seen, (ld->nseen + 1) * sizeof(*s));
	if (s == NULL)
		return 0;
	ld->seen = s;
	snprintf(s[ld->nseen].section, sizeof(s->section), "%s", ld->cur_section);
	snprintf(s[ld->nseen].key, sizeof(s->key), "%s", key);
	s[ld->nseen].line = ld->lineno;
	ld->nseen++;
	return 0;
}

static void
key_list(const struct key_def *defs, const char **out, size_t max)
{
	size_t n = 0;

	for (const struct key_def *d = defs; d->name != NULL && n + 1 < max; d++)
		out[n++] = d->name;
	out[n] = NULL;
}

static void
set_table_key(struct loader *ld, const struct key_def *defs, void *obj,
    const char *name, const char *value)
{
	const struct key_def *d = find_key(defs, name);
	const char *why, *cands[64];
	char hint[96];
	int prev;

	if (d == NULL) {
		key_list(defs, cands, 64);
		suggest(name, cands, hint, sizeof(hint));
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name, "unknown key%s", hint);
		return;
	}
	if (d->type != K_LIST && (prev = note_seen(ld, name)) != 0) {
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name,
		    "given twice (first on line %d)", prev);
		return;
	}
	if (set_value(d, obj, value, &why) < 0) {
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name, "%s, not \"%s\"", why, value);
		return;
	}
	if (d->type == K_LIST) {
		struct conf_strlist *l = (struct conf_strlist *)((char *)obj + d->off);
		int *lines = realloc(l->lines, l->n * sizeof(*lines));
		if (lines != NULL) {
			l->lines = lines;
			lines[l->n - 1] = ld->lineno;
		}
	}
}

static const struct handler_ops *
handler_for_key(const struct loader *ld, const char *key, int selector)
{
	for (size_t i = 0; ld->handlers[i] != NULL; i++) {
		const struct handler_ops *h = ld->handlers[i];
		if (h->key != NULL && strcmp(h->key, key) == 0)
			return h;
		if (!selector && h->keys != NULL)
			for (size_t j = 0; h->keys[j] != NULL; j++)
				if (strcmp(h->keys[j], key) == 0)
					return h;
	}
	return NULL;
}

/* Whether a route key may be repeated, each line adding to a list. */
static int
route_list_key(const struct loader *ld, const char *name)
{
	const struct handler_ops *h;

	if (strcmp(name, "host") == 0 || strcmp(name, "listen") == 0 ||
	    strcmp(name, "middleware") == 0)
		return 1;
	if ((h = handler_for_key(ld, name, 0)) == NULL || h->list_keys == NULL)
		return 0;
	for (size_t i = 0; h->list_keys[i] != NULL; i++)
		if (strcmp(h->list_keys[i], name) == 0)
			return 1;
	return 0;
}

static void
route_key(struct loader *ld, struct conf_route *rt, const char *name, const char *value)
{
	int core = 0;

	for (size_t i = 0; route_core_keys[i] != NULL; i++)
		core |= strcmp(route_core_keys[i], name) == 0;
	if (!core && handler_for_key(ld, name, 0) == NULL) {
		const char *cands[64];
		size_t n = 0;
		char hint[96];
		for (size_t i = 0; route_core_keys[i] != NULL; i++)
			cands[n++] = route_core_keys[i];
		for (size_t i = 0; ld->handlers[i] != NULL && n < 60; i++) {
			if (ld->handlers[i]->key != NULL)
				cands[n++] = ld->handlers[i]->key;
			for (size_t j = 0; ld->handlers[i]->keys != NULL &&
			    ld->handlers[i]->keys[j] != NULL && n < 62; j++)
				cands[n++] = ld->handlers[i]->keys[j];
		}
		cands[n] = NULL;
		suggest(name, cands, hint, sizeof(hint));
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name, "unknown key%s", hint);
		return;
	}
	/* host, listen and the handlers' list keys may be repeated; every
	 * other key may be given once. */
	if (!route_list_key(ld, name)) {
		const struct conf_kv *prev = conf_route_kv(rt, name);
		if (prev != NULL) {
			conf_err(ld->ctx, ld->lineno, ld->cur_section, name,
			    "given twice (first on line %d)", prev->line);
			return;
		}
	}
	struct conf_kv *kv = realloc(rt->kv, (rt->nkv + 1) * sizeof(*kv));
	if (kv == NULL)
		return;
	rt->kv = kv;
	kv[rt->nkv].key = strdup(name);
	kv[rt->nkv].value = strdup(value);
	kv[rt->nkv].line = ld->lineno;
	rt->nkv++;
}

/* Starts a section from its header line "[kind:name]". */
static void
begin_section(struct loader *ld, const char *hdr)
{
	char kind[64], *colon;
	const char *name = NULL;

	snprintf(ld->cur_section, sizeof(ld->cur_section), "%s", hdr);
	ld->cur_kind = -1;
	ld->cur_obj = NULL;
	snprintf(kind, sizeof(kind), "%s", hdr);
	if ((colon = strchr(kind, ':')) != NULL) {
		*colon = '\0';
		name = hdr + (colon - kind) + 1;
	}
	for (int i = 0; section_kinds[i] != NULL; i++)
		if (strcmp(kind, section_kinds[i]) == 0)
			ld->cur_kind = i;
	const struct handler_ops *owner = NULL;
	for (size_t i = 0; ld->cur_kind < 0 && ld->handlers[i] != NULL; i++)
		if (ld->handlers[i]->section != NULL && strcmp(ld->handlers[i]->section, kind) == 0) {
			owner = ld->handlers[i];
			ld->cur_kind = KIND_HANDLER;
		}
	if (ld->cur_kind < 0) {
		const char *kinds[16];
		size_t n = 0;
		char hint[96];
		for (size_t i = 0; section_kinds[i] != NULL; i++)
			kinds[n++] = section_kinds[i];
		for (size_t i = 0; ld->handlers[i] != NULL && n < 15; i++)
			if (ld->handlers[i]->section != NULL)
				kinds[n++] = ld->handlers[i]->section;
		kinds[n] = NULL;
		suggest(kind, kinds, hint, sizeof(hint));
		conf_err(ld->ctx, ld->lineno, NULL, NULL, "[%s]: unknown section%s", hdr, hint);
		return;
	}
	if (ld->cur_kind == 0) {
		if (name != NULL)
			conf_err(ld->ctx, ld->lineno, hdr, NULL, "[global] takes no name");
		for (size_t i = 0; i < ld->nseen; i++)
			if (strcmp(ld->seen[i].section, "global") == 0) {
				conf_err(ld->ctx, ld->lineno, hdr, NULL, "section given twice");
				break;
			}
		ld->cur_obj = &ld->conf->global;
		snprintf(ld->cur_section, sizeof(ld->cur_section), "global");
		note_seen(ld, "");
		return;
	}
	if (name == NULL || name[0] == '\0') {
		conf_err(ld->ctx, ld->lineno, hdr, NULL, "needs a name: [%s:NAME]", kind);
		ld->cur_kind = -1;
		return;
	}
	/* Messages and the seen-key table hold "kind:NAME" in 256 bytes. */
	if (strlen(name) > CONF_MAX_NAME) {
		conf_err(ld->ctx, ld->lineno, hdr, NULL, "a name may be at most %d bytes",
		    CONF_MAX_NAME);
		ld->cur_kind = -1;
		return;
	}
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
			conf_err(ld->ctx, ld->lineno, hdr, NULL,
			    "a name may hold letters, digits, '-', '_' and '.'");
			ld->cur_kind = -1;
			return;
		}
	if (ld->cur_kind == KIND_HANDLER) {
		if (conf_section_find(ld->conf, kind, name) != NULL) {
			conf_err(ld->ctx, ld->lineno, hdr, NULL, "duplicate name (first on line %d)",
			    conf_section_find(ld->conf, kind, name)->line);
			ld->cur_kind = -1;
			return;
		}
		struct conf_section *sv = realloc(ld->conf->sections,
		    (ld->conf->nsections + 1) * sizeof(*sv));
		if (sv == NULL)
			return;
		ld->conf->sections = sv;
		sv = &sv[ld->conf->nsections++];
		memset(sv, 0, sizeof(*sv));
		sv->kind = strdup(kind);
		sv->name = strdup(name);
		sv->line = ld->lineno;
		sv->owner = owner;
		ld->cur_obj = sv;
		return;
	}
	if (ld->cur_kind == 1) {
		for (size_t i = 0; i < ld->conf->nlistens; i++)
			if (strcmp(ld->conf->listens[i].name, name) == 0) {
				conf_err(ld->ctx, ld->lineno, hdr, NULL,
				    "duplicate name (first on line %d)", ld->conf->listens[i].line);
				ld->cur_kind = -1;
				return;
			}
		struct conf_listen *l = realloc(ld->conf->listens,
		    (ld->conf->nlistens + 1) * sizeof(*l));
		if (l == NULL)
			return;
		ld->conf->listens = l;
		l = &l[ld->conf->nlistens++];
		memset(l, 0, sizeof(*l));
		l->name = strdup(name);
		l->line = ld->lineno;
		apply_defaults(listen_keys, l);
		ld->cur_obj = l;
	} else {
		for (size_t i = 0; i < ld->conf->nroutes; i++)
			if (strcmp(ld->conf->routes[i].name, name) == 0) {
				conf_err(ld->ctx, ld->lineno, hdr, NULL,
				    "duplicate name (first on line %d)", ld->conf->routes[i].line);
				ld->cur_kind = -1;
				return;
			}
		struct conf_route *r = realloc(ld->conf->routes,
		    (ld->conf->nroutes + 1) * sizeof(*r));
		if (r == NULL)
			return;
		ld->conf->routes = r;
		r = &r[ld->conf->nroutes++];
		memset(r, 0, sizeof(*r));
		r->name = strdup(name);
		r->line = ld->lineno;
		ld->cur_obj = r;
	}
}

static void
section_key(struct conf_section *sec, const char *name, const char *value, int line)
{
	struct conf_kv *kv = realloc(sec->kv, (sec->nkv + 1) * sizeof(*kv));

	if (kv == NULL)
		return;
	sec->kv = kv;
	kv[sec->nkv].key = strdup(name);
	kv[sec->nkv].value = strdup(value);
	kv[sec->nkv].line = line;
	sec->nkv++;
}

/* One "key = value" of the current section: both trimmed, the key not empty. */
static void
on_key(struct loader *ld, const char *name, const char *value)
{
	if (ld->cur_section[0] == '\0') {
		conf_err(ld->ctx, ld->lineno, NULL, name, "key outside any section");
		return;
	}
	if (ld->cur_kind < 0 || ld->cur_obj == NULL)
		return; /* the section header was already reported */
	if (value[0] == '\0') {
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name, "empty value");
		return;
	}
	/* Values end up in headers and logs: a CR or other control byte never belongs. */
	for (const char *p = value; *p != '\0'; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			conf_err(ld->ctx, ld->lineno, ld->cur_section, name,
			    "control character (0x%02x) in value", (unsigned char)*p);
			return;
		}
	if (ld->cur_kind == 0)
		set_table_key(ld, global_keys, ld->cur_obj, name, value);
	else if (ld->cur_kind == 1)
		set_table_key(ld, listen_keys, ld->cur_obj, name, value);
	else if (ld->cur_kind == KIND_HANDLER)
		section_key(ld->cur_obj, name, value, ld->lineno);
	else
		route_key(ld, ld->cur_obj, name, value);
}

/*
 * Blanks, as inih counted them before we read lines ourselves: any
 * isspace() byte, so a stray form feed around a value is trimmed as it
 * always was.
 */
static int
is_blank(char c)
{
	return isspace((unsigned char)c);
}

static char *
skip_blanks(char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

static void
trim_end(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
}

/* Keeps byte c at buf[n] while the line has room; returns the new length. */
static size_t
keep_byte(char *buf, size_t n, int c, int *over)
{
	if (n == CONF_MAX_LINE) {
		*over = 1;
		return n;
	}
	buf[n] = (char)c;
	return n + 1;
}

/*
 * Reads the next line into ld->line without its ending (the LF and any CRs
 * just before it), NUL-terminated.  At most CONF_MAX_LINE bytes are kept:
 * *over is set when the line had more, and the rest is read and dropped, so
 * memory stays bounded whatever the file holds.  *len is the length kept.
 * Returns 1 for a line, 0 at the end of the file, -1 on a read error (errno).
 */
static int
next_line(struct loader *ld, size_t *len, int *over)
{
	size_t n = 0, ncr = 0;
	int c, any = 0;

	*over = 0;
	while ((c = getc(ld->fp)) != EOF) {
		any = 1;
		if (c == '\n')
			break;
		if (c == '\r') {
			ncr++; /* kept only if more than CRs follow */
			continue;
		}
		for (; ncr > 0; ncr--)
			n = keep_byte(ld->line, n, '\r', over);
		n = keep_byte(ld->line, n, c, over);
	}
	if (c == EOF && ferror(ld->fp))
		return -1;
	ld->line[n] = '\0';
	*len = n;
	return any;
}

/*
 * Cuts s at its inline comment: a ';' after a blank, as inih's rule was.
 * A '#' is no comment there, and neither is a ';' right after '=' ("a =;b").
 */
static void
cut_comment(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		if (*p == ';' && p > s && is_blank(p[-1])) {
			*p = '\0';
			return;
		}
}

/*
 * One line of the file, len bytes in ld->line (over: it was longer).  Does
 * what inih did for us until lines grew past its 200-byte buffer: skips
 * comments and empty lines, starts sections, splits "key = value" at the
 * first '=' with blanks trimmed around both and an inline comment cut off.
 * Leading blanks never make a continuation line.
 */
static void
parse_line(struct loader *ld, size_t len, int over)
{
	char *s = ld->line, *eq;

	if (memchr(s, '\0', len) != NULL) {
		conf_err(ld->ctx, ld->lineno, NULL, NULL, "NUL byte in line");
		return;
	}
	if (ld->lineno == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	s = skip_blanks(s);
	if (*s == ';' || *s == '#' || (*s == '\0' && !over))
		return;
	if (over) {
		conf_err(ld->ctx, ld->lineno, NULL, NULL, "line longer than %d bytes", CONF_MAX_LINE);
		return;
	}
	if (*s == '[') {
		char *rb = strchr(s, ']');
		char *rest = rb != NULL ? skip_blanks(rb + 1) : NULL;
		if (rb == NULL || (*rest != '\0' && *rest != ';' && *rest != '#')) {
			conf_err(ld->ctx, ld->lineno, NULL, NULL, "malformed section header");
			ld->cur_kind = -1;
			return;
		}
		*rb = '\0';
		begin_section(ld, s + 1);
		return;
	}
	cut_comment(s);
	eq = strchr(s, '=');
	trim_end(s);
	if (eq == NULL || eq == s) {
		/* no '=' before the comment, or no key before the '=' */
		conf_err(ld->ctx, ld->lineno, ld->cur_section[0] ? ld->cur_section : NULL, NULL,
		    "expected \"key = value\"");
		return;
	}
	*eq = '\0';
	trim_end(s);
	char *value = skip_blanks(eq + 1);
	on_key(ld, s, value);
}

struct conf_section *
conf_section_find(const struct config *conf, const char *kind, const char *name)
{
	for (size_t i = 0; i < conf->nsections; i++)
		if (strcmp(conf->sections[i].kind, kind) == 0 && strcmp(conf->sections[i].name, name) == 0)
			return &conf->sections[i];
	return NULL;
}

int
conf_check_keys(struct conf_ctx *ctx, const struct conf_section *sec, const char *const *known)
{
	char secname[256], hint[96];
	int bad = 0;

	snprintf(secname, sizeof(secname), "%s:%s", sec->kind, sec->name);
	for (size_t i = 0; i < sec->nkv; i++) {
		size_t k;
		for (k = 0; known[k] != NULL; k++)
			if (strcmp(known[k], sec->kv[i].key) == 0)
				break;
		if (known[k] != NULL)
			continue;
		suggest(sec->kv[i].key, known, hint, sizeof(hint));
		conf_err(ctx, sec->kv[i].line, secname, sec->kv[i].key, "unknown key%s", hint);
		bad++;
	}
	return bad;
}

const struct conf_kv *
conf_route_kv(const struct conf_route *rt, const char *key)
{
	for (size_t i = rt->nkv; i-- > 0;)
		if (strcmp(rt->kv[i].key, key) == 0)
			return &rt->kv[i];
	return NULL;
}

const struct conf_kv *
conf_route_next(const struct conf_route *rt, const char *key, const struct conf_kv *prev)
{
	for (size_t i = prev != NULL ? (size_t)(prev - rt->kv) + 1 : 0; i < rt->nkv; i++)
		if (strcmp(rt->kv[i].key, key) == 0)
			return &rt->kv[i];
	return NULL;
}

int
conf_route_alone(struct conf_ctx *ctx, const struct conf_route *rt, const struct conf_kv *kv)
{
	const struct conf_kv *other = conf_route_next(rt, kv->key, NULL);

	if (other == kv)
		other = conf_route_next(rt, kv->key, kv);
	if (other == NULL)
		return 0;
	conf_err(ctx, kv->line, ctx->section, kv->key, "\"%s\" cannot go with another %s line "
	    "(line %d)", kv->value, kv->key, other->line);
	return -1;
}

int
conf_key_line(const struct config *c, const char *section, const char *key)
{
	for (size_t i = 0; i < c->nseen; i++)
		if (strcmp(c->seen[i].section, section) == 0 && strcmp(c->seen[i].key, key) == 0)
			return c->seen[i].line;
	return 0;
}

static int
seen_line(const struct loader *ld, const char *section, const char *key)
{
	return conf_key_line(ld->conf, section, key);
}

struct key_lines {
	const struct loader *ld;
	const char *section;
};

/* The line a single-valued key of a listener was given on, else its header's. */
static int
listen_key_line(const void *arg, const char *key)
{
	const struct key_lines *kl = arg;
	int line = seen_line(kl->ld, kl->section, key);

	return line;
}

static void
check_listens(struct loader *ld)
{
	struct config *c = ld->conf;
	char sec[256];

	if (c->nlistens == 0)
		conf_err(ld->ctx, ld->lineno, NULL, NULL, "no [listen:NAME] section: nothing to serve");
	if (c->nlistens > CONF_MAX_LISTENS)
		conf_err(ld->ctx, ld->lineno, NULL, NULL, "more than %d listeners", CONF_MAX_LISTENS);
	for (size_t i = 0; i < c->nlistens; i++) {
		struct conf_listen *l = &c->listens[i];
		snprintf(sec, sizeof(sec), "listen:%s", l->name);
		if (l->address == NULL) {
			conf_err(ld->ctx, l->line, sec, "address", "missing (e.g. address = 127.0.0.1:8080)");
			continue;
		}
		int line = seen_line(ld, sec, "address");
		if (conf_parse_address(l->address, &l->addr, &l->addrlen) < 0) {
			conf_err(ld->ctx, line, sec, "address",
			    "expected HOST:PORT, [IPV6]:PORT or :PORT, not \"%s\"", l->address);
			continue;
		}
		static const char *const https_only[] = { "hsts", "tls_client_ca", "tls_verify_client",
			"tls_min_version", "tls_ciphers", "tls_ciphersuites", NULL };
		for (size_t k = 0; l->tls_cert.n == 0 && l->tls_key.n == 0 && https_only[k] != NULL; k++) {
			int line = seen_line(ld, sec, https_only[k]);
			if (line > 0)
				conf_err(ld->ctx, line, sec, https_only[k],
				    "only for HTTPS listeners (give tls_cert and tls_key)");
		}
		if (l->hsts != NULL && strncmp(l->hsts, "max-age=", 8) != 0)
			conf_err(ld->ctx, seen_line(ld, sec, "hsts"), sec, "hsts",
			    "expected \"max-age=SECONDS[; includeSubDomains][; preload]\"");
		if (l->tls_cert.n > 0 || l->tls_key.n > 0) {
			struct key_lines kl = { ld, sec };
			atomic_store(&l->tls, tls_listener_new(ld->ctx, l, sec, c->global.tls_ticket_rotate,
			    listen_key_line, &kl));
		}
		for (size_t j = 0; j < i; j++)
			if (c->listens[j].addrlen == l->addrlen &&
			    memcmp(&c->listens[j].addr, &l->addr, l->addrlen) == 0 &&
			    ((struct sockaddr_in *)&l->addr)->sin_port != 0)
				conf_err(ld->ctx, line, sec, "address",
				    "same address as [listen:%s]", c->listens[j].name);
	}
}

static int
host_ok(const char *h)
{
	if (*h == '\0')
		return 0;
	if (h[0] == '*' && (h[1] != '.' || h[2] == '\0'))
		return 0;
	for (const char *p = h[0] == '*' ? h + 1 : h; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_' &&
		    *p != ':' && *p != '[' && *p != ']')
			return 0;
	return 1;
}

/* One `middleware = NAME, NAME` line: its blocks, after those of the
 * lines before. */
static void
route_middleware(struct loader *ld, struct conf_route *rt, const struct conf_kv *kv,
    const char *sec)
{
	char *copy = strdup(kv->value), *save = NULL, *tok;

	for (tok = copy != NULL ? strtok_r(copy, ", \t", &save) : NULL; tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		struct conf_section *ms = conf_section_find(ld->conf, "middleware", tok);
		if (ms == NULL) {
			conf_err(ld->ctx, kv->line, sec, "middleware", "no [middleware:%s] section", tok);
			continue;
		}
		if (ms->data == NULL)
			continue; /* its own errors were reported */
		if (rt->nmw == CONF_MAX_MIDDLEWARE) {
			conf_err(ld->ctx, kv->line, sec, "middleware", "more than %d blocks, counting "
			    "every middleware line (\"%s\" is one too many)", CONF_MAX_MIDDLEWARE, tok);
			break;
		}
		for (size_t i = 0; i < rt->nmw; i++)
			if (rt->mw[i] == ms) {
				conf_err(ld->ctx, kv->line, sec, "middleware", "\"%s\" listed twice", tok);
				ms = NULL;
				break;
			}
		if (ms != NULL)
			rt->mw[rt->nmw++] = ms;
	}
	free(copy);
}

static void
check_route(struct loader *ld, struct conf_route *rt)
{
	struct config *c = ld->conf;
	const struct conf_kv *sel = NULL;
	char sec[256];

	snprintf(sec, sizeof(sec), "route:%s", rt->name);
	for (size_t i = 0; i < rt->nkv; i++) {
		struct conf_kv *kv = &rt->kv[i];
		if (strcmp(kv->key, "listen") == 0) {
			size_t j;
			for (j = 0; j < c->nlistens; j++)
				if (strcmp(c->listens[j].name, kv->value) == 0)
					break;
			if (j == c->nlistens)
				conf_err(ld->ctx, kv->line, sec, "listen", "no [listen:%s] section", kv->value);
			else if (j < CONF_MAX_LISTENS)
				rt->listen_mask |= 1ULL << j;
		} else if (strcmp(kv->key, "host") == 0) {
			char *h = strdup(kv->value);
			for (char *p = h; p != NULL && *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
			if (h == NULL || !host_ok(h)) {
				conf_err(ld->ctx, kv->line, sec, "host",
				    "expected a host name or *.domain, not \"%s\"", kv->value);
				free(h);
				continue;
			}
			char **hs = realloc(rt->hosts, (rt->nhosts + 1) * sizeof(*hs));
			if (hs == NULL) {
				free(h);
				continue;
			}
			rt->hosts = hs;
			hs[rt->nhosts++] = h;
		} else if (strcmp(kv->key, "path") == 0) {
			if (kv->value[0] != '/' || strpbrk(kv->value, " \t?#") != NULL) {
				conf_err(ld->ctx, kv->line, sec, "path",
				    "expected a path prefix starting with /, not \"%s\"", kv->value);
				rt->invalid = 1;
			}
			else {
				rt->path = strdup(kv->value);
				rt->path_len = strlen(kv->value);
			}
		} else if (strcmp(kv->key, "middleware") == 0) {
			route_middleware(ld, rt, kv, sec);
		} else if (handler_for_key(ld, kv->key, 1) != NULL) {
			if (sel != NULL) {
				conf_err(ld->ctx, kv->line, sec, kv->key,
				    "a route has one handler; \"%s\" was given on line %d",
				    sel->key, sel->line);
				continue;
			}
			sel = kv;
		}
	}
	if (rt->listen_mask == 0)
		rt->listen_mask = c->nlistens >= 64 ? ~0ULL : (1ULL << c->nlistens) - 1;
	if (rt->path == NULL) {
		rt->path = strdup("/");
		rt->path_len = 1;
	}
	if (sel == NULL) {
		char names[256];
		size_t n = 0;
		names[0] = '\0';
		for (size_t i = 0; ld->handlers[i] != NULL && n < sizeof(names); i++)
			if (ld->handlers[i]->key != NULL)
				n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s",
				    n > 0 ? ", " : "", ld->handlers[i]->key);
		conf_err(ld->ctx, rt->line, sec, NULL, "no handler: give one of %s", names);
		return;
	}
	rt->handler = handler_for_key(ld, sel->key, 1);
	for (size_t i = 0; i < rt->nkv; i++) {
		const struct handler_ops *h = handler_for_key(ld, rt->kv[i].key, 0);
		/* A second selector was reported above already. */
		if (h != NULL && h != rt->handler && strcmp(h->key, rt->kv[i].key) != 0)
			conf_err(ld->ctx, rt->kv[i].line, sec, rt->kv[i].key,
			    "belongs to \"%s =\" routes, not \"%s =\"", h->key, sel->key);
	}
	struct conf_ctx *ctx = ld->ctx;
	const char *saved = ctx->section;
	ctx->section = sec;
	rt->handler->configure(ctx, rt, sel);
	ctx->section = saved;
}

/* Host class for ordering: exact names first, then wildcards, then any. */
static int
host_rank(const struct conf_route *r)
{
	if (r->nhosts == 0)
		return 0;
	for (size_t i = 0; i < r->nhosts; i++)
		if (r->hosts[i][0] != '*')
			return 2;
	return 1;
}

static int
route_order(const void *a, const void *b)
{
	const struct conf_route *x = a, *y = b;
	int hx = host_rank(x), hy = host_rank(y);

	if (hx != hy)
		return hy - hx;
	if (x->path_len != y->path_len)
		return x->path_len < y->path_len ? 1 : -1;
	return x->line - y->line;
}

static void
check_duplicate_routes(struct loader *ld)
{
	struct config *c = ld->conf;

	for (size_t i = 0; i < c->nroutes; i++) {
		for (size_t j = 0; j < i; j++) {
			struct conf_route *a = &c->routes[i], *b = &c->routes[j];
			if (a->invalid || b->invalid || strcmp(a->path, b->path) != 0 || (a->listen_mask & b->listen_mask) == 0)
				continue;
			int overlap = a->nhosts == 0 && b->nhosts == 0;
			for (size_t x = 0; x < a->nhosts; x++)
				for (size_t y = 0; y < b->nhosts; y++)
					overlap |= strcmp(a->hosts[x], b->hosts[y]) == 0;
			if (overlap) {
				char sec[256];
				snprintf(sec, sizeof(sec), "route:%s", a->name);
				conf_err(ld->ctx, a->line, sec, NULL,
				    "same listener, host and path as [route:%s]", b->name);
			}
		}
	}
}

static struct config *
load(const char *file, const char *text, const struct handler_ops *const *handlers,
    struct conf_ctx *ctx)
{
	struct loader ld = { .ctx = ctx, .handlers = handlers, .cur_kind = -1 };
	char errbuf[256], *msg;
	size_t before = ctx->nerrors, len;
	struct stat st;
	int over, got;

	ctx->file = file;
	ld.conf = calloc(1, sizeof(*ld.conf));
	if (ld.conf == NULL)
		return NULL;
	ld.conf->file = strdup(file);
	atomic_init(&ld.conf->refs, 1);
	apply_defaults(global_keys, &ld.conf->global);
	ld.fp = text != NULL ? fmemopen((void *)text, strlen(text), "r") : fopen(file, "r");
	if (ld.fp == NULL) {
		if (asprintf(&msg, "%s: cannot open: %s", file, strerror(errno)) >= 0)
			push_error(ctx, 0, msg);
		goto fail;
	}
	/* A directory opens, and reading it fails; say what it is instead. */
	if (fstat(fileno(ld.fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		if (asprintf(&msg, "%s: is a directory", file) >= 0)
			push_error(ctx, 0, msg);
		fclose(ld.fp);
		goto fail;
	}
	ld.line = malloc(CONF_MAX_LINE + 1);
	if (ld.line == NULL) {
		if (asprintf(&msg, "%s: cannot read: out of memory", file) >= 0)
			push_error(ctx, 0, msg);
		fclose(ld.fp);
		goto fail;
	}
	while ((got = next_line(&ld, &len, &over)) > 0) {
		ld.lineno++;
		parse_line(&ld, len, over);
	}
	/* Half a file is no configuration: nothing past this is checked. */
	if (got < 0) {
		if (asprintf(&msg, "%s: cannot read: %s", file, strerror(errno)) >= 0)
			push_error(ctx, 0, msg);
		fclose(ld.fp);
		goto fail;
	}
	fclose(ld.fp);
	ld.conf->seen = ld.seen;
	ld.conf->nseen = ld.nseen;
	ld.seen = NULL;
	check_listens(&ld);
	if (ld.conf->global.tls_ticket_key != NULL &&
	    tls_ticket_key_check(ld.conf->global.tls_ticket_key, errbuf, sizeof(errbuf)) < 0)
		conf_err(ctx, seen_line(&ld, "global", "tls_ticket_key"), "global", "tls_ticket_key",
		    "%s", errbuf);
	ctx->conf = ld.conf;
	for (size_t i = 0; i < ld.conf->nsections; i++) {
		struct conf_section *sec = &ld.conf->sections[i];
		char name[256];
		snprintf(name, sizeof(name), "%s:%s", sec->kind, sec->name);
		ctx->section = name;
		sec->owner->configure_section(ctx, sec);
		ctx->section = NULL;
	}
	for (size_t i = 0; i < ld.conf->nroutes; i++)
		check_route(&ld, &ld.conf->routes[i]);
	check_duplicate_routes(&ld);
	if (ctx->nerrors > before)
		goto fail;
	if (ld.conf->nroutes > 0)
		qsort(ld.conf->routes, ld.conf->nroutes, sizeof(*ld.conf->routes), route_order);
	free(ld.line);
	free(ld.seen);
	return ld.conf;
fail:
	sort_errors(ctx, before);
	free(ld.line);
	free(ld.seen);
	config_free(ld.conf);
	return NULL;
}

struct config *
config_load(const char *file, const struct handler_ops *const *handlers, struct conf_ctx *ctx)
{
	return load(file, NULL, handlers, ctx);
}

struct config *
config_load_string(const char *name, const char *text,
    const struct handler_ops *const *handlers, struct conf_ctx *ctx)
{
	return load(name, text, handlers, ctx);
}

void
config_hold(struct config *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

int
config_drop(struct config *c)
{
	/* Release, and acquire for the last one: whoever frees sees every
	 * other holder's last use of the snapshot. */
	return atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->seen);
	free(c->global.user);
	free(c->global.group);
	free(c->global.error_log);
	free(c->global.access_log);
	free(c->global.tls_ticket_key);
	free(c->global.pid_file);
	for (size_t i = 0; i < c->nlistens; i++) {
		struct conf_listen *l = &c->listens[i];
		free(l->name);
		free(l->address);
		for (size_t j = 0; j < l->tls_cert.n; j++)
			free(l->tls_cert.v[j]);
		for (size_t j = 0; j < l->tls_key.n; j++)
			free(l->tls_key.v[j]);
		free(l->tls_cert.v);
		free(l->tls_key.v);
		free(l->tls_cert.lines);
		free(l->tls_key.lines);
		free(l->tls_min_version);
		free(l->tls_ciphers);
		free(l->tls_ciphersuites);
		free(l->hsts);
		free(l->tls_client_ca);
		free(l->tls_verify_client);
		tls_listener_free(atomic_load(&l->tls));
	}
	free(c->listens);
	for (size_t i = 0; i < c->nroutes; i++) {
		struct conf_route *r = &c->routes[i];
		if (r->handler != NULL && r->handler->free_conf != NULL && r->hconf != NULL)
			r->handler->free_conf(r->hconf);
		for (size_t j = 0; j < r->nhosts; j++)
			free(r->hosts[j]);
		free(r->hosts);
		for (size_t j = 0; j < r->nkv; j++) {
			free(r->kv[j].key);
			free(r->kv[j].value);
		}
		free(r->kv);
		free(r->name);
		free(r->path);
	}
	free(c->routes);
	for (size_t i = 0; i < c->nsections; i++) {
		struct conf_section *sec = &c->sections[i];
		if (sec->data != NULL && sec->owner->free_section != NULL)
			sec->owner->free_section(sec->data);
		for (size_t j = 0; j < sec->nkv; j++) {
			free(sec->kv[j].key);
			free(sec->kv[j].value);
		}
		free(sec->kv);
		free(sec->kind);
		free(sec->name);
	}
	free(c->sections);
	free(c);
}

/* "key = value", or "key =value" when a blank before the value would make
 * it read back as a comment. */
static void
dump_kv(FILE *out, const char *key, const char *value)
{
	fprintf(out, "%s =%s%s\n", key, value[0] == ';' || value[0] == '#' ? "" : " ", value);
}

static void
dump_table(const struct key_def *defs, const void *obj, FILE *out, int plain)
{
	char buf[64];

	for (const struct key_def *d = defs; d->name != NULL; d++) {
		const char *field = (const char *)obj + d->off;
		/* A plain listener shows no TLS keys: they would not load there. */
		if (plain && (strncmp(d->name, "tls_", 4) == 0 || strcmp(d->name, "hsts") == 0))
			continue;
		switch (d->type) {
		case K_STR:
			if (*(char *const *)field != NULL)
				dump_kv(out, d->name, *(char *const *)field);
			break;
		case K_LIST:
			for (size_t i = 0; i < ((const struct conf_strlist *)field)->n; i++)
				dump_kv(out, d->name, ((const struct conf_strlist *)field)->v[i]);
			break;
		case K_DURATION:
			units_format_duration(*(const int64_t *)field, buf, sizeof(buf));
			fprintf(out, "%s = %s\n", d->name, buf);
			break;
		case K_SIZE:
			units_format_size(*(const uint64_t *)field, buf, sizeof(buf));
			fprintf(out, "%s = %s\n", d->name, buf);
			break;
		case K_COUNT:
			fprintf(out, "%s = %llu\n", d->name, (unsigned long long)*(const uint64_t *)field);
			break;
		case K_BOOL:
			fprintf(out, "%s = %s\n", d->name, *(const int *)field ? "on" : "off");
			break;
		case K_WORKERS:
			if (*(const int *)field == 0)
				fprintf(out, "%s = auto\n", d->name);
			else
				fprintf(out, "%s = %d\n", d->name, *(const int *)field);
			break;
		case K_LOGLEVEL:
			fprintf(out, "%s = %s\n", d->name, log_level_name(*(const enum log_level *)field));
			break;
		case K_LOGFMT:
			fprintf(out, "%s = %s\n", d->name,
			    *(const int *)field == ACCESS_LOG_JSON ? "json" :
			    *(const int *)field == ACCESS_LOG_MAIN ? "main" : "combined");
			break;
		}
	}
}

void
config_dump(const struct config *c, FILE *out)
{
	fprintf(out, "# effective configuration of %s\n[global]\n", c->file);
	dump_table(global_keys, &c->global, out, 0);
	for (size_t i = 0; i < c->nlistens; i++) {
		fprintf(out, "\n[listen:%s]\n", c->listens[i].name);
		dump_table(listen_keys, &c->listens[i], out, c->listens[i].tls_cert.n == 0);
	}
	for (size_t i = 0; i < c->nsections; i++) {
		const struct conf_section *sec = &c->sections[i];
		fprintf(out, "\n[%s:%s]\n", sec->kind, sec->name);
		for (size_t j = 0; j < sec->nkv; j++)
			dump_kv(out, sec->kv[j].key, sec->kv[j].value);
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = &c->routes[i];
		fprintf(out, "\n[route:%s]\n", r->name);
		for (size_t j = 0; j < c->nlistens; j++)
			if (r->listen_mask & (1ULL << j))
				fprintf(out, "listen = %s\n", c->listens[j].name);
		for (size_t j = 0; j < r->nhosts; j++)
			fprintf(out, "host = %s\n", r->hosts[j]);
		fprintf(out, "path = %s\n", r->path);
		for (size_t j = 0; j < r->nkv; j++) {
			const char *k = r->kv[j].key;
			if (strcmp(k, "listen") != 0 && strcmp(k, "host") != 0 && strcmp(k, "path") != 0)
				dump_kv(out, k, r->kv[j].value);
		}
	}
}
