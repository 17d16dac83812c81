/*
 * config: the INI file, read line by line into an immutable snapshot.
 *
 * A snapshot is built whole and checked whole before anything uses it:
 * every error is collected as "FILE:LINE: [section] key: reason" and the
 * caller decides what to do with the list.  After config_load returns, the
 * snapshot is never written again, so workers read it without locks.
 */
#ifndef PORTICO_CONFIG_H
#define PORTICO_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common/log.h"

struct handler_ops;

#define CONF_MAX_LISTENS 64 /* routes name listeners through a 64-bit mask */
#define CONF_MAX_MIDDLEWARE 16 /* blocks a route runs */
/* The longest line, its line ending not counted; a longer one is an error,
 * never cut short.  Comment lines are skipped whatever their length. */
#define CONF_MAX_LINE 65536
/* The longest NAME of a [kind:NAME] section. */
#define CONF_MAX_NAME 200
#define CONF_MAX_BUCKETS 16 /* metrics_buckets of a route */

enum access_log_format { ACCESS_LOG_COMBINED, ACCESS_LOG_JSON, ACCESS_LOG_MAIN };

struct conf_global {
	int workers;                  /* 0 means auto: one per CPU we may run on */
	uint64_t max_connections;
	char *user;
	char *group;                  /* instead of the user's primary group */
	char *error_log;
	enum log_level log_level;
	char *access_log;             /* NULL or "off" means none */
	int access_log_format;
	int64_t shutdown_timeout;     /* milliseconds, as all durations */
	int64_t shutdown_delay;
	int64_t header_timeout;
	int64_t body_timeout;
	int64_t keepalive_timeout;
	int64_t send_timeout;
	int64_t linger_timeout;
	int64_t linger_time;          /* lingering as a whole, however the client trickles */
	uint64_t keepalive_requests;
	uint64_t max_request_line;
	uint64_t max_header_size;
	uint64_t max_headers;
	uint64_t max_body_size;
	uint64_t h2_max_streams;      /* SETTINGS_MAX_CONCURRENT_STREAMS we send */
	uint64_t h2_window;           /* a stream's receive window (request body bytes) */
	uint64_t h2_conn_window;      /* the connection's */
	int server_tokens;
	int underscores_in_headers;   /* proxy: pass request header names with '_' */
	int64_t tls_ticket_rotate;    /* session ticket keys are replaced this often */
	int64_t tls_handshake_timeout; /* a TLS handshake must be done within this; 0: header_timeout */
	char *tls_ticket_key;         /* 80-byte key file shared by several edges, or NULL */
	char *pid_file;               /* where the running server writes its pid, or NULL */
};

/* A key that may be given several times, in order. */
struct conf_strlist {
	char **v;
	int *lines;                   /* where each was given */
	size_t n;
};

struct tls_listener;

struct conf_listen {
	char *name;
	int line;
	char *address;                /* as written */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint64_t backlog;
	struct conf_strlist tls_cert; /* PEM chains; with tls_key, in pairs */
	struct conf_strlist tls_key;
	char *tls_min_version;
	char *tls_ciphers;
	char *tls_ciphersuites;
	char *hsts;                   /* Strict-Transport-Security value on HTTPS answers */
	char *tls_client_ca;          /* CA file client certificates are checked against */
	char *tls_verify_client;      /* off, on, optional */
	int http2;                    /* HTTPS: h2 by ALPN; plain: prior-knowledge h2c */
	char *unix_mode;              /* unix:PATH: the socket file's mode, as written */
	unsigned mode;                /* ... as a number (0660) */
	/* The socket file portico made (main thread): removed only while it
	 * is still that file, not one another process put there since. */
	dev_t unix_dev;
	ino_t unix_ino;
	/* Built from the keys above; NULL: plain HTTP.  A reload builds a new
	 * snapshot, certificates read again; this one stays as it is (so a
	 * plain pointer: snapshots are published whole, see worker.c). */
	struct tls_listener *tls;
};

/* One key = value line of a route, kept for handlers and for -T. */
struct conf_kv {
	char *key;
	char *value;
	int line;
};

struct conf_route {
	char *name;
	int line;
	uint64_t listen_mask;         /* bit i: listens[i]; all bits when not given */
	char **hosts;                 /* lower case; "*.example.com" for wildcards */
	size_t nhosts;
	char *path;                   /* prefix, "/" when not given */
	size_t path_len;
	const struct handler_ops *handler;
	void *hconf;                  /* the handler's own, freed by its free_conf */
	struct conf_section *mw[CONF_MAX_MIDDLEWARE]; /* `middleware =`, in order */
	size_t nmw;
	unsigned nbuckets;            /* metrics_buckets: its latency histogram's bounds */
	int64_t le_ms[CONF_MAX_BUCKETS];
	struct conf_kv *kv;
	size_t nkv;
	int invalid;                  /* its path was refused: skip further checks */
};

/* A named section owned by a handler ([pool:NAME] for the proxy). */
struct conf_section {
	char *kind;
	char *name;
	int line;
	struct conf_kv *kv;           /* keys as written, in order */
	size_t nkv;
	const struct handler_ops *owner;
	void *data;                   /* the owner's, freed by its free_section */
};

struct conf_seen;

struct config {
	char *file;
	/* Holders of this snapshot: the server while it is the newest, each
	 * worker still using it (worker.c, snap_release).  It is freed by the
	 * main thread once the count is 0 (reload.c, gc_sweep). */
	_Atomic unsigned refs;
	uint64_t generation;          /* 1 for the first, one more per reload */
	struct conf_seen *seen;       /* where global and listener keys were given */
	size_t nseen;
	struct conf_section *sections;
	size_t nsections;
	struct conf_global global;
	struct conf_listen *listens;
	size_t nlistens;
	struct conf_route *routes;    /* in match order, most specific first */
	size_t nroutes;
};

/* Collected errors of one load, in the order of their lines once it is done. */
struct conf_ctx {
	const char *file;
	char **errors;
	int *lines;                   /* errors[i] is about line lines[i]; 0: the whole file */
	size_t nerrors;
	char **warnings;              /* what works but is likely a mistake, in the same form */
	size_t nwarnings;
	const char *section;          /* the section being read, for messages */
	struct config *conf;          /* the snapshot being built */
};

/*
 * Reads and validates file.  handlers is a NULL-terminated table of the
 * handlers a route may select.  Returns a new snapshot owned by the caller
 * (free with config_free), or NULL after appending at least one message to
 * ctx->errors (free those with conf_ctx_free).
 */
struct config *config_load(const char *file, const struct handler_ops *const *handlers,
    struct conf_ctx *ctx);
/* The same for INI text in memory; name stands for the file in messages. */
struct config *config_load_string(const char *name, const char *text,
    const struct handler_ops *const *handlers, struct conf_ctx *ctx);
void config_free(struct config *conf);
/* Takes one more reference on conf, from any thread. */
void config_hold(struct config *conf);
/* Drops one; returns 1 when it was the last (conf is then the caller's to
 * have freed), else 0.  Never frees: the main thread does (reload.c). */
int config_drop(struct config *conf);
void conf_ctx_free(struct conf_ctx *ctx);

/* Appends "FILE:LINE: [section] key: message" to ctx.  key may be NULL. */
void conf_err(struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same as a warning: the load succeeds, and the line is printed by -t
 * and logged at level warn at start-up. */
void conf_warn(struct conf_ctx *ctx, int line, const char *section, const char *key,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The line key was given on in [section] ("global", "listen:NAME"), or 0. */
int conf_key_line(const struct config *c, const char *section, const char *key);

/*
 * One key a handler reads in its routes, a section kind holds or a
 * middleware type reads, in a table per handler, kind or type that ends
 * with a NULL name.  The table is the only place its default is written:
 * the loader rejects keys not in it and repeats of keys without
 * CONF_KEY_LIST, conf_route_value and conf_section_value fall back to def,
 * and -T prints def for a key not given.
 */
struct conf_key {
	const char *name;
	const char *def;              /* the value when not given; NULL: none */
	unsigned flags;
	/* A key this one only means something with: when that is not given,
	 * -T leaves this one's default out (it would not load, or mislead). */
	const char *needs;
};

#define CONF_KEY_LIST 0x1 /* may be repeated, each line adding to a list */

/* The entry of name in keys, or NULL. */
const struct conf_key *conf_key_find(const struct conf_key *keys, const char *name);

/* The last value given for key in a route, or NULL. */
const struct conf_kv *conf_route_kv(const struct conf_route *rt, const char *key);
/* For a key that may be repeated: the first value of key in a route after
 * prev, or the first of all when prev is NULL; NULL when there is no more. */
const struct conf_kv *conf_route_next(const struct conf_route *rt, const char *key,
    const struct conf_kv *prev);

/*
 * The value of key, an entry of keys: the last line of it in rt, or else
 * its default, made up in *def as if given on the route's header line; NULL
 * when neither.  The result lives as long as rt and *def.
 */
const struct conf_kv *conf_route_value(const struct conf_route *rt, const struct conf_key *keys,
    const char *key, struct conf_kv *def);
/* For a CONF_KEY_LIST key: as conf_route_next, but when the route gives no
 * line of it, its default once (in *def), if it has one. */
const struct conf_kv *conf_route_list(const struct conf_route *rt, const struct conf_key *keys,
    const char *key, const struct conf_kv *prev, struct conf_kv *def);

/* For "off" and such, which cannot go with other values of a repeated key:
 * 0 when kv is its key's only line in rt, else -1 with the error reported. */
int conf_route_alone(struct conf_ctx *ctx, const struct conf_route *rt, const struct conf_kv *kv);

/* The handler-owned section [kind:name], or NULL. */
struct conf_section *conf_section_find(const struct config *conf, const char *kind,
    const char *name);
/* Reports every key of sec not in keys, with a did-you-mean, and every
 * repeat of a key without CONF_KEY_LIST.  Returns the number reported. */
int conf_check_section(struct conf_ctx *ctx, const struct conf_section *sec,
    const struct conf_key *keys);
/* As conf_route_value, for a key of a section (default: on its header line). */
const struct conf_kv *conf_section_value(const struct conf_section *sec,
    const struct conf_key *keys, const char *key, struct conf_kv *def);

/*
 * The next member of a list value ("a, b c": blanks and commas separate):
 * 1 with *tok and *len set and *p moved past it, or 0 at the end.  The
 * value is not changed; a member is not NUL-terminated.
 */
int conf_list_next(const char **p, const char **tok, size_t *len);

/* Writes the effective configuration, defaults included, as INI (-T). */
void config_dump(const struct config *conf, FILE *out);

/* Parses "HOST:PORT", "[V6]:PORT", ":PORT" or "*:PORT".  0 or -1. */
int conf_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Levenshtein distance, capped; for "did you mean". */
unsigned conf_distance(const char *a, const char *b);

#endif
