/*
 * conf_keys: what a key may hold.  The tables of [global] and
 * [listen:NAME] keys with their defaults, the parsing of typed values into
 * the snapshot, and the -T dump, which prints them back.
 */
#include "common/conf_keys.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/conf_read.h"
#include "common/handler.h"
#include "common/metrics.h"
#include "common/units.h"

#define G(f) offsetof(struct conf_global, f)
const struct key_def conf_global_keys[] = {
	{ "workers", K_WORKERS, G(workers), "auto", 1, 256 },
	{ "max_connections", K_COUNT, G(max_connections), "10000", 1, 1000000 },
	{ "user", K_STR, G(user), NULL, 0, 0 },
	{ "group", K_STR, G(group), NULL, 0, 0 },
	{ "error_log", K_STR, G(error_log), "stderr", 0, 0 },
	{ "log_level", K_LOGLEVEL, G(log_level), "info", 0, 0 },
	{ "access_log", K_STR, G(access_log), "off", 0, 0 },
	{ "access_log_format", K_LOGFMT, G(access_log_format), "combined", 0, 0 },
	{ "shutdown_timeout", K_DURATION, G(shutdown_timeout), "10s", 0, 0 },
	{ "shutdown_delay", K_DURATION, G(shutdown_delay), "0s", 0, 0 },
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
	{ "h2_max_concurrent_streams", K_COUNT, G(h2_max_streams), "128", 1, 65535 },
	{ "h2_window_size", K_SIZE, G(h2_window), "64k", 1024, 0x7fffffff },
	{ "h2_connection_window_size", K_SIZE, G(h2_conn_window), "1m", 65535, 0x7fffffff },
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
const struct key_def conf_listen_keys[] = {
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
	{ "http2", K_BOOL, L(http2), NULL, 0, 0 },
	{ "unix_mode", K_STR, L(unix_mode), "0660", 0, 0 },
	{ NULL, 0, 0, NULL, 0, 0 },
};
#undef L

int
conf_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon;
	uint64_t port;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(s, "unix:", 5) == 0) {
		/* unix:/PATH: an absolute path that fits a sockaddr_un. */
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		size_t n = strlen(s + 5);
		if (s[5] != '/' || n >= sizeof(sun->sun_path))
			return -1;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, s + 5, n + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
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
int
conf_set_value(const struct key_def *def, void *obj, const char *value, const char **why)
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

void
conf_apply_defaults(const struct key_def *defs, void *obj)
{
	const char *why;

	for (const struct key_def *d = defs; d->name != NULL; d++)
		if (d->def != NULL && conf_set_value(d, obj, d->def, &why) < 0)
			abort(); /* a default that does not parse is a bug in the table */
}

const struct key_def *
conf_find_def(const struct key_def *defs, const char *name)
{
	for (const struct key_def *d = defs; d->name != NULL; d++)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

void
conf_def_names(const struct key_def *defs, const char **out, size_t max)
{
	size_t n = 0;

	for (const struct key_def *d = defs; d->name != NULL && n + 1 < max; d++)
		out[n++] = d->name;
	out[n] = NULL;
}

/* The keys every route may have, whatever its handler. */
const struct conf_key conf_route_keys[] = {
	{ "listen", NULL, CONF_KEY_LIST, NULL },     /* none: every listener */
	{ "host", NULL, CONF_KEY_LIST, NULL },       /* none: any host */
	{ "path", "/", 0, NULL },
	{ "middleware", NULL, CONF_KEY_LIST, NULL },
	{ "metrics_buckets", METRICS_DEFAULT_BUCKETS, 0, NULL },
	{ NULL, NULL, 0, NULL },
};

const struct conf_key *
conf_key_find(const struct conf_key *keys, const char *name)
{
	for (const struct conf_key *k = keys; k != NULL && k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* The entry of key in keys, which the caller wrote, so it is there. */
static const struct conf_key *
known_key(const struct conf_key *keys, const char *key)
{
	const struct conf_key *k = conf_key_find(keys, key);

	if (k == NULL)
		abort(); /* a handler reading a key outside its table is a bug */
	return k;
}

/* *def as a line giving k its default on line; NULL when k has none.  The
 * casts are for the type only: nothing writes through a conf_kv it is given. */
static const struct conf_kv *
default_line(const struct conf_key *k, int line, struct conf_kv *def)
{
	if (k->def == NULL)
		return NULL;
	*def = (struct conf_kv){ (char *)k->name, (char *)k->def, line };
	return def;
}

/* The last of n lines that gives key, or NULL. */
static const struct conf_kv *
last_line(const struct conf_kv *kv, size_t n, const char *key)
{
	for (size_t i = n; i-- > 0;)
		if (strcmp(kv[i].key, key) == 0)
			return &kv[i];
	return NULL;
}

const struct conf_kv *
conf_route_value(const struct conf_route *rt, const struct conf_key *keys, const char *key,
    struct conf_kv *def)
{
	const struct conf_key *k = known_key(keys, key);
	const struct conf_kv *kv = last_line(rt->kv, rt->nkv, key);

	return kv != NULL ? kv : default_line(k, rt->line, def);
}

const struct conf_kv *
conf_route_list(const struct conf_route *rt, const struct conf_key *keys, const char *key,
    const struct conf_kv *prev, struct conf_kv *def)
{
	const struct conf_key *k = known_key(keys, key);
	const struct conf_kv *kv;

	if (prev == def)
		return NULL; /* the default was the one */
	if ((kv = conf_route_next(rt, key, prev)) != NULL || prev != NULL)
		return kv;
	return default_line(k, rt->line, def);
}

const struct conf_kv *
conf_section_value(const struct conf_section *sec, const struct conf_key *keys, const char *key,
    struct conf_kv *def)
{
	const struct conf_key *k = known_key(keys, key);
	const struct conf_kv *kv = last_line(sec->kv, sec->nkv, key);

	return kv != NULL ? kv : default_line(k, sec->line, def);
}

int
conf_check_section(struct conf_ctx *ctx, const struct conf_section *sec,
    const struct conf_key *keys)
{
	const char *names[64];
	char secname[256], hint[96];
	size_t n = 0;
	int bad = 0;

	for (const struct conf_key *k = keys; k->name != NULL && n < 63; k++)
		names[n++] = k->name;
	names[n] = NULL;
	snprintf(secname, sizeof(secname), "%s:%s", sec->kind, sec->name);
	for (size_t i = 0; i < sec->nkv; i++) {
		const struct conf_kv *kv = &sec->kv[i];
		const struct conf_key *k = conf_key_find(keys, kv->key);
		if (k == NULL) {
			conf_suggest(kv->key, names, hint, sizeof(hint));
			conf_err(ctx, kv->line, secname, kv->key, "unknown key%s", hint);
			bad++;
			continue;
		}
		if (k->flags & CONF_KEY_LIST)
			continue;
		for (size_t j = 0; j < i; j++)
			if (strcmp(sec->kv[j].key, kv->key) == 0) {
				conf_err(ctx, kv->line, secname, kv->key,
				    "given twice (first on line %d)", sec->kv[j].line);
				bad++;
				break;
			}
	}
	return bad;
}

int
conf_list_next(const char **p, const char **tok, size_t *len)
{
	const char *s = *p + strspn(*p, ", \t");

	if (*s == '\0') {
		*p = s;
		return 0;
	}
	*tok = s;
	*len = strcspn(s, ", \t");
	*p = s + *len;
	return 1;
}

/* "key = value", or "key =value" when a blank before the value would make
 * it read back as a comment. */
static void
dump_kv(FILE *out, const char *key, const char *value)
{
	fprintf(out, "%s =%s%s\n", key, value[0] == ';' || value[0] == '#' ? "" : " ", value);
}

static void
dump_table(const struct key_def *defs, const void *obj, FILE *out, int plain, int inet)
{
	char buf[64];

	for (const struct key_def *d = defs; d->name != NULL; d++) {
		const char *field = (const char *)obj + d->off;
		/* A plain listener shows no TLS keys, one on a host and port no
		 * unix_mode: they would not load there. */
		if (plain && (strncmp(d->name, "tls_", 4) == 0 || strcmp(d->name, "hsts") == 0))
			continue;
		if (inet && strcmp(d->name, "unix_mode") == 0)
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

/*
 * The lines of a route or section for the keys of table, in its order: each
 * key as given, or else its default, unless it has none or needs a key not
 * given.
 */
static void
dump_keys(FILE *out, const struct conf_kv *kv, size_t n, const struct conf_key *keys)
{
	struct conf_kv def;

	for (const struct conf_key *k = keys; k != NULL && k->name != NULL; k++) {
		int given = 0;
		for (size_t i = 0; i < n; i++)
			if (strcmp(kv[i].key, k->name) == 0) {
				dump_kv(out, kv[i].key, kv[i].value);
				given = 1;
			}
		if (!given && (k->needs == NULL || last_line(kv, n, k->needs) != NULL) &&
		    default_line(k, 0, &def) != NULL)
			dump_kv(out, def.key, def.value);
	}
}

/* A route: where it matches (listeners, hosts and path as the loader
 * resolved them), its middleware, its handler's key and the handler's
 * other keys, defaults filled in. */
static void
dump_route(const struct config *c, const struct conf_route *r, FILE *out)
{
	const struct conf_kv *sel = conf_route_kv(r, r->handler->key);

	fprintf(out, "\n[route:%s]\n", r->name);
	for (size_t j = 0; j < c->nlistens; j++)
		if (r->listen_mask & (1ULL << j))
			fprintf(out, "listen = %s\n", c->listens[j].name);
	for (size_t j = 0; j < r->nhosts; j++)
		fprintf(out, "host = %s\n", r->hosts[j]);
	fprintf(out, "path = %s\n", r->path);
	for (const struct conf_kv *kv = conf_route_next(r, "middleware", NULL); kv != NULL;
	    kv = conf_route_next(r, "middleware", kv))
		dump_kv(out, kv->key, kv->value);
	/* Only when given: every route has it, and its default is long. */
	if ((sel = conf_route_kv(r, "metrics_buckets")) != NULL)
		dump_kv(out, sel->key, sel->value);
	sel = conf_route_kv(r, r->handler->key);
	dump_kv(out, sel->key, sel->value);
	dump_keys(out, r->kv, r->nkv, r->handler->keys);
}

void
config_dump(const struct config *c, FILE *out)
{
	fprintf(out, "# effective configuration of %s\n[global]\n", c->file);
	dump_table(conf_global_keys, &c->global, out, 0, 0);
	for (size_t i = 0; i < c->nlistens; i++) {
		fprintf(out, "\n[listen:%s]\n", c->listens[i].name);
		dump_table(conf_listen_keys, &c->listens[i], out, c->listens[i].tls_cert.n == 0,
		    c->listens[i].addr.ss_family != AF_UNIX);
	}
	for (size_t i = 0; i < c->nsections; i++) {
		const struct conf_section *sec = &c->sections[i];
		const struct conf_key *keys = sec->owner->section_keys != NULL ?
		    sec->owner->section_keys(sec) : NULL;
		fprintf(out, "\n[%s:%s]\n", sec->kind, sec->name);
		if (keys != NULL) {
			dump_keys(out, sec->kv, sec->nkv, keys);
			continue;
		}
		for (size_t j = 0; j < sec->nkv; j++)
			dump_kv(out, sec->kv[j].key, sec->kv[j].value);
	}
	for (size_t i = 0; i < c->nroutes; i++)
		dump_route(c, &c->routes[i], out);
}
