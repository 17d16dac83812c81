/*
 * config: the loader.  It builds a snapshot from what the reader
 * (conf_read.c) hands it: [global] and [listen:NAME] keys go through their
 * tables (conf_keys.c), routes and the sections handlers own keep their
 * lines for the handlers, and once the file is read every listener, section
 * and route is checked, cross-references included.
 */
#include "common/config.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf_keys.h"
#include "common/conf_read.h"
#include "common/handler.h"
#include "common/metrics.h"
#include "common/tls.h"

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
	int lineno;                  /* of the line being read; then of the last */
	char cur_section[256];
	int cur_kind;                /* index in section_kinds, KIND_HANDLER, or -1 when bad */
	void *cur_obj;               /* the listen or route being filled */
	struct conf_seen *seen;      /* keys given for global and listens, until the end of the file */
	size_t nseen;
};

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
set_table_key(struct loader *ld, const struct key_def *defs, void *obj,
    const char *name, const char *value)
{
	const struct key_def *d = conf_find_def(defs, name);
	const char *why, *cands[64];
	char hint[96];
	int prev;

	if (d == NULL) {
		conf_def_names(defs, cands, 64);
		conf_suggest(name, cands, hint, sizeof(hint));
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name, "unknown key%s", hint);
		return;
	}
	if (d->type != K_LIST && (prev = note_seen(ld, name)) != 0) {
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name,
		    "given twice (first on line %d)", prev);
		return;
	}
	if (conf_set_value(d, obj, value, &why) < 0) {
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
		if (!selector && conf_key_find(h->keys, key) != NULL)
			return h;
	}
	return NULL;
}

/* Whether a route key may be repeated, each line adding to a list. */
static int
route_list_key(const struct loader *ld, const char *name)
{
	const struct handler_ops *h = handler_for_key(ld, name, 0);
	const struct conf_key *k = conf_key_find(h != NULL ? h->keys : conf_route_keys, name);

	return k != NULL && (k->flags & CONF_KEY_LIST);
}

static void
route_key(struct loader *ld, struct conf_route *rt, const char *name, const char *value)
{
	if (conf_key_find(conf_route_keys, name) == NULL && handler_for_key(ld, name, 0) == NULL) {
		const char *cands[64];
		size_t n = 0;
		char hint[96];
		for (const struct conf_key *k = conf_route_keys; k->name != NULL; k++)
			cands[n++] = k->name;
		for (size_t i = 0; ld->handlers[i] != NULL && n < 60; i++) {
			const struct handler_ops *h = ld->handlers[i];
			if (h->key != NULL)
				cands[n++] = h->key;
			for (const struct conf_key *k = h->keys; k != NULL && k->name != NULL && n < 62; k++)
				cands[n++] = k->name;
		}
		cands[n] = NULL;
		conf_suggest(name, cands, hint, sizeof(hint));
		conf_err(ld->ctx, ld->lineno, ld->cur_section, name, "unknown key%s", hint);
		return;
	}
	/* host, listen, middleware and the handlers' list keys may be
	 * repeated; every other key may be given once. */
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
		conf_suggest(kind, kinds, hint, sizeof(hint));
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
		conf_apply_defaults(conf_listen_keys, l);
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
		set_table_key(ld, conf_global_keys, ld->cur_obj, name, value);
	else if (ld->cur_kind == 1)
		set_table_key(ld, conf_listen_keys, ld->cur_obj, name, value);
	else if (ld->cur_kind == KIND_HANDLER)
		section_key(ld->cur_obj, name, value, ld->lineno);
	else
		route_key(ld, ld->cur_obj, name, value);
}

static void
read_section(void *arg, int line, const char *hdr)
{
	struct loader *ld = arg;

	ld->lineno = line;
	if (hdr != NULL)
		begin_section(ld, hdr);
	else
		ld->cur_kind = -1;
}

static void
read_key(void *arg, int line, const char *key, const char *value)
{
	struct loader *ld = arg;

	ld->lineno = line;
	on_key(ld, key, value);
}

static const struct conf_read_ops read_ops = { read_section, read_key };

struct conf_section *
conf_section_find(const struct config *conf, const char *kind, const char *name)
{
	for (size_t i = 0; i < conf->nsections; i++)
		if (strcmp(conf->sections[i].kind, kind) == 0 && strcmp(conf->sections[i].name, name) == 0)
			return &conf->sections[i];
	return NULL;
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
			    strncmp(l->address, "unix:", 5) == 0 ?
			    "expected unix:/ABSOLUTE/PATH of at most 107 bytes, not \"%s\"" :
			    "expected HOST:PORT, [IPV6]:PORT, :PORT or unix:/PATH, not \"%s\"", l->address);
			continue;
		}
		char *end = NULL;
		unsigned long mode = strtoul(l->unix_mode, &end, 8);
		if (l->addr.ss_family != AF_UNIX && seen_line(ld, sec, "unix_mode") > 0)
			conf_err(ld->ctx, seen_line(ld, sec, "unix_mode"), sec, "unix_mode",
			    "only for a unix:PATH address");
		else if (end == l->unix_mode || *end != '\0' || mode > 0777)
			conf_err(ld->ctx, seen_line(ld, sec, "unix_mode"), sec, "unix_mode",
			    "expected an octal mode such as 0660, not \"%s\"", l->unix_mode);
		l->mode = (unsigned)mode;
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
		/* HTTP/2 is the default where browsers use it: over TLS, by ALPN.
		 * On a plain listener it is prior-knowledge h2c, asked for. */
		if (seen_line(ld, sec, "http2") == 0)
			l->http2 = l->tls_cert.n > 0 || l->tls_key.n > 0;
		if (l->tls_cert.n > 0 || l->tls_key.n > 0) {
			struct key_lines kl = { ld, sec };
			l->tls = tls_listener_new(ld->ctx, l, sec, c->global.tls_ticket_rotate,
			    listen_key_line, &kl);
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

/* metrics_buckets = 5ms 25ms 100ms 1s: the bounds of the route's latency histogram. */
static void
route_buckets(struct loader *ld, struct conf_route *rt, const struct conf_kv *kv, const char *sec)
{
	int n = metrics_parse_buckets(kv->value, rt->le_ms, CONF_MAX_BUCKETS);

	if (n < 0) {
		conf_err(ld->ctx, kv->line, sec, "metrics_buckets", "expected up to %d increasing "
		    "durations (\"5ms 25ms 100ms 1s\"), not \"%s\"", CONF_MAX_BUCKETS, kv->value);
		return;
	}
	rt->nbuckets = (unsigned)n;
}

/* One `middleware = NAME, NAME` line: its blocks, after those of the
 * lines before. */
static void
route_middleware(struct loader *ld, struct conf_route *rt, const struct conf_kv *kv,
    const char *sec)
{
	const char *p = kv->value, *tok;
	char name[CONF_MAX_NAME + 2];
	size_t len;

	while (conf_list_next(&p, &tok, &len)) {
		/* One byte over the longest name is enough to find none. */
		snprintf(name, sizeof(name), "%.*s", (int)len, tok);
		struct conf_section *ms = conf_section_find(ld->conf, "middleware", name);
		if (ms == NULL) {
			conf_err(ld->ctx, kv->line, sec, "middleware", "no [middleware:%.*s] section",
			    (int)len, tok);
			continue;
		}
		if (ms->data == NULL)
			continue; /* its own errors were reported */
		if (rt->nmw == CONF_MAX_MIDDLEWARE) {
			conf_err(ld->ctx, kv->line, sec, "middleware", "more than %d blocks, counting "
			    "every middleware line (\"%s\" is one too many)", CONF_MAX_MIDDLEWARE, name);
			break;
		}
		for (size_t i = 0; i < rt->nmw; i++)
			if (rt->mw[i] == ms) {
				conf_err(ld->ctx, kv->line, sec, "middleware", "\"%s\" listed twice", name);
				ms = NULL;
				break;
			}
		if (ms != NULL)
			rt->mw[rt->nmw++] = ms;
	}
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
		} else if (strcmp(kv->key, "metrics_buckets") == 0) {
			route_buckets(ld, rt, kv, sec);
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
	if (rt->nbuckets == 0)
		rt->nbuckets = (unsigned)metrics_parse_buckets(conf_key_find(conf_route_keys,
		    "metrics_buckets")->def, rt->le_ms, CONF_MAX_BUCKETS);
	if (rt->path == NULL) { /* not given, or refused */
		rt->path = strdup(conf_key_find(conf_route_keys, "path")->def);
		rt->path_len = strlen(conf_key_find(conf_route_keys, "path")->def);
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
	size_t before = ctx->nerrors;
	char errbuf[256];
	int lines;

	ctx->file = file;
	ld.conf = calloc(1, sizeof(*ld.conf));
	if (ld.conf == NULL)
		return NULL;
	ld.conf->file = strdup(file);
	atomic_init(&ld.conf->refs, 1);
	conf_apply_defaults(conf_global_keys, &ld.conf->global);
	if ((lines = conf_read(ctx, file, text, ld.cur_section, &read_ops, &ld)) < 0)
		goto fail;
	ld.lineno = lines;
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
	free(ld.seen);
	return ld.conf;
fail:
	conf_sort_errors(ctx, before);
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
		free(l->unix_mode);
		free(l->tls_client_ca);
		free(l->tls_verify_client);
		tls_listener_free(l->tls);
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

