/*
 * conf_keys: the typed keys of [global] and [listen:NAME], and the -T dump.
 *
 * What only the loader's files need; handlers see config.h.
 */
#ifndef PORTICO_CONF_KEYS_H
#define PORTICO_CONF_KEYS_H

#include "common/config.h"

enum key_type { K_STR, K_LIST, K_DURATION, K_SIZE, K_COUNT, K_BOOL, K_WORKERS, K_LOGLEVEL, K_LOGFMT };

/* One settable key of [global] or [listen:NAME]; defaults live only here. */
struct key_def {
	const char *name;
	enum key_type type;
	size_t off;
	const char *def;             /* NULL: no default (optional or required) */
	uint64_t min, max;           /* for counts and sizes */
};

extern const struct key_def conf_global_keys[];
extern const struct key_def conf_listen_keys[];
/* The keys of every route: listen, host, path and middleware. */
extern const struct conf_key conf_route_keys[];

/* Stores value into the field of obj def describes.  0, or -1 with *why set. */
int conf_set_value(const struct key_def *def, void *obj, const char *value, const char **why);
/* Sets every field of obj whose key has a default to it. */
void conf_apply_defaults(const struct key_def *defs, void *obj);
/* The entry of name in defs, or NULL. */
const struct key_def *conf_find_def(const struct key_def *defs, const char *name);
/* The names of defs into out, NULL-terminated, at most max - 1 of them. */
void conf_def_names(const struct key_def *defs, const char **out, size_t max);

#endif
